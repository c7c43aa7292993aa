import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream, ServerStreamResponseOptions } from 'node:http2';
import { CourierError, GrpcStatus, errorMessage } from '../errors/index.js';
import type { Peer, ServerCall, ServerReader } from './call.js';
import { SLOT } from '../util/call-tables.js';
import type { Logger } from '../observability/logging/index.js';
import { MessageDecoder, messageHead, totalLength } from './framing.js';
import { appendCustomMetadata, metadataFromRawHeaders, type Metadata, type ReceivedMetadata } from './metadata.js';
import { abortReason, encodeGrpcMessage, h2, http2ErrorName, type CallStatus } from './status.js';
import { cancelStream } from './stream-reset.js';
import { CallAbort, type CallSignal } from '../invoke/call-signal.js';

/** What a call needs from the server that accepted it. Not part of the public API. */
export interface ServerCallOwner {
  readonly maxReceiveMessageBytes: number;
  readonly maxSendMessageBytes: number;
  readonly logger: Logger;
  /** The call's stream closed; the owner forgets it. */
  callClosed(call: ServerCall, session: ServerCallSession): void;
}

/** The accepting session, as a call sees it. Not part of the public API. */
export interface ServerCallSession {
  readonly peer: Peer;
  /** One of the session's calls is over. */
  callEnded(): void;
}

/**
 * The outbound side of a call. Calls are the hot path, so the states that carry no data are shared
 * constants; only `ending` carries the trailers waiting for Node's `wantTrailers`.
 * - `idle`: nothing sent yet; ending now produces a Trailers-Only response.
 * - `streaming`: response headers sent; messages may follow.
 * - `ending`: `end` was called after headers; the trailers go out once the queued DATA is flushed.
 * - `done`: trailers sent, or the call was cancelled/reset. Sends are no-ops from here on.
 */
type OutboundState =
  | { readonly kind: 'idle' }
  | { readonly kind: 'streaming' }
  | { readonly kind: 'ending'; readonly status: CallStatus; readonly trailers: OutgoingHttpHeaders }
  | { readonly kind: 'done' };

const IDLE: OutboundState = { kind: 'idle' };
const STREAMING: OutboundState = { kind: 'streaming' };
const DONE: OutboundState = { kind: 'done' };

/** Node's `respond` copies headers and options, so these can be shared by every call. */
const RESPONSE_HEADERS: OutgoingHttpHeaders = { ':status': 200, 'content-type': 'application/grpc' };
/** `sendDate: false`: a Date header is useless to gRPC and costs a header field per response. */
const STREAMING_RESPONSE: ServerStreamResponseOptions & { sendDate: boolean } = { waitForTrailers: true, sendDate: false };
const TRAILERS_ONLY_RESPONSE: ServerStreamResponseOptions & { sendDate: boolean } = { endStream: true, sendDate: false };

const CALL = Symbol('courier.grpc.ServerCall');
type TaggedStream = ServerHttp2Stream & { [CALL]?: Http2ServerCall | undefined };

/** The status headers of a response's end: `grpc-status` and, when there is one, `grpc-message`. */
function statusFields(status: CallStatus, into: OutgoingHttpHeaders): OutgoingHttpHeaders {
  const code = Number.isInteger(status.code) && status.code >= 0 ? status.code : GrpcStatus.UNKNOWN;
  into['grpc-status'] = String(code);
  if (status.message !== undefined && status.message !== '') into['grpc-message'] = encodeGrpcMessage(status.message);
  return into;
}

/**
 * Answers a stream with a Trailers-Only response (PROTOCOL-HTTP2.md "Trailers-Only": `:status 200`,
 * `content-type` and the status in a single HEADERS frame with END_STREAM). Used for calls that fail
 * before anything was sent, including those rejected before a handler runs.
 */
export function respondTrailersOnly(stream: ServerHttp2Stream, status: CallStatus, trailers?: Metadata, protocolFields?: OutgoingHttpHeaders): void {
  if (stream.destroyed || stream.closed || stream.headersSent) return;
  const headers = statusFields(status, { ':status': 200, 'content-type': 'application/grpc', ...protocolFields });
  appendCustomMetadata(headers, trailers);
  try {
    stream.respond(headers, TRAILERS_ONLY_RESPONSE);
  } catch {
    // Invalid custom trailers (Node validates names and values): send the status alone.
    stream.respond(statusFields(status, { ':status': 200, 'content-type': 'application/grpc' }), TRAILERS_ONLY_RESPONSE);
  }
}

/**
 * One inbound gRPC call over HTTP/2 (see {@link ServerCall}).
 *
 * Backpressure: `pause()` stops reading the HTTP/2 stream, so Node stops returning flow-control window
 * to the client, and the client's sends start reporting a full buffer. Messages are delivered as views
 * of the received DATA chunks when they fit in one (do not keep a reference to one and expect it to
 * stay valid after you mutate the chunk; copy if you need to keep it).
 *
 * Every send after the call finished (ended, cancelled, deadline, shutdown) is a no-op and never
 * throws, so a handler racing a cancellation needs no guards; it should watch `signal` to stop work.
 */
export class Http2ServerCall implements ServerCall {
  /** The `:path` of the request, `/package.Service/Method`. */
  readonly path: string;
  /** Its place among the server's running calls. */
  [SLOT] = -1;
  readonly startedAt = performance.now();
  /** Absolute deadline (epoch ms) from the request's `grpc-timeout`, if it had one. */
  readonly deadline: number | undefined;

  readonly #owner: ServerCallOwner;
  readonly #session: ServerCallSession;
  readonly #stream: TaggedStream;
  readonly #headers: IncomingHttpHeaders;
  readonly #rawHeaders: readonly string[] | undefined;
  #metadata: ReceivedMetadata | undefined;

  #state: OutboundState = IDLE;
  #reader: ServerReader | undefined;
  #decoder: MessageDecoder | undefined;
  #paused = false;
  /** No more inbound deliveries: the reader got `end`/`error`, or the handler ended the call. */
  #readerClosed = false;
  /** The client half-closed (Node's readable side ended). */
  #inboundEnded = false;
  #delivering = false;
  /** Why the transport or the client terminated the call, for a reader set afterwards. */
  #failure: CallStatus | undefined;

  #controller: CallAbort | undefined;
  #abortReason: CourierError | undefined;
  #statusCode: number | undefined;
  #deadlineTimer: NodeJS.Timeout | undefined;
  #drainCallbacks: (() => void)[] | undefined;
  #drainListening = false;

  /** Created by `GrpcServer` for each accepted stream; not meant to be constructed by service code. */
  constructor(
    owner: ServerCallOwner,
    session: ServerCallSession,
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    rawHeaders: readonly string[] | undefined,
    deadline: number | undefined,
  ) {
    this.#owner = owner;
    this.#session = session;
    this.#stream = stream;
    this.#headers = headers;
    this.#rawHeaders = rawHeaders;
    this.path = headers[':path'] ?? '';
    this.deadline = deadline;
    const tagged = stream as TaggedStream;
    tagged[CALL] = this;
    stream.on('close', Http2ServerCall.#closeListener);
    stream.on('wantTrailers', Http2ServerCall.#wantTrailersListener);
    if (deadline !== undefined) {
      this.#deadlineTimer = setTimeout(Http2ServerCall.#deadlineExpired, Math.max(0, deadline - Date.now()), this);
      this.#deadlineTimer.unref();
    }
  }

  /**
   * Request headers: pseudo-headers, gRPC's own fields and custom metadata, with repeated fields as
   * arrays. Use `customMetadata(call.metadata)` for the application's part only. `-bin` values are
   * base64 text. Built on first access.
   */
  get metadata(): ReceivedMetadata {
    this.#metadata ??= this.#rawHeaders === undefined ? this.#headers : metadataFromRawHeaders(this.#rawHeaders);
    return this.#metadata;
  }

  /** Remote address of the connection the call arrived on. */
  get peer(): Peer {
    return this.#session.peer;
  }

  /**
   * Aborts when the client cancels or resets the stream, the connection is lost, the deadline passes,
   * the transport fails the call (size limit, protocol error), or the server shuts down. It does not
   * abort when the call completes normally. The reason is a CourierError whose `grpcCode` says why.
   * Created on first access (a CallAbort: no EventTarget, no event objects).
   */
  get signal(): CallSignal {
    if (this.#controller === undefined) {
      this.#controller = new CallAbort();
      if (this.#abortReason !== undefined) this.#controller.abort(this.#abortReason);
    }
    return this.#controller;
  }

  /**
   * The call's final gRPC status code: set once the handler ends the call, the transport fails it, or
   * the client cancels it; undefined while it runs.
   */
  get statusCode(): number | undefined {
    return this.#statusCode ?? this.#failure?.code;
  }

  /** True once the call is over (ended by the handler, cancelled, or failed). */
  get finished(): boolean {
    return this.#state.kind === 'done' || this.#state.kind === 'ending';
  }

  /**
   * Starts delivering inbound messages to `reader`. Call it once. Until it is called nothing is read,
   * so an unread request is held back by HTTP/2 flow control. If the call was already terminated,
   * `reader.error` is called on the next tick.
   */
  setReader(reader: ServerReader): void {
    if (this.#reader !== undefined) throw new CourierError('ERR_INTERNAL', `setReader called twice on ${this.path}`);
    this.#reader = reader;
    if (this.#failure !== undefined) {
      this.#readerClosed = true;
      process.nextTick(Http2ServerCall.#deliverFailure, this);
      return;
    }
    if (this.#readerClosed) return;
    const stream = this.#stream;
    stream.on('data', Http2ServerCall.#dataListener);
    stream.on('end', Http2ServerCall.#endListener);
    if (this.#paused) stream.pause();
  }

  /** Stops inbound delivery and reading from the stream until `resume`. */
  pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    if (!this.#readerClosed) this.#stream.pause();
  }

  /** Resumes inbound delivery: first the messages already received, then reading from the stream. */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (this.#readerClosed || this.#reader === undefined) return;
    this.#stream.resume();
    this.#deliver();
  }

  /**
   * Sends the response headers (`:status 200`, `content-type: application/grpc` and `metadata`).
   * Optional: the first message sends them implicitly. No-op once headers were sent or the call is over.
   */
  sendHeaders(metadata?: Metadata): void {
    if (this.#state.kind === 'idle') this.#respond(metadata);
  }

  /**
   * Sends one message. Returns false when the stream's write buffer is full: wait for `onDrain` before
   * sending more (the message was still queued). The bytes are not copied: do not modify them after
   * handing them over. A message larger than `maxSendMessageBytes` fails the call with
   * RESOURCE_EXHAUSTED. No-op (returning true) once the call is over.
   */
  sendMessage(bytes: Uint8Array): boolean {
    const length = bytes.byteLength;
    if (!this.#prepareSend(length)) return true;
    const stream = this.#stream;
    stream.cork();
    stream.write(messageHead(length));
    const ok = stream.write(bytes);
    stream.uncork();
    return ok;
  }

  /**
   * Sends one message given as several consecutive pieces (e.g. a small encoded header and a large
   * body chunk). The length prefix is computed from their sum and the pieces are written as they are,
   * never concatenated. Same return value and limits as `sendMessage`.
   */
  sendMessageParts(parts: readonly Uint8Array[]): boolean {
    const length = totalLength(parts);
    if (!this.#prepareSend(length)) return true;
    const stream = this.#stream;
    stream.cork();
    stream.write(messageHead(length));
    let ok = true;
    for (const part of parts) ok = stream.write(part);
    stream.uncork();
    return ok;
  }

  /**
   * Calls `callback` once the write buffer has room again (on the next tick if it already has). Never
   * called once the call is over; watch `signal` for that.
   */
  onDrain(callback: () => void): void {
    if (this.finished) return;
    if (!this.#stream.writableNeedDrain) {
      process.nextTick(callback);
      return;
    }
    (this.#drainCallbacks ??= []).push(callback);
    if (!this.#drainListening) {
      this.#drainListening = true;
      this.#stream.on('drain', Http2ServerCall.#drainListener);
    }
  }

  /**
   * Ends the call with `status` and optional custom `trailers`. When nothing was sent yet this is a
   * Trailers-Only response. Inbound delivery stops. No-op once the call is over.
   */
  end(status: CallStatus, trailers?: Metadata): void {
    const state = this.#state;
    if (state.kind === 'done' || state.kind === 'ending') return;
    this.#statusCode = status.code;
    this.#readerClosed = true;
    this.#clearDeadline();
    if (state.kind === 'idle') {
      this.#state = DONE;
      if (this.#stream.destroyed || this.#stream.closed) return;
      respondTrailersOnly(this.#stream, status, trailers);
      return;
    }
    const fields = appendCustomMetadata(statusFields(status, {}), trailers);
    this.#state = { kind: 'ending', status, trailers: fields };
    // With waitForTrailers, Node emits 'wantTrailers' once the last DATA frame is out.
    this.#stream.end();
  }

  /**
   * Server shutdown after the grace period: aborts `signal`, fails the reader, and resets the stream
   * with CANCEL so the client knows the outcome is unknown (it must not read this as "not processed").
   */
  cancel(status: CallStatus): void {
    if (this.#state.kind === 'done') return;
    this.#state = DONE;
    this.#statusCode ??= status.code;
    this.#clearDeadline();
    this.#terminated(status);
    cancelStream(this.#stream);
  }

  // --- internals -------------------------------------------------------------------------------

  #prepareSend(length: number): boolean {
    const state = this.#state;
    if (state.kind === 'done' || state.kind === 'ending') return false;
    if (length > this.#owner.maxSendMessageBytes) {
      this.#fail({
        code: GrpcStatus.RESOURCE_EXHAUSTED,
        message: `trying to send message larger than max (${length} vs. ${this.#owner.maxSendMessageBytes})`,
      });
      return false;
    }
    return state.kind === 'streaming' || this.#respond(undefined);
  }

  #respond(metadata: Metadata | undefined): boolean {
    const stream = this.#stream;
    if (stream.destroyed || stream.closed) return false;
    try {
      const headers =
        metadata === undefined ? RESPONSE_HEADERS : appendCustomMetadata({ ':status': 200, 'content-type': 'application/grpc' }, metadata);
      stream.respond(headers, STREAMING_RESPONSE);
    } catch (err) {
      // Invalid metadata (Node validates header names and values): the call cannot go on.
      this.#owner.logger.warn({ path: this.path, err: errorMessage(err) }, 'gRPC response headers rejected');
      this.#fail({ code: GrpcStatus.INTERNAL, message: `invalid response metadata: ${errorMessage(err)}` });
      return false;
    }
    this.#state = STREAMING;
    return true;
  }

  /** The transport fails the call: abort, tell the reader, and end the response with `status`. */
  #fail(status: CallStatus): void {
    if (this.finished) return;
    this.#terminated(status);
    this.end(status);
  }

  /** Aborts `signal` and fails the reader (now or, if none is set yet, when it is set). */
  #terminated(status: CallStatus): void {
    if (this.#abortReason === undefined) {
      this.#abortReason = abortReason(status);
      this.#controller?.abort(this.#abortReason);
    }
    if (this.#failure === undefined) this.#failure = status;
    if (this.#reader !== undefined && !this.#readerClosed) {
      this.#readerClosed = true;
      this.#reader.error(status);
    }
    this.#readerClosed = true;
  }

  #handleData(chunk: Buffer): void {
    if (this.#readerClosed) return;
    (this.#decoder ??= new MessageDecoder(this.#owner.maxReceiveMessageBytes)).push(chunk);
    this.#deliver();
  }

  #handleEnd(): void {
    // Node also ends the readable side of a stream the client reset (it emits 'aborted' first): that
    // is a cancellation, reported by the 'close' handler, not a half-close.
    if (this.#stream.aborted) return;
    this.#inboundEnded = true;
    if (!this.#readerClosed) this.#deliver();
  }

  #deliver(): void {
    if (this.#delivering) return;
    const reader = this.#reader;
    const decoder = this.#decoder;
    if (reader === undefined) return;
    this.#delivering = true;
    try {
      if (decoder !== undefined) {
        while (!this.#paused && !this.#readerClosed) {
          const message = decoder.read();
          if (message === undefined) break;
          reader.message(message);
        }
      }
    } catch (err) {
      this.#delivering = false;
      this.#owner.logger.error({ path: this.path, err: errorMessage(err) }, 'gRPC call reader threw');
      this.#fail({ code: GrpcStatus.INTERNAL, message: 'the server failed to process a message' });
      return;
    }
    this.#delivering = false;
    if (this.#readerClosed || this.#paused) return;
    if (decoder?.failure !== undefined) {
      this.#fail(decoder.failure);
      return;
    }
    if (!this.#inboundEnded) return;
    if (decoder !== undefined && !decoder.atBoundary) {
      this.#fail({ code: GrpcStatus.INTERNAL, message: 'the client ended the stream inside a message' });
      return;
    }
    this.#readerClosed = true;
    reader.end();
  }

  #handleWantTrailers(): void {
    const state = this.#state;
    if (state.kind !== 'ending') return;
    this.#state = DONE;
    const stream = this.#stream;
    try {
      stream.sendTrailers(state.trailers);
    } catch (err) {
      if (stream.destroyed || stream.closed) return;
      // Invalid custom trailers (Node validates names and values): send the status alone.
      this.#owner.logger.warn({ path: this.path, err: errorMessage(err) }, 'gRPC trailers rejected');
      try {
        stream.sendTrailers(statusFields(state.status, {}));
      } catch {
        cancelStream(stream);
      }
    }
  }

  #handleDrain(): void {
    const callbacks = this.#drainCallbacks;
    if (callbacks === undefined || callbacks.length === 0) return;
    this.#drainCallbacks = undefined;
    for (const callback of callbacks) callback();
  }

  #handleClose(): void {
    this.#clearDeadline();
    this.#drainCallbacks = undefined;
    if (this.#state.kind !== 'done') {
      // The stream closed before the response was complete: the client cancelled (RST_STREAM CANCEL),
      // reset the stream otherwise, or the connection went away.
      this.#state = DONE;
      const rst = this.#stream.rstCode ?? h2.NGHTTP2_CANCEL;
      this.#terminated({
        code: GrpcStatus.CANCELLED,
        message: rst === h2.NGHTTP2_CANCEL ? 'the client cancelled the call' : `the stream was reset (${http2ErrorName(rst)})`,
      });
    }
    this.#owner.callClosed(this, this.#session);
  }

  #expire(): void {
    this.#deadlineTimer = undefined;
    this.#fail({ code: GrpcStatus.DEADLINE_EXCEEDED, message: 'deadline exceeded' });
  }

  #clearDeadline(): void {
    if (this.#deadlineTimer !== undefined) {
      clearTimeout(this.#deadlineTimer);
      this.#deadlineTimer = undefined;
    }
  }

  // Listeners are shared by all calls (no per-call closures); `this` is the stream, tagged with its call
  // until the stream closes (see #closeListener).
  static readonly #dataListener = function (this: TaggedStream, chunk: Buffer): void {
    const call = this[CALL];
    if (call !== undefined) call.#handleData(chunk);
  };
  static readonly #endListener = function (this: TaggedStream): void {
    const call = this[CALL];
    if (call !== undefined) call.#handleEnd();
  };
  static readonly #closeListener = function (this: TaggedStream): void {
    const call = this[CALL];
    if (call === undefined) return;
    // A closed stream no longer leads to its call. Node's HTTP/2 session keeps its streams in a Map,
    // whose replaced tables can keep streams reachable, and promoted to the old generation, long
    // after they closed (docs/performance.md, "Garbage that stays reachable"); cut here, what such a
    // stream still holds is Node's own, not the call with its metadata, messages and relay. (Courier's
    // own sessions get an IdTable instead, session-streams.ts, where the runtime allows it.)
    this[CALL] = undefined;
    call.#handleClose();
  };
  static readonly #wantTrailersListener = function (this: TaggedStream): void {
    const call = this[CALL];
    if (call !== undefined) call.#handleWantTrailers();
  };
  static readonly #drainListener = function (this: TaggedStream): void {
    const call = this[CALL];
    if (call !== undefined) call.#handleDrain();
  };
  static #deadlineExpired(this: void, call: Http2ServerCall): void {
    call.#expire();
  }
  static #deliverFailure(this: void, call: Http2ServerCall): void {
    const failure = call.#failure;
    if (failure !== undefined) call.#reader?.error(failure);
  }
}
