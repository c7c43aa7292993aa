export {
  internalInvokeRequestCodec,
  internalInvokeResponseCodec,
  internalInvokeRequestStreamCodec,
  internalInvokeResponseStreamCodec,
  encodePayloadChunkHead,
  protoTypes,
  signCertificateRequestCodec,
  signCertificateResponseCodec,
} from './codec.js';
export type { Codec } from './codec.js';
export { HttpVerb, API_VERSION_V1, TokenValidator } from './types.js';
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
  SignCertificateRequest,
  SignCertificateResponse,
  Timestamp,
} from './types.js';
