import { Readable } from 'node:stream';
import { CourierError, errorMessage, GrpcStatus } from '../../errors/index.js';
import type { AccessControlPolicy } from '../../acl/index.js';
import { GrpcServer, tlsServer, type ServerCall, type ServerReader, type ServerTlsOptions } from '../../grpc/index.js';
import type { ConnectionLimits } from '../../util/connection-limit.js';
import { formatSpiffeId, spiffeIdOfPeer, type SpiffeId } from '../../security/spiffe.js';
import { bodyTooLargeError } from '../../invoke/body.js';
import type { CallSignal } from '../../invoke/call-signal.js';
import { firstValue, setIdentityHeaders, type Metadata } from '../../invoke/headers.js';
import type { AppIdentity } from '../../invoke/identity.js';
import { normalizeMethod } from '../../invoke/method.js';
import { WHOLE_BODY_LIMIT_BYTES, type FlowControl, type Invoke, type InvokeRequest, type ResponseHead, type ResponseSink } from '../../invoke/types.js';
import type { Logger } from '../../observability/logging/index.js';
import { grpcServerObserver, type SidecarMetrics } from '../../observability/metrics/sidecar-metrics.js';
import {
  API_VERSION_V1,
  encodePayloadChunkHead,
  internalInvokeRequestCodec,
  internalInvokeRequestStreamCodec,
  internalInvokeResponseCodec,
  internalInvokeResponseStreamCodec,
  type InternalInvokeRequest,
  type InternalInvokeResponse,
  type Status,
} from '../../proto/index.js';
import { verbFromEnum } from '../../invoke/verbs.js';
import { traceFromGrpcMetadata, traceFromInvokeMetadata, setTraceMetadata } from '../../observability/tracing/propagation.js';
import { addDaprHeaders, describeCallSpan, endGrpcCallSpan } from '../../observability/tracing/call-spans.js';
import { SpanKind, type Span, type Tracer } from '../../observability/tracing/tracer.js';

export const CALL_LOCAL_STREAM = '/dapr.proto.internals.v1.ServiceInvocation/CallLocalStream';
export const CALL_LOCAL = '/dapr.proto.internals.v1.ServiceInvocation/CallLocal';

/** Room for the protobuf framing around a body of `--max-body-size`. */
const MESSAGE_OVERHEAD_BYTES = 64 * 1024;

export interface InternalServerOptions {
  readonly self: AppIdentity;
  /** Where calls for this sidecar's app go. */
  readonly appChannel: Invoke;
  /** `--max-body-size`: request bodies over this are refused with RESOURCE_EXHAUSTED. */
  readonly maxBodyBytes: number;
  readonly logger: Logger;
  /**
   * Mutual TLS (see sentry/mtls.ts). With it, the caller's identity comes from its verified
   * certificate, never from what the request claims, and callers without one are refused.
   */
  readonly tls?: () => ServerTlsOptions;
  /** How this sidecar's app is called: access control matches verbs only for HTTP apps. */
  readonly appProtocol: 'http' | 'grpc';
  /** The access-control policy in force (it may be replaced while running); undefined: none. */
  readonly accessControl: () => AccessControlPolicy | undefined;
  readonly limits: ConnectionLimits;
  /** Also serve the Courier-to-Courier lane on the port (`--internal-lane`). */
  readonly lane?: boolean | undefined;
  /** Service-invocation, gRPC server and access-control metrics; undefined when metrics are off. */
  readonly metrics?: SidecarMetrics | undefined;
  /** The callee's spans; undefined when tracing is off. */
  readonly tracer?: Tracer | undefined;
}

/**
 * The callee side of the sidecar-to-sidecar hop: `dapr.proto.internals.v1.ServiceInvocation`
 * `CallLocalStream` and `CallLocal` on `--dapr-internal-grpc-port`, forwarding each call to the
 * local app. Calls that fail before reaching the app are answered as a Trailers-Only gRPC status, so
 * a caller can tell "not dispatched" (UNAVAILABLE: retry elsewhere) from an app's own answer.
 */
export class InternalServer {
  readonly #options: InternalServerOptions;
  readonly #grpc: GrpcServer;
  readonly #refreshTls: (() => void) | undefined;

  constructor(options: InternalServerOptions) {
    this.#options = options;
    const limit = options.maxBodyBytes + MESSAGE_OVERHEAD_BYTES;
    const secure = options.tls === undefined ? undefined : tlsServer(options.tls);
    this.#refreshTls = secure?.refresh;
    this.#grpc = new GrpcServer({
      maxReceiveMessageBytes: limit,
      maxSendMessageBytes: limit,
      maxConnections: options.limits.maxConnections,
      handshakeTimeoutMs: options.limits.handshakeTimeoutMs,
      lane: options.lane,
      observer: grpcServerObserver(options.metrics, undefined),
      logger: options.logger,
      ...(secure === undefined ? {} : { createServer: secure.createServer }),
    });
    this.#grpc.register(CALL_LOCAL_STREAM, (call) => new StreamedCall(options, call).start());
    this.#grpc.register(CALL_LOCAL, (call) => new UnaryCall(options, call).start());
  }

  async listen(host: string, port: number): Promise<number> {
    const address = await this.#grpc.listen(host, port);
    this.#options.logger.info({ address: host.includes(':') ? `[${host}]:${address.port}` : `${host}:${address.port}` }, 'internal gRPC server listening');
    return address.port;
  }

  /** Handles calls to services other than ServiceInvocation: proxied gRPC calls for the local app. */
  setProxy(handler: (call: ServerCall) => void): void {
    this.#grpc.setFallback(handler);
  }

  /** Applies a rotated certificate or reloaded trust anchors to new connections. */
  updateTls(): void {
    this.#refreshTls?.();
  }

  close(graceMs: number): Promise<void> {
    return this.#grpc.close({ graceMs });
  }
}

function invalid(message: string): CourierError {
  return new CourierError('ERR_MALFORMED_REQUEST', message, { grpcCode: GrpcStatus.INVALID_ARGUMENT });
}

/**
 * Builds the app-facing request from the leading InternalInvokeRequest. The method is normalized
 * again here (defense in depth: the caller may not be a Courier sidecar).
 */
function requestFrom(
  options: InternalServerOptions,
  call: ServerCall,
  req: InternalInvokeRequest,
  signal: CallSignal,
  span: Span | undefined,
): CalleeRequest {
  if ((req.ver ?? 0) !== API_VERSION_V1) {
    throw new CourierError('ERR_MALFORMED_REQUEST', 'Unsupported spec version', { grpcCode: GrpcStatus.UNIMPLEMENTED });
  }
  const message = req.message;
  if (message === null || message === undefined) throw invalid('the request carries no message');
  // Without an http_extension (a gRPC caller may leave it out) the verb is ''; whether that will do is
  // for the app channel to say (an HTTP app needs a verb, a gRPC app does not).
  const ext = message.httpExtension;
  const verb = ext === null || ext === undefined ? '' : verbFromEnum(ext.verb);
  if (verb === undefined) throw invalid('invalid HTTP verb');
  const method = normalizeMethod(message.method ?? '');
  if (method === undefined) throw invalid('invalid method');
  // The decoded map is this call's own (fast-codec builds a fresh null-prototype object): used as is.
  const metadata: Metadata = req.metadata ?? (Object.create(null) as Metadata);
  let caller: AppIdentity;
  let spiffe: SpiffeId | undefined;
  if (options.tls !== undefined) {
    spiffe = spiffeIdOfPeer(call.peer.certificate);
    if (spiffe === undefined) {
      throw new CourierError('ERR_DIRECT_INVOKE', 'the caller presented no SPIFFE identity', { grpcCode: GrpcStatus.UNAUTHENTICATED });
    }
    caller = { appId: spiffe.appId, namespace: spiffe.namespace };
  } else {
    caller = {
      appId: firstValue(metadata, 'dapr-caller-app-id') ?? 'unknown',
      namespace: firstValue(metadata, 'dapr-caller-namespace') ?? options.self.namespace,
    };
  }
  setIdentityHeaders(metadata, caller, options.self.appId);
  if (span !== undefined) {
    // The app sees this sidecar's span as its parent (a gRPC app gets grpc-trace-bin as well).
    setTraceMetadata(metadata, span, options.appProtocol === 'grpc');
    if (span.recording) {
      describeCallSpan(span, options.self.appId, method, caller.appId, verb, 'grpc');
      addDaprHeaders(span, metadata);
    }
  }
  const metrics = options.metrics;
  metrics?.requestReceived(caller.appId);
  const policy = options.accessControl();
  if (policy !== undefined) {
    const decision = policy.evaluate(spiffe, { operation: `/${method}`, verb, isHttp: options.appProtocol === 'http' });
    metrics?.accessControl(decision.allowed, decision.scope, caller.appId, spiffe?.trustDomain ?? '', caller.namespace);
    if (!decision.allowed) {
      // The call ends here; its caller is known, so its answer is counted here too.
      metrics?.responseSent(caller.appId, options.appProtocol === 'http' ? 403 : GrpcStatus.PERMISSION_DENIED);
      options.logger.info({ caller: spiffe === undefined ? 'unverified' : formatSpiffeId(spiffe), operation: `/${method}`, verb, scope: decision.scope }, 'call denied by the access-control policy');
      throw new CourierError('ERR_DIRECT_INVOKE', decision.message, { grpcCode: GrpcStatus.PERMISSION_DENIED, httpStatus: 403 });
    }
  }
  const declared = firstValue(metadata, 'Content-Length');
  const declaredLength = declared !== undefined && /^\d+$/.test(declared) ? Number(declared) : undefined;
  const typeUrl = message.data?.typeUrl;
  return {
    target: options.self,
    caller,
    callerSpiffe: spiffe,
    method,
    verb,
    query: ext?.querystring ?? '',
    contentType: message.contentType ?? '',
    dataTypeUrl: typeUrl === undefined || typeUrl === '' ? undefined : typeUrl,
    metadata,
    body: null,
    contentLength: declaredLength,
    signal,
    clientAddress: call.peer.address,
    trace: span,
  };
}

/**
 * The callee's span of a call, a child of the context the caller sent: in the call's metadata
 * (`grpc-trace-bin`, else `traceparent`), or, over the lane, whose callers are Courier sidecars, in the
 * request's own metadata, which is already decoded (the call's metadata is then never built).
 */
function startSpan(options: InternalServerOptions, call: ServerCall, request: InternalInvokeRequest): Span | undefined {
  const tracer = options.tracer;
  if (tracer === undefined) return undefined;
  return tracer.start(SpanKind.SERVER, call.viaLane === true ? traceFromInvokeMetadata(request.metadata) : traceFromGrpcMetadata(call.metadata));
}

/** The request a callee builds from the leading message; its body is set when the app is called. */
type CalleeRequest = { -readonly [K in keyof InvokeRequest]: InvokeRequest[K] };

/** The leading `InternalInvokeResponse` of an app's answer (with the whole body for unary CallLocal). */
function internalResponse(head: ResponseHead, headers: Metadata, body?: Buffer): InternalInvokeResponse {
  const status: Status = { code: head.status };
  if (head.statusMessage !== undefined) status.message = head.statusMessage;
  if (head.statusDetails !== undefined) status.details = [...head.statusDetails];
  const data = head.dataTypeUrl === undefined && body === undefined ? undefined : { typeUrl: head.dataTypeUrl ?? '', value: body ?? Buffer.alloc(0) };
  return {
    status,
    headers,
    ...(head.trailers === undefined ? {} : { trailers: head.trailers }),
    message: { contentType: head.contentType, ...(data === undefined ? {} : { data }) },
  };
}

/** The body of a streamed call, fed by payload chunks, read as fast as the app channel takes it. */
class PayloadBody extends Readable {
  readonly #call: ServerCall;
  constructor(call: ServerCall) {
    super({ highWaterMark: 64 * 1024 });
    this.#call = call;
  }
  override _read(): void {
    this.#call.resume();
  }
  offer(chunk: Buffer): void {
    if (!this.push(chunk)) this.#call.pause();
  }
}

/**
 * `awaiting-body`: the length is unknown and no payload came yet; `collecting`: a small body of known
 * length is being read whole (see WHOLE_BODY_LIMIT_BYTES) before the app is called.
 */
type StreamState = 'awaiting-request' | 'awaiting-body' | 'collecting' | 'dispatched' | 'failed';

/**
 * Calls whose response head waits for the end of the tick: it is sent with the first body chunk when
 * that follows at once (the common case), alone otherwise. One shared immediate per tick, not a timer
 * per call.
 */
let headsDue: StreamedCall[] = [];

function flushHeads(): void {
  const due = headsDue;
  headsDue = [];
  for (const call of due) call.flushHead();
}

/** The caller's side of a StreamedCall: its messages, its end of stream, its cancellation. */
class StreamedCallReader implements ServerReader {
  readonly #call: StreamedCall;
  constructor(call: StreamedCall) {
    this.#call = call;
  }
  message(bytes: Buffer): void {
    this.#call.received(bytes);
  }
  end(): void {
    this.#call.callerEnded();
  }
  error(): void {
    this.#call.cancelled();
  }
}

/**
 * One CallLocalStream call: reads the chunked request, calls the app, writes the chunked response
 * (it is the response's sink). The request's cancellation signal is the gRPC call's.
 */
class StreamedCall implements ResponseSink {
  readonly #options: InternalServerOptions;
  readonly #call: ServerCall;
  #state: StreamState = 'awaiting-request';
  #request: CalleeRequest | undefined;
  #body: PayloadBody | undefined;
  #expectedSeq = 0;
  #received = 0;
  #collected: Buffer[] | undefined;
  // response side
  #flow: FlowControl | undefined;
  #pendingHead: Buffer | undefined;
  #sentAnything = false;
  #seq = 0;
  #finished = false;
  #onDrain: (() => void) | undefined;
  /** What the caller is answered (the app's status, or the failure's), for the metrics. */
  #status = 0;
  #span: Span | undefined;

  constructor(options: InternalServerOptions, call: ServerCall) {
    this.#options = options;
    this.#call = call;
  }

  start(): void {
    this.#call.setReader(new StreamedCallReader(this));
  }

  /** @internal The caller cancelled the call, or its stream failed, while the request was being read. */
  cancelled(): void {
    this.#body?.destroy(new CourierError('ERR_BODY_READ', 'the caller cancelled the call'));
  }

  /** @internal A message from the caller. */
  received(bytes: Buffer): void {
    if (this.#state === 'failed') return;
    let msg;
    try {
      msg = internalInvokeRequestStreamCodec.decode(bytes);
    } catch (err) {
      this.#fail(invalid(`parsing InternalInvokeRequest error: ${errorMessage(err)}`));
      return;
    }
    if (this.#state === 'awaiting-request') {
      if (msg.request === null || msg.request === undefined) {
        this.#fail(invalid('the leading message of the stream carries no request'));
        return;
      }
      try {
        this.#span = startSpan(this.#options, this.#call, msg.request);
        this.#request = requestFrom(this.#options, this.#call, msg.request, this.#call.signal, this.#span);
      } catch (err) {
        this.#fail(CourierError.from(err));
        return;
      }
      const declared = this.#request.contentLength;
      if (declared === 0) this.#dispatch(false);
      else if (declared !== undefined && declared <= WHOLE_BODY_LIMIT_BYTES) this.#state = 'collecting';
      else if (declared !== undefined || (msg.payload !== null && msg.payload !== undefined)) this.#dispatch(true);
      else this.#state = 'awaiting-body';
    } else if (msg.request !== null && msg.request !== undefined) {
      this.#fail(invalid('request/response metadata found in non-leading chunk'));
      return;
    } else if (this.#state === 'awaiting-body') {
      this.#dispatch(true);
    }
    const payload = msg.payload;
    if (payload === null || payload === undefined) return;
    const seq = payload.seq ?? 0;
    if (seq !== this.#expectedSeq) {
      this.#fail(invalid(`invalid sequence number received: ${seq} (expected: ${this.#expectedSeq})`));
      return;
    }
    this.#expectedSeq++;
    const data = payload.data;
    if (data === undefined || data.length === 0) return;
    this.#received += data.length;
    const declared = this.#declared();
    if (this.#received > this.#options.maxBodyBytes) {
      const error = bodyTooLargeError(this.#options.maxBodyBytes);
      this.#body?.destroy(error);
      this.#fail(error);
      return;
    }
    if (declared !== undefined && this.#received > declared) {
      const error = invalid(`the request body is longer than its declared Content-Length of ${declared} bytes`);
      this.#body?.destroy(error);
      this.#fail(error);
      return;
    }
    const chunk = Buffer.from(data.buffer, data.byteOffset, data.length);
    if (this.#state === 'collecting') {
      if (this.#received === declared && this.#collected === undefined) {
        this.#dispatch(chunk);
        return;
      }
      (this.#collected ??= []).push(chunk);
      if (this.#received === declared) {
        const whole = Buffer.concat(this.#collected, this.#received);
        this.#collected = undefined;
        this.#dispatch(whole);
      }
      return;
    }
    this.#body?.offer(chunk);
    // A body of known length ends with its last byte: the app (and the connection to it) need not
    // wait for the caller's end of stream.
    if (this.#received === declared) this.#body?.push(null);
  }

  /** The Content-Length the caller declared, if any. */
  #declared(): number | undefined {
    return this.#request?.contentLength;
  }

  /** @internal The caller's end of stream. */
  callerEnded(): void {
    if (this.#state === 'awaiting-request') this.#fail(invalid('the stream ended without a request'));
    else if (this.#state === 'awaiting-body') this.#dispatch(false);
    else if (this.#state === 'collecting') this.#fail(this.#shortBody());
    else if (this.#state === 'dispatched' && this.#body !== undefined) {
      // A body of unknown length ends here; one of known length has ended at its last byte, or is short.
      const declared = this.#declared();
      if (declared === undefined) this.#body.push(null);
      else if (this.#received !== declared) this.#body.destroy(this.#shortBody());
    }
  }

  #shortBody(): CourierError {
    return invalid(`the request body ended after ${this.#received} of its declared ${this.#declared() ?? 0} bytes`);
  }

  /** Calls the app: `true` with a streamed body, a Buffer with the whole body, `false` without one. */
  #dispatch(body: boolean | Buffer): void {
    const request = this.#request;
    if (request === undefined) return;
    this.#state = 'dispatched';
    const declared = request.contentLength;
    if (Buffer.isBuffer(body)) {
      request.body = body;
      request.contentLength = body.length;
    } else if (body) {
      this.#body = new PayloadBody(this.#call);
      request.body = this.#body;
    } else {
      request.contentLength = declared === 0 ? 0 : undefined;
    }
    this.#options.appChannel.invoke(request, this);
  }

  #fail(error: CourierError): void {
    this.#state = 'failed';
    this.error(error);
  }

  // ResponseSink: the app's answer, written back as InternalInvokeResponseStream messages.

  head(head: ResponseHead, flow: FlowControl): void {
    this.#flow = flow;
    this.#status = head.status;
    const headers = head.headers;
    if (head.contentLength !== undefined) headers['Content-Length'] = { values: [String(head.contentLength)] };
    this.#pendingHead = Buffer.from(internalInvokeResponseStreamCodec.encode({ response: internalResponse(head, headers) }));
    headsDue.push(this);
    if (headsDue.length === 1) setImmediate(flushHeads);
  }

  /** @internal The end of the tick in which the head came: sent alone if no body chunk took it along. */
  flushHead(): void {
    if (this.#pendingHead !== undefined) this.#send([this.#takeHead()]);
  }

  data(chunk: Buffer): void {
    const parts: Uint8Array[] = [];
    if (this.#pendingHead !== undefined) parts.push(this.#takeHead());
    parts.push(encodePayloadChunkHead(chunk.length, this.#seq++), chunk);
    this.#send(parts);
  }

  end(): void {
    if (this.#pendingHead !== undefined) this.#send([this.#takeHead()]);
    this.#finish({ code: GrpcStatus.OK });
  }

  #takeHead(): Buffer {
    const head = this.#pendingHead as Buffer;
    this.#pendingHead = undefined;
    return head;
  }

  error(error: CourierError): void {
    this.#pendingHead = undefined;
    if (this.#status === 0) this.#status = this.#options.appProtocol === 'http' ? error.httpStatus : error.grpcCode;
    if (!this.#sentAnything) {
      this.#finish({ code: error.grpcCode === GrpcStatus.OK ? GrpcStatus.INTERNAL : error.grpcCode, message: error.message });
      return;
    }
    this.#finish({ code: GrpcStatus.INTERNAL, message: `the app's response failed: ${error.message}` });
  }

  #send(parts: Uint8Array[]): void {
    if (this.#finished) return;
    this.#sentAnything = true;
    const ok = parts.length === 1 ? this.#call.sendMessage(parts[0] as Uint8Array) : this.#call.sendMessageParts(parts);
    if (!ok) {
      this.#flow?.pause();
      this.#call.onDrain((this.#onDrain ??= () => this.#flow?.resume()));
    }
  }

  #finish(status: { code: number; message?: string }): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#call.end(status);
    const caller = this.#request?.caller.appId;
    if (caller !== undefined) this.#options.metrics?.responseSent(caller, this.#status);
    endGrpcCallSpan(this.#span, this.#status, status);
  }
}

/**
 * One unary CallLocal call (what older Dapr sidecars send): the whole body in
 * `InvokeRequest.data`, the whole response in `InvokeResponse.data`.
 */
class UnaryCall implements ResponseSink {
  readonly #options: InternalServerOptions;
  readonly #call: ServerCall;
  #request: Buffer | undefined;
  #head: ResponseHead | undefined;
  readonly #chunks: Buffer[] = [];
  #size = 0;
  #done = false;
  #caller: string | undefined;
  #span: Span | undefined;

  constructor(options: InternalServerOptions, call: ServerCall) {
    this.#options = options;
    this.#call = call;
  }

  /** Records the answer in the metrics and the span. */
  #record(status: number, callStatus: { code: number; message?: string }): void {
    if (this.#caller !== undefined) this.#options.metrics?.responseSent(this.#caller, status);
    endGrpcCallSpan(this.#span, status, callStatus);
  }

  start(): void {
    this.#call.setReader({
      message: (bytes) => {
        if (this.#request === undefined) this.#request = bytes;
        else this.error(invalid('CallLocal takes exactly one request message'));
      },
      end: () => this.#run(),
      error: () => {},
    });
  }

  #run(): void {
    if (this.#done) return;
    if (this.#request === undefined) {
      this.error(invalid('CallLocal received no request message'));
      return;
    }
    let decoded: InternalInvokeRequest;
    try {
      decoded = internalInvokeRequestCodec.decode(this.#request);
      this.#span = startSpan(this.#options, this.#call, decoded);
      const request = requestFrom(this.#options, this.#call, decoded, this.#call.signal, this.#span);
      this.#caller = request.caller.appId;
      const data = decoded.message?.data?.value;
      const bytes = data === undefined || data.length === 0 ? undefined : Buffer.from(data.buffer, data.byteOffset, data.length);
      if (bytes !== undefined && bytes.length > this.#options.maxBodyBytes) throw bodyTooLargeError(this.#options.maxBodyBytes);
      request.body = bytes ?? null;
      request.contentLength = bytes?.length ?? 0;
      this.#options.appChannel.invoke(request, this);
    } catch (err) {
      this.error(err instanceof CourierError ? err : invalid(`parsing InternalInvokeRequest error: ${errorMessage(err)}`));
    }
  }

  head(head: ResponseHead): void {
    this.#head = head;
  }

  data(chunk: Buffer): void {
    this.#size += chunk.length;
    this.#chunks.push(chunk);
  }

  end(): void {
    if (this.#done) return;
    this.#done = true;
    const head = this.#head as ResponseHead;
    const response = internalResponse(head, head.headers, Buffer.concat(this.#chunks, this.#size));
    this.#call.sendMessage(internalInvokeResponseCodec.encode(response));
    this.#call.end({ code: GrpcStatus.OK });
    this.#record(head.status, { code: GrpcStatus.OK });
  }

  error(error: CourierError): void {
    if (this.#done) return;
    this.#done = true;
    const code = error.grpcCode === GrpcStatus.OK ? GrpcStatus.INTERNAL : error.grpcCode;
    this.#call.end({ code, message: error.message });
    this.#record(this.#options.appProtocol === 'http' ? error.httpStatus : error.grpcCode, { code, message: error.message });
  }
}
