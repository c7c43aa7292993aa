import { CourierError, GrpcStatus } from '../errors/index.js';

/** A call's outcome as the server states it: `grpc-status` and, optionally, `grpc-message`. */
export interface CallStatus {
  readonly code: number;
  readonly message?: string;
}

/** The reason a server call's signal aborts with when the call ends with `status` before its handler is done. */
export function abortReason(status: CallStatus): CourierError {
  return new CourierError('ERR_DIRECT_INVOKE', status.message ?? 'the call was cancelled', { grpcCode: status.code as GrpcStatus });
}

const HEX = '0123456789ABCDEF';

function needsPercentEncoding(c: number): boolean {
  return c < 0x20 || c > 0x7e || c === 0x25;
}

/**
 * Encodes a status message for the `grpc-message` header. PROTOCOL-HTTP2.md "Status-Message": the
 * text is UTF-8, then every byte outside 0x20–0x7E, and `%` itself, is written as `%XX`. Plain ASCII
 * (the usual case) is returned as is without allocating.
 */
export function encodeGrpcMessage(text: string): string {
  let i = 0;
  while (i < text.length && !needsPercentEncoding(text.charCodeAt(i))) i++;
  if (i === text.length) return text;
  const bytes = Buffer.from(text, 'utf8');
  let out = text.slice(0, i);
  for (let j = i; j < bytes.length; j++) {
    const b = bytes[j] as number;
    if (needsPercentEncoding(b)) out += `%${HEX[b >> 4]}${HEX[b & 15]}`;
    else out += String.fromCharCode(b);
  }
  return out;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

/**
 * Decodes a `grpc-message` value. The spec requires leniency ("When decoding invalid values,
 * implementations MUST NOT error or throw away the message"): a `%` not followed by two hex digits is
 * kept literally, and bytes that are not valid UTF-8 become U+FFFD. Node hands header values over as
 * latin1, so a peer that sent raw UTF-8 instead of percent-encoding it is decoded correctly too.
 */
export function decodeGrpcMessage(value: string): string {
  let plain = true;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x25 || c > 0x7e) {
      plain = false;
      break;
    }
  }
  if (plain) return value;
  const bytes = Buffer.allocUnsafe(value.length);
  let n = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x25 && i + 2 < value.length) {
      const hi = hexValue(value.charCodeAt(i + 1));
      const lo = hexValue(value.charCodeAt(i + 2));
      if (hi >= 0 && lo >= 0) {
        bytes[n++] = hi * 16 + lo;
        i += 2;
        continue;
      }
    }
    bytes[n++] = c & 0xff;
  }
  return bytes.toString('utf8', 0, n);
}

/**
 * Parses a `grpc-status` value ("1*DIGIT ... without any leading zeros"); undefined when absent or
 * malformed, so the caller can synthesize a status as the spec asks.
 */
export function parseGrpcStatus(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string' || value.length === 0 || value.length > 10) return undefined;
  let code = 0;
  for (let i = 0; i < value.length; i++) {
    const d = value.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return undefined;
    code = code * 10 + d;
  }
  return code;
}

/**
 * The gRPC code for a response that is not a gRPC response (non-200 `:status`, no `grpc-status`),
 * from gRPC's doc/http-grpc-status-mapping.md. Note: this is gRPC's mapping for transports, not
 * Dapr's app-facing table in `src/errors/status-map.ts`.
 */
export function grpcCodeForHttpStatus(status: number): GrpcStatus {
  switch (status) {
    case 400:
      return GrpcStatus.INTERNAL;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus.UNAVAILABLE;
    default:
      return GrpcStatus.UNKNOWN;
  }
}

/**
 * The HTTP/2 error codes (RFC 9113 §7) and frame flag Courier reads or sends, as numbers: the modules
 * that use them need not load node:http2 for its `constants` (src/util/builtins.ts).
 */
export const h2 = {
  NGHTTP2_NO_ERROR: 0x0,
  NGHTTP2_REFUSED_STREAM: 0x7,
  NGHTTP2_CANCEL: 0x8,
  NGHTTP2_ENHANCE_YOUR_CALM: 0xb,
  NGHTTP2_INADEQUATE_SECURITY: 0xc,
  /** The END_STREAM flag of a HEADERS or DATA frame. */
  NGHTTP2_FLAG_END_STREAM: 0x1,
} as const;

/**
 * The gRPC code for a stream reset by the peer with an HTTP/2 error code, per PROTOCOL-HTTP2.md
 * "Errors": REFUSED_STREAM → UNAVAILABLE (nothing was processed), CANCEL → CANCELLED,
 * ENHANCE_YOUR_CALM → RESOURCE_EXHAUSTED, INADEQUATE_SECURITY → PERMISSION_DENIED, anything else
 * (including NO_ERROR without a status) → INTERNAL.
 */
export function grpcCodeForRstCode(code: number): GrpcStatus {
  switch (code) {
    case h2.NGHTTP2_REFUSED_STREAM:
      return GrpcStatus.UNAVAILABLE;
    case h2.NGHTTP2_CANCEL:
      return GrpcStatus.CANCELLED;
    case h2.NGHTTP2_ENHANCE_YOUR_CALM:
      return GrpcStatus.RESOURCE_EXHAUSTED;
    case h2.NGHTTP2_INADEQUATE_SECURITY:
      return GrpcStatus.PERMISSION_DENIED;
    default:
      return GrpcStatus.INTERNAL;
  }
}

const rstNames: Readonly<Record<number, string>> = {
  0: 'NO_ERROR',
  1: 'PROTOCOL_ERROR',
  2: 'INTERNAL_ERROR',
  3: 'FLOW_CONTROL_ERROR',
  4: 'SETTINGS_TIMEOUT',
  5: 'STREAM_CLOSED',
  6: 'FRAME_SIZE_ERROR',
  7: 'REFUSED_STREAM',
  8: 'CANCEL',
  9: 'COMPRESSION_ERROR',
  10: 'CONNECT_ERROR',
  11: 'ENHANCE_YOUR_CALM',
  12: 'INADEQUATE_SECURITY',
  13: 'HTTP_1_1_REQUIRED',
};

/** The RFC 9113 name of an HTTP/2 error code, for messages. */
export function http2ErrorName(code: number): string {
  return rstNames[code] ?? `0x${code.toString(16)}`;
}
