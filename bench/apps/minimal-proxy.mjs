// The floor a Node.js proxy costs on this machine: an HTTP/1.1 server (node:http) that forwards each
// request to one upstream over a keep-alive undici Pool and writes back what comes, and nothing else
// (no routing, no header rules, no metadata, no retries, no metrics). Two of them in a row stand for a
// pair of sidecars in `npm run bench:node-floor`. Usage: node minimal-proxy.mjs <upstream port>;
// listens on 127.0.0.1, port 0, and prints the port on stdout.
import { createServer } from 'node:http';
import { Pool } from 'undici';

const upstream = new Pool(`http://127.0.0.1:${process.argv[2]}`, { pipelining: 1, headersTimeout: 0, bodyTimeout: 0, keepAliveTimeout: 30_000 });

class Relay {
  constructor(res) {
    this.res = res;
    this.status = 0;
    this.chunks = [];
  }
  onRequestStart() {}
  onResponseStart(_controller, status) {
    this.status = status;
  }
  onResponseData(_controller, chunk) {
    this.chunks.push(chunk);
  }
  onResponseEnd() {
    const body = Buffer.concat(this.chunks);
    this.res.writeHead(this.status, { 'content-length': String(body.length) });
    this.res.end(body);
  }
  onResponseError() {
    this.res.writeHead(502, { 'content-length': '0' });
    this.res.end();
  }
}

const server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, (req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const headers = ['content-type', req.headers['content-type'] ?? 'application/octet-stream', 'content-length', String(body.length)];
    upstream.dispatch({ method: req.method, path: req.url, headers, body }, new Relay(res));
  });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => void upstream.close().then(() => process.exit(0)));
});
