import type { MetadataMap } from '../proto/index.js';

/**
 * Header rules of service invocation (Dapr `pkg/messaging/v1/util.go`, `pkg/channel/http/http_channel.go`):
 * what is forwarded from caller to app and back, under which names.
 *
 * Headers travel between sidecars as `map<string, ListStringValue>` keyed by Go's canonical header
 * names (`Content-Type`, `X-Custom`), the form Dapr sidecars send and expect. Objects holding them
 * are created with a null prototype so a header called `__proto__` is an ordinary key.
 */
export type Metadata = MetadataMap;

export function newMetadata(): Metadata {
  return Object.create(null) as Metadata;
}

export function addValue(md: Metadata, key: string, value: string): void {
  const existing = md[key];
  if (existing === undefined) md[key] = { values: [value] };
  else (existing.values ??= []).push(value);
}

/** The first value of a key, looked up case-insensitively. */
export function firstValue(md: Metadata, key: string): string | undefined {
  const direct = md[key]?.values?.[0];
  if (direct !== undefined) return direct;
  const lower = key.toLowerCase();
  for (const k of Object.keys(md)) if (k.length === lower.length && lowerName(k) === lower) return md[k]?.values?.[0];
  return undefined;
}

/**
 * A copy of `md` without `key` under any casing, and the first value `key` had: one pass, for a
 * response head whose length Courier sets itself. (Deleting from the decoded map instead would cost
 * a second pass and leave a sparser object for every later lookup.)
 */
export function withoutKey(md: Metadata, key: string): { metadata: Metadata; removed: string | undefined } {
  const out = newMetadata();
  const lower = key.toLowerCase();
  let removed: string | undefined;
  for (const k of Object.keys(md)) {
    const entry = md[k] as { values?: string[] };
    if (k.length === lower.length && lowerName(k) === lower) {
      removed ??= entry.values?.[0];
      continue;
    }
    out[k] = entry;
  }
  return { metadata: out, removed };
}

/**
 * The header-name caches below keep at most this many names of at most this many characters: names
 * come from callers, so neither how many nor how long may be left to them.
 */
const MAX_CACHED_NAMES = 1024;
const MAX_CACHED_NAME_LENGTH = 64;
const lowerCache = new Map<string, string>();

/**
 * `name.toLowerCase()`, remembered for the names seen most (metadata keys are canonical,
 * `Content-Type`, so lower-casing them would otherwise make a new string on every call).
 */
export function lowerName(name: string): string {
  const cached = lowerCache.get(name);
  if (cached !== undefined) return cached;
  const lower = name.toLowerCase();
  if (lowerCache.size < MAX_CACHED_NAMES && name.length <= MAX_CACHED_NAME_LENGTH) lowerCache.set(name, lower);
  return lower;
}

/** RFC 7230 hop-by-hop headers, never forwarded in either direction (plus any named in `Connection`). */
export const hopByHopHeaders: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
  'te',
  'trailer',
  'proxy-authorization',
  'proxy-authenticate',
]);

/** Headers a caller may not set on an invocation: Courier sets them from what it knows. */
export const identityHeaders = ['dapr-caller-app-id', 'dapr-caller-namespace', 'dapr-callee-app-id'] as const;
const identityHeaderSet: ReadonlySet<string> = new Set(identityHeaders);

/** Internal routing metadata of the sidecar-to-sidecar hop; never reaches an app. */
export const DESTINATION_APP_ID = 'destination-app-id';

const canonicalCache = new Map<string, string>();
const tokenPattern = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Go's `textproto.CanonicalMIMEHeaderKey`: the first letter and every letter after a hyphen in upper
 * case, the rest in lower case. Names with characters outside the HTTP token set are left alone.
 */
export function canonicalHeaderKey(name: string): string {
  const cached = canonicalCache.get(name);
  if (cached !== undefined) return cached;
  let out = name;
  if (tokenPattern.test(name)) {
    out = '';
    let upper = true;
    for (const ch of name) {
      out += upper ? ch.toUpperCase() : ch.toLowerCase();
      upper = ch === '-';
    }
  }
  if (canonicalCache.size < MAX_CACHED_NAMES && name.length <= MAX_CACHED_NAME_LENGTH) canonicalCache.set(name, out);
  return out;
}

/** `Connection` options that name no header to drop: the hop-by-hop headers (always dropped) and `close`. */
const connectionOptionsIgnored: ReadonlySet<string> = new Set([...hopByHopHeaders, 'close']);

/**
 * Adds to `tokens` the lower-case header names one `Connection` value lists (they are hop-by-hop for
 * this message), leaving out those dropped anyway. Undefined while there are none: the usual
 * `Connection: keep-alive` allocates nothing.
 */
function addConnectionTokens(tokens: Set<string> | undefined, value: string): Set<string> | undefined {
  if (!value.includes(',')) {
    const token = value.trim().toLowerCase();
    if (token === '' || connectionOptionsIgnored.has(token)) return tokens;
    return (tokens ??= new Set()).add(token);
  }
  for (const t of value.split(',')) {
    const token = t.trim().toLowerCase();
    if (token !== '' && !connectionOptionsIgnored.has(token)) (tokens ??= new Set()).add(token);
  }
  return tokens;
}

/** Removes from `md` the headers a `Connection` header named (under any casing). */
function dropConnectionNamed(md: Metadata, named: Set<string>): void {
  for (const k of Object.keys(md)) if (named.has(lowerName(k))) delete md[k];
}

/** Request headers Courier consumes or replaces rather than forwards. */
const requestDropped: ReadonlySet<string> = new Set([
  'host',
  'expect',
  'dapr-app-id',
  'dapr-api-token',
  DESTINATION_APP_ID,
  ...identityHeaders,
]);

/**
 * Builds the metadata forwarded for an HTTP request from Node's `rawHeaders` (name/value pairs in
 * arrival order, so repeated headers keep every value in order). Hop-by-hop headers, `Host`,
 * `Expect`, `dapr-app-id`, `dapr-api-token` and the identity headers are dropped.
 */
export function requestMetadataFromRawHeaders(rawHeaders: readonly string[]): Metadata {
  return metadataFromRawHeaders(rawHeaders, requestDropped);
}

/** The headers of a raw list minus hop-by-hop ones, those `Connection` names and `dropped`, in one pass. */
function metadataFromRawHeaders(rawHeaders: readonly string[], dropped: ReadonlySet<string>): Metadata {
  const md = newMetadata();
  let connectionNamed: Set<string> | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] ?? '';
    const lower = lowerName(name);
    if (lower === 'connection') connectionNamed = addConnectionTokens(connectionNamed, rawHeaders[i + 1] ?? '');
    if (hopByHopHeaders.has(lower) || dropped.has(lower)) continue;
    addValue(md, canonicalHeaderKey(name), rawHeaders[i + 1] ?? '');
  }
  // Headers named in Connection are hop-by-hop for this message (rare: looked at only when present).
  if (connectionNamed !== undefined) dropConnectionNamed(md, connectionNamed);
  return md;
}

/** What the HTTP API needs of a request's headers, read in one pass over its raw headers. */
export interface ScannedRequestHeaders {
  /** The headers to forward (as `requestMetadataFromRawHeaders` builds them). */
  readonly metadata: Metadata;
  /** The first `Content-Length`, as sent. */
  readonly contentLength: string | undefined;
  /** Whether a `Transfer-Encoding` header was sent. */
  readonly chunked: boolean;
  /** The first `Content-Type`; empty when none. */
  readonly contentType: string;
  /** The first `dapr-app-id`. */
  readonly appId: string | undefined;
  /** The first `Authorization`. */
  readonly authorization: string | undefined;
  /** The first `dapr-api-token`. */
  readonly apiToken: string | undefined;
  /** The first `traceparent` and `tracestate`. */
  readonly traceparent: string | undefined;
  readonly tracestate: string | undefined;
  /** Whether any trace header (`traceparent`, `tracestate`, `grpc-trace-bin`) was sent. */
  readonly traceHeaders: boolean;
}

/**
 * Reads a request's raw headers once: the forwardable metadata (the rules of
 * `requestMetadataFromRawHeaders`) and the few headers the HTTP API itself uses, without building
 * Node's `req.headers` object.
 */
export function scanRequestHeaders(rawHeaders: readonly string[]): ScannedRequestHeaders {
  const md = newMetadata();
  let contentLength: string | undefined;
  let chunked = false;
  let contentType = '';
  let appId: string | undefined;
  let authorization: string | undefined;
  let apiToken: string | undefined;
  let traceparent: string | undefined;
  let tracestate: string | undefined;
  let traceHeaders = false;
  let connectionNamed: Set<string> | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    const value = rawHeaders[i + 1] as string;
    const lower = lowerName(name);
    switch (lower) {
      case 'content-length':
        contentLength ??= value;
        break;
      case 'transfer-encoding':
        chunked = true;
        break;
      case 'content-type':
        if (contentType === '') contentType = value;
        break;
      case 'dapr-app-id':
        appId ??= value;
        continue; // never forwarded
      case 'authorization':
        authorization ??= value;
        break;
      case 'dapr-api-token':
        apiToken ??= value;
        continue;
      case 'connection':
        connectionNamed = addConnectionTokens(connectionNamed, value);
        continue;
      case 'traceparent':
        traceparent ??= value;
        traceHeaders = true;
        break;
      case 'tracestate':
        tracestate ??= value;
        traceHeaders = true;
        break;
      case 'grpc-trace-bin':
        traceHeaders = true;
        break;
      default:
        break;
    }
    if (hopByHopHeaders.has(lower) || requestDropped.has(lower)) continue;
    addValue(md, canonicalHeaderKey(name), value);
  }
  // Headers named in Connection are hop-by-hop for this message (rare: looked at only when present).
  if (connectionNamed !== undefined) dropConnectionNamed(md, connectionNamed);
  return { metadata: md, contentLength, chunked, contentType, appId, authorization, apiToken, traceparent, tracestate, traceHeaders };
}

/** Sets the caller/callee identity headers, replacing whatever the metadata held under any casing. */
export function setIdentityHeaders(
  md: Metadata,
  caller: { appId: string; namespace: string },
  calleeAppId: string,
): void {
  // The identity names are 18 and 21 characters long: other keys are not lower-cased to be compared.
  for (const key of Object.keys(md)) if ((key.length === 18 || key.length === 21) && identityHeaderSet.has(lowerName(key))) delete md[key];
  md['dapr-caller-app-id'] = { values: [caller.appId] };
  md['dapr-caller-namespace'] = { values: [caller.namespace] };
  md['dapr-callee-app-id'] = { values: [calleeAppId] };
}

/**
 * Appends `X-Forwarded-For`, `X-Forwarded-Host` and `Forwarded` for a call leaving this sidecar
 * (RFC 7239). `clientAddress` is the address the app's request came from; `sidecarAddress` is this
 * sidecar's own address; `hostname` is this machine's name.
 */
export function addForwardedHeaders(md: Metadata, clientAddress: string, sidecarAddress: string, hostname: string): void {
  addValue(md, 'X-Forwarded-For', clientAddress);
  addValue(md, 'X-Forwarded-Host', hostname);
  addValue(md, 'Forwarded', `for=${forwardedNode(clientAddress)};by=${forwardedNode(sidecarAddress)};host=${hostname}`);
}

function forwardedNode(address: string): string {
  return address.includes(':') ? `"[${address}]"` : address;
}

/** Metadata keys that never become headers of the request to an HTTP app. */
const appRequestDropped: ReadonlySet<string> = new Set([
  'host',
  'expect',
  'content-type',
  'content-length',
  'dapr-api-token',
  'dapr-app-id',
  DESTINATION_APP_ID,
]);

/**
 * Turns invocation metadata into the header list of the request to an HTTP app, as a flat
 * `[name, value, name, value, …]` array (one entry per value, order kept):
 * names lower-cased; hop-by-hop, `-bin`, `Content-Type`/`Content-Length` (set separately) and internal
 * keys dropped; gRPC pseudo-headers and `grpc-*` keys prefixed `dapr-`; the callee's own app token
 * (when `APP_API_TOKEN` is set) and the identity headers first.
 */
export function appRequestHeaders(md: Metadata, appApiToken: string | undefined): string[] {
  const out: string[] = [];
  // Courier's own headers come first, so that an app that keeps only the first N headers of a request
  // (Node keeps 2000 by default) still sees who called it and the app token, however many the caller sent.
  if (appApiToken !== undefined) out.push('dapr-api-token', appApiToken);
  for (const name of identityHeaders) {
    const value = md[name]?.values?.[0];
    if (value !== undefined) out.push(name, value);
  }
  let connectionNamed: Set<string> | undefined;
  for (const key of Object.keys(md)) {
    if (key.length !== 10 || lowerName(key) !== 'connection') continue;
    for (const v of md[key]?.values ?? []) connectionNamed = addConnectionTokens(connectionNamed, v);
  }
  for (const key of Object.keys(md)) {
    let name = lowerName(key);
    if (hopByHopHeaders.has(name) || appRequestDropped.has(name) || name.endsWith('-bin') || connectionNamed?.has(name)) continue;
    if (key === name && identityHeaderSet.has(name)) continue; // already written first
    if (name.startsWith(':')) name = `dapr-${name.slice(1)}`;
    else if (name.startsWith('grpc-')) name = `dapr-${name}`;
    for (const value of md[key]?.values ?? []) out.push(name, value);
  }
  return out;
}

/** Response headers that are not forwarded as such (Content-Length is recomputed by Courier). */
const responseDropped: ReadonlySet<string> = new Set(['content-length', 'dapr-app-id', 'dapr-api-token']);

/**
 * Builds the response metadata from an HTTP app's raw response headers: hop-by-hop headers (and
 * those named in `Connection`) and `Content-Length` removed, every other header kept with all its
 * values in order, under its canonical name.
 */
export function responseMetadataFromRawHeaders(rawHeaders: readonly string[]): Metadata {
  return metadataFromRawHeaders(rawHeaders, responseDropped);
}

/**
 * The flat header list written to an HTTP caller for a response: every metadata value, minus
 * hop-by-hop headers and `Content-Length`, which the writer sets itself when it knows the length.
 */
export function callerResponseHeaders(md: Metadata): string[] {
  const out: string[] = [];
  for (const key of Object.keys(md)) {
    const lower = lowerName(key);
    if (hopByHopHeaders.has(lower) || responseDropped.has(lower)) continue;
    for (const value of md[key]?.values ?? []) out.push(key, value);
  }
  return out;
}

/** The first value of a header, looked up in raw headers (name, value, …) without building Node's `req.headers`. */
export function firstRawHeader(raw: readonly string[], lowerName: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) if ((raw[i] as string).toLowerCase() === lowerName) return raw[i + 1];
  return undefined;
}
