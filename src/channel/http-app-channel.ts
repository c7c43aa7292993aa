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
 * The HTTP channel to the local app (`--app-protocol http`, or `https` over TLS): one keep-alive
 * connection pool, reused by every call. Requests and responses stream through without being
 * buffered (apart from the small-response coalescing of `AppResponse`). `--app-max-concurrency`
 * holds a slot until the response body has been fully passed on.
 */
export class HttpAppChannel implements AppChannel {
  readonly #options: HttpAppChannelOptions;
  /** Made by the first call or health probe (loading undici then, see undici-pool.ts). */
  #pool: Pool | undefined;
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
  }

  #connections(): Pool {
    return (this.#pool ??= newPool(this.#url, {
      // Long-running calls (streams, long polls) are bounded by the caller, never by an idle timer here.
      headersTimeout: 0,
      bodyTimeout: 0,
      connectTimeout: 5_000,
      keepAliveTimeout: 30_000,
      pipelining: 1,
      // TLS sessions are resumed by undici; the certificate is not verified (see `tls`).
      ...(this.#options.tls === true ? { connect: { rejectUnauthorized: false } } : {}),
    }));
  }

  /** GET of `--app-health-check-path`: any 2xx is healthy. */
  async #probe(signal: AbortSignal): Promise<string | undefined> {
    const headers: string[] = ['user-agent', 'courier-health-probe'];
    if (this.#options.appApiToken !== undefined) headers.push('dapr-api-token', this.#options.appApiToken);
    let statusCode: number;
    try {
      const res = await this.#connections().request({ path: this.#options.healthProbe?.path ?? '/healthz', method: 'GET', headers, signal });
      await res.body.dump();
      statusCode = res.statusCode;
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
    if (request.contentLength !== undefined && request.body !== null) headers.push('content-length', String(request.contentLength));
    const path = request.query === '' ? methodToPath(request.method) : `${methodToPath(request.method)}?${request.query}`;
    const metrics = this.#options.metrics;
    const handler = new AppResponse(request, metrics === undefined ? sink : new AppCallMeter(sink, metrics, request), semaphore, this.#describeFailure);
    try {
      this.#connections().dispatch({ origin: this.#url, method: request.verb, path, headers, body: request.body }, handler);
    } catch (err) {
      handler.fail(err);
    }
  };
}
