// greeter: a plain gRPC server (no Dapr SDK). Courier runs it with --app-protocol grpc and forwards
// proxied calls to it on APP_PORT (50051 when run by hand).
import { GreeterService, grpc } from '../greeter.js';

const port = Number(process.env.APP_PORT ?? 50051);
const server = new grpc.Server();

server.addService(GreeterService, {
  sayHello(call, callback) {
    const from = call.metadata.get('dapr-caller-app-id')[0] ?? 'someone';
    console.log(`SayHello from ${from}: ${call.request.name}`);
    callback(null, { message: `Hello ${call.request.name}` });
  },
  sayHellos(call) {
    const count = Math.min(call.request.count || 3, 100);
    for (let i = 1; i <= count; i++) call.write({ message: `Hello ${call.request.name} #${i}` });
    call.end();
  },
});

server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    console.error(err.message);
    process.exit(1);
  }
  console.log(`greeter listening on ${port}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.tryShutdown(() => process.exit(0)));
