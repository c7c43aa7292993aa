// The benchmark's gRPC app (@grpc/grpc-js): a unary method /courier.bench.Echo/Say that takes any
// message and answers an empty one, with no protobuf work (bytes pass through). Listens on
// 127.0.0.1, port 0; prints the port on stdout.
import * as grpc from '@grpc/grpc-js';

const bytes = { serialize: (b) => b, deserialize: (b) => b };
const empty = Buffer.alloc(0);
const service = {
  Say: {
    path: '/courier.bench.Echo/Say',
    requestStream: false,
    responseStream: false,
    requestSerialize: bytes.serialize,
    requestDeserialize: bytes.deserialize,
    responseSerialize: bytes.serialize,
    responseDeserialize: bytes.deserialize,
  },
};
const server = new grpc.Server();
server.addService(service, { Say: (_call, callback) => callback(null, empty) });
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    console.error(err.message);
    process.exit(1);
  }
  process.stdout.write(`${port}\n`);
});
process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
