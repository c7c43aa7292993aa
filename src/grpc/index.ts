export { GrpcServer, ServerCall } from './server.js';
export type { CallHandler, CallStatus, GrpcServerOptions, MessageReader, Metadata } from './server.js';
export { ChannelPool, ClientCall, GrpcChannel } from './channel.js';
export type { CallResult, ChannelOptions, ResponseReader, Target } from './channel.js';
export { MessageParser, messageHead } from './framing.js';
export { encodeGrpcMessage, decodeGrpcMessage, encodeTimeout, parseTimeout } from './wire.js';
