// nodeapp: receives orders through its Courier sidecar and remembers the last one.
// Plain Node.js, no dependencies. Courier gives it APP_PORT; 3000 when run by hand.
import { createServer } from 'node:http';

const port = Number(process.env.APP_PORT ?? 3000);
let lastOrder = null;

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    if (req.method === 'POST' && req.url === '/neworder') {
      let order;
      try {
        order = JSON.parse(Buffer.concat(chunks).toString()).data;
      } catch {
        res.writeHead(400, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ message: 'expected a JSON body like {"data":{"orderId":"42"}}' }));
        return;
      }
      console.log(`Got a new order! Order ID: ${order?.orderId}`);
      lastOrder = order;
      res.writeHead(200);
      res.end();
      return;
    }
    if (req.method === 'GET' && req.url === '/order') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(lastOrder ?? {}));
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('not found\n');
  });
});

server.listen(port, () => console.log(`Node App listening on port ${port}!`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
