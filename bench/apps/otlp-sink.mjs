// The benchmark's trace collector: accepts OTLP/HTTP export requests (POST /v1/traces) and answers
// 200 with an empty ExportTraceServiceResponse, reading each body to its end and keeping nothing but
// counts, so a traced path pays the whole cost of export and none of a real backend's. Listens on
// 127.0.0.1, port 0; prints the port on stdout, and its counts on stderr when stopped.
import { createServer } from 'node:http';

let requests = 0;
let bytes = 0;
const server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, (req, res) => {
  requests++;
  req.on('data', (chunk) => (bytes += chunk.length));
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': '0' });
    res.end();
  });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
process.on('SIGTERM', () => {
  process.stderr.write(`otlp-sink: ${requests} export requests, ${bytes} bytes\n`);
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
