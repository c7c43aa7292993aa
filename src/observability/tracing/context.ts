import { randomFillSync } from 'node:crypto';

/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/) and its binary gRPC form, as Dapr uses
 * them: `traceparent`/`tracestate` on HTTP, `grpc-trace-bin` (OpenCensus' 29-byte encoding) and
 * `traceparent` on gRPC. Hand-written because they sit on every call: a parse is a few character
 * checks and a format is one template string, with no objects beyond the result.
 */
export interface TraceContext {
  /** 32 lower-case hex digits, not all zero. */
  readonly traceId: string;
  /** 16 lower-case hex digits, not all zero. */
  readonly spanId: string;
  /** The trace flags; bit 0 is "sampled". */
  readonly flags: number;
  /** The `tracestate` list as received (at most `MAX_TRACESTATE_CHARS`), or undefined. */
  readonly traceState: string | undefined;
}

export const SAMPLED_FLAG = 0x01;

/** Dapr's `MaxTracestateLen`: a longer `tracestate` is dropped. */
export const MAX_TRACESTATE_CHARS = 512;

const ZERO_TRACE_ID = '00000000000000000000000000000000';
const ZERO_SPAN_ID = '0000000000000000';

/** A version-00 `traceparent` as written, without surrounding spaces. */
const TRACEPARENT_00 = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** The value of a lower-case hex digit's character code (the caller has checked it is one). */
function hexDigit(c: number): number {
  return c <= 0x39 ? c - 0x30 : c - 0x57;
}

function isLowerHex(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}

/**
 * Parses a `traceparent` header value: `vv-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
 * Version `ff` and all-zero ids are invalid; a future version (not `00`) may carry more fields after
 * the flags, which are ignored, as the specification asks. Returns undefined for anything invalid.
 */
export function parseTraceparent(value: string | undefined, traceState?: string): TraceContext | undefined {
  if (value === undefined) return undefined;
  // What every sidecar and SDK sends: version 00, exactly 55 characters. One compiled regex checks it
  // (about half the time of the character loop below, which handles everything else).
  if (value.length === 55 && TRACEPARENT_00.test(value)) {
    const traceId = value.slice(3, 35);
    const spanId = value.slice(36, 52);
    if (traceId === ZERO_TRACE_ID || spanId === ZERO_SPAN_ID) return undefined;
    return { traceId, spanId, flags: hexDigit(value.charCodeAt(53)) * 16 + hexDigit(value.charCodeAt(54)), traceState: validTraceState(traceState) };
  }
  const v = value.length === 55 ? value : value.trim();
  if (v.length < 55) return undefined;
  if (v.charCodeAt(2) !== 0x2d || v.charCodeAt(35) !== 0x2d || v.charCodeAt(52) !== 0x2d) return undefined;
  if (!isLowerHex(v, 0, 2) || !isLowerHex(v, 3, 35) || !isLowerHex(v, 36, 52) || !isLowerHex(v, 53, 55)) return undefined;
  const version = v.slice(0, 2);
  if (version === 'ff') return undefined;
  if (v.length > 55 && (version === '00' || v.charCodeAt(55) !== 0x2d)) return undefined;
  const traceId = v.slice(3, 35);
  const spanId = v.slice(36, 52);
  if (traceId === ZERO_TRACE_ID || spanId === ZERO_SPAN_ID) return undefined;
  return { traceId, spanId, flags: Number.parseInt(v.slice(53, 55), 16), traceState: validTraceState(traceState) };
}

/** A `tracestate` worth passing on: non-empty and at most 512 characters (Dapr drops longer ones). */
export function validTraceState(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  return trimmed === '' || trimmed.length > MAX_TRACESTATE_CHARS ? undefined : trimmed;
}

const FLAG_TEXT = ['00', '01'] as const;

/** The `traceparent` value of a context (version 00). */
export function formatTraceparent(ctx: TraceContext): string {
  const flags = ctx.flags & 0xff;
  return `00-${ctx.traceId}-${ctx.spanId}-${flags < 2 ? FLAG_TEXT[flags] : flags.toString(16).padStart(2, '0')}`;
}

/**
 * `grpc-trace-bin`, base64 as gRPC metadata carries it: version 0, then field 0 and the 16-byte trace
 * id, field 1 and the 8-byte span id, field 2 and the 1-byte flags (29 bytes).
 */
export function formatGrpcTraceBin(ctx: TraceContext): string {
  const buf = Buffer.allocUnsafe(29);
  buf[0] = 0;
  buf[1] = 0;
  buf.write(ctx.traceId, 2, 16, 'hex');
  buf[18] = 1;
  buf.write(ctx.spanId, 19, 8, 'hex');
  buf[27] = 2;
  buf[28] = ctx.flags & 0xff;
  return buf.toString('base64');
}

/**
 * Parses `grpc-trace-bin` (base64, padded or not). Fields come in order and the flags field may be
 * missing (then not sampled); an unknown version or a malformed value gives undefined.
 */
export function parseGrpcTraceBin(value: string | undefined, traceState?: string): TraceContext | undefined {
  if (value === undefined || value === '') return undefined;
  // A peer may join repeated values with ","; the first is the one that counts.
  const comma = value.indexOf(',');
  const buf = Buffer.from(comma < 0 ? value : value.slice(0, comma), 'base64');
  if (buf.length < 27 || buf[0] !== 0 || buf[1] !== 0 || buf[18] !== 1) return undefined;
  const traceId = buf.toString('hex', 2, 18);
  const spanId = buf.toString('hex', 19, 27);
  if (traceId === ZERO_TRACE_ID || spanId === ZERO_SPAN_ID) return undefined;
  const flags = buf.length >= 29 && buf[27] === 2 ? (buf[28] ?? 0) : 0;
  return { traceId, spanId, flags, traceState: validTraceState(traceState) };
}

/** Random ids come from one pooled buffer, refilled when used up (one system call per 512 span ids). */
const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let poolOffset = POOL_BYTES;

function randomHex(bytes: number): string {
  if (poolOffset + bytes > POOL_BYTES) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const hex = pool.toString('hex', poolOffset, poolOffset + bytes);
  poolOffset += bytes;
  return hex;
}

/** A new random span id (never all zero). */
export function newSpanId(): string {
  let id = randomHex(8);
  while (id === ZERO_SPAN_ID) id = randomHex(8);
  return id;
}

/** A new random trace id (never all zero). */
export function newTraceId(): string {
  let id = randomHex(16);
  while (id === ZERO_TRACE_ID) id = randomHex(16);
  return id;
}

/**
 * Dapr's sampler, `ParentBased(TraceIDRatioBased(rate))` as OpenTelemetry Go computes it: a span with
 * a parent follows the parent's sampled flag; a root span is sampled when the trace id's lower 8
 * bytes, shifted right by one, fall below `rate × 2^63`. The same trace id gets the same answer in
 * every Courier and Dapr sidecar.
 */
export class RatioSampler {
  readonly rate: number;
  /** `rate × 2^63` as the two halves compared below (the bound fits 63 bits). */
  readonly #boundHigh: number;
  readonly #boundLow: number;

  constructor(rate: number) {
    this.rate = rate >= 1 ? 1 : rate <= 0 ? 0 : rate;
    const bound = BigInt(Math.floor(this.rate * 2 ** 63));
    this.#boundHigh = Number(bound >> 32n);
    this.#boundLow = Number(bound & 0xffffffffn);
  }

  /** The flags of a new span: the parent's sampled bit, or the ratio's verdict for a root. */
  flagsFor(parent: TraceContext | undefined, traceId: string): number {
    if (parent !== undefined) return parent.flags & SAMPLED_FLAG;
    return this.sampled(traceId) ? SAMPLED_FLAG : 0;
  }

  /** Whether a root span of `traceId` is sampled. */
  sampled(traceId: string): boolean {
    if (this.rate >= 1) return true;
    if (this.rate <= 0) return false;
    // The lower 8 bytes (hex digits 16–31) as a 64-bit number, shifted right by one, split in halves.
    const hi = Number.parseInt(traceId.slice(16, 24), 16);
    const lo = Number.parseInt(traceId.slice(24, 32), 16);
    const shiftedHigh = hi >>> 1;
    const shiftedLow = ((hi & 1) * 0x80000000 + (lo >>> 1)) >>> 0;
    return shiftedHigh < this.#boundHigh || (shiftedHigh === this.#boundHigh && shiftedLow < this.#boundLow);
  }
}
