export {
  internalInvokeRequestCodec,
  internalInvokeResponseCodec,
  internalInvokeRequestStreamCodec,
  internalInvokeResponseStreamCodec,
  encodePayloadChunkHead,
  protoTypes,
} from './codec.js';
export type { Codec } from './codec.js';
export { HttpVerb, API_VERSION_V1 } from './types.js';
export type {
  Any,
  HTTPExtension,
  HttpVerbName,
  InvokeRequest,
  InvokeResponse,
  StreamPayload,
  ListStringValue,
  MetadataMap,
  Status,
  InternalInvokeRequest,
  InternalInvokeResponse,
  InternalInvokeRequestStream,
  InternalInvokeResponseStream,
} from './types.js';
