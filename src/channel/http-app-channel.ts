import { Http1Pool, type Http1CallControl, type Http1Handler } from '../http1/client.js';
import { newPool, type Pool } from '../util/undici-pool.js';
import { CourierError, errorMessage, GrpcStatus } from '../errors/index.js';
import { appRequestHeaders } from '../invoke/headers.js';
import { methodToPath } from '../invoke/method.js';
import { unusableVerbProblem } from '../invoke/verbs.js';
import { type InvokeRequest, type ResponseSink } from '../invoke/types.js';
import type { Logger } from '../observability/logging/index.js';
import type { SidecarMetrics } from '../observability/metrics/sidecar-metrics.js';
import { AppCallMeter } from './app-call-meter.js';
import type { AppChannel, AppChannelState } from './app-channel.js';
import { AppGate, type HealthProbeOptions } from './app-health.js';
import { AppResponse, appChannelFailure, type DescribeFailure } from './app-response.js';
import { ProtocolMismatch, transportErrorText } from './protocol-mismatch.js';
import type { Semaphore } from './semaphore.js';

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
  /**
   * `--app-protocol https`: HTTP/1.1 over TLS. The app's certificate is not verified, as Dapr does:
   * apps serve self-signed certificates, and the connection never leaves the app's machine.
   */
  readonly tls?: boolean | undefined;
  readonly logger: Logger;
  /** Dapr's HTTP client metrics; undefined when metrics are off. */
  readonly metrics?: SidecarMetrics | undefined;
}

/**
 * Both pools: the connection must open within CONNECT_TIMEOUT_MS, and an idle one is kept at most
 * KEEP_ALIVE_MS. Long-running calls (streams, long polls) are bounded by the caller, never by an idle
 * timer here.
 */
const CONNECT_TIMEOUT_MS = 5_000;
const KEEP_ALIVE_MS = 30_000;

/**
 * The HTTP channel to the local app (`--app-protocol http`, or `https` over TLS): one keep-alive
 * connection pool, reused by every call: Courier's own HTTP/1.1 client (`src/http1/`) in plain text,
 * undici over TLS. Requests and responses stream through without being buffered (apart from the
 * small-response coalescing of `AppResponse`). `--app-max-concurrency` holds a slot until the response
 * body has been fully passed on.
 */
export class HttpAppChannel implements AppChannel {
  readonly #options: HttpAppChannelOptions;
  /** `https`: made by the first call or health probe (loading undici then, see undici-pool.ts). */
  #pool: Pool | undefined;
  /** `http`: made by the first call or health probe. */
  #http1: Http1Pool | undefined;
  readonly #gate: AppGate;
  readonly #mismatch: ProtocolMismatch;
  readonly #describeFailure: DescribeFailure;
  readonly #origin: string;
  readonly #url: string;

  constructor(options: HttpAppChannelOptions) {
    this.#options = options;
    const host = options.host.includes(':') ? `[${options.host}]` : options.host;
    this.#origin = `${host}:${options.port}`;
    const tls = options.tls === true;
    this.#url = `${tls ? 'https' : 'http'}://${this.#origin}`;
    this.#mismatch = new ProtocolMismatch({ protocol: tls ? 'https' : 'http', host: options.host, port: options.port, logger: options.logger });
    this.#describeFailure = appChannelFailure(this.#mismatch);
    this.#gate = new AppGate({
      host: options.host,
      port: options.port,
      probe: options.healthProbe,
      check: (signal) => this.#probe(signal),
      readyTimeoutMs: options.readyTimeoutMs,
      maxConcurrency: options.maxConcurrency,
      logger: options.logger,
    });
  }

  get state(): AppChannelState {
    return this.#gate.state;
  }

  /** `host:port` of the app. */
  get address(): string {
    return this.#origin;
  }

  start(): void {
    this.#gate.start();
  }

  onStateChange(listener: (state: AppChannelState) => void): () => void {
    return this.#gate.onStateChange(listener);
  }

  async close(): Promise<void> {
    this.#gate.close();
    await this.#pool?.destroy();
    await this.#http1?.close();
  }

  #plain(): Http1Pool | undefined {
    if (this.#options.tls === true) return undefined;
    return (this.#http1 ??= new Http1Pool({ host: this.#options.host, port: this.#options.port, connectTimeoutMs: CONNECT_TIMEOUT_MS, keepAliveMs: KEEP_ALIVE_MS }));
  }

  #connections(): Pool {
    return (this.#pool ??= newPool(this.#url, {
      headersTimeout: 0,
      bodyTimeout: 0,
      connectTimeout: CONNECT_TIMEOUT_MS,
      keepAliveTimeout: KEEP_ALIVE_MS,
      pipelining: 1,
      // TLS sessions are resumed by undici; the certificate is not verified (see `tls`).
      ...(this.#options.tls === true ? { connect: { rejectUnauthorized: false } } : {}),
    }));
  }

  /** GET of `--app-health-check-path`: any 2xx is healthy. */
  async #probe(signal: AbortSignal): Promise<string | undefined> {
    const headers: string[] = ['user-agent', 'courier-health-probe'];
    if (this.#options.appApiToken !== undefined) headers.push('dapr-api-token', this.#options.appApiToken);
    const path = this.#options.healthProbe?.path ?? '/healthz';
    let statusCode: number;
    try {
      const plain = this.#plain();
      if (plain === undefined) {
        const res = await this.#connections().request({ path, method: 'GET', headers, signal });
        await res.body.dump();
        statusCode = res.statusCode;
      } else {
        statusCode = await new Promise<number>((resolve, reject) => plain.request({ method: 'GET', path, headers, body: null, contentLength: undefined }, new ProbeResponse(signal, resolve, reject)));
      }
    } catch (err) {
      if (signal.aborted) throw err;
      const cause = await this.#mismatch.explain(err);
      return `health probe failed: ${transportErrorText(errorMessage(err))}${cause === undefined ? '' : `; ${cause}`}`;
    }
    return statusCode >= 200 && statusCode < 300 ? undefined : `health probe answered ${statusCode}`;
  }

  invoke(request: InvokeRequest, sink: ResponseSink): void {
    const verbProblem = unusableVerbProblem(request.verb);
    if (verbProblem !== undefined) {
      // A gRPC caller that named no usable verb: an HTTP app cannot be called without one.
      sink.error(new CourierError('ERR_MALFORMED_REQUEST', verbProblem, { grpcCode: GrpcStatus.INVALID_ARGUMENT }));
      return;
    }
    this.#gate.admit(request, sink, this.#dispatch);
  }

  readonly #dispatch = (request: InvokeRequest, sink: ResponseSink, semaphore: Semaphore | undefined): void => {
    const headers = appRequestHeaders(request.metadata, this.#options.appApiToken);
    if (request.contentType !== '') headers.push('content-type', request.contentType);
    const path = request.query === '' ? methodToPath(request.method) : `${methodToPath(request.method)}?${request.query}`;
    const metrics = this.#options.metrics;
    const handler = new AppResponse(request, metrics === undefined ? sink : new AppCallMeter(sink, metrics, request), semaphore, this.#describeFailure);
    const plain = this.#plain();
    if (plain !== undefined) {
      plain.request({ method: request.verb, path, headers, body: request.body, contentLength: request.contentLength }, handler);
      return;
    }
    if (request.contentLength !== undefined && request.body !== null) headers.push('content-length', String(request.contentLength));
    try {
      this.#connections().dispatch({ origin: this.#url, method: request.verb, path, headers, body: request.body }, handler);
    } catch (err) {
      handler.fail(err);
    }
  };
}

/** The response to a health probe: its status, the body read and dropped. */
class ProbeResponse implements Http1Handler {
  #control: Http1CallControl | undefined;
  #status = 0;
  readonly #signal: AbortSignal;
  readonly #resolve: (status: number) => void;
  readonly #reject: (err: unknown) => void;

  constructor(signal: AbortSignal, resolve: (status: number) => void, reject: (err: unknown) => void) {
    this.#signal = signal;
    this.#resolve = resolve;
    this.#reject = reject;
    signal.addEventListener('abort', this);
  }

  handleEvent(): void {
    this.#control?.abort(new Error('the health probe was cancelled'));
  }

  attach(control: Http1CallControl): void {
    this.#control = control;
    if (this.#signal.aborted) control.abort(new Error('the health probe was cancelled'));
  }

  started(status: number): void {
    this.#status = status;
  }

  received(): void {}

  ended(): void {
    this.#signal.removeEventListener('abort', this);
    this.#resolve(this.#status);
  }

  fail(error: unknown): void {
    this.#signal.removeEventListener('abort', this);
    this.#reject(this.#signal.aborted ? (this.#signal.reason ?? error) : error);
  }
}
