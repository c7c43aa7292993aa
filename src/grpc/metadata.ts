import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';

/**
 * gRPC metadata is carried as HTTP/2 header fields (PROTOCOL-HTTP2.md "Custom-Metadata"), so Courier
 * uses Node's header shapes directly instead of a Metadata class: lowercase keys, a value is a string or,
 * for a key that occurs several times, an array of strings.
 *
 * Binary metadata (keys ending in `-bin`) is NOT decoded: values stay the base64 text that is on the
 * wire, and values to send must already be base64 (the spec asks senders for unpadded base64 and
 * receivers to accept both). A peer may also join repeated values into one field separated by ","
 * (the spec allows it), so a `-bin` value can hold several base64 values; split it on "," before decoding.
 */
export type ReceivedMetadata = IncomingHttpHeaders;

/** Metadata to send: header fields as Node's http2 takes them (see {@link ReceivedMetadata}). */
export type Metadata = OutgoingHttpHeaders;

/**
 * Where metadata that only a gRPC peer needs keeps the function that builds it: a call carried by the
 * Courier lane leaves it out (a Courier peer reads the same from the request itself: the trace context
 * of the sidecar hop), so it is built only when an HTTP/2 call sends it. A symbol key, so it is never
 * sent as a header.
 */
const GRPC_PEERS_ONLY: unique symbol = Symbol('courier.grpc.peers-only');
type PeersOnlyMetadata = Metadata & { [GRPC_PEERS_ONLY]?: () => Metadata };

/** Metadata that `build` makes when a call goes to a gRPC peer, and that the lane leaves out. */
export function grpcPeersOnly(build: () => Metadata): Metadata {
  const metadata: PeersOnlyMetadata = {};
  metadata[GRPC_PEERS_ONLY] = build;
  return metadata;
}

/** True for metadata made by {@link grpcPeersOnly}. */
export function forGrpcPeersOnly(metadata: Metadata | undefined): boolean {
  return metadata !== undefined && (metadata as PeersOnlyMetadata)[GRPC_PEERS_ONLY] !== undefined;
}

/** The metadata an HTTP/2 call sends: what {@link grpcPeersOnly} builds, or `metadata` itself. */
export function metadataToSend(metadata: Metadata | undefined): Metadata | undefined {
  return metadata === undefined ? undefined : ((metadata as PeersOnlyMetadata)[GRPC_PEERS_ONLY]?.() ?? metadata);
}

const reserved = new Set([
  'content-type',
  'te',
  'grpc-timeout',
  'grpc-encoding',
  'grpc-accept-encoding',
  'grpc-status',
  'grpc-message',
  // Connection-specific fields, which HTTP/2 forbids (RFC 9113 §8.2.2); Node throws on them.
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
]);

/**
 * True for header names that belong to the gRPC/HTTP/2 protocol rather than to the application:
 * pseudo-headers (`:path`, `:status`, ...), `content-type`, `te`, `grpc-timeout`, `grpc-encoding`,
 * `grpc-accept-encoding`, `grpc-status`, `grpc-message` and connection-specific fields. `user-agent` is
 * not reserved: it is ordinary metadata that a caller may set to override the transport's default.
 */
export function isReservedHeader(name: string): boolean {
  return name.charCodeAt(0) === 0x3a /* : */ || reserved.has(name);
}

/**
 * The application's part of received headers or trailers: a copy without the reserved fields (see
 * {@link isReservedHeader}). Service code uses this to forward metadata without re-sending protocol
 * fields. `-bin` values stay base64 text. Names in `dropped` are left out too (one pass, one object).
 */
export function customMetadata(headers: IncomingHttpHeaders, dropped?: ReadonlySet<string>): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = Object.create(null) as IncomingHttpHeaders;
  // for-in over the (prototype-free) header objects Node and Courier build: no key array per call.
  for (const key in headers) {
    if (isReservedHeader(key) || dropped?.has(key) === true) continue;
    const value = headers[key];
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/**
 * Builds a header object from Node's flat raw list (`[name, value, name, value, ...]`), keeping
 * repeated fields as arrays. Node's own header object joins repeated fields with ", ", which loses
 * the boundaries between values; gRPC metadata is multi-valued, so Courier builds from the raw list.
 */
export function metadataFromRawHeaders(raw: readonly string[]): IncomingHttpHeaders {
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const key = raw[i] as string;
    const value = raw[i + 1] as string;
    const existing = out[key];
    if (existing === undefined) out[key] = value;
    else if (typeof existing === 'string') out[key] = [existing, value];
    else existing.push(value);
  }
  return out;
}

/**
 * Copies the application's fields of `source` into `target` (headers being built for the wire),
 * skipping reserved fields so metadata can never override the protocol's own. Keys are lowercased as
 * HTTP/2 requires. Returns `target`.
 */
export function appendCustomMetadata(target: OutgoingHttpHeaders, source: OutgoingHttpHeaders | undefined): OutgoingHttpHeaders {
  if (source === undefined) return target;
  for (const name of Object.keys(source)) {
    const value = source[name];
    if (value === undefined) continue;
    const key = name.toLowerCase();
    if (isReservedHeader(key)) continue;
    target[key] = value;
  }
  return target;
}

/**
 * True for a gRPC content type: `application/grpc` optionally followed by `+proto`, `+json` or any
 * other `+suffix` (PROTOCOL-HTTP2.md "Content-Type"), ignoring parameters after `;`.
 */
export function isGrpcContentType(value: string | string[] | undefined): boolean {
  if (typeof value !== 'string') return false;
  const type = value.startsWith('application/grpc') ? value : value.toLowerCase();
  if (!type.startsWith('application/grpc')) return false;
  if (type.length === 16) return true;
  const next = type.charCodeAt(16);
  return next === 0x2b /* + */ || next === 0x3b /* ; */;
}
