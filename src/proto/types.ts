/**
 * TypeScript shapes of the protobuf messages Courier exchanges, as protobufjs encodes and decodes
 * them (camelCase field names, enums as numbers, bytes as Uint8Array, uint64 as number). They mirror
 * `proto/dapr/proto/**`; `codec.test.ts` pins the field numbers against hand-assembled bytes.
 */

/** `common.v1.HTTPExtension.Verb`. */
export const HttpVerb = {
  NONE: 0,
  GET: 1,
  HEAD: 2,
  POST: 3,
  PUT: 4,
  DELETE: 5,
  CONNECT: 6,
  OPTIONS: 7,
  TRACE: 8,
  PATCH: 9,
} as const;
export type HttpVerbName = keyof typeof HttpVerb;

export interface Any {
  typeUrl?: string;
  value?: Uint8Array;
}

export interface HTTPExtension {
  verb?: number;
  querystring?: string;
}

export interface InvokeRequest {
  method?: string;
  data?: Any | null;
  contentType?: string;
  httpExtension?: HTTPExtension | null;
}

export interface InvokeResponse {
  data?: Any | null;
  contentType?: string;
}

export interface StreamPayload {
  data?: Uint8Array;
  seq?: number;
}

export interface ListStringValue {
  values?: string[];
}

/** A protobuf `map<string, ListStringValue>`; build it with `Object.create(null)` (see metadata.ts). */
export type MetadataMap = Record<string, ListStringValue>;

export interface Status {
  code?: number;
  message?: string;
  details?: Any[];
}

export interface InternalInvokeRequest {
  ver?: number;
  metadata?: MetadataMap;
  message?: InvokeRequest | null;
}

export interface InternalInvokeResponse {
  status?: Status | null;
  headers?: MetadataMap;
  trailers?: MetadataMap;
  message?: InvokeResponse | null;
}

export interface InternalInvokeRequestStream {
  request?: InternalInvokeRequest | null;
  payload?: StreamPayload | null;
}

export interface InternalInvokeResponseStream {
  response?: InternalInvokeResponse | null;
  payload?: StreamPayload | null;
}

/** `internals.v1.APIVersion.V1`: the only version either side speaks. */
export const API_VERSION_V1 = 1;

/** `sentry.v1.SignCertificateRequest.TokenValidator`. */
export const TokenValidator = { UNKNOWN: 0, INSECURE: 1, KUBERNETES: 2, JWKS: 3 } as const;

export interface Timestamp {
  /** int64 seconds; numbers are exact up to 2^53. */
  seconds?: number;
  nanos?: number;
}

export interface SignCertificateRequest {
  id?: string;
  token?: string;
  trustDomain?: string;
  namespace?: string;
  certificateSigningRequest?: Uint8Array;
  tokenValidator?: number;
  jwtAudiences?: string[];
}

export interface SignCertificateResponse {
  workloadCertificate?: Uint8Array;
  trustChainCertificates?: Uint8Array[];
  validUntil?: Timestamp | null;
}

export interface InvokeServiceRequest {
  id?: string;
  message?: InvokeRequest | null;
}

export interface RegisteredComponents {
  name?: string;
  type?: string;
  version?: string;
  capabilities?: string[];
}

export interface AppConnectionHealthProperties {
  healthCheckPath?: string;
  healthProbeInterval?: string;
  healthProbeTimeout?: string;
  healthThreshold?: number;
}

export interface AppConnectionProperties {
  port?: number;
  protocol?: string;
  channelAddress?: string;
  maxConcurrency?: number;
  health?: AppConnectionHealthProperties | null;
}

export interface GetMetadataResponse {
  id?: string;
  registeredComponents?: RegisteredComponents[];
  extendedMetadata?: Record<string, string>;
  httpEndpoints?: Array<{ name?: string }>;
  appConnectionProperties?: AppConnectionProperties | null;
  runtimeVersion?: string;
  enabledFeatures?: string[];
}

export interface SetMetadataRequest {
  key?: string;
  value?: string;
}

/** `google.rpc.Status`. */
export interface RpcStatus {
  code?: number;
  message?: string;
  details?: Any[];
}

/** `google.rpc.ErrorInfo`. */
export interface ErrorInfo {
  reason?: string;
  domain?: string;
  metadata?: Record<string, string>;
}
