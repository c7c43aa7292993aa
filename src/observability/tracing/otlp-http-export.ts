import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { convertLegacyHttpOptions, createOtlpHttpExportDelegate } from '@opentelemetry/otlp-exporter-base/node-http';
import { ProtobufTraceSerializer, type IExportTraceServiceResponse } from '@opentelemetry/otlp-transformer';
import { EncodedSpanBatch, OtlpHeaders, type OtlpPreamble } from './otlp-encoding.js';
import type { Span, SpanSink } from './tracer.js';

/**
 * OTLP/HTTP export (protobuf) of recorded spans. Each span is encoded when it ends into the batch being
 * filled (otlp-encoding.ts); a batch goes out when it holds `maxBatch` spans or `delayMs` after its
 * first span, one export at a time, through the OpenTelemetry SDK's OTLP/HTTP transport (its retries,
 * timeouts, compression and `OTEL_EXPORTER_OTLP_*` settings). It behaves as the SDK's batch span
 * processor in front of its OTLP/HTTP exporter: a call never waits, at most `maxQueuedSpans` wait
 * for export (more are dropped and reported), and an export that has not finished after
 * `exportTimeoutMs` no longer holds up the next.
 */

export interface OtlpHttpSinkOptions {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  /** The transport's timeout per request (retries included). */
  readonly timeoutMs: number;
  readonly preamble: OtlpPreamble;
  readonly maxQueuedSpans: number;
  readonly maxBatch: number;
  readonly delayMs: number;
  readonly exportTimeoutMs: number;
  /** Reports export failures and dropped spans (the caller limits how often it logs). */
  readonly warn: (message: string) => void;
}

/** The smallest buffer a batch starts with; later batches start at the size of the one before. */
const MIN_BATCH_BYTES = 16 * 1024;

type Delegate = ReturnType<typeof createOtlpHttpExportDelegate<EncodedSpanBatch, IExportTraceServiceResponse>>;

export class OtlpHttpSpanSink implements SpanSink {
  readonly #options: OtlpHttpSinkOptions;
  readonly #headers: OtlpHeaders;
  readonly #delegate: Delegate;
  /** The batch being filled. */
  #filling: EncodedSpanBatch | undefined;
  /** Full or due batches, oldest first. */
  readonly #ready: EncodedSpanBatch[] = [];
  /** Spans waiting: in the batch being filled, in ready batches and in the one being exported. */
  #queued = 0;
  #dropped = 0;
  #exporting = false;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  #startBytes = MIN_BATCH_BYTES;
  #drained: Array<() => void> = [];

  constructor(options: OtlpHttpSinkOptions) {
    this.#options = options;
    this.#headers = new OtlpHeaders(options.preamble);
    const http = convertLegacyHttpOptions({ url: options.url, headers: { ...options.headers }, timeoutMillis: options.timeoutMs }, 'TRACES', 'v1/traces', {
      'Content-Type': 'application/x-protobuf',
    });
    this.#delegate = createOtlpHttpExportDelegate<EncodedSpanBatch, IExportTraceServiceResponse>(
      http,
      { serializeRequest: (batch) => batch.request(), deserializeResponse: (data) => ProtobufTraceSerializer.deserializeResponse(data) },
      'otlp_http_span_exporter',
      { name: 'span', countItems: (batch) => batch.count },
      undefined,
    );
  }

  /** Spans dropped because the queue was full. */
  get dropped(): number {
    return this.#dropped;
  }

  add(span: Span): void {
    if (this.#closed) return;
    const options = this.#options;
    if (this.#queued >= options.maxQueuedSpans) {
      this.#dropped++;
      options.warn(`the export queue is full (${options.maxQueuedSpans} spans): ${this.#dropped} spans dropped so far`);
      return;
    }
    let batch = this.#filling;
    if (batch === undefined) {
      batch = new EncodedSpanBatch(this.#headers, this.#startBytes);
      this.#filling = batch;
      this.#timer = setTimeout(() => this.#flush(), options.delayMs);
      this.#timer.unref();
    }
    batch.add(span);
    this.#queued++;
    if (batch.count >= options.maxBatch) this.#flush();
  }

  /** Hands the batch being filled over for export. */
  #flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const batch = this.#filling;
    if (batch !== undefined) {
      this.#filling = undefined;
      this.#startBytes = Math.max(MIN_BATCH_BYTES, Math.ceil(batch.byteLength * 1.25));
      this.#ready.push(batch);
    }
    this.#pump();
  }

  #pump(): void {
    if (this.#exporting) return;
    const batch = this.#ready.shift();
    if (batch === undefined) {
      const drained = this.#drained;
      this.#drained = [];
      for (const resolve of drained) resolve();
      return;
    }
    this.#exporting = true;
    let finished = false;
    const finish = (error: unknown): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      this.#exporting = false;
      this.#queued -= batch.count;
      if (error !== undefined) this.#options.warn(`an export of ${batch.count} spans failed: ${error instanceof Error ? error.message : JSON.stringify(error)}`);
      this.#pump();
    };
    const timer = setTimeout(() => finish(new Error(`no answer within ${this.#options.exportTimeoutMs} ms`)), this.#options.exportTimeoutMs);
    timer.unref();
    try {
      this.#delegate.export(batch, (result: ExportResult) => finish(result.code === ExportResultCode.SUCCESS ? undefined : (result.error ?? new Error('export failed'))));
    } catch (err) {
      finish(err);
    }
  }

  /** Sends what is queued and stops; the caller bounds how long it waits. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const drained = new Promise<void>((resolve) => this.#drained.push(resolve));
    this.#flush();
    await drained;
    await this.#delegate.shutdown();
  }
}
