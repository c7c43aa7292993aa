// A GrpcServer (HTTP/2 and lane) in its own process, for tests that kill the server mid-call. Prints its port on stdout.
// `/test.Hold/Forever` reads the request and never answers.
import { GrpcServer } from '../server.js';

const server = new GrpcServer({ lane: true });
server.register('/test.Hold/Forever', (call) => {
  call.setReader({ message: () => {}, end: () => call.sendHeaders(), error: () => {} });
});
const address = await server.listen('127.0.0.1', 0);
process.stdout.write(`${address.port}\n`);
