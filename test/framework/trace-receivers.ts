// Trace collectors on loopback for tests that check the spans Courier exports the way a tracing
// backend sees them: real OTLP/HTTP, OTLP/gRPC and Zipkin endpoints that decode what arrives with the
// official protocol definitions (the protobufjs code generated from opentelemetry-proto) and keep the
// spans in one protocol-independent shape.
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { gunzip, inflate, type ZlibOptions } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';

/** The OTLP span kinds by name, without the `SPAN_KIND_` prefix. */
export type SpanKindName = 'UNSPECIFIED' | 'INTERNAL' | 'SERVER' | 'CLIENT' | 'PRODUCER' | 'CONSUMER';

/** A span as a receiver got it, whatever the protocol. */
export interface ReceivedSpan {
  /** 32 lower-case hex digits. */
  readonly traceId: string;
  /** 16 lower-case hex digits. */
  readonly spanId: string;
  /** 16 lower-case hex digits, or '' for a root span. */
  readonly parentSpanId: string;
  readonly name: string;
  readonly kind: SpanKindName;
  /** The resource attribute `service.name` (OTLP) or `localEndpoint.serviceName` (Zipkin); '' if absent. */
  readonly serviceName: string;
  /**
   * The span's attributes (OTLP) or tags (Zipkin, where every value is a string and the exporter's own
   * tags such as `otel.status_code`, `error` and the resource attributes are included). OTLP array and
   * key-value-list values appear as their JSON text, bytes values as base64; 64-bit integers beyond
   * 2^53 lose precision.
   */
  readonly attributes: Readonly<Record<string, string | number | boolean>>;
  /** Zipkin: tag `otel.status_code` ('OK' / 'ERROR'), or an `error` tag (whose value is the message) → ERROR. */
  readonly status: { readonly code: 'UNSET' | 'OK' | 'ERROR'; readonly message: string };
  /** Epoch milliseconds, with sub-millisecond fractions. */
  readonly startMs: number;
  readonly durationMs: number;
}

/** A running trace receiver; `close()` stops it. */
export interface TraceReceiver {
  /** What an exporter is pointed at: OTLP/HTTP 'http://127.0.0.1:P/v1/traces'; Zipkin 'http://127.0.0.1:P/api/v2/spans'; OTLP/gRPC '127.0.0.1:P'. */
  readonly endpoint: string;
  readonly port: number;
  /** Every span received so far, in arrival order (a snapshot). */
  readonly spans: readonly ReceivedSpan[];
  /** Export requests received so far (one batch each), including those answered with a failure or still held by `setStalled`. */
  readonly requests: number;
  /** The headers (HTTP) or metadata (gRPC), lower-case keys, of the last export request; repeated values joined with ', ', binary metadata in base64. */
  readonly lastHeaders: Readonly<Record<string, string>>;
  /**
   * Resolves with the spans received so far once `predicate(spans)` is true; rejects after `timeoutMs`
   * (default 30000), or when the receiver closes, with a message listing what arrived. The predicate runs
   * now and on every arrival; nothing polls.
   */
  waitFor(predicate: (spans: readonly ReceivedSpan[]) => boolean, timeoutMs?: number): Promise<readonly ReceivedSpan[]>;
  /**
   * While set, export requests are answered with this HTTP status (HTTP receivers) or gRPC status
   * UNAVAILABLE (gRPC receiver, whatever the number) and their spans are not recorded.
   */
  setFailing(status: number | undefined): void;
  /**
   * While true, export requests are held open without an answer. Clearing it handles the held requests
   * as if they had just arrived (recorded and answered, or failed if `setFailing` is set).
   */
  setStalled(stalled: boolean): void;
  /** Stops listening and drops every connection and held request; pending `waitFor`s reject. Idempotent. */
  close(): Promise<void>;
}

// ---- The official OTLP definitions -------------------------------------------------------------

/** 64-bit integers: a protobufjs Long (which prints as decimal), or a number or decimal string in OTLP/JSON. */
type Int64 = number | string | { toString(): string };

/** The fields of `opentelemetry.proto.common.v1.AnyValue` as protobufjs decodes them (unset ones null) or OTLP/JSON carries them. */
interface OtlpAnyValue {
  stringValue?: string | null;
  boolValue?: boolean | null;
  intValue?: Int64 | null;
  doubleValue?: number | null;
  arrayValue?: { values?: OtlpAnyValue[] | null } | null;
  kvlistValue?: { values?: OtlpKeyValue[] | null } | null;
  bytesValue?: Uint8Array | string | null;
}

interface OtlpKeyValue {
  key?: string | null;
  value?: OtlpAnyValue | null;
}

/** Ids are bytes in protobuf and hex strings in OTLP/JSON; enums are numbers (or, in JSON, possibly names). */
interface OtlpSpan {
  traceId?: Uint8Array | string | null;
  spanId?: Uint8Array | string | null;
  parentSpanId?: Uint8Array | string | null;
  name?: string | null;
  kind?: number | string | null;
  startTimeUnixNano?: Int64 | null;
  endTimeUnixNano?: Int64 | null;
  attributes?: OtlpKeyValue[] | null;
  status?: { code?: number | string | null; message?: string | null } | null;
}

/** `opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest`. */
interface OtlpExportRequest {
  resourceSpans?: {
    resource?: { attributes?: OtlpKeyValue[] | null } | null;
    scopeSpans?: { spans?: OtlpSpan[] | null }[] | null;
  }[] | null;
}

interface MessageType<T> {
  decode(bytes: Uint8Array): T;
  encode(message: object): { finish(): Uint8Array };
}

/** The part of the generated root (its .d.ts types it only as a protobufjs Root) these receivers use. */
interface GeneratedRoot {
  opentelemetry: {
    proto: {
      collector: {
        trace: { v1: { ExportTraceServiceRequest: MessageType<OtlpExportRequest>; ExportTraceServiceResponse: MessageType<object> } };
      };
    };
  };
}

const generated = createRequire(import.meta.url)('otlp-transformer-generated/build/src/generated/root.js') as GeneratedRoot;
const { ExportTraceServiceRequest, ExportTraceServiceResponse } = generated.opentelemetry.proto.collector.trace.v1;

const SPAN_KINDS: readonly SpanKindName[] = ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];
const STATUS_CODES: readonly ReceivedSpan['status']['code'][] = ['UNSET', 'OK', 'ERROR'];

/** An OTLP enum value as a number (protobuf, OTLP/JSON) or its proto name (protobuf JSON mapping), without `prefix`. */
function enumName<T extends string>(value: number | string | null | undefined, names: readonly T[], prefix: string): T {
  const name = typeof value === 'string' ? (names.find((n) => `${prefix}${n}` === value || n === value) ?? names[0]) : names[value ?? 0];
  return name ?? (names[0] as T);
}

function idHex(id: Uint8Array | string | null | undefined): string {
  if (id == null) return '';
  return typeof id === 'string' ? id.toLowerCase() : Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('hex');
}

function int64(value: Int64 | null | undefined): bigint {
  if (value == null) return 0n;
  return typeof value === 'number' ? BigInt(Math.trunc(value)) : BigInt(value.toString());
}

/** Nanoseconds to milliseconds without losing the sub-millisecond part to float rounding of the whole. */
function nanosToMs(nanos: bigint): number {
  return Number(nanos / 1_000_000n) + Number(nanos % 1_000_000n) / 1e6;
}

function anyValuePlain(value: OtlpAnyValue | null | undefined): unknown {
  if (value == null) return null;
  if (value.stringValue != null) return value.stringValue;
  if (value.boolValue != null) return value.boolValue;
  if (value.intValue != null) return Number(int64(value.intValue));
  if (value.doubleValue != null) return value.doubleValue;
  if (value.arrayValue != null) return (value.arrayValue.values ?? []).map(anyValuePlain);
  if (value.kvlistValue != null) return Object.fromEntries((value.kvlistValue.values ?? []).map((kv) => [kv.key ?? '', anyValuePlain(kv.value)]));
  if (value.bytesValue != null) return typeof value.bytesValue === 'string' ? value.bytesValue : Buffer.from(value.bytesValue).toString('base64');
  return null;
}

function attributeMap(attributes: OtlpKeyValue[] | null | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const kv of attributes ?? []) {
    const plain = anyValuePlain(kv.value);
    out[kv.key ?? ''] = typeof plain === 'string' || typeof plain === 'number' || typeof plain === 'boolean' ? plain : JSON.stringify(plain);
  }
  return out;
}

/** The spans of an export request, decoded from protobuf or parsed from OTLP/JSON. */
function spansFromOtlp(request: OtlpExportRequest): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  for (const resourceSpans of request.resourceSpans ?? []) {
    const resource = attributeMap(resourceSpans.resource?.attributes);
    const serviceName = typeof resource['service.name'] === 'string' ? resource['service.name'] : '';
    for (const scopeSpans of resourceSpans.scopeSpans ?? []) {
      for (const span of scopeSpans.spans ?? []) {
        const start = int64(span.startTimeUnixNano);
        const end = int64(span.endTimeUnixNano);
        spans.push({
          traceId: idHex(span.traceId),
          spanId: idHex(span.spanId),
          parentSpanId: idHex(span.parentSpanId),
          name: span.name ?? '',
          kind: enumName(span.kind, SPAN_KINDS, 'SPAN_KIND_'),
          serviceName,
          attributes: attributeMap(span.attributes),
          status: { code: enumName(span.status?.code, STATUS_CODES, 'STATUS_CODE_'), message: span.status?.message ?? '' },
          startMs: nanosToMs(start),
          durationMs: nanosToMs(end - start),
        });
      }
    }
  }
  return spans;
}

// ---- Zipkin v2 JSON ---------------------------------------------------------------------------

interface ZipkinSpan {
  traceId?: string;
  id?: string;
  parentId?: string;
  name?: string;
  kind?: string;
  timestamp?: number;
  duration?: number;
  localEndpoint?: { serviceName?: string };
  tags?: Record<string, string>;
}

/**
 * The spans of a Zipkin v2 JSON list. A span without `kind` is local, which is how the OpenTelemetry
 * Zipkin exporter sends INTERNAL spans, so it becomes INTERNAL; 64-bit trace ids are left-padded to 128.
 */
function spansFromZipkin(body: unknown): ReceivedSpan[] {
  if (!Array.isArray(body)) throw new Error('a Zipkin v2 request is a JSON array of spans');
  return (body as ZipkinSpan[]).map((span) => {
    const tags = span.tags ?? {};
    const statusTag = tags['otel.status_code'];
    const code = statusTag === 'ERROR' || 'error' in tags ? 'ERROR' : statusTag === 'OK' ? 'OK' : 'UNSET';
    const kind = SPAN_KINDS.find((k) => k === span.kind) ?? 'INTERNAL';
    return {
      traceId: (span.traceId ?? '').toLowerCase().padStart(32, '0'),
      spanId: (span.id ?? '').toLowerCase(),
      parentSpanId: (span.parentId ?? '').toLowerCase(),
      name: span.name ?? '',
      kind,
      serviceName: span.localEndpoint?.serviceName ?? '',
      attributes: { ...tags },
      status: { code, message: tags.error ?? '' },
      startMs: (span.timestamp ?? 0) / 1000,
      durationMs: (span.duration ?? 0) / 1000,
    };
  });
}

// ---- What every receiver shares -----------------------------------------------------------------

interface Waiter {
  predicate: (spans: readonly ReceivedSpan[]) => boolean;
  resolve: (spans: readonly ReceivedSpan[]) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

function describeSpans(spans: readonly ReceivedSpan[]): string {
  if (spans.length === 0) return ' none';
  return spans
    .map((s) => `\n  ${s.serviceName}: ${s.name} ${s.kind} trace=${s.traceId} span=${s.spanId} parent=${s.parentSpanId || '-'} status=${s.status.code}${s.status.message === '' ? '' : `(${s.status.message})`} ${JSON.stringify(s.attributes)}`)
    .join('');
}

/** The state and the test-facing half of a receiver; a protocol front end feeds it requests. */
abstract class Receiver implements TraceReceiver {
  abstract readonly endpoint: string;
  readonly port: number;
  readonly #label: string;
  readonly #spans: ReceivedSpan[] = [];
  #requests = 0;
  #lastHeaders: Record<string, string> = {};
  #waiters = new Set<Waiter>();
  #failing: number | undefined;
  #stalled = false;
  /** Requests held by `setStalled(true)`, each resumed by calling it. */
  #held: (() => void)[] = [];
  #closing: Promise<void> | undefined;

  constructor(label: string, port: number) {
    this.#label = label;
    this.port = port;
  }

  get spans(): readonly ReceivedSpan[] {
    return [...this.#spans];
  }

  get requests(): number {
    return this.#requests;
  }

  get lastHeaders(): Readonly<Record<string, string>> {
    return { ...this.#lastHeaders };
  }

  protected get closed(): boolean {
    return this.#closing !== undefined;
  }

  waitFor(predicate: (spans: readonly ReceivedSpan[]) => boolean, timeoutMs = 30_000): Promise<readonly ReceivedSpan[]> {
    if (predicate(this.spans)) return Promise.resolve(this.spans);
    if (this.closed) return Promise.reject(this.#failure('the receiver is closed'));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        predicate,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(waiter);
          reject(this.#failure(`spans not as expected within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.#waiters.add(waiter);
    });
  }

  setFailing(status: number | undefined): void {
    this.#failing = status;
  }

  setStalled(stalled: boolean): void {
    this.#stalled = stalled;
    if (!stalled) for (const resume of this.#held.splice(0)) resume();
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#held = [];
      for (const waiter of this.#waiters) {
        clearTimeout(waiter.timer);
        waiter.reject(this.#failure('the receiver closed'));
      }
      this.#waiters.clear();
      await this.shutdownServer();
    })();
    return this.#closing;
  }

  /** Stops the server and drops its connections. */
  protected abstract shutdownServer(): Promise<void>;

  /** Counts an export request and remembers its headers. */
  protected arrived(headers: Record<string, string>): void {
    this.#requests++;
    this.#lastHeaders = headers;
  }

  /**
   * Runs `handle` with the failure status to answer with (undefined: record and succeed) now, or, while
   * stalled, once the stall is cleared; never after close.
   */
  protected admit(handle: (failing: number | undefined) => void): void {
    if (this.closed) return;
    if (this.#stalled) {
      this.#held.push(() => this.admit(handle));
      return;
    }
    handle(this.#failing);
  }

  /** Stores a batch and settles the waiters it satisfies. */
  protected record(spans: readonly ReceivedSpan[]): void {
    this.#spans.push(...spans);
    if (this.#waiters.size === 0) return;
    const snapshot = this.spans;
    for (const waiter of [...this.#waiters]) {
      let done: boolean;
      try {
        done = waiter.predicate(snapshot);
      } catch (err) {
        this.#waiters.delete(waiter);
        clearTimeout(waiter.timer);
        waiter.reject(err instanceof Error ? err : new Error(String(err)));
        continue;
      }
      if (done) {
        this.#waiters.delete(waiter);
        clearTimeout(waiter.timer);
        waiter.resolve(snapshot);
      }
    }
  }

  #failure(why: string): Error {
    return new Error(`${this.#label} receiver at ${this.endpoint}: ${why}; ${this.#requests} request(s), spans received:${describeSpans(this.#spans)}`);
  }
}

// ---- HTTP receivers (OTLP/HTTP and Zipkin) -----------------------------------------------------------

/** Request bodies above this are refused (413): a test's batches are far smaller. */
const MAX_BODY_BYTES = 32 * 1024 * 1024;
const zlibOptions: ZlibOptions = { maxOutputLength: MAX_BODY_BYTES };
const gunzipAsync = promisify<Buffer, ZlibOptions, Buffer>(gunzip);
const inflateAsync = promisify<Buffer, ZlibOptions, Buffer>(inflate);

/** A request the HTTP receiver refuses, with the status to refuse it with. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** What a protocol makes of a request body: the spans, and the answer to a successful export. */
interface HttpDecoded {
  spans: ReceivedSpan[];
  status: number;
  contentType?: string;
  body?: Uint8Array | string;
}

type HttpDecoder = (body: Buffer, contentType: string) => HttpDecoded;

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new HttpError(413, `request body over ${MAX_BODY_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function decodeContent(body: Buffer, encoding: string | undefined): Promise<Buffer> {
  switch ((encoding ?? 'identity').trim().toLowerCase()) {
    case 'identity':
    case '':
      return body;
    case 'gzip':
    case 'x-gzip':
      return gunzipAsync(body, zlibOptions);
    case 'deflate':
      return inflateAsync(body, zlibOptions);
    default:
      throw new HttpError(415, `unsupported Content-Encoding ${encoding}`);
  }
}

function headerRecord(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(req.headers)) {
    if (value !== undefined) out[key] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

class HttpReceiver extends Receiver {
  readonly endpoint: string;
  readonly #server: HttpServer;

  constructor(label: string, server: HttpServer, path: string) {
    super(label, (server.address() as AddressInfo).port);
    this.#server = server;
    this.endpoint = `http://127.0.0.1:${this.port}${path}`;
  }

  /** Answers one request on the export path: reads it, then (after any stall) fails it or records it. */
  async handle(req: IncomingMessage, res: ServerResponse, decode: HttpDecoder): Promise<void> {
    this.arrived(headerRecord(req));
    let body: Buffer;
    try {
      body = await decodeContent(await readBody(req), req.headers['content-encoding']);
    } catch (err) {
      reply(res, err instanceof HttpError ? err.status : 400, String(err));
      return;
    }
    this.admit((failing) => {
      // An exporter that gave up on a held request will send it again: this copy must not count.
      if (res.destroyed) return;
      if (failing !== undefined) {
        reply(res, failing, `failing on purpose (setFailing(${failing}))`);
        return;
      }
      let decoded: HttpDecoded;
      try {
        decoded = decode(body, (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '');
      } catch (err) {
        reply(res, err instanceof HttpError ? err.status : 400, `cannot decode the request: ${String(err)}`);
        return;
      }
      this.record(decoded.spans);
      if (decoded.contentType !== undefined) res.setHeader('Content-Type', decoded.contentType);
      res.writeHead(decoded.status);
      res.end(decoded.body);
    });
  }

  protected shutdownServer(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }
}

function reply(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' });
  res.end(`${message}\n`);
}

async function startHttpReceiver(label: string, path: string, decode: HttpDecoder): Promise<TraceReceiver> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Attached before this turn ends, so before any connection is served.
  const receiver = new HttpReceiver(label, server, path);
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname !== path) {
      reply(res, 404, `no such endpoint; exports go to POST ${path}`);
      return;
    }
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST');
      reply(res, 405, `${path} takes POST`);
      return;
    }
    void receiver.handle(req, res, decode);
  });
  return receiver;
}

/**
 * An OTLP/HTTP trace receiver on 127.0.0.1: `POST /v1/traces` with an ExportTraceServiceRequest as
 * `application/x-protobuf` (decoded with the generated opentelemetry-proto code) or `application/json`
 * (OTLP/JSON: hex ids, numeric enums, int64 as string or number), optionally gzip/deflate encoded. It
 * answers 200 with an empty ExportTraceServiceResponse in the request's content type; an undecodable
 * body gets 400, another content type 415, other paths 404.
 */
export function startOtlpHttpReceiver(): Promise<TraceReceiver> {
  return startHttpReceiver('OTLP/HTTP', '/v1/traces', (body, contentType) => {
    if (contentType === 'application/x-protobuf') {
      return { spans: spansFromOtlp(ExportTraceServiceRequest.decode(body)), status: 200, contentType, body: ExportTraceServiceResponse.encode({}).finish() };
    }
    if (contentType === 'application/json') {
      return { spans: spansFromOtlp(JSON.parse(body.toString('utf8')) as OtlpExportRequest), status: 200, contentType, body: '{}' };
    }
    throw new HttpError(415, `unsupported Content-Type ${contentType || '(none)'}; OTLP/HTTP takes application/x-protobuf or application/json`);
  });
}

/**
 * A Zipkin v2 receiver on 127.0.0.1: `POST /api/v2/spans` with a JSON array of spans (optionally
 * gzip/deflate encoded), answered 202 with no body; an undecodable body gets 400, other paths 404.
 */
export function startZipkinReceiver(): Promise<TraceReceiver> {
  return startHttpReceiver('Zipkin', '/api/v2/spans', (body, contentType) => {
    if (contentType !== 'application/json' && contentType !== '') {
      throw new HttpError(415, `unsupported Content-Type ${contentType}; this receiver takes Zipkin v2 JSON`);
    }
    return { spans: spansFromZipkin(JSON.parse(body.toString('utf8'))), status: 202 };
  });
}

// ---- OTLP/gRPC ---------------------------------------------------------------------------------

const TRACE_SERVICE: grpc.ServiceDefinition = {
  Export: {
    path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
    requestStream: false,
    responseStream: false,
    requestSerialize: (message: OtlpExportRequest) => Buffer.from(ExportTraceServiceRequest.encode(message).finish()),
    requestDeserialize: (bytes: Buffer) => ExportTraceServiceRequest.decode(bytes),
    responseSerialize: (message: object) => Buffer.from(ExportTraceServiceResponse.encode(message).finish()),
    responseDeserialize: (bytes: Buffer) => ExportTraceServiceResponse.decode(bytes),
  },
};

class GrpcReceiver extends Receiver {
  readonly endpoint: string;
  readonly #server: grpc.Server;

  constructor(server: grpc.Server, port: number) {
    super('OTLP/gRPC', port);
    this.#server = server;
    this.endpoint = `127.0.0.1:${port}`;
  }

  readonly export: grpc.handleUnaryCall<OtlpExportRequest, object> = (call, callback) => {
    const headers: Record<string, string> = {};
    for (const [key, value] of Object.entries(call.metadata.getMap())) {
      headers[key.toLowerCase()] = typeof value === 'string' ? value : value.toString('base64');
    }
    this.arrived(headers);
    this.admit((failing) => {
      if (failing !== undefined) {
        callback({ code: grpc.status.UNAVAILABLE, details: `failing on purpose (setFailing(${failing}))` });
        return;
      }
      let spans: ReceivedSpan[];
      try {
        spans = spansFromOtlp(call.request);
      } catch (err) {
        callback({ code: grpc.status.INVALID_ARGUMENT, details: `cannot read the request: ${String(err)}` });
        return;
      }
      this.record(spans);
      callback(null, {});
    });
  };

  protected shutdownServer(): Promise<void> {
    // Cancels held calls and drops the exporters' connections rather than waiting for them to go.
    this.#server.forceShutdown();
    return Promise.resolve();
  }
}

/**
 * An OTLP/gRPC trace receiver on 127.0.0.1 (plaintext): the `TraceService/Export` method, with requests
 * decoded by the generated opentelemetry-proto code (grpc-js undoes any gzip message compression).
 * While `setFailing` is set, calls fail with UNAVAILABLE.
 */
export async function startOtlpGrpcReceiver(): Promise<TraceReceiver> {
  const server = new grpc.Server();
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound)));
  });
  // grpc-js looks handlers up per call, so registering after binding is fine (nothing has connected yet).
  const receiver = new GrpcReceiver(server, port);
  server.addService(TRACE_SERVICE, { Export: receiver.export });
  return receiver;
}
