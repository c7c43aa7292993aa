import { readFileSync } from '../util/builtins.js';
import { fileURLToPath } from 'node:url';
import { varintSize, writeVarint } from './varint.js';
import { createRequire } from 'node:module';
import type protobuf from 'protobufjs';
import type {
  InternalInvokeRequest,
  InternalInvokeRequestStream,
  InternalInvokeResponse,
  InternalInvokeResponseStream,
  SignCertificateRequest,
  SignCertificateResponse,
  InvokeRequest,
  InvokeResponse,
  InvokeServiceRequest,
  GetMetadataResponse,
  SetMetadataRequest,
  RpcStatus,
  ErrorInfo,
} from './types.js';
import {
  decodeInternalInvokeRequestStream,
  decodeInternalInvokeResponseStream,
  encodeInternalInvokeRequestStream,
  encodeInternalInvokeResponseStream,
} from './fast-codec.js';

/** Encodes and decodes one message type. */
export interface Codec<T> {
  encode(message: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

/** `proto/` at the package root: two levels up from both `src/proto/` and `dist/proto/`. */
const protoRoot = fileURLToPath(new URL('../../proto/', import.meta.url));

/**
 * Our .proto files, in dependency order. They are parsed one by one rather than through
 * `Root.loadSync`, because protobufjs's loader substitutes its own bundled JSON for any path containing
 * `google/protobuf/`, whose field names keep snake_case; parsing our own text keeps every field camelCase.
 */
const protoFiles = [
  'google/protobuf/any.proto',
  'google/protobuf/timestamp.proto',
  'google/protobuf/wrappers.proto',
  'dapr/proto/common/v1/common.proto',
  'dapr/proto/internals/v1/apiversion.proto',
  'dapr/proto/internals/v1/status.proto',
  'dapr/proto/internals/v1/service_invocation.proto',
  'dapr/proto/sentry/v1/sentry.proto',
  'google/protobuf/empty.proto',
  'google/rpc/status.proto',
  'google/rpc/error_details.proto',
  'dapr/proto/runtime/v1/appcallback.proto',
  'dapr/proto/runtime/v1/invoke.proto',
  'dapr/proto/runtime/v1/metadata.proto',
  'dapr/proto/runtime/v1/dapr.proto',
];

let loadedRoot: protobuf.Root | undefined;

/**
 * protobufjs and the parsed `.proto` files, loaded on the first use of a generic codec. The messages
 * of every call between sidecars have their own codec (fast-codec.ts), so a sidecar that only relays
 * HTTP calls never loads protobufjs (about 10 MB of RSS); the gRPC API, gRPC apps and the Sentry do.
 */
function root(): protobuf.Root {
  if (loadedRoot !== undefined) return loadedRoot;
  const pb = createRequire(import.meta.url)('protobufjs') as typeof protobuf;
  // uint64 fields (StreamPayload.seq) decode as plain numbers rather than Long objects: a sequence
  // number never exceeds 2^53 and numbers are cheaper.
  (pb.util as { Long: unknown }).Long = undefined;
  pb.configure();
  const loaded = new pb.Root();
  for (const file of protoFiles) {
    pb.parse(readFileSync(protoRoot + file, 'utf8'), loaded, { keepCase: false });
  }
  loaded.resolveAll();
  loadedRoot = loaded;
  return loaded;
}

function codecFor<T>(name: string): Codec<T> {
  let type: protobuf.Type | undefined;
  return {
    encode: (message: T) => (type ??= root().lookupType(name)).encode(message as unknown as Record<string, unknown>).finish(),
    decode: (bytes: Uint8Array) => (type ??= root().lookupType(name)).decode(bytes) as unknown as T,
  };
}

export const internalInvokeRequestCodec = codecFor<InternalInvokeRequest>('dapr.proto.internals.v1.InternalInvokeRequest');
export const internalInvokeResponseCodec = codecFor<InternalInvokeResponse>('dapr.proto.internals.v1.InternalInvokeResponse');
/** The messages of every call between sidecars: written for them (see fast-codec.ts), not generic. */
export const internalInvokeRequestStreamCodec: Codec<InternalInvokeRequestStream> = {
  encode: encodeInternalInvokeRequestStream,
  decode: decodeInternalInvokeRequestStream,
};
export const internalInvokeResponseStreamCodec: Codec<InternalInvokeResponseStream> = {
  encode: encodeInternalInvokeResponseStream,
  decode: decodeInternalInvokeResponseStream,
};

/** The generic (protobufjs) codec of a message type, by its full name; for tests and tools. */
export function genericCodec<T>(name: string): Codec<T> {
  return codecFor<T>(name);
}

export const signCertificateRequestCodec = codecFor<SignCertificateRequest>('dapr.proto.sentry.v1.SignCertificateRequest');
export const signCertificateResponseCodec = codecFor<SignCertificateResponse>('dapr.proto.sentry.v1.SignCertificateResponse');

export const invokeRequestCodec = codecFor<InvokeRequest>('dapr.proto.common.v1.InvokeRequest');
export const invokeResponseCodec = codecFor<InvokeResponse>('dapr.proto.common.v1.InvokeResponse');
export const invokeServiceRequestCodec = codecFor<InvokeServiceRequest>('dapr.proto.runtime.v1.InvokeServiceRequest');
export const getMetadataResponseCodec = codecFor<GetMetadataResponse>('dapr.proto.runtime.v1.GetMetadataResponse');
export const setMetadataRequestCodec = codecFor<SetMetadataRequest>('dapr.proto.runtime.v1.SetMetadataRequest');
/** `google.rpc.Status`, as carried in the `grpc-status-details-bin` trailer. */
export const rpcStatusCodec = codecFor<RpcStatus>('google.rpc.Status');
export const errorInfoCodec = codecFor<ErrorInfo>('google.rpc.ErrorInfo');
/** The type URL of an `Any` holding a google.rpc.ErrorInfo. */
export const ERROR_INFO_TYPE_URL = 'type.googleapis.com/google.rpc.ErrorInfo';

/** The protobufjs root holding every Courier message type, for tests and tools. */
export function protoTypes(): protobuf.Root {
  return root();
}

/**
 * The leading bytes of an `Internal­Invoke{Request,Response}Stream` message that carries only a
 * payload chunk, so that the chunk itself can be written after it without being copied:
 *
 *   field 2 (payload, length-delimited) { field 2 (seq, varint) ; field 1 (data, length-delimited) }
 *
 * Protobuf parsers accept fields in any order, which is what lets `data` come last here.
 * Both stream messages use field number 2 for the payload, so one encoder serves both directions.
 */
export function encodePayloadChunkHead(dataLength: number, seq: number): Buffer {
  const seqBytes = seq === 0 ? 0 : 1 + varintSize(seq);
  const inner = seqBytes + 1 + varintSize(dataLength) + dataLength;
  const head = Buffer.allocUnsafe(1 + varintSize(inner) + seqBytes + 1 + varintSize(dataLength));
  let at = 0;
  head[at++] = 0x12; // field 2, wire type 2
  at = writeVarint(head, at, inner);
  if (seq !== 0) {
    head[at++] = 0x10; // field 2, wire type 0
    at = writeVarint(head, at, seq);
  }
  head[at++] = 0x0a; // field 1, wire type 2
  writeVarint(head, at, dataLength);
  return head;
}
