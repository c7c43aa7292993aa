// The benchmark's HTTP app: reads each request body to its end and answers 200 with an empty body
// (as Dapr's performance test app does). Listens on 127.0.0.1, port 0; prints the port on stdout.
import { createServer } from 'node:http';

const server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, (req, res) => {
  req.on('data', () => {});
  req.on('end', () => {
    res.writeHead(200, { 'content-length': '0' });
    res.end();
  });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
