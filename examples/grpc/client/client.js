// client: calls the greeter's own gRPC service through its Courier sidecar, with nothing but the
// metadata `dapr-app-id: greeter` (Dapr's proxy mode). Courier gives it DAPR_GRPC_PORT.
import { GreeterClient, grpc } from '../greeter.js';

const sidecar = `127.0.0.1:${process.env.DAPR_GRPC_PORT ?? 50001}`;
const limit = Number(process.env.GREETING_LIMIT ?? Infinity);
const client = new GreeterClient(sidecar, grpc.credentials.createInsecure());

const metadata = () => {
  const md = new grpc.Metadata();
  md.set('dapr-app-id', 'greeter');
  return md;
};

function sayHello(name) {
  return new Promise((resolve, reject) => {
    client.sayHello({ name }, metadata(), { deadline: Date.now() + 5000 }, (err, reply) => (err ? reject(err) : resolve(reply)));
  });
}

function sayHellos(name, count) {
  return new Promise((resolve, reject) => {
    const replies = [];
    const call = client.sayHellos({ name, count }, metadata(), { deadline: Date.now() + 5000 });
    call.on('data', (reply) => replies.push(reply.message));
    call.on('error', reject);
    call.on('end', () => resolve(replies));
  });
}

let n = 0;
async function tick() {
  n++;
  try {
    const reply = await sayHello(`world ${n}`);
    console.log(`Greeter said: ${reply.message}`);
    if (n === 1) console.log(`Greeter streamed: ${(await sayHellos('stream', 3)).join(', ')}`);
  } catch (err) {
    console.log(`call failed: ${err.message}`);
  }
  if (n >= limit) {
    client.close();
    return;
  }
  setTimeout(tick, 1000);
}
setTimeout(tick, 500);
