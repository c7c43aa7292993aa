import type { ClientHttp2Stream, IncomingHttpHeaders, IncomingHttpStatusHeader, OutgoingHttpHeaders } from 'node:http2';
import type { Readable } from 'node:stream';
import { CourierError, errorMessage, GrpcStatus } from '../errors/index.js';
import { h2 } from '../grpc/status.js';
import { appRequestHeaders } from '../invoke/headers.js';
import { methodToPath } from '../invoke/method.js';
import { type InvokeRequest, type ResponseSink } from '../invoke/types.js';
import { unusableVerbProblem } from '../invoke/verbs.js';
import type { Logger } from '../observability/logging/index.js';
import type { SidecarMetrics } from '../observability/metrics/sidecar-metrics.js';
import { AppCallMeter } from './app-call-meter.js';
import type { AppChannel, AppChannelState } from './app-channel.js';
import { AppGate, type HealthProbeOptions } from './app-health.js';
import { AppResponse, appChannelFailure, type CallControl, type DescribeFailure } from './app-response.js';
import { H2cSessionError, H2cSessions, type H2cSession } from './h2c-session.js';
import { ProtocolMismatch, transportErrorText } from './protocol-mismatch.js';
import type { Semaphore } from './semaphore.js';

export interface H2cAppChannelOptions {
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
  /** Dapr's HTTP client metrics; undefined when metrics are off. */
  readonly metrics?: SidecarMetrics | undefined;
}

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } = h2;

/** Node's request() errors that mean "this session takes no more streams", not "this request is bad". */
const SESSION_UNUSABLE: ReadonlySet<string> = new Set(['ERR_HTTP2_GOAWAY_SESSION', 'ERR_HTTP2_INVALID_SESSION', 'ERR_HTTP2_OUT_OF_STREAMS']);

/**
 * Headers HTTP/2 in Node allows once per request. The HTTP/1.1 channel would send every value of a
 * repeated one; here the first is sent (a second Authorization or Content-Type has no meaning anyway).
 */
const singleValueHeaders: ReadonlySet<string> = new Set([
  'access-control-allow-credentials',
  'access-control-max-age',
  'access-control-request-method',
  'age',
  'authorization',
  'content-encoding',
  'content-language',
  'content-length',
  'content-location',
  'content-md5',
  'content-range',
  'content-type',
  'date',
  'dnt',
  'etag',
  'expires',
  'from',
  'host',
  'if-match',
  'if-modified-since',
  'if-none-match',
  'if-range',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'range',
  'referer',
  'retry-after',
  'tk',
  'upgrade-insecure-requests',
  'user-agent',
  'x-content-type-options',
]);

/** How long a session without calls stays open (as the HTTP/1.1 pool's keep-alive connections). */
const IDLE_TIMEOUT_MS = 30_000;
const CONNECT_TIMEOUT_MS = 5_000;

/**
 * The channel to an HTTP app over HTTP/2 without TLS (`--app-protocol h2c`, prior knowledge). One
 * session carries every call, each call a stream; the session is reopened on the next call after it
 * closes (the app restarted) or the app sends GOAWAY. Headers are translated exactly as for the
 * HTTP/1.1 channel (hop-by-hop headers never exist in HTTP/2, and are dropped there already); bodies
 * stream both ways under HTTP/2 flow control: the request body is read only as fast as the app's
 * window allows, and the app's response only as fast as the caller takes it. Readiness, health probes
 * and `--app-max-concurrency` are those of the HTTP/1.1 channel.
 */
export class H2cAppChannel implements AppChannel {
  readonly #options: H2cAppChannelOptions;
  readonly #sessions: H2cSessions;
  readonly #gate: AppGate;
  readonly #mismatch: ProtocolMismatch;
  readonly #describeFailure: DescribeFailure;
  readonly #authority: string;

  constructor(options: H2cAppChannelOptions) {
    this.#options = options;
    this.#authority = options.host.includes(':') ? `[${options.host}]:${options.port}` : `${options.host}:${options.port}`;
    this.#sessions = new H2cSessions({
      host: options.host,
      port: options.port,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      idleTimeoutMs: IDLE_TIMEOUT_MS,
      logger: options.logger,
    });
    this.#mismatch = new ProtocolMismatch({ protocol: 'h2c', host: options.host, port: options.port, logger: options.logger });
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
    return this.#authority;
  }

  /** Number of HTTP/2 sessions open or opening with the app (normally one). */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  start(): void {
    this.#gate.start();
  }

  onStateChange(listener: (state: AppChannelState) => void): () => void {
    return this.#gate.onStateChange(listener);
  }

  async close(): Promise<void> {
    this.#gate.close();
    await this.#sessions.close();
  }

  invoke(request: InvokeRequest, sink: ResponseSink): void {
    const verbProblem = unusableVerbProblem(request.verb);
    if (verbProblem !== undefined) {
      sink.error(new CourierError('ERR_MALFORMED_REQUEST', verbProblem, { grpcCode: GrpcStatus.INVALID_ARGUMENT }));
      return;
    }
    this.#gate.admit(request, sink, this.#dispatch);
  }

  readonly #dispatch = (request: InvokeRequest, sink: ResponseSink, semaphore: Semaphore | undefined): void => {
    const metrics = this.#options.metrics;
    const response = new AppResponse(request, metrics === undefined ? sink : new AppCallMeter(sink, metrics, request), semaphore, this.#describeFailure);
    const headers = this.#headers(request.verb, request.query === '' ? methodToPath(request.method) : `${methodToPath(request.method)}?${request.query}`);
    addHeaders(headers, appRequestHeaders(request.metadata, this.#options.appApiToken));
    if (request.contentType !== '') headers['content-type'] = request.contentType;
    if (request.contentLength !== undefined && request.body !== null) headers['content-length'] = String(request.contentLength);
    new H2cCall(this.#sessions, response, request.body).start(headers);
  };

  #headers(method: string, path: string): OutgoingHttpHeaders {
    const headers = Object.create(null) as OutgoingHttpHeaders;
    headers[':method'] = method;
    headers[':scheme'] = 'http';
    headers[':authority'] = this.#authority;
    headers[':path'] = path;
    return headers;
  }

  /** GET of `--app-health-check-path` on the shared session: any 2xx is healthy. */
  #probe(signal: AbortSignal): Promise<string | undefined> {
    const headers = this.#headers('GET', this.#options.healthProbe?.path ?? '/healthz');
    headers['user-agent'] = 'courier-health-probe';
    if (this.#options.appApiToken !== undefined) headers['dapr-api-token'] = this.#options.appApiToken;
    return new Promise((resolve) => {
      const session = this.#sessions.current();
      if (session === undefined) {
        resolve('the app channel is closed');
        return;
      }
      let stream: ClientHttp2Stream;
      try {
        stream = session.session.request(headers, { endStream: true, signal });
      } catch (err) {
        resolve(`health probe failed: ${errorMessage(err)}`);
        return;
      }
      let status = 0;
      stream.once('response', (h: IncomingHttpHeaders & IncomingHttpStatusHeader) => {
        status = Number(h[':status']);
      });
      stream.resume();
      stream.on('error', () => {});
      stream.once('close', () => {
        if (status >= 200 && status < 300) {
          resolve(undefined);
          return;
        }
        if (status !== 0) {
          resolve(`health probe answered ${status}`);
          return;
        }
        if (signal.aborted) {
          resolve(`health probe failed: the probe was stopped`);
          return;
        }
        // A failing session closes its streams before it reports why: its error says more.
        const settled = session.state === 'connecting' ? session.closed : Promise.resolve();
        void settled
          .then(() => {
            const failure = session.error ?? new H2cSessionError('ERR_H2C_STREAM', `the stream closed with code ${stream.rstCode ?? 0}`);
            return Promise.resolve(this.#mismatch.explain(failure)).then((cause) => `health probe failed: ${transportErrorText(errorMessage(failure))}${cause === undefined ? '' : `; ${cause}`}`);
          })
          .then(resolve);
      });
    });
  }
}

/** Adds a flat `[name, value, …]` header list to a request's headers: repeated names become arrays. */
function addHeaders(headers: OutgoingHttpHeaders, list: readonly string[]): void {
  for (let i = 0; i < list.length; i += 2) {
    const name = list[i] as string;
    const value = list[i + 1] as string;
    const existing = headers[name];
    if (existing === undefined) headers[name] = value;
    else if (singleValueHeaders.has(name)) continue;
    else if (Array.isArray(existing)) existing.push(value);
    else headers[name] = [String(existing), value];
  }
}

/**
 * One call on the app's HTTP/2 session: a stream whose request body is written under flow control
 * and whose response events go to an AppResponse (the same one the HTTP/1.1 channel uses).
 */
class H2cCall implements CallControl {
  readonly #sessions: H2cSessions;
  readonly #response: AppResponse;
  readonly #body: Readable | Buffer | null;
  #session: H2cSession | undefined;
  #stream: ClientHttp2Stream | undefined;
  #streamError: Error | undefined;
  #responded = false;
  #ended = false;

  constructor(sessions: H2cSessions, response: AppResponse, body: Readable | Buffer | null) {
    this.#sessions = sessions;
    this.#response = response;
    this.#body = body;
  }

  start(headers: OutgoingHttpHeaders): void {
    const body = this.#body;
    let stream: ClientHttp2Stream | undefined;
    // A session found unusable only when asked for a stream is replaced once.
    for (let attempt = 0; stream === undefined && attempt < 2; attempt++) {
      const session = this.#sessions.current();
      if (session === undefined) {
        this.#response.fail(new H2cSessionError('ERR_H2C_CLOSED', 'the app channel is closed'), true);
        return;
      }
      try {
        stream = session.session.request(headers, { endStream: body === null });
        this.#session = session;
      } catch (err) {
        if (attempt === 0 && SESSION_UNUSABLE.has((err as NodeJS.ErrnoException).code ?? '')) {
          session.retire();
          continue;
        }
        // Invalid headers: Node validates names and values.
        this.#response.fail(new CourierError('ERR_DIRECT_INVOKE', `error invoking app channel: the request could not be sent: ${errorMessage(err)}`));
        this.#destroyBody();
        return;
      }
    }
    if (stream === undefined || this.#session === undefined) return;
    this.#stream = stream;
    this.#session.callStarted();
    this.#response.attach(this);
    stream.once('response', this.#onResponse);
    stream.on('data', this.#onData);
    stream.once('end', this.#onEnd);
    stream.on('error', this.#onError);
    stream.once('close', this.#onClose);
    if (body === null) return;
    if (Buffer.isBuffer(body)) {
      stream.end(body);
      return;
    }
    body.on('data', this.#onBodyData);
    body.once('end', this.#onBodyEnd);
    body.once('error', this.#onBodyError);
    stream.on('drain', this.#onDrain);
  }

  // --- CallControl -----------------------------------------------------------------------------

  pause(): void {
    this.#stream?.pause();
  }

  resume(): void {
    this.#stream?.resume();
  }

  abort(reason: Error): void {
    this.#stream?.close(NGHTTP2_CANCEL);
    this.#destroyBody();
    this.#response.fail(reason);
  }

  // --- the request body ------------------------------------------------------------------------

  readonly #onBodyData = (chunk: Buffer): void => {
    const stream = this.#stream;
    if (stream === undefined || stream.destroyed) return;
    if (!stream.write(chunk)) (this.#body as Readable).pause();
  };

  readonly #onDrain = (): void => {
    (this.#body as Readable).resume();
  };

  readonly #onBodyEnd = (): void => {
    const stream = this.#stream;
    if (stream !== undefined && !stream.destroyed) stream.end();
  };

  readonly #onBodyError = (err: Error): void => {
    // Too large, or the caller went away: the app must not take a truncated body for a whole one.
    this.#stream?.close(NGHTTP2_CANCEL);
    this.#response.fail(err);
  };

  #destroyBody(): void {
    const body = this.#body;
    if (body === null || Buffer.isBuffer(body)) return;
    body.off('data', this.#onBodyData);
    if (!body.destroyed) body.destroy();
  }

  // --- the response ----------------------------------------------------------------------------

  readonly #onResponse = (headers: IncomingHttpHeaders & IncomingHttpStatusHeader, _flags: number, raw?: string[]): void => {
    this.#responded = true;
    const contentType = headers['content-type'];
    const declared = headers['content-length'];
    this.#response.started(Number(headers[':status']), withoutPseudoHeaders(raw, headers), contentType ?? '', declared);
  };

  readonly #onData = (chunk: Buffer): void => {
    this.#response.received(chunk);
  };

  readonly #onEnd = (): void => {
    if (!this.#responded) return; // the close that follows reports the failure
    this.#ended = true;
    this.#response.ended();
  };

  readonly #onError = (err: Error): void => {
    this.#streamError ??= err;
  };

  readonly #onClose = (): void => {
    const session = this.#session;
    session?.callEnded();
    const body = this.#body;
    if (body !== null && !Buffer.isBuffer(body)) {
      body.off('data', this.#onBodyData);
      body.off('end', this.#onBodyEnd);
      body.off('error', this.#onBodyError);
    }
    if (this.#ended) return;
    this.#destroyBody();
    if (session !== undefined && session.state === 'connecting') {
      // The session is failing (its streams close before it reports why): the session's error is the
      // call's, and says more than the stream's reset code.
      void session.closed.then(() => this.#failed(session));
      return;
    }
    this.#failed(session);
  };

  #failed(session: H2cSession | undefined): void {
    const rstCode = this.#stream?.rstCode ?? 0;
    // Nothing reached the app when the socket never connected, or the app refused the stream unprocessed.
    const notSent = session !== undefined && (!session.socketConnected || (!this.#responded && rstCode === NGHTTP2_REFUSED_STREAM));
    const reason =
      session?.error ??
      (rstCode !== 0
        ? new H2cSessionError('ERR_H2C_STREAM', `the app reset the stream (HTTP/2 error code ${rstCode})`)
        : (this.#streamError ?? new H2cSessionError('ERR_H2C_STREAM', 'the stream closed before the response was complete')));
    this.#response.fail(reason, notSent);
  }
}

/** The response's headers as name/value pairs without `:status` (Node passes the raw list as a third argument). */
function withoutPseudoHeaders(raw: readonly string[] | undefined, headers: IncomingHttpHeaders): string[] {
  const out: string[] = [];
  if (raw !== undefined) {
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i] as string;
      if (name.charCodeAt(0) !== 0x3a) out.push(name, raw[i + 1] as string);
    }
    return out;
  }
  for (const name of Object.keys(headers)) {
    if (name.charCodeAt(0) === 0x3a) continue;
    const value = headers[name];
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else if (value !== undefined) out.push(name, value);
  }
  return out;
}
