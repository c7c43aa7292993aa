import { varintSize, writeVarint } from '../../proto/varint.js';
import type { AttributeValue, Span } from './tracer.js';

/**
 * OTLP's protobuf encoding of Courier's spans (`opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest`),
 * written as each span ends.
 *
 * Why not hand the span to the SDK and let its serializer encode the batch: a span waits up to a batch
 * (512 spans, about half a second at 1000 calls/s) before it is sent. Kept as objects (the span, its
 * attribute map, its context and times), every waiting span survived two young-generation collections
 * and was promoted, which made the traced path's collections a third of what tracing cost. Encoded at
 * once, a waiting span is a few hundred bytes in a buffer outside the JavaScript heap.
 *
 * Field numbers are those of opentelemetry-proto (trace/v1/trace.proto, common/v1/common.proto,
 * resource/v1/resource.proto, collector/trace/v1/trace_service.proto).
 */

const LEN = 2;
const I64 = 1;
const VARINT = 0;

const tag = (field: number, wire: number): number => (field << 3) | wire;

// Span (trace.proto)
const SPAN_TRACE_ID = tag(1, LEN);
const SPAN_SPAN_ID = tag(2, LEN);
const SPAN_TRACE_STATE = tag(3, LEN);
const SPAN_PARENT_SPAN_ID = tag(4, LEN);
const SPAN_NAME = tag(5, LEN);
const SPAN_KIND = tag(6, VARINT);
const SPAN_START = tag(7, I64);
const SPAN_END = tag(8, I64);
const SPAN_ATTRIBUTES = tag(9, LEN);
const SPAN_STATUS = tag(15, LEN);
/** Field 16 (fixed32) needs a two-byte tag. */
const SPAN_FLAGS_TAG = [0x85, 0x01] as const;
// Status
const STATUS_MESSAGE = tag(2, LEN);
const STATUS_CODE = tag(3, VARINT);
const STATUS_CODE_ERROR = 2;
// KeyValue and AnyValue (common.proto)
const KV_KEY = tag(1, LEN);
const KV_VALUE = tag(2, LEN);
const ANY_STRING = tag(1, LEN);
const ANY_BOOL = tag(2, VARINT);
const ANY_INT = tag(3, VARINT);
const ANY_DOUBLE = tag(4, I64);
// InstrumentationScope, Resource, ScopeSpans, ResourceSpans, ExportTraceServiceRequest
const SCOPE_NAME = tag(1, LEN);
const SCOPE_VERSION = tag(2, LEN);
const RESOURCE_ATTRIBUTES = tag(1, LEN);
const SCOPE_SPANS_SCOPE = tag(1, LEN);
const SCOPE_SPANS_SPANS = tag(2, LEN);
const RESOURCE_SPANS_RESOURCE = tag(1, LEN);
const RESOURCE_SPANS_SCOPE_SPANS = tag(2, LEN);
const REQUEST_RESOURCE_SPANS = tag(1, LEN);

/** `SpanFlags`: the flags say whether the parent was remote, and it was (a parent always came with the call). */
const FLAGS_HAS_IS_REMOTE = 0x100;
const FLAGS_IS_REMOTE = 0x200;

/** Room kept for a span's tag and length before its body is written (lengths up to 2^28). */
const SPAN_HEADER_ROOM = 5;

/**
 * Writes `text` at `pos` if it is all ASCII (names, keys and header values nearly always are), which
 * for short strings is quicker than `Buffer#write`'s argument handling; returns the new position, or
 * -1 (having written part of it) when a character is not ASCII.
 */
function putAscii(buf: Buffer, pos: number, text: string): number {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f) return -1;
    buf[pos++] = c;
  }
  return pos;
}

/** Writes `text` as UTF-8 at `pos` (the caller made room for 3 bytes per character); returns the new position. */
function putUtf8(buf: Buffer, pos: number, text: string): number {
  const end = putAscii(buf, pos, text);
  return end >= 0 ? end : pos + buf.write(text, pos, 'utf8');
}

/** The bytes of `text` in UTF-8, as `Buffer#write` writes it (a lone surrogate takes 3 bytes). */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) bytes += 1;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 2; // a surrogate pair: 2 characters, 4 bytes
      i++;
    } else bytes += 2;
  }
  return bytes;
}

/** The value of each hex digit's character code (lower or upper case); -1 for other characters. */
const HEX_VALUES = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX_VALUES[i.toString(16).charCodeAt(0)] = i;
  HEX_VALUES[i.toString(16).toUpperCase().charCodeAt(0)] = i;
}

/** Writes the bytes of an even-length hex string at `pos`; returns how many bytes it wrote (it stops at the first non-hex pair). */
function putHex(buf: Buffer, pos: number, hex: string): number {
  const n = hex.length >>> 1;
  for (let i = 0; i < n; i++) {
    const high = HEX_VALUES[hex.charCodeAt(2 * i)] ?? -1;
    const low = HEX_VALUES[hex.charCodeAt(2 * i + 1)] ?? -1;
    if (high < 0 || low < 0) return i;
    buf[pos + i] = (high << 4) | low;
  }
  return n;
}

/** A negative int64 as protobuf writes it: the ten-byte varint of its two's complement. */
function negativeInt64(n: number): Buffer {
  let v = BigInt.asUintN(64, BigInt(n));
  const out = Buffer.alloc(10);
  for (let i = 0; i < 10; i++) {
    out[i] = Number(v & 0x7fn) | (i < 9 ? 0x80 : 0);
    v >>= 7n;
  }
  return out;
}

/**
 * Epoch milliseconds (with a fraction) as the nanoseconds of a `fixed64`, little-endian at `pos`. The
 * product does not fit a double exactly, so it is put together from parts that do.
 */
export function putEpochNanos(buf: Buffer, pos: number, ms: number): number {
  const seconds = Math.floor(ms / 1000);
  const nanos = Math.min(999_999_999, Math.max(0, Math.round((ms - seconds * 1000) * 1e6)));
  // seconds * 1e9 + nanos, with seconds split into 16-bit halves so that every product is exact.
  const low = (seconds % 0x10000) * 1e9 + nanos; // < 2^53
  const high = Math.floor(seconds / 0x10000) * 1e9; // < 2^53; this part is shifted left 16 bits
  let lo = (low % 0x1_0000_0000) + (high % 0x10000) * 0x10000;
  let hi = Math.floor(low / 0x1_0000_0000) + Math.floor(high / 0x10000);
  if (lo >= 0x1_0000_0000) {
    lo -= 0x1_0000_0000;
    hi += 1;
  }
  buf.writeUInt32LE(lo, pos);
  buf.writeUInt32LE(hi >>> 0, pos + 4);
  return pos + 8;
}

/** A `KeyValue` with a string value, as bytes (for the resource, encoded once). */
function stringKeyValue(key: string, value: string): Buffer {
  const k = Buffer.from(key);
  const v = Buffer.from(value);
  const any = 1 + varintSize(v.length) + v.length;
  const body = 1 + varintSize(k.length) + k.length + 1 + varintSize(any) + any;
  const out = Buffer.allocUnsafe(1 + varintSize(body) + body);
  let pos = writeVarint(out, 0, RESOURCE_ATTRIBUTES);
  pos = writeVarint(out, pos, body);
  pos = writeVarint(out, pos, KV_KEY);
  pos = writeVarint(out, pos, k.length);
  pos += k.copy(out, pos);
  pos = writeVarint(out, pos, KV_VALUE);
  pos = writeVarint(out, pos, any);
  pos = writeVarint(out, pos, ANY_STRING);
  pos = writeVarint(out, pos, v.length);
  v.copy(out, pos);
  return out;
}

/** A length-delimited field holding `body`. */
function field(fieldTag: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(1 + varintSize(body.length) + body.length);
  const pos = writeVarint(out, writeVarint(out, 0, fieldTag), body.length);
  body.copy(out, pos);
  return out;
}

/** What every request of one exporter starts with: the resource and the instrumentation scope. */
export interface OtlpPreamble {
  readonly resource: Readonly<Record<string, string>>;
  readonly scopeName: string;
  readonly scopeVersion: string;
}

/** The encoded resource field of a `ResourceSpans` and scope field of a `ScopeSpans`. */
export class OtlpHeaders {
  readonly resourceField: Buffer;
  readonly scopeField: Buffer;
  /** The most bytes the request's header (everything before the spans) can take. */
  readonly maxBytes: number;

  constructor(preamble: OtlpPreamble) {
    const attributes = Object.entries(preamble.resource).map(([k, v]) => stringKeyValue(k, v));
    this.resourceField = field(RESOURCE_SPANS_RESOURCE, Buffer.concat(attributes));
    const name = Buffer.from(preamble.scopeName);
    const version = Buffer.from(preamble.scopeVersion);
    const scope = Buffer.allocUnsafe(2 + varintSize(name.length) + name.length + varintSize(version.length) + version.length);
    let pos = writeVarint(scope, writeVarint(scope, 0, SCOPE_NAME), name.length);
    pos += name.copy(scope, pos);
    pos = writeVarint(scope, writeVarint(scope, pos, SCOPE_VERSION), version.length);
    version.copy(scope, pos);
    this.scopeField = field(SCOPE_SPANS_SCOPE, scope);
    this.maxBytes = 1 + 5 + this.resourceField.length + 1 + 5 + this.scopeField.length;
  }
}

/**
 * A batch of ended spans, encoded as they are added into one growing buffer (outside the JavaScript
 * heap); `request()` gives the whole `ExportTraceServiceRequest` without copying the spans again.
 */
export class EncodedSpanBatch {
  readonly #headers: OtlpHeaders;
  #buf: Buffer;
  #pos: number;
  /** Spans in the batch. */
  count = 0;

  /** `capacity`: the bytes to start with (it grows as needed). */
  constructor(headers: OtlpHeaders, capacity: number) {
    this.#headers = headers;
    this.#buf = Buffer.allocUnsafeSlow(Math.max(capacity, headers.maxBytes + 1024));
    this.#pos = headers.maxBytes;
  }

  /** Bytes used so far (spans and the room kept for the header). */
  get byteLength(): number {
    return this.#pos;
  }

  #ensure(bytes: number): void {
    const needed = this.#pos + bytes;
    if (needed <= this.#buf.length) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(needed, this.#buf.length * 2));
    this.#buf.copy(grown, 0, 0, this.#pos);
    this.#buf = grown;
  }

  #varint(n: number): void {
    this.#pos = writeVarint(this.#buf, this.#pos, n);
  }

  /** A string field whose UTF-8 length the caller has counted and made room for. */
  #text(fieldTag: number, value: string, bytes: number): void {
    this.#buf[this.#pos++] = fieldTag;
    this.#varint(bytes);
    this.#pos = putUtf8(this.#buf, this.#pos, value);
  }

  /** A string field: tag, byte length and UTF-8 bytes. */
  #string(fieldTag: number, value: string): void {
    this.#ensure(6 + value.length * 3);
    const buf = this.#buf;
    buf[this.#pos++] = fieldTag;
    if (value.length < 43) {
      // At most 126 bytes: the length is one byte, written after the string.
      const at = this.#pos;
      const end = putUtf8(buf, at + 1, value);
      buf[at] = end - at - 1;
      this.#pos = end;
      return;
    }
    this.#varint(utf8Length(value));
    this.#pos = putUtf8(buf, this.#pos, value);
  }

  /** An id field from its hex digits. */
  #id(fieldTag: number, hex: string): void {
    this.#ensure(2 + hex.length / 2);
    const buf = this.#buf;
    buf[this.#pos++] = fieldTag;
    const at = this.#pos;
    const written = putHex(buf, at + 1, hex);
    buf[at] = written;
    this.#pos = at + 1 + written;
  }

  #attribute(key: string, value: AttributeValue): void {
    // KeyValue { key, value: AnyValue } with every length known before it is written.
    const keyBytes = utf8Length(key);
    let anyBytes: number;
    let stringBytes = 0;
    let negative: Buffer | undefined;
    if (typeof value === 'string') {
      stringBytes = utf8Length(value);
      anyBytes = 1 + varintSize(stringBytes) + stringBytes;
    } else if (typeof value === 'boolean') anyBytes = 2;
    else if (Number.isSafeInteger(value)) {
      if (value < 0) negative = negativeInt64(value);
      anyBytes = 1 + (negative === undefined ? varintSize(value) : negative.length);
    } else anyBytes = 9;
    const body = 1 + varintSize(keyBytes) + keyBytes + 1 + varintSize(anyBytes) + anyBytes;
    this.#ensure(1 + 5 + body);
    const buf = this.#buf;
    buf[this.#pos++] = SPAN_ATTRIBUTES;
    this.#varint(body);
    this.#text(KV_KEY, key, keyBytes);
    buf[this.#pos++] = KV_VALUE;
    this.#varint(anyBytes);
    if (typeof value === 'string') this.#text(ANY_STRING, value, stringBytes);
    else if (typeof value === 'boolean') {
      buf[this.#pos++] = ANY_BOOL;
      buf[this.#pos++] = value ? 1 : 0;
    } else if (Number.isSafeInteger(value)) {
      buf[this.#pos++] = ANY_INT;
      if (negative === undefined) this.#varint(value);
      else this.#pos += negative.copy(buf, this.#pos);
    } else {
      buf[this.#pos++] = ANY_DOUBLE;
      this.#pos = buf.writeDoubleLE(value, this.#pos);
    }
  }

  /** Encodes an ended span into the batch, as a `ScopeSpans.spans` entry. */
  add(span: Span): void {
    this.#ensure(SPAN_HEADER_ROOM + 64);
    const start = this.#pos;
    this.#pos += SPAN_HEADER_ROOM;
    const bodyStart = this.#pos;
    this.#id(SPAN_TRACE_ID, span.traceId);
    this.#id(SPAN_SPAN_ID, span.spanId);
    if (span.traceState !== undefined && span.traceState !== '') this.#string(SPAN_TRACE_STATE, span.traceState);
    if (span.parentSpanId !== undefined) this.#id(SPAN_PARENT_SPAN_ID, span.parentSpanId);
    this.#string(SPAN_NAME, span.name);
    this.#ensure(2 + 18 + 7);
    let buf = this.#buf;
    // OTLP's SpanKind counts from UNSPECIFIED = 0; OpenTelemetry's API from INTERNAL = 0.
    buf[this.#pos++] = SPAN_KIND;
    buf[this.#pos++] = span.kind + 1;
    buf[this.#pos++] = SPAN_START;
    this.#pos = putEpochNanos(buf, this.#pos, span.startMs);
    buf[this.#pos++] = SPAN_END;
    this.#pos = putEpochNanos(buf, this.#pos, span.endMs);
    const attributes = span.attributes;
    if (attributes !== undefined) for (const key in attributes) this.#attribute(key, attributes[key] as AttributeValue);
    const message = span.errorMessage;
    if (message !== undefined) {
      const messageBytes = utf8Length(message);
      const body = 1 + varintSize(messageBytes) + messageBytes + 2;
      this.#ensure(1 + 5 + body);
      buf = this.#buf;
      buf[this.#pos++] = SPAN_STATUS;
      this.#varint(body);
      this.#text(STATUS_MESSAGE, message, messageBytes);
      buf[this.#pos++] = STATUS_CODE;
      buf[this.#pos++] = STATUS_CODE_ERROR;
    } else {
      // An unset status: an empty Status message, which decodes as code UNSET.
      this.#ensure(2);
      buf = this.#buf;
      buf[this.#pos++] = SPAN_STATUS;
      buf[this.#pos++] = 0;
    }
    this.#ensure(6);
    buf = this.#buf;
    buf[this.#pos++] = SPAN_FLAGS_TAG[0];
    buf[this.#pos++] = SPAN_FLAGS_TAG[1];
    const flags = (span.flags & 0xff) | FLAGS_HAS_IS_REMOTE | (span.parentSpanId !== undefined ? FLAGS_IS_REMOTE : 0);
    this.#pos = buf.writeUInt32LE(flags, this.#pos);
    // The span's tag and length go in front of its body, which moves back over the room not needed.
    const bodyBytes = this.#pos - bodyStart;
    let at = start;
    buf[at++] = SCOPE_SPANS_SPANS;
    at = writeVarint(buf, at, bodyBytes);
    if (at < bodyStart) {
      buf.copyWithin(at, bodyStart, this.#pos);
      this.#pos = at + bodyBytes;
    }
    this.count++;
  }

  /**
   * The whole `ExportTraceServiceRequest`: one `ResourceSpans` with one `ScopeSpans` holding the
   * spans. Shares memory with the batch, which must not be added to afterwards.
   */
  request(): Buffer {
    const h = this.#headers;
    const spansBytes = this.#pos - h.maxBytes;
    const scopeSpans = h.scopeField.length + spansBytes;
    const resourceSpans = h.resourceField.length + 1 + varintSize(scopeSpans) + scopeSpans;
    const headerBytes = 1 + varintSize(resourceSpans) + h.resourceField.length + 1 + varintSize(scopeSpans) + h.scopeField.length;
    const buf = this.#buf;
    const start = h.maxBytes - headerBytes;
    let pos = start;
    buf[pos++] = REQUEST_RESOURCE_SPANS;
    pos = writeVarint(buf, pos, resourceSpans);
    pos += h.resourceField.copy(buf, pos);
    buf[pos++] = RESOURCE_SPANS_SCOPE_SPANS;
    pos = writeVarint(buf, pos, scopeSpans);
    h.scopeField.copy(buf, pos);
    return buf.subarray(start, this.#pos);
  }
}
