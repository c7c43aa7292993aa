import { newSpanId, newTraceId, RatioSampler, SAMPLED_FLAG, type TraceContext } from './context.js';

/** Span kinds, numbered as OpenTelemetry's `SpanKind`. */
export const SpanKind = { INTERNAL: 0, SERVER: 1, CLIENT: 2 } as const;
export type SpanKind = (typeof SpanKind)[keyof typeof SpanKind];

export type AttributeValue = string | number | boolean;

/** Where ended, recorded spans go (the batching exporters of export.ts). Must not block or throw. */
export interface SpanSink {
  add(span: Span): void;
  /** Sends what is queued (bounded by a timeout) and stops. */
  close(): Promise<void>;
}

/** Wall-clock milliseconds with sub-millisecond precision, for span times. */
function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * One span of a call through this sidecar. Every call gets one, because its context is what the next
 * hop sees as its parent; only a sampled span with an exporter configured is *recorded* (keeps
 * attributes and goes to the exporter when it ends). An unrecorded span is just its ids: setting
 * attributes and ending it do nothing.
 */
export class Span implements TraceContext {
  readonly traceId: string;
  readonly spanId: string;
  readonly flags: number;
  readonly traceState: string | undefined;
  /** The parent's span id; undefined for a root span. */
  readonly parentSpanId: string | undefined;
  readonly kind: SpanKind;
  /** Set by the caller when the span is recorded. */
  name = '';
  readonly attributes: Record<string, AttributeValue> | undefined;
  readonly startMs: number;
  endMs = 0;
  /** Set when the call failed: the span's status is ERROR with this message. */
  errorMessage: string | undefined;
  #sink: SpanSink | undefined;

  constructor(kind: SpanKind, traceId: string, parent: TraceContext | undefined, flags: number, sink: SpanSink | undefined) {
    this.kind = kind;
    this.traceId = traceId;
    this.spanId = newSpanId();
    this.flags = flags;
    this.traceState = parent?.traceState;
    this.parentSpanId = parent?.spanId;
    this.#sink = sink;
    this.attributes = sink === undefined ? undefined : (Object.create(null) as Record<string, AttributeValue>);
    this.startMs = sink === undefined ? 0 : nowMs();
  }

  /** True when this span is kept and exported. */
  get recording(): boolean {
    return this.#sink !== undefined;
  }

  set(key: string, value: AttributeValue): void {
    if (this.attributes !== undefined) this.attributes[key] = value;
  }

  /** Ends the span (once): with `error`, its status is ERROR. */
  end(error?: string): void {
    const sink = this.#sink;
    if (sink === undefined) return;
    this.#sink = undefined;
    this.endMs = nowMs();
    if (error !== undefined) this.errorMessage = error;
    sink.add(this);
  }
}

/**
 * Starts the spans of this sidecar's calls: ids from a pooled random source, the sampling decision
 * of Dapr's `ParentBased(TraceIDRatioBased(samplingRate))`, and, when an exporter is configured, a
 * record of each sampled span.
 */
export class Tracer {
  readonly #sampler: RatioSampler;
  readonly #sink: SpanSink | undefined;

  constructor(samplingRate: number, sink: SpanSink | undefined) {
    this.#sampler = new RatioSampler(samplingRate);
    this.#sink = sink;
  }

  /**
   * A span for a call, as a child of `parent` (the context the caller sent, if valid) or as the root
   * of a new trace. Name it and set its attributes only when it is `recording`.
   */
  start(kind: SpanKind, parent: TraceContext | undefined): Span {
    const traceId = parent?.traceId ?? newTraceId();
    const flags = this.#sampler.flagsFor(parent, traceId);
    const sink = (flags & SAMPLED_FLAG) !== 0 ? this.#sink : undefined;
    return new Span(kind, traceId, parent, flags, sink);
  }

  close(): Promise<void> {
    return this.#sink?.close() ?? Promise.resolve();
  }
}
