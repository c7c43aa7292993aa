import type { Readable } from 'node:stream';
import type { CallSignal } from '../invoke/call-signal.js';
import { CourierError, GrpcStatus } from '../errors/index.js';
import { customMetadata, GrpcChannel, tlsClient, type CallOptions, type CallResult, type ClientCall, type Metadata, type ReceivedMetadata } from '../grpc/index.js';
import { bodyTooLargeError } from '../invoke/body.js';
import { detailsFromTrailer, grpcMetadataFromInvoke, invokeMetadataFromGrpc } from '../invoke/translate.js';
import { cancelledError, type InvokeRequest, type ResponseHead, type ResponseSink } from '../invoke/types.js';
import { verbToEnum } from '../invoke/verbs.js';
import type { Logger } from '../observability/logging/index.js';
import type { SidecarMetrics } from '../observability/metrics/sidecar-metrics.js';
import { AppCallMeter } from './app-call-meter.js';
import { invokeRequestCodec, invokeResponseCodec, type InvokeResponse } from '../proto/index.js';
import { appNotReadyError, type AppChannel, type AppChannelState } from './app-channel.js';
import { AppGate, type HealthProbeOptions } from './app-health.js';
import { ProtocolMismatch, transportErrorText } from './protocol-mismatch.js';
import { H2Channel } from '../h2/client.js';
import type { Semaphore } from './semaphore.js';

export const ON_INVOKE = '/dapr.proto.runtime.v1.AppCallback/OnInvoke';
export const HEALTH_CHECK = '/dapr.proto.runtime.v1.AppCallbackHealthCheck/HealthCheck';

export interface GrpcAppChannelOptions {
  /** `--app-channel-address`. */
  readonly host: string;
  /** `--app-port`. */
  readonly port: number;
  /** `--app-max-concurrency`; 0 or less means unlimited. */
  readonly maxConcurrency: number;
  /** `APP_API_TOKEN`: sent to the app as `dapr-api-token` metadata on every call. */
  readonly appApiToken: string | undefined;
  /** App health checks (`AppCallbackHealthCheck/HealthCheck`), when `--enable-app-health-check` is set. */
  readonly healthProbe: HealthProbeOptions | undefined;
  /** How long a call that arrives before the app is ready waits for it (`--app-ready-timeout`). */
  readonly readyTimeoutMs: number;
  /** The largest message sent to or accepted from the app (`--max-body-size` plus framing). */
  readonly maxMessageBytes: number;
  /**
   * `--app-protocol grpcs`: gRPC over TLS (ALPN h2). The app's certificate is not verified, as Dapr
   * does: apps serve self-signed certificates, and the connection never leaves the app's machine.
   */
  readonly tls?: boolean | undefined;
  readonly logger: Logger;
  /** gRPC client metrics of the calls to the app; undefined when metrics are off. */
  readonly metrics?: SidecarMetrics | undefined;
}

/** TLS towards the app: encrypted, the certificate not verified (see `GrpcAppChannelOptions.tls`). */
const appTls = tlsClient(() => ({ rejectUnauthorized: false }));

/** Never part of the trailers passed on: the status details travel as `ResponseHead.statusDetails`. */
const STATUS_DETAILS = 'grpc-status-details-bin';
const trailerDropped: ReadonlySet<string> = new Set([STATUS_DETAILS]);
const EMPTY = new Uint8Array(0);

/**
 * The channel to a gRPC app (`--app-protocol grpc`, Dapr's gRPC app channel): each invocation is one
 * `AppCallback/OnInvoke` call on an HTTP/2 connection that is reused and re-established after the app
 * restarts. Readiness is the same as for HTTP apps (the port must accept connections; with health checks
 * on, `AppCallbackHealthCheck/HealthCheck` must answer OK). Proxied calls of the app's own services go
 * over the same connection (`call`).
 */
export class GrpcAppChannel implements AppChannel {
  readonly #options: GrpcAppChannelOptions;
  /** Plaintext: Courier's own HTTP/2 client (src/h2/); TLS (`grpcs`): node:http2. */
  readonly #channel: GrpcChannel | H2Channel;
  readonly #gate: AppGate;
  readonly #mismatch: ProtocolMismatch;

  constructor(options: GrpcAppChannelOptions) {
    this.#options = options;
    const channelOptions = {
      connectTimeoutMs: 5000,
      maxReceiveMessageBytes: options.maxMessageBytes,
      maxSendMessageBytes: options.maxMessageBytes,
      logger: options.logger,
    };
    const target = { host: options.host, port: options.port };
    this.#channel = options.tls === true ? new GrpcChannel(target, { ...channelOptions, ...appTls }) : new H2Channel(target, channelOptions);
    this.#mismatch = new ProtocolMismatch({ protocol: options.tls === true ? 'grpcs' : 'grpc', host: options.host, port: options.port, logger: options.logger });
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

  start(): void {
    this.#gate.start();
  }

  onStateChange(listener: (state: AppChannelState) => void): () => void {
    return this.#gate.onStateChange(listener);
  }

  async close(): Promise<void> {
    this.#gate.close();
    await this.#channel.close();
  }

  /**
   * Opens a raw call to one of the app's own services (transparent proxying). The caller's
   * `dapr-api-token` is replaced by `APP_API_TOKEN` (or removed). Throws while the app is not ready.
   */
  call(path: string, metadata: Metadata, options: CallOptions): ClientCall {
    if (this.#gate.state.t !== 'ready') throw appNotReadyError();
    return this.#channel.call(path, this.#withToken(metadata), options);
  }

  /** Runs `ready` once the app can take calls (at once if it can), or `fail` with why not; see AppHealthMonitor. */
  whenReady(signal: CallSignal, ready: () => void, fail: (error: CourierError) => void): void {
    this.#gate.whenReady(signal, ready, fail);
  }

  invoke(request: InvokeRequest, sink: ResponseSink): void {
    this.#gate.admit(request, sink, this.#startOnInvoke);
  }

  readonly #startOnInvoke = (request: InvokeRequest, sink: ResponseSink, semaphore: Semaphore | undefined): void => {
    const metrics = this.#options.metrics;
    new OnInvokeCall(this, request, metrics === undefined ? sink : new AppCallMeter(sink, metrics, request, true), semaphore).start();
  };

  /** @internal Opens the OnInvoke call of one invocation. */
  openOnInvoke(request: InvokeRequest): ClientCall {
    return this.#channel.call(ON_INVOKE, this.#withToken(grpcMetadataFromInvoke(request.metadata)), { signal: request.signal });
  }

  /** @internal The largest request body the app channel sends. */
  get maxBodyBytes(): number {
    return this.#options.maxMessageBytes;
  }

  /** @internal The likely cause of a transport failure when the app seems to speak another protocol. */
  explain(failure: string): string | undefined | Promise<string | undefined> {
    return this.#mismatch.explain(new Error(failure));
  }

  #withToken(metadata: Metadata): Metadata {
    delete metadata['dapr-api-token'];
    if (this.#options.appApiToken !== undefined) metadata['dapr-api-token'] = this.#options.appApiToken;
    return metadata;
  }

  #probe(signal: AbortSignal): Promise<string | undefined> {
    return new Promise((resolve) => {
      const call = this.#channel.call(HEALTH_CHECK, this.#withToken({}), { signal });
      call.setReader({
        headers: () => {},
        message: () => {},
        end: (result) => {
          if (result.code === GrpcStatus.OK) resolve(undefined);
          else if (result.transport === undefined || signal.aborted) resolve(`health check answered ${grpcStatusText(result)}`);
          else void Promise.resolve(this.explain(result.message)).then((cause) => resolve(`health check failed: ${transportErrorText(result.message)}${cause === undefined ? '' : `; ${cause}`}`));
        },
      });
      call.sendMessage(EMPTY);
      call.end();
    });
  }
}

function grpcStatusText(result: CallResult): string {
  return result.message === '' ? `code ${result.code}` : `code ${result.code}: ${result.message}`;
}

/**
 * One invocation of a gRPC app: reads the request body (bounded), sends one `InvokeRequest`, and turns
 * the app's answer (headers, one `InvokeResponse`, status and trailers) into a response for the sink.
 * An error status from the app is the app's answer (`ResponseHead.status` is then the gRPC code).
 */
class OnInvokeCall {
  readonly #channel: GrpcAppChannel;
  readonly #request: InvokeRequest;
  readonly #sink: ResponseSink;
  readonly #semaphore: Semaphore | undefined;
  #call: ClientCall | undefined;
  #headers: ReceivedMetadata | undefined;
  #response: Buffer | undefined;
  #done = false;
  readonly #onAbort = (): void => {
    // Before the call exists the body is still being read; once it exists its own signal cancels it.
    if (this.#call === undefined) this.#finish(cancelledError());
  };

  constructor(channel: GrpcAppChannel, request: InvokeRequest, sink: ResponseSink, semaphore: Semaphore | undefined) {
    this.#channel = channel;
    this.#request = request;
    this.#sink = sink;
    this.#semaphore = semaphore;
  }

  start(): void {
    const request = this.#request;
    if (request.signal.aborted) {
      this.#finish(cancelledError());
      return;
    }
    request.signal.addEventListener('abort', this.#onAbort, { once: true });
    if (request.body === null) {
      this.#send(undefined);
      return;
    }
    if (Buffer.isBuffer(request.body)) {
      this.#send(request.body.length === 0 ? undefined : request.body);
      return;
    }
    readWhole(request.body, this.#channel.maxBodyBytes).then(
      (body) => this.#send(body),
      (err: unknown) => this.#finish(CourierError.from(err, 'ERR_BODY_READ')),
    );
  }

  #send(body: Buffer | undefined): void {
    if (this.#done) return;
    const request = this.#request;
    const message = invokeRequestCodec.encode({
      method: request.method,
      contentType: request.contentType,
      data: { typeUrl: request.dataTypeUrl ?? '', value: body ?? EMPTY },
      ...(request.verb === '' ? {} : { httpExtension: { verb: verbToEnum(request.verb), querystring: request.query } }),
    });
    const call = this.#channel.openOnInvoke(request);
    this.#call = call;
    call.setReader({
      headers: (metadata) => {
        this.#headers = metadata;
      },
      message: (bytes) => {
        this.#response ??= bytes;
      },
      end: (result) => this.#end(result),
    });
    call.sendMessage(message);
    call.end();
  }

  #end(result: CallResult): void {
    if (this.#done) return;
    if (result.transport !== undefined || (!result.headersReceived && this.#request.signal.aborted)) {
      if (this.#request.signal.aborted) {
        this.#finish(cancelledError());
        return;
      }
      const retry = result.transport === 'connect-failed' || result.transport === 'refused' ? { retry: 'safe' as const, grpcCode: GrpcStatus.UNAVAILABLE } : {};
      const message = `error invoking app channel: ${transportErrorText(result.message)}`;
      const cause = this.#channel.explain(result.message);
      if (cause === undefined || typeof cause === 'string') {
        this.#finish(new CourierError('ERR_DIRECT_INVOKE', cause === undefined ? message : `${message}; ${cause}`, retry));
        return;
      }
      void cause.then((found) => this.#finish(new CourierError('ERR_DIRECT_INVOKE', found === undefined ? message : `${message}; ${found}`, retry)));
      return;
    }
    if (this.#request.signal.aborted && result.code === GrpcStatus.CANCELLED) {
      this.#finish(cancelledError());
      return;
    }
    const headers = invokeMetadataFromGrpc(this.#headers ?? {});
    const trailerMd = customMetadata(result.trailers);
    const trailers = invokeMetadataFromGrpc(trailerMd, trailerDropped);
    const hasTrailers = Object.keys(trailers).length > 0;
    if (result.code !== GrpcStatus.OK) {
      const details = detailsFromTrailer(trailerMd[STATUS_DETAILS]);
      const head: ResponseHead = {
        status: result.code,
        headers,
        contentType: '',
        contentLength: 0,
        ...(result.message === '' ? {} : { statusMessage: result.message }),
        ...(details === undefined || details.length === 0 ? {} : { statusDetails: details }),
        ...(hasTrailers ? { trailers } : {}),
      };
      this.#deliver(head, undefined);
      return;
    }
    let response: InvokeResponse;
    try {
      response = this.#response === undefined ? {} : invokeResponseCodec.decode(this.#response);
    } catch (err) {
      this.#finish(new CourierError('ERR_DIRECT_INVOKE', `error invoking app channel: the app's InvokeResponse could not be decoded: ${(err as Error).message}`));
      return;
    }
    const data = response.data?.value;
    const body = data === undefined || data.length === 0 ? undefined : Buffer.from(data.buffer, data.byteOffset, data.length);
    const typeUrl = response.data?.typeUrl ?? '';
    this.#deliver(
      {
        status: GrpcStatus.OK,
        headers,
        contentType: response.contentType ?? '',
        contentLength: body?.length ?? 0,
        ...(typeUrl === '' ? {} : { dataTypeUrl: typeUrl }),
        ...(hasTrailers ? { trailers } : {}),
      },
      body,
    );
  }

  #deliver(head: ResponseHead, body: Buffer | undefined): void {
    this.#release();
    this.#done = true;
    this.#sink.head(head, noFlowControl);
    if (body !== undefined) this.#sink.data(body);
    this.#sink.end();
  }

  #finish(error: CourierError): void {
    if (this.#done) return;
    this.#release();
    this.#done = true;
    this.#call?.cancel();
    this.#sink.error(error);
  }

  #release(): void {
    this.#request.signal.removeEventListener('abort', this.#onAbort);
    this.#semaphore?.release();
  }
}

/** The whole answer is already in memory: there is nothing to pause. */
const noFlowControl = { pause(): void {}, resume(): void {} };

/** Reads a request body whole (a gRPC message carries it in one piece), failing past `limit` bytes. */
async function readWhole(body: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > limit) {
      body.destroy();
      throw bodyTooLargeError(limit);
    }
    chunks.push(buf);
  }
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size);
}
