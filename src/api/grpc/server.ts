import { listenOnHosts, prepareUnixSocket } from '../../util/listen.js';
import type { ConnectionLimits } from '../../util/connection-limit.js';
import type { ApiLog } from '../../observability/api-log.js';
import { grpcServerObserver, type SidecarMetrics } from '../../observability/metrics/sidecar-metrics.js';
import { timingSafeEqual } from 'node:crypto';
import { CourierError, errorMessage, GrpcStatus } from '../../errors/index.js';
import { GrpcServer, type CallHandler, type Metadata as GrpcMetadata, type ServerCall } from '../../grpc/index.js';
import type { AppIdentity } from '../../invoke/identity.js';
import { normalizeMethod } from '../../invoke/method.js';
import {
  errorInfoDetail,
  grpcMetadataFromInvoke,
  grpcResultForHttpStatus,
  invokeMetadataFromGrpc,
  statusDetailsTrailer,
} from '../../invoke/translate.js';
import type { TargetResolver } from '../../invoke/target.js';
import type { FlowControl, Invoke, InvokeRequest, InvokeTarget, ResponseHead, ResponseSink } from '../../invoke/types.js';
import { verbFromEnum } from '../../invoke/verbs.js';
import { isExternalTarget } from '../../invoke/types.js';
import { setTraceMetadata, traceFromGrpcMetadata } from '../../observability/tracing/propagation.js';
import { addDaprHeaders, describeCallSpan, endGrpcCallSpan } from '../../observability/tracing/call-spans.js';
import { SpanKind, type Span, type Tracer } from '../../observability/tracing/tracer.js';
import type { Logger } from '../../observability/logging/index.js';
import {
  getMetadataResponseCodec,
  invokeResponseCodec,
  invokeServiceRequestCodec,
  setMetadataRequestCodec,
  type Any,
  type GetMetadataResponse,
  type InvokeServiceRequest,
} from '../../proto/index.js';

const SERVICE = 'dapr.proto.runtime.v1.Dapr';
export const INVOKE_SERVICE = `/${SERVICE}/InvokeService`;
export const GET_METADATA = `/${SERVICE}/GetMetadata`;
export const SET_METADATA = `/${SERVICE}/SetMetadata`;
export const SHUTDOWN = `/${SERVICE}/Shutdown`;

/** Metadata a caller sends that never goes further than this sidecar. */
const dropped: ReadonlySet<string> = new Set(['dapr-api-token']);
const EMPTY = new Uint8Array(0);

export interface GrpcApiServerOptions {
  readonly self: AppIdentity;
  readonly invoker: Invoke<InvokeTarget>;
  /** Turns `InvokeServiceRequest.id` into an app or an external HTTP service. */
  readonly targets: TargetResolver;
  /** `--max-body-size`: the largest message received or sent, as Dapr's `MaxRecvMsgSize`/`MaxSendMsgSize`. */
  readonly maxBodyBytes: number;
  /** `DAPR_API_TOKEN`: every call must carry it as `dapr-api-token` metadata. */
  readonly apiToken: string | undefined;
  readonly metadata: {
    describe(): GetMetadataResponse;
    setExtended(key: string, value: string): void;
  };
  readonly requestShutdown: () => void;
  readonly limits: ConnectionLimits;
  /** `--enable-api-logging`: one line per call. */
  readonly apiLog?: ApiLog | undefined;
  /** Dapr's gRPC server metrics; undefined when metrics are off. */
  readonly metrics?: SidecarMetrics | undefined;
  /** Spans of InvokeService calls; undefined when tracing is off. */
  readonly tracer?: Tracer | undefined;
  readonly logger: Logger;
}

/**
 * Dapr's public gRPC API (`dapr.proto.runtime.v1.Dapr`) on `--dapr-grpc-port`, h2c: InvokeService,
 * GetMetadata, SetMetadata and Shutdown. Other Dapr methods answer UNIMPLEMENTED; calls to any other
 * service go to the proxy (see `setProxy`), Dapr's "bring your own proto" mode.
 */
export class GrpcApiServer {
  readonly #options: GrpcApiServerOptions;
  readonly #grpc: GrpcServer;
  readonly #apiToken: Buffer | undefined;
  #proxy: CallHandler | undefined;
  #warnedHttpCallee = false;

  constructor(options: GrpcApiServerOptions) {
    this.#options = options;
    this.#apiToken = options.apiToken === undefined ? undefined : Buffer.from(options.apiToken);
    this.#grpc = new GrpcServer({
      maxReceiveMessageBytes: options.maxBodyBytes,
      maxSendMessageBytes: options.maxBodyBytes,
      maxConnections: options.limits.maxConnections,
      handshakeTimeoutMs: options.limits.handshakeTimeoutMs,
      observer: grpcServerObserver(
        options.metrics,
        options.apiLog === undefined ? undefined : { ended: (call: ServerCall) => options.apiLog?.grpcEnded(call) },
      ),
      logger: options.logger,
    });
    const metrics = options.metrics;
    this.#register(INVOKE_SERVICE, (call) => unary(call, (bytes) => this.#invokeService(call, bytes), metrics));
    this.#register(GET_METADATA, (call) =>
      unary(call, () => {
        call.sendMessage(getMetadataResponseCodec.encode(options.metadata.describe()));
        call.end({ code: GrpcStatus.OK });
      }),
    );
    this.#register(SET_METADATA, (call) =>
      unary(call, (bytes) => {
        const request = setMetadataRequestCodec.decode(bytes);
        options.metadata.setExtended(request.key ?? '', request.value ?? '');
        call.sendMessage(EMPTY);
        call.end({ code: GrpcStatus.OK });
      }),
    );
    this.#register(SHUTDOWN, (call) =>
      unary(call, () => {
        call.sendMessage(EMPTY);
        call.end({ code: GrpcStatus.OK });
        setImmediate(options.requestShutdown);
      }),
    );
    this.#grpc.setFallback((call) => {
      if (!this.#authorized(call)) return;
      if (call.path.startsWith(`/${SERVICE}/`)) {
        const method = call.path.slice(SERVICE.length + 2);
        metrics?.errorAnswered('ERR_API_UNIMPLEMENTED');
        call.end({ code: GrpcStatus.UNIMPLEMENTED, message: `the ${method} API of Dapr is not implemented by Courier, which provides service invocation only` });
        return;
      }
      const proxy = this.#proxy;
      if (proxy === undefined) {
        call.end({ code: GrpcStatus.UNIMPLEMENTED, message: `unknown service ${call.path}` });
        return;
      }
      proxy(call);
    });
  }

  /** Handles calls to services Courier does not implement (transparent proxying). */
  setProxy(handler: CallHandler): void {
    this.#proxy = handler;
  }

  /** Listens on every address on the same port (the first free one when `port` is 0); resolves with the port. */
  async listen(addresses: readonly string[], port: number): Promise<number> {
    return listenOnHosts(addresses, port, async (host, chosen) => (await this.#grpc.listen(host, chosen)).port, (host, err) =>
      this.#options.logger.warn({ address: host, err: err.message }, 'this machine does not have this listen address; the gRPC API is not served on it'),
    );
  }

  /** Listens on a Unix domain socket (`--unix-domain-socket`) instead of TCP. */
  async listenUnix(path: string): Promise<void> {
    await prepareUnixSocket(path);
    await this.#grpc.listenUnix(path);
  }

  close(graceMs: number): Promise<void> {
    return this.#grpc.close({ graceMs });
  }

  #register(path: string, handler: CallHandler): void {
    this.#grpc.register(path, (call) => {
      if (this.#authorized(call)) handler(call);
    });
  }

  /** Dapr's API-token check (`pkg/api/grpc/auth.go`); on failure the call is answered UNAUTHENTICATED. */
  #authorized(call: ServerCall): boolean {
    const expected = this.#apiToken;
    if (expected === undefined) return true;
    const given = call.metadata['dapr-api-token'];
    const token = Array.isArray(given) ? given[0] : given;
    let message: string | undefined;
    if (token === undefined) message = 'missing api token in request metadata';
    else {
      const buf = Buffer.from(token);
      if (buf.length !== expected.length || !timingSafeEqual(buf, expected)) message = 'authentication error: api token mismatch';
    }
    if (message === undefined) return true;
    this.#options.metrics?.errorAnswered('ERR_API_TOKEN');
    const details = [errorInfoDetail('ERR_API_TOKEN', { 'http.code': '401' })];
    call.end({ code: GrpcStatus.UNAUTHENTICATED, message }, { 'grpc-status-details-bin': statusDetailsTrailer(GrpcStatus.UNAUTHENTICATED, message, details) });
    return false;
  }

  #invokeService(call: ServerCall, bytes: Buffer): void {
    const options = this.#options;
    const decoded: InvokeServiceRequest = invokeServiceRequestCodec.decode(bytes);
    const id = decoded.id ?? '';
    const message = decoded.message ?? undefined;
    if (message === undefined || message === null) throw new CourierError('ERR_MALFORMED_REQUEST', 'InvokeServiceRequest.message is required');
    const target = options.targets.resolve(id);
    const method = normalizeMethod(message.method ?? '');
    if (method === undefined) throw new CourierError('ERR_DIRECT_INVOKE', `failed to invoke, id: ${id}, err: invalid method`, { grpcCode: GrpcStatus.INVALID_ARGUMENT });
    const ext = message.httpExtension;
    const verb = ext === null || ext === undefined ? '' : verbFromEnum(ext.verb);
    if (verb === undefined) throw new CourierError('ERR_MALFORMED_REQUEST', 'invalid HTTP verb', { grpcCode: GrpcStatus.INVALID_ARGUMENT });
    const data = message.data?.value;
    const body = data === undefined || data.length === 0 ? undefined : Buffer.from(data.buffer, data.byteOffset, data.length);
    const typeUrl = message.data?.typeUrl ?? '';
    const metadata = invokeMetadataFromGrpc(call.metadata, dropped);
    const span = options.tracer?.start(SpanKind.CLIENT, traceFromGrpcMetadata(call.metadata));
    if (span !== undefined) {
      setTraceMetadata(metadata, span, false);
      if (span.recording) {
        const peer = isExternalTarget(target) ? target.id : target.appId;
        describeCallSpan(span, peer, method, peer, verb, 'grpc');
        addDaprHeaders(span, metadata);
      }
    }
    const request: InvokeRequest<InvokeTarget> = {
      target,
      caller: options.self,
      method,
      verb,
      query: ext?.querystring ?? '',
      contentType: message.contentType ?? '',
      ...(typeUrl === '' ? {} : { dataTypeUrl: typeUrl }),
      metadata,
      body: body ?? null,
      contentLength: body?.length ?? 0,
      signal: call.signal,
      clientAddress: call.peer.address,
      trace: span,
    };
    options.invoker.invoke(request, new InvokeServiceSink(call, id, options.maxBodyBytes, () => this.#warnHttpCallee(), span, options.metrics));
  }

  #warnHttpCallee(): void {
    if (this.#warnedHttpCallee) return;
    this.#warnedHttpCallee = true;
    this.#options.logger.warn('Invocation path of gRPC -> HTTP is deprecated: call HTTP apps over HTTP, or use gRPC proxying for gRPC apps');
  }
}

/**
 * Reads the one request message of a unary call and runs `handle` on it; a throw becomes the call's
 * status (and is counted in `metrics` by its error code).
 */
function unary(call: ServerCall, handle: (bytes: Buffer) => void, metrics?: SidecarMetrics): void {
  let request: Buffer | undefined;
  let count = 0;
  call.setReader({
    message: (bytes) => {
      count++;
      request ??= bytes;
    },
    end: () => {
      if (call.finished) return;
      if (count !== 1 || request === undefined) {
        call.end({ code: GrpcStatus.INTERNAL, message: `a unary call takes exactly one request message, got ${count}` });
        return;
      }
      try {
        handle(request);
      } catch (err) {
        const error = err instanceof CourierError ? err : new CourierError('ERR_MALFORMED_REQUEST', `the request could not be decoded: ${errorMessage(err)}`, { grpcCode: GrpcStatus.INTERNAL });
        metrics?.errorAnswered(error.code);
        call.end({ code: error.grpcCode, message: error.message });
      }
    },
    error: () => {},
  });
}

/**
 * Collects an invocation's answer (Dapr reads it whole for InvokeService) and writes it as one
 * `InvokeResponse`. An HTTP app's status becomes a gRPC status plus `dapr-http-status`; a gRPC
 * app's status, details, headers and trailers pass through.
 */
class InvokeServiceSink implements ResponseSink {
  readonly #call: ServerCall;
  readonly #target: string;
  readonly #limit: number;
  readonly #onHttpCallee: () => void;
  #head: ResponseHead | undefined;
  #flow: FlowControl | undefined;
  readonly #chunks: Buffer[] = [];
  #size = 0;
  #done = false;
  readonly #span: Span | undefined;
  readonly #metrics: SidecarMetrics | undefined;

  constructor(call: ServerCall, target: string, limit: number, onHttpCallee: () => void, span: Span | undefined, metrics: SidecarMetrics | undefined) {
    this.#call = call;
    this.#target = target;
    this.#limit = limit;
    this.#onHttpCallee = onHttpCallee;
    this.#span = span;
    this.#metrics = metrics;
  }

  head(head: ResponseHead, flow: FlowControl): void {
    this.#head = head;
    this.#flow = flow;
  }

  data(chunk: Buffer): void {
    if (this.#done) return;
    this.#size += chunk.length;
    if (this.#size > this.#limit) {
      this.#flow?.pause();
      this.#finish({ code: GrpcStatus.RESOURCE_EXHAUSTED, message: `the response is larger than the message limit of ${this.#limit} bytes (--max-body-size)` });
      return;
    }
    this.#chunks.push(chunk);
  }

  end(): void {
    if (this.#done) return;
    const head = this.#head;
    if (head === undefined) {
      this.#finish({ code: GrpcStatus.INTERNAL, message: 'the app answered without a response head' });
      return;
    }
    const body = this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks, this.#size);
    const headers = grpcMetadataFromInvoke(head.headers);
    const response = invokeResponseCodec.encode({
      contentType: head.contentType,
      data: { typeUrl: head.dataTypeUrl ?? '', value: body },
    });
    if (head.status >= 100) {
      this.#onHttpCallee();
      headers['dapr-http-status'] = String(head.status);
      this.#call.sendHeaders(headers);
      const result = grpcResultForHttpStatus(head.status, body);
      if (result.code === GrpcStatus.OK) {
        this.#call.sendMessage(response);
        this.#finish({ code: GrpcStatus.OK });
      } else {
        this.#finish(result);
      }
      return;
    }
    this.#call.sendHeaders(headers);
    const trailers = grpcMetadataFromInvoke(head.trailers);
    if (head.status === GrpcStatus.OK) {
      this.#call.sendMessage(response);
      this.#finish({ code: GrpcStatus.OK }, trailers);
      return;
    }
    this.#finish({ code: head.status, message: head.statusMessage ?? '', details: head.statusDetails ?? [] }, trailers);
  }

  error(error: CourierError): void {
    if (this.#done) return;
    this.#metrics?.errorAnswered(error.code);
    const message =
      error.code === 'ERR_DIRECT_INVOKE' && !error.message.startsWith('failed to invoke, id: ')
        ? `failed to invoke, id: ${this.#target}, err: ${error.message}`
        : error.message;
    this.#finish({ code: error.grpcCode === GrpcStatus.OK ? GrpcStatus.INTERNAL : error.grpcCode, message });
  }

  #finish(status: { code: number; message?: string; details?: readonly Any[] }, trailers?: GrpcMetadata): void {
    this.#done = true;
    endGrpcCallSpan(this.#span, this.#head?.status ?? 0, status);
    const out: GrpcMetadata = trailers ?? {};
    if (status.details !== undefined && status.details.length > 0) {
      out['grpc-status-details-bin'] = statusDetailsTrailer(status.code, status.message ?? '', status.details);
    }
    this.#call.end({ code: status.code, ...(status.message === undefined ? {} : { message: status.message }) }, out);
  }
}
