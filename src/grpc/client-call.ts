import type { ClientHttp2Stream, IncomingHttpHeaders, IncomingHttpStatusHeader, OutgoingHttpHeaders } from 'node:http2';
import type { CallSignal } from '../invoke/call-signal.js';
import type { CallOptions, CallResult, ClientCall, ClientReader, TransportFailure } from './call.js';
import { CourierError, GrpcStatus, errorMessage } from '../errors/index.js';
import type { Logger } from '../observability/logging/index.js';
import { version } from '../version.js';
import { MessageDecoder, messageHead, totalLength } from './framing.js';
import { appendCustomMetadata, isGrpcContentType, metadataFromRawHeaders, metadataToSend, type Metadata, type ReceivedMetadata } from './metadata.js';
import { decodeGrpcMessage, grpcCodeForHttpStatus, grpcCodeForRstCode, h2, http2ErrorName, parseGrpcStatus } from './status.js';
import { cancelStream } from './stream-reset.js';
import { encodeGrpcTimeout } from './timeout.js';

/** What a call needs from its channel. Not part of the public API. */
export interface ClientCallOwner {
  readonly label: string;
  readonly maxSendMessageBytes: number;
  readonly maxReceiveMessageBytes: number;
  readonly logger: Logger;
}

/** What a call needs from the connection carrying it. Not part of the public API. */
export interface CallConnection {
  /** Last-stream-id of a GOAWAY received on the connection, if any. */
  readonly goawayLastStreamId: number | undefined;
  /** Response HEADERS and DATA received on the connection, counted by its calls (for silence detection's ping policy). */
  peerData: number;
  /**
   * Why the connection was lost, once it was (destroyed by an error, a ping timeout, a close);
   * `streamError` is what the stream saw, used when the connection knows no better reason yet.
   */
  lossReason(streamError: Error | undefined): string | undefined;
  /** The call's stream closed. */
  streamClosed(call: Http2ClientCall): void;
  /** A queued call finished before it got a stream. */
  dequeue(call: Http2ClientCall): void;
}

/**
 * Call phases. A plain union of literals rather than objects: calls are the hot path, and the data
 * of each phase lives in fields that are set once.
 * - `waiting`: dispatched, no stream yet (queued on a connection that is still connecting).
 * - `open`: the stream exists.
 * - `closing`: the stream closed with a status, but the paused reader has messages still to take.
 * - `done`: the result is decided; `end` was delivered or is about to be.
 */
type Phase = 'waiting' | 'open' | 'closing' | 'done';

// Symbols for the channel/connection side of a call, so those methods stay off its public surface.
export const kPrepare: unique symbol = Symbol('prepare');
export const kHeaders: unique symbol = Symbol('headers');
export const kAttach: unique symbol = Symbol('attach');
export const kFail: unique symbol = Symbol('fail');
export const kQueued: unique symbol = Symbol('queued');

const STREAM_CALL = Symbol('courier.grpc.ClientCall');
type TaggedStream = ClientHttp2Stream & { [STREAM_CALL]?: Http2ClientCall | undefined };

const EMPTY_METADATA: ReceivedMetadata = Object.freeze(Object.create(null) as ReceivedMetadata);
const USER_AGENT = `grpc-node-courier/${version}`;
/** How much a call buffers while it has no stream yet before `sendMessage` reports a full buffer. */
const PENDING_HIGH_WATER_MARK = 64 * 1024;

/**
 * One outbound gRPC call over HTTP/2 (see {@link ClientCall}). Created by `GrpcChannel.call`.
 * `pause()` stops reading the stream, so HTTP/2 flow control holds the server back.
 */
export class Http2ClientCall implements ClientCall {
  /** The method path, `/package.Service/Method`. */
  readonly path: string;
  readonly #owner: ClientCallOwner;
  readonly #metadata: Metadata | undefined;
  readonly #deadline: number | undefined;
  readonly #signal: CallSignal | undefined;

  #phase: Phase = 'waiting';
  #connection: CallConnection | undefined;
  #stream: TaggedStream | undefined;
  /** Framed messages sent before the stream exists. */
  #pending: Uint8Array[] | undefined;
  #pendingBytes = 0;
  #halfClosed = false;

  #reader: ClientReader | undefined;
  #paused = false;
  #delivering = false;
  #decoder: MessageDecoder | undefined;
  /** Response headers that arrived before the reader was set. */
  #unreadHeaders: ReceivedMetadata | undefined;
  #headersReceived = false;
  #inboundEnded = false;
  #statusReceived = false;
  #statusCode = 0;
  #statusMessage = '';
  #trailers: ReceivedMetadata = EMPTY_METADATA;
  #streamError: Error | undefined;

  #result: CallResult | undefined;
  #endDelivered = false;
  #timer: NodeJS.Timeout | undefined;
  #drainCallbacks: (() => void)[] | undefined;
  #drainListening = false;

  /** Created by `GrpcChannel.call`. */
  constructor(owner: ClientCallOwner, path: string, metadata: Metadata | undefined, options: CallOptions) {
    this.#owner = owner;
    this.path = path;
    this.#metadata = metadata;
    this.#deadline = options.deadline;
    this.#signal = options.signal;
  }

  /** Starts delivering the response to `reader`. Call once, right after creating the call. */
  setReader(reader: ClientReader): void {
    if (this.#reader !== undefined) throw new CourierError('ERR_INTERNAL', `setReader called twice on a call to ${this.path}`);
    this.#reader = reader;
    if (this.#phase === 'done') {
      process.nextTick(Http2ClientCall.#deliverEndLater, this);
      return;
    }
    const headers = this.#unreadHeaders;
    if (headers !== undefined) {
      this.#unreadHeaders = undefined;
      reader.headers(headers);
    }
    if (this.#stream !== undefined) this.#listenInbound(this.#stream);
  }

  /** Stops delivering messages, and reading the stream, until `resume`. */
  pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#stream?.pause();
  }

  /** Resumes delivery: first the messages already received, then reading from the stream. */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (this.#phase === 'open') this.#stream?.resume();
    this.#pump();
  }

  /**
   * Sends one message. Returns false when the buffer is full: wait for `onDrain` (the message was still
   * queued). The bytes are not copied: do not modify them until they are written (after `onDrain`, or
   * for good measure never). A message over `maxSendMessageBytes` fails the call with
   * RESOURCE_EXHAUSTED. After the call finished, or after `end()`, this is a no-op returning true.
   */
  sendMessage(bytes: Uint8Array): boolean {
    const length = bytes.byteLength;
    if (!this.#canSend(length)) return true;
    const stream = this.#stream;
    if (stream === undefined) {
      this.#queue(messageHead(length));
      this.#queue(bytes);
      return this.#pendingBytes < PENDING_HIGH_WATER_MARK;
    }
    if (stream.destroyed) return true;
    stream.cork();
    stream.write(messageHead(length));
    const ok = stream.write(bytes);
    stream.uncork();
    return ok;
  }

  /**
   * Sends one message given as consecutive pieces, without concatenating them: the length prefix is
   * computed from their sum. Same return value and limits as `sendMessage`.
   */
  sendMessageParts(parts: readonly Uint8Array[]): boolean {
    const length = totalLength(parts);
    if (!this.#canSend(length)) return true;
    const stream = this.#stream;
    if (stream === undefined) {
      this.#queue(messageHead(length));
      for (const part of parts) this.#queue(part);
      return this.#pendingBytes < PENDING_HIGH_WATER_MARK;
    }
    if (stream.destroyed) return true;
    stream.cork();
    stream.write(messageHead(length));
    let ok = true;
    for (const part of parts) ok = stream.write(part);
    stream.uncork();
    return ok;
  }

  /**
   * Calls `callback` once the buffer has room (on the next tick if it has room now). Not called if the
   * call finishes first; the reader's `end` says so.
   */
  onDrain(callback: () => void): void {
    if (this.#phase === 'done' || this.#phase === 'closing') return;
    const stream = this.#stream;
    const full = stream === undefined ? this.#pendingBytes >= PENDING_HIGH_WATER_MARK : stream.writableNeedDrain;
    if (!full) {
      process.nextTick(callback);
      return;
    }
    (this.#drainCallbacks ??= []).push(callback);
    if (stream !== undefined) this.#listenDrain(stream);
  }

  /** Half-closes the call: no more messages from this side (an empty DATA frame with END_STREAM). */
  end(): void {
    if (this.#halfClosed) return;
    this.#halfClosed = true;
    const stream = this.#stream;
    if (stream !== undefined && !stream.destroyed) stream.end();
  }

  /** Cancels the call (RST_STREAM CANCEL). The reader's `end` gets CANCELLED. No-op once finished. */
  cancel(): void {
    this.#terminate(GrpcStatus.CANCELLED, 'the call was cancelled by the client', true);
  }

  /** @internal The `abort` listener of `options.signal` (the call itself, to avoid a closure per call). */
  handleEvent(): void {
    const reason: unknown = this.#signal?.reason;
    const detail = reason instanceof Error ? `: ${reason.message}` : '';
    this.#terminate(GrpcStatus.CANCELLED, `the call was cancelled${detail}`, true);
  }

  // --- channel/connection side ------------------------------------------------------------------

  /**
   * @internal Arms the deadline and the signal. Returns false (and finishes the call) when the call
   * must not be sent at all: the signal is already aborted or the deadline already passed.
   */
  [kPrepare](): boolean {
    const signal = this.#signal;
    if (signal?.aborted === true) {
      this.handleEvent();
      return false;
    }
    const deadline = this.#deadline;
    if (deadline !== undefined) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        this.#terminate(GrpcStatus.DEADLINE_EXCEEDED, 'deadline exceeded before the call was sent', true);
        return false;
      }
      this.#timer = setTimeout(Http2ClientCall.#deadlineExpired, remaining, this);
      this.#timer.unref();
    }
    signal?.addEventListener('abort', this);
    return true;
  }

  /** @internal The request headers, built when the stream is opened (so `grpc-timeout` is current). */
  [kHeaders](): OutgoingHttpHeaders | undefined {
    if (this.#phase !== 'waiting') return undefined;
    const headers: OutgoingHttpHeaders = {
      ':method': 'POST',
      ':path': this.path,
      'content-type': 'application/grpc',
      te: 'trailers',
      'user-agent': USER_AGENT,
    };
    if (this.#deadline !== undefined) headers['grpc-timeout'] = encodeGrpcTimeout(this.#deadline - Date.now());
    return appendCustomMetadata(headers, metadataToSend(this.#metadata));
  }

  /** @internal The connection opened the call's stream. */
  [kAttach](stream: ClientHttp2Stream, connection: CallConnection): void {
    const tagged = stream as TaggedStream;
    this.#stream = tagged;
    this.#connection = connection;
    this.#phase = 'open';
    tagged[STREAM_CALL] = this;
    stream.on('response', Http2ClientCall.#responseListener);
    stream.on('trailers', Http2ClientCall.#trailersListener);
    stream.on('error', Http2ClientCall.#errorListener);
    stream.on('close', Http2ClientCall.#closeListener);
    if (this.#reader !== undefined) this.#listenInbound(stream);
    const pending = this.#pending;
    if (pending !== undefined) {
      this.#pending = undefined;
      this.#pendingBytes = 0;
      stream.cork();
      for (const chunk of pending) stream.write(chunk);
      stream.uncork();
    }
    if (this.#halfClosed) stream.end();
    if (this.#drainCallbacks !== undefined) {
      if (stream.writableNeedDrain) this.#listenDrain(stream);
      else process.nextTick(Http2ClientCall.#drainNow, this);
    }
  }

  /** @internal Queued on a connection, or waiting: the stream could not be opened. */
  [kFail](code: number, message: string, transport: TransportFailure | undefined): void {
    this.#finish(this.#localResult(code, message, transport), true);
  }

  /** @internal Queued on `connection` while it connects. */
  [kQueued](connection: CallConnection): void {
    this.#connection = connection;
  }

  // --- internals -------------------------------------------------------------------------------

  #canSend(length: number): boolean {
    const phase = this.#phase;
    if (phase === 'done' || phase === 'closing' || this.#halfClosed || this.#statusReceived) return false;
    if (length > this.#owner.maxSendMessageBytes) {
      this.#terminate(
        GrpcStatus.RESOURCE_EXHAUSTED,
        `trying to send message larger than max (${length} vs. ${this.#owner.maxSendMessageBytes})`,
        true,
      );
      return false;
    }
    return true;
  }

  #queue(chunk: Uint8Array): void {
    (this.#pending ??= []).push(chunk);
    this.#pendingBytes += chunk.byteLength;
  }

  #listenInbound(stream: TaggedStream): void {
    stream.on('data', Http2ClientCall.#dataListener);
    stream.on('end', Http2ClientCall.#endListener);
    if (this.#paused) stream.pause();
  }

  #listenDrain(stream: TaggedStream): void {
    if (this.#drainListening) return;
    this.#drainListening = true;
    stream.on('drain', Http2ClientCall.#drainListener);
  }

  #localResult(code: number, message: string, transport: TransportFailure | undefined): CallResult {
    return transport === undefined
      ? { code, message, trailers: EMPTY_METADATA, headersReceived: this.#headersReceived }
      : { code, message, trailers: EMPTY_METADATA, headersReceived: this.#headersReceived, transport };
  }

  /** Ends the call from this side: the result is local, the stream (if any) is reset with CANCEL. */
  #terminate(code: number, message: string, deferEnd: boolean): void {
    const phase = this.#phase;
    if (phase === 'done') return;
    if (phase === 'waiting') this.#connection?.dequeue(this);
    this.#finish(this.#localResult(code, message, undefined), deferEnd);
    const stream = this.#stream;
    if (stream !== undefined) cancelStream(stream);
  }

  /**
   * Decides the result and releases everything the call holds (timer, signal listener, drain
   * callbacks). `deferEnd`: deliver `end` on the next tick, for finishes triggered from the caller's
   * own code (cancel, abort, sends), so the reader is never re-entered from inside a call it made.
   */
  #finish(result: CallResult, deferEnd: boolean): void {
    if (this.#phase === 'done') return;
    this.#phase = 'done';
    this.#result = result;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    this.#signal?.removeEventListener('abort', this);
    this.#drainCallbacks = undefined;
    this.#pending = undefined;
    if (deferEnd) process.nextTick(Http2ClientCall.#deliverEndLater, this);
    else this.#deliverEnd();
  }

  #deliverEnd(): void {
    const reader = this.#reader;
    const result = this.#result;
    if (this.#endDelivered || reader === undefined || result === undefined) return;
    this.#endDelivered = true;
    reader.end(result);
  }

  /** Delivers decoded messages while not paused; completes a `closing` call once they are all taken. */
  #pump(): void {
    const reader = this.#reader;
    if (this.#delivering || reader === undefined) return;
    const decoder = this.#decoder;
    if (decoder !== undefined) {
      this.#delivering = true;
      try {
        while (!this.#paused && (this.#phase === 'open' || this.#phase === 'closing')) {
          const message = decoder.read();
          if (message === undefined) break;
          reader.message(message);
        }
      } catch (err) {
        this.#delivering = false;
        this.#owner.logger.error({ path: this.path, err: errorMessage(err) }, 'gRPC response reader threw');
        this.#terminate(GrpcStatus.INTERNAL, `the response reader failed: ${errorMessage(err)}`, false);
        return;
      }
      this.#delivering = false;
      const failure = decoder.failure;
      if (failure !== undefined && (this.#phase === 'open' || this.#phase === 'closing')) {
        this.#terminate(failure.code, failure.message ?? '', false);
        return;
      }
    }
    if (this.#phase !== 'closing' || this.#paused) return;
    const result = this.#result as CallResult;
    if (result.code === GrpcStatus.OK && decoder !== undefined && !decoder.atBoundary) {
      this.#finish(this.#localResult(GrpcStatus.INTERNAL, 'the server ended the stream inside a message', undefined), false);
      return;
    }
    this.#finish(result, false);
  }

  #handleResponse(headers: IncomingHttpHeaders & IncomingHttpStatusHeader, flags: number, raw: readonly string[] | undefined): void {
    if (this.#phase !== 'open') return;
    (this.#connection as CallConnection).peerData++;
    const status = headers[':status'] ?? 0;
    if ((flags & h2.NGHTTP2_FLAG_END_STREAM) !== 0) {
      // Trailers-Only: the status is in this HEADERS frame; completion follows on 'close'.
      this.#takeStatus(headers, raw, status);
      return;
    }
    const contentType = headers['content-type'];
    if (status !== 200 || !isGrpcContentType(contentType)) {
      const code = status !== 200 ? grpcCodeForHttpStatus(status) : GrpcStatus.UNKNOWN;
      const message =
        status !== 200
          ? `${this.#owner.label} answered with HTTP status ${status}, not a gRPC response`
          : `${this.#owner.label} answered with content-type "${contentType ?? ''}", not a gRPC response`;
      this.#terminate(code, message, false);
      return;
    }
    this.#headersReceived = true;
    const metadata = raw === undefined ? headers : metadataFromRawHeaders(raw);
    if (this.#reader === undefined) this.#unreadHeaders = metadata;
    else this.#reader.headers(metadata);
  }

  #handleTrailers(headers: IncomingHttpHeaders, raw: readonly string[] | undefined): void {
    if (this.#phase !== 'open') return;
    this.#takeStatus(headers, raw, 200);
  }

  /** Records the status from Trailers or Trailers-Only; the call completes on the stream's 'close'. */
  #takeStatus(headers: IncomingHttpHeaders, raw: readonly string[] | undefined, httpStatus: number): void {
    // PROTOCOL-HTTP2.md "Early Server Closure": a status before our END_STREAM means the call is over;
    // end our side so the stream closes even if the server does not reset it.
    const stream = this.#stream;
    if (stream !== undefined && !stream.writableEnded) {
      this.#halfClosed = true;
      this.#pending = undefined;
      stream.end();
    }
    const code = parseGrpcStatus(headers['grpc-status']);
    const message = headers['grpc-message'];
    this.#statusReceived = true;
    this.#trailers = raw === undefined ? headers : metadataFromRawHeaders(raw);
    if (code !== undefined) {
      this.#statusCode = code;
      this.#statusMessage = typeof message === 'string' ? decodeGrpcMessage(message) : '';
    } else if (httpStatus !== 200) {
      this.#statusCode = grpcCodeForHttpStatus(httpStatus);
      this.#statusMessage = `${this.#owner.label} answered with HTTP status ${httpStatus}, not a gRPC response`;
    } else {
      this.#statusCode = GrpcStatus.UNKNOWN;
      this.#statusMessage = 'the server ended the call without a grpc-status';
    }
  }

  #handleData(chunk: Buffer): void {
    (this.#connection as CallConnection).peerData++;
    if (this.#phase !== 'open') return;
    (this.#decoder ??= new MessageDecoder(this.#owner.maxReceiveMessageBytes)).push(chunk);
    this.#pump();
  }

  #handleClose(): void {
    const stream = this.#stream as TaggedStream;
    const connection = this.#connection as CallConnection;
    connection.streamClosed(this);
    if (this.#phase !== 'open') return;
    if (this.#statusReceived) {
      const result: CallResult = {
        code: this.#statusCode,
        message: this.#statusMessage,
        trailers: this.#trailers,
        headersReceived: this.#headersReceived,
      };
      this.#result = result;
      this.#phase = 'closing';
      this.#pump();
      return;
    }
    this.#finish(this.#brokenStreamResult(stream, connection), false);
  }

  /** Classifies a stream that closed without a status (see {@link TransportFailure}). */
  #brokenStreamResult(stream: TaggedStream, connection: CallConnection): CallResult {
    const rst = stream.rstCode ?? h2.NGHTTP2_NO_ERROR;
    const id = stream.id;
    const label = this.#owner.label;
    if (rst === h2.NGHTTP2_REFUSED_STREAM) {
      return this.#localResult(GrpcStatus.UNAVAILABLE, `${label} refused the stream (REFUSED_STREAM)`, 'refused');
    }
    const lastStreamId = connection.goawayLastStreamId;
    if (lastStreamId !== undefined && (id === undefined || id > lastStreamId)) {
      return this.#localResult(GrpcStatus.UNAVAILABLE, `${label} is going away (GOAWAY) and did not process the stream`, 'refused');
    }
    if (id === undefined || stream.pending) {
      return this.#localResult(GrpcStatus.UNAVAILABLE, `the connection to ${label} closed before the stream was sent`, 'refused');
    }
    const lost = connection.lossReason(this.#streamError);
    if (lost !== undefined) {
      return this.#localResult(GrpcStatus.UNAVAILABLE, `the connection to ${label} was lost: ${lost}`, 'reset');
    }
    if (rst === h2.NGHTTP2_NO_ERROR && this.#inboundEnded) {
      return this.#localResult(GrpcStatus.INTERNAL, `${label} closed the stream without sending trailers`, undefined);
    }
    const code = grpcCodeForRstCode(rst);
    if (code === GrpcStatus.CANCELLED && this.#deadline !== undefined && Date.now() >= this.#deadline) {
      // The spec: a CANCELLED past the deadline is the server enforcing it.
      return this.#localResult(GrpcStatus.DEADLINE_EXCEEDED, 'deadline exceeded', undefined);
    }
    return this.#localResult(code, `${label} reset the stream (${http2ErrorName(rst)})`, 'reset');
  }

  #handleDrain(): void {
    const callbacks = this.#drainCallbacks;
    if (callbacks === undefined) return;
    this.#drainCallbacks = undefined;
    for (const callback of callbacks) callback();
  }

  // Listeners shared by all calls: `this` is the stream, tagged with its call.
  static readonly #responseListener = function (
    this: TaggedStream,
    headers: IncomingHttpHeaders & IncomingHttpStatusHeader,
    flags: number,
    raw?: string[],
  ): void {
    const call = this[STREAM_CALL];
    if (call !== undefined) call.#handleResponse(headers, flags, raw);
  };
  static readonly #trailersListener = function (this: TaggedStream, headers: IncomingHttpHeaders, _flags: number, raw?: string[]): void {
    const call = this[STREAM_CALL];
    if (call !== undefined) call.#handleTrailers(headers, raw);
  };
  static readonly #dataListener = function (this: TaggedStream, chunk: Buffer): void {
    const call = this[STREAM_CALL];
    if (call !== undefined) call.#handleData(chunk);
  };
  static readonly #endListener = function (this: TaggedStream): void {
    // Node also ends the readable side of a reset stream; only a real END_STREAM counts.
    const call = this[STREAM_CALL];
    if (call !== undefined && !this.aborted) call.#inboundEnded = true;
  };
  static readonly #errorListener = function (this: TaggedStream, err: Error): void {
    const call = this[STREAM_CALL];
    if (call !== undefined) call.#streamError ??= err;
  };
  static readonly #closeListener = function (this: TaggedStream): void {
    const call = this[STREAM_CALL];
    if (call === undefined) return;
    // A closed stream no longer leads to its call: Node's HTTP/2 session keeps its streams in a Map,
    // whose replaced tables can keep closed streams reachable, and promoted, until the next full
    // collection (docs/performance.md, "Garbage that stays reachable"). Courier's own sessions get an
    // IdTable instead (session-streams.ts) where the runtime allows it; this holds on any session.
    this[STREAM_CALL] = undefined;
    call.#handleClose();
  };
  static readonly #drainListener = function (this: TaggedStream): void {
    const call = this[STREAM_CALL];
    if (call !== undefined) call.#handleDrain();
  };
  static #deadlineExpired(this: void, call: Http2ClientCall): void {
    call.#timer = undefined;
    call.#terminate(GrpcStatus.DEADLINE_EXCEEDED, 'deadline exceeded', false);
  }
  static #deliverEndLater(this: void, call: Http2ClientCall): void {
    call.#deliverEnd();
  }
  static #drainNow(this: void, call: Http2ClientCall): void {
    if (call.#phase === 'open') call.#handleDrain();
  }
}
