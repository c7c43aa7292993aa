import { Pool, type Dispatcher } from 'undici';
import { CourierError, errorMessage, GrpcStatus } from '../errors/index.js';
import { appRequestHeaders, responseMetadataFromRawHeaders } from '../invoke/headers.js';
import { methodToPath } from '../invoke/method.js';
import { unusableVerbProblem } from '../invoke/verbs.js';
import { cancelledError, type FlowControl, type InvokeRequest, type ResponseSink } from '../invoke/types.js';
import type { Logger } from '../observability/logging/index.js';
import { type AppChannel, type AppChannelState } from './app-channel.js';
import { AppHealthMonitor, type HealthProbeOptions } from './app-health.js';
import { Semaphore } from './semaphore.js';

export interface HttpAppChannelOptions {
  /** `--app-channel-address`. */
  readonly host: string;
  /** `--app-port`. */
  readonly port: number;
  /** `--app-max-concurrency`; 0 or less means unlimited. */
  readonly maxConcurrency: number;
  /** `APP_API_TOKEN`: sent to the app as `dapr-api-token` on every call. */
  readonly appApiToken: string | undefined;
  /** App health checks, when `--enable-app-health-check` is set. */
  readonly healthProbe: HealthProbeOptions | undefined;
  /** How long a call that arrives before the app is ready waits for it (`--app-ready-timeout`). */
  readonly readyTimeoutMs: number;
  readonly logger: Logger;
}

/**
 * A response body up to this size, if it has fully arrived by the time its headers are processed, is
 * delivered with an exact Content-Length. Larger or slower bodies are streamed as they come.
 */
const COALESCE_LIMIT_BYTES = 64 * 1024;

/** Errors that happen before a request reaches the app, so another instance may be tried. */
const notSentErrorCodes: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/**
 * The HTTP channel to the local app: one keep-alive connection pool, reused by every call. Requests
 * and responses stream through without being buffered (apart from the small-response coalescing
 * above). `--app-max-concurrency` holds a slot until the response body has been fully passed on.
 */
export class HttpAppChannel implements AppChannel {
  readonly #options: HttpAppChannelOptions;
  readonly #pool: Pool;
  readonly #health: AppHealthMonitor;
  readonly #semaphore: Semaphore | undefined;
  readonly #listeners = new Set<(state: AppChannelState) => void>();
  readonly #origin: string;

  constructor(options: HttpAppChannelOptions) {
    this.#options = options;
    const host = options.host.includes(':') ? `[${options.host}]` : options.host;
    this.#origin = `${host}:${options.port}`;
    this.#pool = new Pool(`http://${this.#origin}`, {
      // Long-running calls (streams, long polls) are bounded by the caller, never by an idle timer here.
      headersTimeout: 0,
      bodyTimeout: 0,
      connectTimeout: 5_000,
      keepAliveTimeout: 30_000,
      pipelining: 1,
    });
    this.#semaphore = options.maxConcurrency > 0 ? new Semaphore(options.maxConcurrency) : undefined;
    this.#health = new AppHealthMonitor({
      host: options.host,
      port: options.port,
      probe: options.healthProbe,
      check: (signal) => this.#probe(signal),
      logger: options.logger,
      readyTimeoutMs: options.readyTimeoutMs,
      onChange: (state) => {
        for (const listener of this.#listeners) listener(state);
      },
    });
  }

  get state(): AppChannelState {
    return this.#health.state;
  }

  /** `host:port` of the app. */
  get address(): string {
    return this.#origin;
  }

  start(): void {
    this.#health.start();
  }

  onStateChange(listener: (state: AppChannelState) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.#health.close();
    await this.#pool.destroy();
  }

  /** GET of `--app-health-check-path`: any 2xx is healthy. */
  async #probe(signal: AbortSignal): Promise<string | undefined> {
    const headers: string[] = ['user-agent', 'courier-health-probe'];
    if (this.#options.appApiToken !== undefined) headers.push('dapr-api-token', this.#options.appApiToken);
    const res = await this.#pool.request({ path: this.#options.healthProbe?.path ?? '/healthz', method: 'GET', headers, signal });
    await res.body.dump();
    return res.statusCode >= 200 && res.statusCode < 300 ? undefined : `health probe answered ${res.statusCode}`;
  }

  invoke(request: InvokeRequest, sink: ResponseSink): void {
    const verbProblem = unusableVerbProblem(request.verb);
    if (verbProblem !== undefined) {
      // A gRPC caller that named no usable verb: an HTTP app cannot be called without one.
      sink.error(new CourierError('ERR_MALFORMED_REQUEST', verbProblem, { grpcCode: GrpcStatus.INVALID_ARGUMENT }));
      return;
    }
    if (this.#health.state.t !== 'ready') {
      // Still starting (or unhealthy): wait for the app, bounded, instead of failing a call that came early.
      this.#health.whenReady(request.signal, () => this.#admit(request, sink), (err) => sink.error(err));
      return;
    }
    this.#admit(request, sink);
  }

  #admit(request: InvokeRequest, sink: ResponseSink): void {
    const semaphore = this.#semaphore;
    if (semaphore === undefined) {
      this.#dispatch(request, sink, undefined);
      return;
    }
    semaphore.acquire(
      request.signal,
      () => this.#dispatch(request, sink, semaphore),
      () => sink.error(cancelledError()),
    );
  }

  #dispatch(request: InvokeRequest, sink: ResponseSink, semaphore: Semaphore | undefined): void {
    const headers = appRequestHeaders(request.metadata, this.#options.appApiToken);
    if (request.contentType !== '') headers.push('content-type', request.contentType);
    if (request.contentLength !== undefined && request.body !== null) headers.push('content-length', String(request.contentLength));
    const path = request.query === '' ? methodToPath(request.method) : `${methodToPath(request.method)}?${request.query}`;
    const handler = new AppResponseHandler(request, sink, semaphore);
    try {
      this.#pool.dispatch({ origin: `http://${this.#origin}`, method: request.verb, path, headers, body: request.body }, handler);
    } catch (err) {
      handler.fail(err);
    }
  }
}

type HandlerState = 'waiting' | 'coalescing' | 'streaming' | 'done';

/**
 * Describes a failure of an HTTP call for the caller: `waiting` is true while no response head has
 * arrived. Its `retry` says whether sending the request again is safe (see `CourierError.retry`).
 */
export type HttpCallFailure = (error: unknown, waiting: boolean) => CourierError;

/** A failed call to the local app; a connection that could not be made may be retried on another instance. */
function appChannelFailure(error: unknown, waiting: boolean): CourierError {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  const options = notSentErrorCodes.has(code) && waiting ? ({ retry: 'safe', grpcCode: 14 } as const) : {};
  return new CourierError('ERR_DIRECT_INVOKE', `error invoking app channel: ${errorMessage(error)}`, options);
}

/**
 * Turns undici's dispatch events into a ResponseSink's, one object per call (no per-event closures).
 * Also used for calls to external HTTP services (src/endpoints), with their own `describeFailure`.
 */
export class AppResponseHandler implements Dispatcher.DispatchHandler, FlowControl {
  #state: HandlerState = 'waiting';
  #controller: Dispatcher.DispatchController | undefined;
  #status = 0;
  #rawHeaders: string[] = [];
  #contentType = '';
  #declaredLength: number | undefined;
  #chunks: Buffer[] = [];
  #bufferedBytes = 0;
  #flushTimer: NodeJS.Immediate | undefined;
  readonly #request: Pick<InvokeRequest, 'verb' | 'signal'>;
  readonly #sink: ResponseSink;
  readonly #semaphore: Semaphore | undefined;
  readonly #describeFailure: HttpCallFailure;
  readonly #onAbort: () => void;

  constructor(request: Pick<InvokeRequest, 'verb' | 'signal'>, sink: ResponseSink, semaphore: Semaphore | undefined, describeFailure: HttpCallFailure = appChannelFailure) {
    this.#request = request;
    this.#sink = sink;
    this.#semaphore = semaphore;
    this.#describeFailure = describeFailure;
    this.#onAbort = () => this.#controller?.abort(new Error('the caller cancelled the call'));
    request.signal.addEventListener('abort', this.#onAbort, { once: true });
  }

  pause(): void {
    this.#controller?.pause();
  }

  resume(): void {
    this.#controller?.resume();
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#request.signal.aborted) controller.abort(new Error('the caller cancelled the call'));
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    if (statusCode < 200) return; // 1xx informational responses are not forwarded
    this.#status = statusCode;
    this.#rawHeaders = rawHeaderStrings(controller.rawHeaders);
    const contentType = headers['content-type'];
    this.#contentType = Array.isArray(contentType) ? (contentType[0] ?? '') : (contentType ?? '');
    const declared = headers['content-length'];
    const length = Number(Array.isArray(declared) ? declared[0] : declared);
    this.#declaredLength = declared !== undefined && Number.isSafeInteger(length) && length >= 0 ? length : undefined;
    if (this.#request.verb === 'HEAD' || statusCode === 204 || statusCode === 304) {
      // No body follows; the declared length describes the resource, so it is passed on as is.
      this.#startStreaming(statusCode === 204 ? undefined : this.#declaredLength);
      return;
    }
    this.#state = 'coalescing';
    this.#flushTimer = setImmediate(() => {
      this.#flushTimer = undefined;
      if (this.#state === 'coalescing') this.#startStreaming(undefined);
    });
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#state === 'coalescing') {
      this.#chunks.push(chunk);
      this.#bufferedBytes += chunk.length;
      if (this.#bufferedBytes > COALESCE_LIMIT_BYTES) this.#startStreaming(undefined);
      return;
    }
    if (this.#state === 'streaming') this.#sink.data(chunk);
  }

  onResponseEnd(): void {
    if (this.#state === 'coalescing') this.#deliverWhole();
    else if (this.#state === 'streaming') this.#finish(undefined);
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    // An app that closes the connection before the Content-Length it declared has ended its body
    // there (Dapr passes such bodies on as received; scenario S21). Any other failure is an error.
    const earlyEof = (error as NodeJS.ErrnoException).code === 'UND_ERR_SOCKET' && this.#declaredLength !== undefined;
    if (this.#state === 'coalescing' && earlyEof) {
      this.#deliverWhole();
      return;
    }
    if (this.#state === 'streaming' && earlyEof) {
      this.#finish(undefined);
      return;
    }
    this.fail(error);
  }

  /** Fails the call with an error raised by undici or thrown while dispatching. */
  fail(error: unknown): void {
    if (this.#state === 'done') return;
    if (this.#request.signal.aborted) {
      this.#finish(cancelledError());
      return;
    }
    // The request body's own failure (too large, the caller went away) is reported as is.
    if (error instanceof CourierError) {
      this.#finish(error);
      return;
    }
    this.#finish(this.#describeFailure(error, this.#state === 'waiting'));
  }

  #startStreaming(contentLength: number | undefined): void {
    this.#state = 'streaming';
    this.#clearFlush();
    this.#sink.head(this.#head(contentLength), this);
    const chunks = this.#chunks;
    this.#chunks = [];
    for (const chunk of chunks) this.#sink.data(chunk);
  }

  #deliverWhole(): void {
    this.#clearFlush();
    this.#state = 'streaming';
    const body = this.#chunks.length === 1 ? this.#chunks[0] : Buffer.concat(this.#chunks, this.#bufferedBytes);
    this.#chunks = [];
    this.#sink.head(this.#head(this.#bufferedBytes), this);
    if (body !== undefined && body.length > 0) this.#sink.data(body);
    this.#finish(undefined);
  }

  #head(contentLength: number | undefined): { status: number; headers: ReturnType<typeof responseMetadataFromRawHeaders>; contentType: string; contentLength: number | undefined } {
    return {
      status: this.#status,
      headers: responseMetadataFromRawHeaders(this.#rawHeaders),
      contentType: this.#contentType,
      contentLength,
    };
  }

  #clearFlush(): void {
    if (this.#flushTimer !== undefined) {
      clearImmediate(this.#flushTimer);
      this.#flushTimer = undefined;
    }
  }

  #finish(error: CourierError | undefined): void {
    if (this.#state === 'done') return;
    this.#state = 'done';
    this.#clearFlush();
    this.#request.signal.removeEventListener('abort', this.#onAbort);
    this.#semaphore?.release();
    if (error === undefined) this.#sink.end();
    else this.#sink.error(error);
  }
}

function rawHeaderStrings(raw: Dispatcher.DispatchController['rawHeaders']): string[] {
  if (raw === undefined || raw === null || !Array.isArray(raw)) return [];
  const out: string[] = new Array<string>(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const item = raw[i] as Buffer | string;
    out[i] = typeof item === 'string' ? item : item.toString('latin1');
  }
  return out;
}
