import { diag, DiagLogLevel, SpanStatusCode, type HrTime, type SpanContext } from '@opentelemetry/api';
import { setGlobalErrorHandler, TraceState, type InstrumentationScope } from '@opentelemetry/core';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { BatchSpanProcessor, ConsoleSpanExporter, type ReadableSpan, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace';
import type { Logger } from '../logging/index.js';
import { version as VERSION } from '../../version.js';
import type { ExporterSettings } from './settings.js';
import type { Span, SpanSink } from './tracer.js';
import { OtlpHttpSpanSink } from './otlp-http-export.js';

/**
 * Span export with the OpenTelemetry JS SDK. OTLP over HTTP, the usual production set-up, encodes
 * each span as it ends and sends the batches through the SDK's OTLP/HTTP transport
 * (otlp-http-export.ts); stdout, Zipkin and OTLP over gRPC are the SDK's exporters, each behind its
 * own `BatchSpanProcessor`. This module is loaded only when an exporter is configured, so a sidecar
 * that exports nothing never loads the SDK.
 *
 * A call never waits for export: an ended span is appended to each exporter's queue, which holds at
 * most `MAX_QUEUED_SPANS` (more are dropped, and counted in a warning) and is sent in batches every
 * `OTEL_BSP_SCHEDULE_DELAY` ms (5000 by default) or when a batch of `MAX_BATCH` fills up.
 */

/** The most spans waiting for export per exporter: bounds memory when a collector is down or slow. */
export const MAX_QUEUED_SPANS = 2048;
export const MAX_BATCH = 512;
/** OpenTelemetry's defaults for `OTEL_BSP_SCHEDULE_DELAY` and `OTEL_BSP_EXPORT_TIMEOUT`. */
const DEFAULT_DELAY_MS = 5000;
const DEFAULT_EXPORT_TIMEOUT_MS = 30_000;

function positiveNumber(value: string | undefined): number | undefined {
  const n = value === undefined ? Number.NaN : Number(value);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}
/** How long closing waits for the last batches. */
const CLOSE_TIMEOUT_MS = 3000;
/** Export failures are logged at most this often. */
const WARN_INTERVAL_MS = 30_000;

const SCOPE: InstrumentationScope = { name: 'courier', version: VERSION };

/** Milliseconds since the epoch as OpenTelemetry's [seconds, nanoseconds]. */
function hrTime(ms: number): HrTime {
  const seconds = Math.floor(ms / 1000);
  return [seconds, Math.round((ms - seconds * 1000) * 1e6)];
}

/** What every exported span shares: no links, no events, an unset status (frozen: exporters only read them). */
const NO_LINKS: ReadableSpan['links'] = Object.freeze([]) as unknown as ReadableSpan['links'];
const NO_EVENTS: ReadableSpan['events'] = Object.freeze([]) as unknown as ReadableSpan['events'];
const UNSET_STATUS: ReadableSpan['status'] = Object.freeze({ code: SpanStatusCode.UNSET });

/**
 * A finished Courier span in the SDK's `ReadableSpan` shape, made once the span ends. It waits in the
 * batch processors' queues (up to a batch of 512, or 5 s) and so outlives a young-generation
 * collection or two: it holds only what differs from span to span, and what all spans share (the
 * empty links and events, an unset status, the duration computed when read) stays on its prototype
 * or in constants.
 */
class ExportedSpan implements ReadableSpan {
  readonly name: string;
  readonly kind: number;
  readonly #context: SpanContext;
  readonly parentSpanContext?: SpanContext;
  readonly startTime: HrTime;
  readonly endTime: HrTime;
  readonly status: ReadableSpan['status'];
  readonly attributes: Record<string, string | number | boolean>;
  readonly resource: Resource;
  readonly #durationMs: number;

  constructor(span: Span, resource: Resource) {
    this.name = span.name;
    this.kind = span.kind;
    const traceState = span.traceState === undefined ? undefined : new TraceState(span.traceState);
    this.#context = { traceId: span.traceId, spanId: span.spanId, traceFlags: span.flags, ...(traceState === undefined ? {} : { traceState }) };
    if (span.parentSpanId !== undefined) this.parentSpanContext = { traceId: span.traceId, spanId: span.parentSpanId, traceFlags: span.flags, isRemote: true };
    this.startTime = hrTime(span.startMs);
    this.endTime = hrTime(span.endMs);
    this.#durationMs = Math.max(0, span.endMs - span.startMs);
    this.status = span.errorMessage === undefined ? UNSET_STATUS : { code: SpanStatusCode.ERROR, message: span.errorMessage };
    this.attributes = span.attributes ?? {};
    this.resource = resource;
  }

  spanContext(): SpanContext {
    return this.#context;
  }
  get duration(): HrTime {
    return hrTime(this.#durationMs);
  }
  get links(): ReadableSpan['links'] {
    return NO_LINKS;
  }
  get events(): ReadableSpan['events'] {
    return NO_EVENTS;
  }
  get ended(): boolean {
    return true;
  }
  get instrumentationScope(): InstrumentationScope {
    return SCOPE;
  }
  get droppedAttributesCount(): number {
    return 0;
  }
  get droppedEventsCount(): number {
    return 0;
  }
  get droppedLinksCount(): number {
    return 0;
  }
}

async function createExporter(settings: Exclude<ExporterSettings, { kind: 'otlp'; protocol: 'http' }>, serviceName: string): Promise<SpanExporter> {
  switch (settings.kind) {
    case 'stdout':
      return new ConsoleSpanExporter();
    case 'zipkin': {
      const { ZipkinExporter } = await import('@opentelemetry/exporter-zipkin');
      return new ZipkinExporter({ url: settings.url, serviceName });
    }
    case 'otlp': {
      const [{ OTLPTraceExporter }, grpc] = await Promise.all([import('@opentelemetry/exporter-trace-otlp-grpc'), import('@grpc/grpc-js')]);
      const metadata = new grpc.Metadata();
      for (const [name, value] of Object.entries(settings.headers)) metadata.set(name, value);
      return new OTLPTraceExporter({
        url: settings.url,
        metadata,
        timeoutMillis: settings.timeoutMs,
        credentials: settings.url.startsWith('https:') ? grpc.credentials.createSsl() : grpc.credentials.createInsecure(),
      });
    }
  }
}

/** Where an exporter sends, for logs. */
export function describeExporter(settings: ExporterSettings): string {
  switch (settings.kind) {
    case 'stdout':
      return 'stdout';
    case 'zipkin':
      return `zipkin ${settings.url}`;
    case 'otlp':
      return `otlp/${settings.protocol} ${settings.url}`;
  }
}

/**
 * Routes the SDK's own warnings and export errors to the sidecar's log, at most one line per interval;
 * returns the function that logs so.
 */
function routeSdkDiagnostics(logger: Logger): (message: string) => void {
  let lastWarn = 0;
  const warn = (message: string): void => {
    const now = Date.now();
    if (now - lastWarn < WARN_INTERVAL_MS) return;
    lastWarn = now;
    logger.warn({ detail: message.slice(0, 500) }, 'span export is failing or falling behind; calls are not affected');
  };
  const text = (value: unknown): string => (value instanceof Error ? value.message : typeof value === 'string' ? value : JSON.stringify(value) ?? '');
  setGlobalErrorHandler((err) => warn(text(err)));
  const toText = (message: string, args: unknown[]): string => [message, ...args.map(text)].join(' ');
  diag.setLogger(
    {
      error: (message, ...args) => warn(toText(message, args)),
      warn: (message, ...args) => warn(toText(message, args)),
      info: () => {},
      debug: () => {},
      verbose: () => {},
    },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
  return warn;
}

/** The exporters of `settings`, batched: the sink a `Tracer` gives its recorded spans. */
export async function createSpanExport(exporters: readonly ExporterSettings[], serviceName: string, logger: Logger, env: NodeJS.ProcessEnv): Promise<SpanSink> {
  const warn = routeSdkDiagnostics(logger);
  const resourceAttributes = { 'service.name': serviceName, 'telemetry.sdk.name': 'courier', 'telemetry.sdk.version': VERSION };
  const delayMs = positiveNumber(env.OTEL_BSP_SCHEDULE_DELAY) ?? DEFAULT_DELAY_MS;
  const exportTimeoutMs = positiveNumber(env.OTEL_BSP_EXPORT_TIMEOUT) ?? DEFAULT_EXPORT_TIMEOUT_MS;
  const sinks: SpanSink[] = [];
  const processors: SpanProcessor[] = [];
  for (const settings of exporters) {
    if (settings.kind === 'otlp' && settings.protocol === 'http') {
      sinks.push(
        new OtlpHttpSpanSink({
          url: settings.url,
          headers: settings.headers,
          timeoutMs: settings.timeoutMs,
          preamble: { resource: resourceAttributes, scopeName: SCOPE.name, scopeVersion: VERSION },
          maxQueuedSpans: MAX_QUEUED_SPANS,
          maxBatch: MAX_BATCH,
          delayMs,
          exportTimeoutMs,
          warn,
        }),
      );
      continue;
    }
    const exporter = await createExporter(settings, serviceName);
    processors.push(new BatchSpanProcessor({ exporter, maxQueueSize: MAX_QUEUED_SPANS, maxExportBatchSize: MAX_BATCH, scheduledDelayMillis: delayMs, exportTimeoutMillis: exportTimeoutMs }));
  }
  if (processors.length > 0) {
    const resource = resourceFromAttributes(resourceAttributes);
    sinks.push({
      add(span: Span): void {
        const exported = new ExportedSpan(span, resource);
        for (const processor of processors) processor.onEnd(exported);
      },
      async close(): Promise<void> {
        await Promise.allSettled(processors.map((p) => p.shutdown()));
      },
    });
  }
  const only = sinks.length === 1 ? sinks[0] : undefined;
  return {
    add:
      only !== undefined
        ? (span: Span): void => only.add(span)
        : (span: Span): void => {
            for (const sink of sinks) sink.add(span);
          },
    async close(): Promise<void> {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, CLOSE_TIMEOUT_MS);
        timer.unref();
      });
      await Promise.race([Promise.allSettled(sinks.map((s) => s.close())), timeout]);
      clearTimeout(timer);
    },
  };
}
