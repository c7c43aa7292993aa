// A general gRPC transport (PROTOCOL-HTTP2.md) over node:http2 carrying opaque message bytes.
// Knows nothing about protobuf or Dapr: service code encodes and decodes messages.
export { GrpcServer } from './server.js';
export type { CallHandler, CallObserver, GrpcServerCloseOptions, GrpcServerOptions } from './server.js';
export type {
  CallOpener,
  CallOptions,
  CallResult,
  ClientCall,
  ClientReader,
  Peer,
  ServerCall,
  ServerReader,
  TransportFailure,
} from './call.js';
export { Http2ServerCall } from './server-call.js';
export { GrpcChannel, targetLabel } from './channel.js';
export type { GrpcChannelOptions } from './channel.js';
export type { ChannelTarget } from './connection.js';
export { Http2ClientCall } from './client-call.js';
export { ChannelPool } from './pool.js';
export { DEFAULT_MAX_MESSAGE_BYTES, MESSAGE_HEAD_BYTES, MessageDecoder, messageHead } from './framing.js';
export { appendCustomMetadata, customMetadata, isGrpcContentType, isReservedHeader, metadataFromRawHeaders } from './metadata.js';
export type { Metadata, ReceivedMetadata } from './metadata.js';
export {
  decodeGrpcMessage,
  encodeGrpcMessage,
  grpcCodeForHttpStatus,
  grpcCodeForRstCode,
  parseGrpcStatus,
} from './status.js';
export type { CallStatus } from './status.js';
export { encodeGrpcTimeout, parseGrpcTimeout } from './timeout.js';
export { tlsClient, tlsServer } from './tls.js';
export type { ServerTlsOptions } from './tls.js';
export { relayCall } from './relay.js';
export type { RelayOptions } from './relay.js';
