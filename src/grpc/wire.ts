import { GrpcStatus } from '../errors/index.js';

/** Percent-encodes a `grpc-message` value as the gRPC spec requires (bytes outside 0x20–0x7E and `%`). */
export function encodeGrpcMessage(message: string): string {
  let plain = true;
  for (let i = 0; i < message.length; i++) {
    const c = message.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return message;
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte < 0x20 || byte > 0x7e || byte === 0x25 ? `%${byte.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(byte);
  }
  return out;
}

/** Decodes a `grpc-message` value, leniently: malformed escapes are kept as they are. */
export function decodeGrpcMessage(value: string): string {
  if (!value.includes('%')) return value;
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x25 && i + 2 < value.length && /^[0-9A-Fa-f]{2}$/.test(value.slice(i + 1, i + 3))) {
      bytes.push(parseInt(value.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(c & 0xff);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

const timeoutUnits: ReadonlyArray<readonly [string, number]> = [
  ['n', 1e-6],
  ['u', 1e-3],
  ['m', 1],
  ['S', 1000],
  ['M', 60_000],
  ['H', 3_600_000],
];

/** Encodes a timeout in ms as `grpc-timeout` (at most 8 digits, in the finest unit that fits). */
export function encodeTimeout(ms: number): string {
  const value = Math.max(0, ms);
  if (Number.isInteger(value) && value < 1e8) return `${value}m`;
  for (const [unit, factor] of timeoutUnits) {
    const amount = Math.ceil(value / factor);
    if (amount < 1e8) return `${amount}${unit}`;
  }
  return '99999999H';
}

/** Parses `grpc-timeout` into ms; undefined when malformed. */
export function parseTimeout(value: string): number | undefined {
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (match === null) return undefined;
  const factor = timeoutUnits.find(([u]) => u === match[2])?.[1];
  return factor === undefined ? undefined : Number(match[1]) * factor;
}

/** The gRPC status for an HTTP status other than 200 on a gRPC response (the spec's mapping). */
export function grpcStatusFromHttpStatus(status: number): GrpcStatus {
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

/** Request and response headers that are part of the protocol rather than application metadata. */
const reserved: ReadonlySet<string> = new Set([
  'content-type',
  'te',
  'grpc-timeout',
  'grpc-encoding',
  'grpc-accept-encoding',
  'grpc-status',
  'grpc-message',
  'grpc-status-details-bin',
]);

/**
 * Application metadata from HTTP/2 headers: pseudo-headers and gRPC protocol headers removed.
 * Values of `-bin` keys stay as the base64 text they travel as.
 */
export function customMetadata(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (const key of Object.keys(headers)) {
    if (key.startsWith(':') || reserved.has(key)) continue;
    const value = headers[key];
    if (value !== undefined) out[key] = value;
  }
  return out;
}
