import { STATUS_CODES } from '../util/builtin-http.js';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import { GrpcStatus, grpcStatusFromHttp } from '../errors/index.js';
import { isReservedHeader } from '../grpc/index.js';
import { ERROR_INFO_TYPE_URL, errorInfoCodec, rpcStatusCodec, type Any } from '../proto/index.js';
import { DESTINATION_APP_ID, hopByHopHeaders, newMetadata, type Metadata } from './headers.js';

/**
 * Translation between HTTP and gRPC, in the four directions a call can take (Dapr
 * `pkg/messaging/v1/util.go`, `pkg/api/grpc/grpc.go`, `pkg/api/http/directmessaging.go`):
 * statuses, error details and metadata names.
 */

/** The gRPC status a gRPC caller gets for an app's answer, with the details that explain it. */
export interface GrpcResult {
  readonly code: number;
  readonly message: string;
  readonly details: readonly Any[];
}

/** Dapr's `ErrorInfo.domain` for errors it builds. */
export const DAPR_ERROR_DOMAIN = 'dapr.io';
/** How much of an HTTP app's error body is copied into `ErrorInfo.metadata["http.error_message"]`. */
const ERROR_MESSAGE_CHARS = 63;

/**
 * An HTTP app's answer as a gRPC caller sees it (Dapr `ErrorFromHTTPResponseCode`): 2xx is OK;
 * anything else is the code of `CodeFromHTTPStatus`, the status text as message, and an `ErrorInfo`
 * carrying the HTTP code and the start of the body.
 */
export function grpcResultForHttpStatus(status: number, body: Buffer): GrpcResult {
  const code = grpcStatusFromHttp(status);
  if (code === GrpcStatus.OK) return { code, message: '', details: [] };
  const reason = STATUS_CODES[status] ?? '';
  const info = errorInfoCodec.encode({
    reason,
    domain: DAPR_ERROR_DOMAIN,
    metadata: { 'http.code': String(status), 'http.error_message': truncateChars(body.toString('utf8'), ERROR_MESSAGE_CHARS) },
  });
  return { code, message: reason, details: [{ typeUrl: ERROR_INFO_TYPE_URL, value: info }] };
}

/** An `ErrorInfo` detail for an error Courier itself reports to a gRPC caller. */
export function errorInfoDetail(reason: string, metadata: Record<string, string> = {}): Any {
  return { typeUrl: ERROR_INFO_TYPE_URL, value: errorInfoCodec.encode({ reason, domain: DAPR_ERROR_DOMAIN, metadata }) };
}

function truncateChars(text: string, max: number): string {
  const chars = Array.from(text);
  return chars.length <= max ? text : chars.slice(0, max).join('');
}

/** The `grpc-status-details-bin` trailer value (a serialized `google.rpc.Status`), base64 as on the wire. */
export function statusDetailsTrailer(code: number, message: string, details: readonly Any[]): string {
  return Buffer.from(rpcStatusCodec.encode({ code, message, details: [...details] })).toString('base64');
}

/** The details of a received `grpc-status-details-bin` value, or undefined when absent or malformed. */
export function detailsFromTrailer(value: string | string[] | undefined): Any[] | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || text === '') return undefined;
  try {
    const status = rpcStatusCodec.decode(Buffer.from(text, 'base64'));
    return status.details ?? [];
  } catch {
    return undefined;
  }
}

/**
 * The JSON body an HTTP caller gets for a gRPC app's error (protojson of `google.rpc.Status`):
 * `{"code":5,"message":"...","details":[{"@type":"...", ...}]}`, empty fields left out. Details of
 * types Courier knows (`ErrorInfo`) are rendered field by field; others as `@type` plus the base64 `value`.
 */
export function grpcErrorJson(code: number, message: string, details: readonly Any[]): string {
  const out: Record<string, unknown> = {};
  if (code !== 0) out.code = code;
  if (message !== '') out.message = message;
  if (details.length > 0) out.details = details.map(detailJson);
  return JSON.stringify(out);
}

function detailJson(any: Any): Record<string, unknown> {
  const typeUrl = any.typeUrl ?? '';
  const value = any.value ?? new Uint8Array(0);
  if (typeUrl === ERROR_INFO_TYPE_URL) {
    try {
      const info = errorInfoCodec.decode(value);
      const out: Record<string, unknown> = { '@type': typeUrl };
      if (info.reason !== undefined && info.reason !== '') out.reason = info.reason;
      if (info.domain !== undefined && info.domain !== '') out.domain = info.domain;
      if (info.metadata !== undefined && Object.keys(info.metadata).length > 0) out.metadata = info.metadata;
      return out;
    } catch {
      // rendered generically below
    }
  }
  return { '@type': typeUrl, value: Buffer.from(value).toString('base64') };
}

/**
 * Names of "permanent" IANA HTTP headers (Dapr `isPermanentHTTPHeader`). Carried as gRPC metadata
 * they get a `dapr-` prefix, so `Content-Type` reaches a gRPC app as `dapr-content-type` and never
 * collides with the protocol's own fields.
 */
export const permanentHttpHeaders: ReadonlySet<string> = new Set([
  'accept',
  'accept-charset',
  'accept-language',
  'accept-ranges',
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'cache-control',
  'content-type',
  'content-length',
  'cookie',
  'date',
  'expect',
  'from',
  'host',
  'if-match',
  'if-modified-since',
  'if-none-match',
  'if-schedule-tag-match',
  'if-unmodified-since',
  'max-forwards',
  'origin',
  'pragma',
  'referer',
  'via',
  'warning',
]);

/** Keys that never leave as gRPC metadata: internal routing and credentials meant for one hop. */
const grpcDropped: ReadonlySet<string> = new Set([DESTINATION_APP_ID, 'dapr-api-token', 'dapr-app-id']);

/**
 * Invocation metadata (or an HTTP app's response headers) as gRPC metadata (Dapr
 * `InternalMetadataToGrpcMetadata` with HTTP header conversion): names lower-cased; permanent HTTP
 * headers, pseudo-headers and names gRPC reserves get a `dapr-` prefix; every value kept in order;
 * `-bin` values stay base64 text as on the wire. Nothing Node's HTTP/2 layer refuses is produced.
 */
export function grpcMetadataFromInvoke(md: Metadata | undefined): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = Object.create(null) as OutgoingHttpHeaders;
  if (md === undefined) return out;
  for (const key of Object.keys(md)) {
    let name = key.toLowerCase();
    if (grpcDropped.has(name)) continue;
    if (name.startsWith(':')) name = `dapr-${name.slice(1)}`;
    else if (permanentHttpHeaders.has(name) || hopByHopHeaders.has(name) || isReservedHeader(name)) name = `dapr-${name}`;
    if (!/^[a-z0-9_.-]+$/.test(name)) continue;
    const values = md[key]?.values ?? [];
    if (values.length === 0) continue;
    const existing = out[name];
    if (existing === undefined) out[name] = values.length === 1 ? values[0] : [...values];
    else out[name] = [...(Array.isArray(existing) ? existing : [String(existing)]), ...values];
  }
  return out;
}

/** Received gRPC metadata as invocation metadata: custom metadata only, lower-case names, every value. */
export function invokeMetadataFromGrpc(headers: IncomingHttpHeaders, drop?: ReadonlySet<string>): Metadata {
  const md = newMetadata();
  for (const name of Object.keys(headers)) {
    if (isReservedHeader(name) || drop?.has(name) === true) continue;
    const value = headers[name];
    if (value === undefined) continue;
    md[name] = { values: Array.isArray(value) ? [...value] : [value] };
  }
  return md;
}
