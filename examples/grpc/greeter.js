// The Greeter service definition shared by the example's server and client: protobufjs reads
// greeter.proto and @grpc/grpc-js serves and calls it. Courier itself never sees this file.
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';

const root = protobuf.loadSync(fileURLToPath(new URL('./greeter.proto', import.meta.url)));
const HelloRequest = root.lookupType('helloworld.HelloRequest');
const HelloReply = root.lookupType('helloworld.HelloReply');

const codec = (type) => ({
  serialize: (value) => Buffer.from(type.encode(type.fromObject(value)).finish()),
  deserialize: (bytes) => type.toObject(type.decode(bytes)),
});
const request = codec(HelloRequest);
const reply = codec(HelloReply);

export const GreeterService = {
  sayHello: {
    path: '/helloworld.Greeter/SayHello',
    requestStream: false,
    responseStream: false,
    requestSerialize: request.serialize,
    requestDeserialize: request.deserialize,
    responseSerialize: reply.serialize,
    responseDeserialize: reply.deserialize,
  },
  sayHellos: {
    path: '/helloworld.Greeter/SayHellos',
    requestStream: false,
    responseStream: true,
    requestSerialize: request.serialize,
    requestDeserialize: request.deserialize,
    responseSerialize: reply.serialize,
    responseDeserialize: reply.deserialize,
  },
};

export const GreeterClient = grpc.makeGenericClientConstructor(GreeterService, 'Greeter');
export { grpc };
