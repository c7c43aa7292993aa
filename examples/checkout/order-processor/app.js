// order-processor: receives orders from checkout through Courier.
import { createServer } from 'node:http';

const port = Number(process.env.APP_PORT ?? 5001);

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    if (req.method === 'POST' && req.url === '/orders') {
      console.log('Order received:', JSON.parse(Buffer.concat(chunks).toString()));
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('OK');
      return;
    }
    res.writeHead(404);
    res.end();
  });
});
server.listen(port, () => console.log(`order-processor listening on port ${port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
