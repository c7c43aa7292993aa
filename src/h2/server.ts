import type { Socket } from 'node:net';
import { IdTable } from '../util/call-tables.js';
import { GrpcStatus } from '../errors/index.js';
import type { Peer, ServerCall } from '../grpc/call.js';
import { MessageDecoder, messageHead } from '../grpc/framing.js';
import { SessionKeeper } from '../grpc/keepalive.js';
import { isGrpcContentType, type Metadata, type ReceivedMetadata } from '../grpc/metadata.js';
import { encodeGrpcMessage, http2ErrorName, type CallStatus } from '../grpc/status.js';
import { DONE, ENDING, IDLE, OwnServerCall, STREAMING } from '../grpc/own-server-call.js';
import { parseGrpcTimeout } from '../grpc/timeout.js';
import type { Logger } from '../observability/logging/index.js';
import { encodeMetadata, H2Endpoint, type H2Limits, type SendWaiter } from './endpoint.js';
import { Inbox, Outbox } from './outbox.js';
import {
  CANCEL,
  ENHANCE_YOUR_CALM,
  FLOW_CONTROL_ERROR,
  NO_ERROR,
  PROTOCOL_ERROR,
  REFUSED_STREAM,
  STREAM_CLOSED,
  SETTINGS_ENABLE_PUSH,
  SETTINGS_MAX_CONCURRENT_STREAMS,
} from './frames.js';
import { DECODED, LIST_TOO_LARGE, type HpackEncoder } from './hpack.js';

/** What an HTTP/2 connection needs from the server it serves calls for (a `GrpcServer`). */
export interface H2CallRouter {
  readonly maxReceiveMessageBytes: number;
  readonly maxSendMessageBytes: number;
  readonly logger: Logger;
  /** The handler of `path`, or the message of the UNIMPLEMENTED status to answer with. */
  handlerFor(path: string): ((call: ServerCall) => void) | string;
  /** Starts a call with its handler (the server tracks it with its other calls). */
  run(call: ServerCall, handler: (call: ServerCall) => void): void;
  callClosed(call: ServerCall): void;
  sessionClosed(session: H2ServerSession): void;
}

export interface H2ServerOptions {
  readonly peer: Peer;
  readonly limits: H2Limits;
  /** The client's preface and SETTINGS must arrive within this (0: no limit). */
  readonly handshakeTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly pingIntervalMs: number | undefined;
  readonly pingTimeoutMs: number;
}

const STATUS = ':status';
const CONTENT_TYPE = 'content-type';
const GRPC = 'application/grpc';

function statusCode(status: CallStatus): number {
  return Number.isInteger(status.code) && status.code >= 0 ? status.code : GrpcStatus.UNKNOWN;
}

/** The end of a response: `grpc-status`, `grpc-message` when there is one. */
function encodeStatus(encoder: HpackEncoder, status: CallStatus): void {
  encoder.add('grpc-status', String(statusCode(status)));
  if (status.message !== undefined && status.message !== '') encoder.add('grpc-message', encodeGrpcMessage(status.message));
}

/**
 * The server end of one plaintext HTTP/2 connection carrying gRPC: it accepts calls, hands them to the
 * server's handlers as {@link ServerCall}s, and shuts down gracefully with GOAWAY. Courier's own
 * implementation of the protocol for the app-facing gRPC port, in place of `node:http2`, whose
 * per-stream objects, header objects and separate write for trailers cost a proxied call more than
 * all of Courier's own work on it (docs/performance.md).
 */
export class H2ServerSession extends H2Endpoint {
  readonly peer: Peer;
  readonly #router: H2CallRouter;
  readonly #keeper: SessionKeeper;
  readonly #calls = new IdTable<H2ServerCall>();
  #lastStreamId = 0;
  #goingAway = false;
  #handshakeTimer: NodeJS.Timeout | undefined;

  constructor(socket: Socket, router: H2CallRouter, options: H2ServerOptions) {
    super(socket, options.limits, true);
    this.peer = options.peer;
    this.#router = router;
    this.#keeper = new SessionKeeper(this, {
      pingIntervalMs: options.pingIntervalMs,
      pingTimeoutMs: options.pingTimeoutMs,
      idleTimeoutMs: options.idleTimeoutMs,
      onIdle: () => this.goAway(),
      onPingTimeout: () => {
        router.logger.debug({ peer: this.peer.address }, 'gRPC client did not answer a keepalive ping; closing the connection');
        this.destroy('keepalive ping not acknowledged');
      },
    });
    if (options.handshakeTimeoutMs > 0) {
      this.#handshakeTimer = setTimeout(() => {
        router.logger.debug({ peer: this.peer.address }, 'gRPC client did not send the HTTP/2 preface in time; closing the connection');
        this.destroy('handshake timeout');
      }, options.handshakeTimeoutMs);
      this.#handshakeTimer.unref();
    }
    this.listen();
    this.sendSettings([
      [SETTINGS_MAX_CONCURRENT_STREAMS, options.limits.maxConcurrentStreams],
      [SETTINGS_ENABLE_PUSH, 0],
    ]);
  }

  get closed(): boolean {
    return this.#goingAway || this.destroyed;
  }

  /** Calls open on the connection. */
  get callCount(): number {
    return this.#calls.size;
  }

  /** Graceful close: GOAWAY now (no new calls), the connection ends once its calls are done. */
  goAway(): void {
    if (this.#goingAway || this.destroyed) return;
    this.#goingAway = true;
    this.#keeper.stop();
    this.sendGoaway(this.#lastStreamId, NO_ERROR, 'the server is going away');
    this.schedule();
    if (this.#calls.size === 0) this.#end();
  }

  /** @internal A call is over (answered, cancelled, reset, or failed). */
  callDone(call: H2ServerCall): void {
    if (this.#calls.get(call.id) !== call) return;
    this.#calls.delete(call.id);
    this.#keeper.callEnded();
    this.#router.callClosed(call);
    if (this.#goingAway && this.#calls.size === 0) this.#end();
  }

  protected established(): void {
    if (this.#handshakeTimer !== undefined) {
      clearTimeout(this.#handshakeTimer);
      this.#handshakeTimer = undefined;
    }
    if (!this.#goingAway) this.#keeper.start();
  }

  protected headerBlock(stream: number, endStream: boolean, block: Buffer, start: number, end: number): void {
    const existing = this.#calls.get(stream);
    const fields = this.decodeFields(block, start, end);
    if (fields === undefined) return;
    const result = this.decodeResult;
    if (existing !== undefined) {
      // The client's trailers: they end its side of the call; gRPC gives them no meaning.
      if (!endStream) {
        existing.resetBy(PROTOCOL_ERROR, 'the client sent a second header block that does not end the stream');
        return;
      }
      existing.inboundEnd();
      return;
    }
    if ((stream & 1) === 0) {
      this.protocolError(PROTOCOL_ERROR, `a client opened stream ${stream}, an even id`);
      return;
    }
    if (stream <= this.#lastStreamId) return; // A stream already over (reset): its late trailers.
    this.#lastStreamId = stream;
    if (this.#goingAway || this.#calls.size >= this.limits.maxConcurrentStreams) {
      this.sendReset(stream, REFUSED_STREAM);
      return;
    }
    if (result !== DECODED) {
      this.sendReset(stream, result === LIST_TOO_LARGE ? ENHANCE_YOUR_CALM : PROTOCOL_ERROR);
      return;
    }
    this.#open(stream, endStream, fields);
  }

  protected data(stream: number, endStream: boolean, payload: Buffer, length: number): void {
    const call = this.#calls.get(stream);
    if (call === undefined) {
      if (stream > this.#lastStreamId) {
        this.protocolError(PROTOCOL_ERROR, `DATA on stream ${stream}, which was never opened`);
        return;
      }
      // DATA crossing the end of its call: it still counts against the connection's window.
      this.consumed(length);
      return;
    }
    call.data(payload, length, endStream);
  }

  protected reset(stream: number, code: number): void {
    const call = this.#calls.get(stream);
    if (call !== undefined) {
      const running = !call.finished;
      call.resetByClient(code);
      if (running) this.countPeerReset();
      return;
    }
    if (stream > this.#lastStreamId) this.protocolError(PROTOCOL_ERROR, `RST_STREAM on stream ${stream}, which was never opened`);
  }

  protected streamCredit(stream: number, increment: number): void {
    this.#calls.get(stream)?.credit(increment);
  }

  protected initialWindowChanged(delta: number): void {
    for (const call of this.#calls.values()) call.credit(delta, true);
  }

  protected goawayReceived(_lastStreamId: number, code: number): void {
    // The client opens no more calls here; those open finish normally, unless it reports an error.
    if (code !== NO_ERROR) this.destroy(`the client sent GOAWAY (${http2ErrorName(code)})`);
  }

  protected lastPeerStream(): number {
    return this.#lastStreamId;
  }

  protected connectionClosed(): void {
    if (this.#handshakeTimer !== undefined) clearTimeout(this.#handshakeTimer);
    this.#keeper.stop();
    const reason = this.failure ?? 'the connection closed';
    const calls = this.#calls.values();
    this.#calls.clear();
    for (const call of calls) {
      call.connectionLost(reason);
      this.#router.callClosed(call);
    }
    this.#router.sessionClosed(this);
  }

  /** A new call: the checks Node's server and grpc-go make before a handler runs, then the handler. */
  #open(id: number, endStream: boolean, fields: Record<string, string | string[]>): void {
    const method = fields[':method'];
    const path = fields[':path'];
    if (typeof method !== 'string' || typeof path !== 'string' || typeof fields[':scheme'] !== 'string') {
      this.sendReset(id, PROTOCOL_ERROR);
      return;
    }
    if (method !== 'POST') {
      this.#answerHttp(id, '405', 'POST');
      return;
    }
    if (!isGrpcContentType(fields[CONTENT_TYPE])) {
      // PROTOCOL-HTTP2.md: 415, so that a client that is not gRPC does not read a 200 as success.
      this.#answerHttp(id, '415', undefined);
      return;
    }
    const encoding = fields['grpc-encoding'];
    if (encoding !== undefined && encoding !== 'identity') {
      // Courier never advertises compression, so a compressing client is told what is accepted.
      this.#trailersOnly(
        id,
        { code: GrpcStatus.UNIMPLEMENTED, message: `grpc-encoding "${String(encoding)}" is not supported: this server does not decompress messages` },
        true,
      );
      return;
    }
    let deadline: number | undefined;
    const timeout = fields['grpc-timeout'];
    if (timeout !== undefined) {
      const ms = typeof timeout === 'string' ? parseGrpcTimeout(timeout) : undefined;
      if (ms === undefined) {
        this.#trailersOnly(id, { code: GrpcStatus.INTERNAL, message: `malformed grpc-timeout: ${String(timeout)}` }, false);
        return;
      }
      if (ms <= 0) {
        this.#trailersOnly(id, { code: GrpcStatus.DEADLINE_EXCEEDED, message: 'deadline exceeded before the call started' }, false);
        return;
      }
      deadline = Date.now() + ms;
    }
    const handler = this.#router.handlerFor(path);
    if (typeof handler === 'string') {
      this.#trailersOnly(id, { code: GrpcStatus.UNIMPLEMENTED, message: handler }, false);
      return;
    }
    const call = new H2ServerCall(this, this.#router, id, path, deadline, fields, endStream);
    this.#calls.set(id, call);
    this.#keeper.callStarted();
    this.#router.run(call, handler);
  }

  /** A plain HTTP answer to a request that is not gRPC. */
  #answerHttp(id: number, status: string, allow: string | undefined): void {
    const encoder = this.encoder;
    encoder.begin();
    encoder.add(STATUS, status);
    if (allow !== undefined) encoder.add('allow', allow);
    this.sendBlock(id, true);
  }

  /** A Trailers-Only response to a call that never reached a handler. */
  #trailersOnly(id: number, status: CallStatus, acceptEncoding: boolean): void {
    const encoder = this.encoder;
    encoder.begin();
    encoder.add(STATUS, '200');
    encoder.add(CONTENT_TYPE, GRPC);
    if (acceptEncoding) encoder.add('grpc-accept-encoding', 'identity');
    encodeStatus(encoder, status);
    this.sendBlock(id, true);
  }

  #end(): void {
    this.flush();
    const socket = this.socket;
    socket.once('finish', () => socket.destroy());
    socket.end();
  }
}

/**
 * One call received on an HTTP/2 connection (see {@link ServerCall}). Backpressure: a paused call
 * keeps what it received and returns no credit, so the client's window (64 KiB, the protocol's
 * default) runs out and its sends report a full buffer; responses wait for the client's window
 * and the socket, and `sendMessage` reports a full buffer while 64 KiB or more wait.
 */
export class H2ServerCall extends OwnServerCall implements ServerCall, SendWaiter {
  readonly metadata: ReceivedMetadata;

  readonly #session: H2ServerSession;
  readonly #router: H2CallRouter;
  #decoder: MessageDecoder | undefined;
  /** The request's flow control: the client's stream window, and what the reader has not taken yet. */
  readonly #inbox = new Inbox();

  /** The response's DATA, waiting for the client's windows. */
  readonly #outbox: Outbox;

  #trailerStatus: CallStatus | undefined;
  #trailerMetadata: Metadata | undefined;

  constructor(
    session: H2ServerSession,
    router: H2CallRouter,
    id: number,
    path: string,
    deadline: number | undefined,
    metadata: ReceivedMetadata,
    halfClosed: boolean,
  ) {
    super(router, id, path, deadline, halfClosed);
    this.#session = session;
    this.#router = router;
    this.metadata = metadata;
    this.#outbox = new Outbox(session.peerInitialWindow);
  }

  get peer(): Peer {
    return this.#session.peer;
  }

  sendMessage(bytes: Uint8Array): boolean {
    const length = bytes.byteLength;
    if (!this.prepareSend(length)) return true;
    this.#outbox.addOne(messageHead(length), bytes);
    this.sendMore();
    return !this.#outbox.full(this.#session);
  }

  sendMessageParts(parts: readonly Uint8Array[]): boolean {
    let length = 0;
    for (const part of parts) length += part.byteLength;
    if (!this.prepareSend(length)) return true;
    this.#outbox.add(messageHead(length), parts, length);
    this.sendMore();
    return !this.#outbox.full(this.#session);
  }

  onDrain(callback: () => void): void {
    if (this.finished) return;
    this.#outbox.onDrain(this.#session, this, callback);
  }

  // --- from the session ---------------------------------------------------------------------------

  /** @internal DATA of this call (`length` counts padding, for flow control). */
  data(payload: Buffer, length: number, endStream: boolean): void {
    if (this.inboundEnded) {
      this.resetBy(STREAM_CLOSED, 'DATA after the client ended its stream');
      this.#session.consumed(length);
      return;
    }
    if (!this.#inbox.receive(length)) {
      this.#session.consumed(length);
      this.resetBy(FLOW_CONTROL_ERROR, 'the client sent more than its stream window');
      return;
    }
    if (endStream) this.inboundEnded = true;
    if (this.readerClosed) {
      this.#inbox.drop(this.#session);
      return;
    }
    if (payload.length > 0) (this.#decoder ??= new MessageDecoder(this.#router.maxReceiveMessageBytes)).push(payload);
    if (this.reader !== undefined) this.deliver();
  }

  /** @internal The client's trailers (or an empty DATA with END_STREAM): its side is done. */
  inboundEnd(): void {
    if (this.inboundEnded) return;
    this.inboundEnded = true;
    if (!this.readerClosed && this.reader !== undefined) this.deliver();
  }

  /** @internal WINDOW_UPDATE of this stream, or (`settings`) a change of the client's initial window. */
  credit(increment: number, settings = false): void {
    if (!settings && increment === 0) {
      this.resetBy(PROTOCOL_ERROR, 'a WINDOW_UPDATE of 0');
      return;
    }
    if (!this.#outbox.credit(increment)) {
      this.resetBy(FLOW_CONTROL_ERROR, 'the stream window is over 2^31-1');
      return;
    }
    if (this.#outbox.window > 0 && this.#outbox.queued > 0) this.sendMore();
  }

  /** @internal RST_STREAM from the client. */
  resetByClient(code: number): void {
    this.endedBy({
      code: GrpcStatus.CANCELLED,
      message: code === CANCEL ? 'the client cancelled the call' : `the stream was reset (${http2ErrorName(code)})`,
    });
    this.close();
  }

  /** @internal The client broke the protocol on this stream: reset it with `code`. */
  resetBy(code: number, reason: string): void {
    this.endedBy({ code: GrpcStatus.INTERNAL, message: `the client broke the protocol: ${reason}` });
    this.#session.sendReset(this.id, code);
    this.close();
  }

  /** @internal The connection is gone; the session forgets the call itself. */
  connectionLost(reason: string): void {
    this.clearDeadline();
    this.#outbox.clear();
    this.endedBy({ code: GrpcStatus.CANCELLED, message: `the connection was lost: ${reason}` });
  }

  /** Sends what the windows allow of the queued response, then the trailers once all is out. */
  sendMore(): void {
    const session = this.#session;
    if (this.state === DONE || session.destroyed) return;
    if (this.#outbox.pump(session, this.id, this, false) && this.state === ENDING) this.#sendFinal();
  }

  // --- HTTP/2's side of OwnServerCall -----------------------------------------------------------------

  protected respond(metadata: Metadata | undefined): boolean {
    const encoder = this.#session.encoder;
    encoder.begin();
    encoder.add(STATUS, '200');
    encoder.add(CONTENT_TYPE, GRPC);
    try {
      encodeMetadata(encoder, metadata);
    } catch (err) {
      encoder.end();
      this.#router.logger.warn({ path: this.path, err: (err as Error).message }, 'gRPC response headers rejected');
      this.fail({ code: GrpcStatus.INTERNAL, message: `invalid response metadata: ${(err as Error).message}` });
      return false;
    }
    this.state = STREAMING;
    this.#session.sendBlock(this.id, false);
    return true;
  }

  protected finish(status: CallStatus, trailers: Metadata | undefined): void {
    if (this.state === IDLE) {
      this.state = DONE;
      this.#sendTrailersOnly(status, trailers);
      this.close();
      return;
    }
    this.state = ENDING;
    this.#trailerStatus = status;
    this.#trailerMetadata = trailers;
    if (this.#outbox.queued === 0) this.#sendFinal();
  }

  protected sendCancel(): void {
    this.#session.sendReset(this.id, CANCEL);
  }

  protected close(): void {
    this.#outbox.clear();
    this.#inbox.drop(this.#session);
    this.#decoder = undefined;
    this.#session.callDone(this);
  }

  protected nextMessage(): Buffer | undefined {
    return this.#decoder?.read();
  }

  protected afterDelivery(): CallStatus | undefined {
    this.#inbox.consumed(this.#session, this.id, this.inboundEnded);
    return this.#decoder?.failure;
  }

  protected get atBoundary(): boolean {
    return this.#decoder?.atBoundary ?? true;
  }

  #sendTrailersOnly(status: CallStatus, trailers: Metadata | undefined): void {
    const session = this.#session;
    if (session.destroyed) return;
    const encoder = session.encoder;
    const build = (withTrailers: boolean): void => {
      encoder.begin();
      encoder.add(STATUS, '200');
      encoder.add(CONTENT_TYPE, GRPC);
      encodeStatus(encoder, status);
      if (withTrailers) encodeMetadata(encoder, trailers);
    };
    this.#buildTrailers(build, trailers);
    session.sendBlock(this.id, true);
    if (!this.inboundEnded) session.sendReset(this.id, NO_ERROR);
  }

  /** The trailers, once the messages before them are out. */
  #sendFinal(): void {
    const status = this.#trailerStatus as CallStatus;
    const trailers = this.#trailerMetadata;
    this.state = DONE;
    const session = this.#session;
    if (!session.destroyed) {
      const encoder = session.encoder;
      this.#buildTrailers((withTrailers) => {
        encoder.begin();
        encodeStatus(encoder, status);
        if (withTrailers) encodeMetadata(encoder, trailers);
      }, trailers);
      session.sendBlock(this.id, true);
      // The client may still be sending: tell it to stop (RFC 9113 §8.1).
      if (!this.inboundEnded) session.sendReset(this.id, NO_ERROR);
    }
    this.close();
  }

  /** Builds a block with the custom trailers, or without them when they are invalid. */
  #buildTrailers(build: (withTrailers: boolean) => void, trailers: Metadata | undefined): void {
    if (trailers === undefined) {
      build(false);
      return;
    }
    try {
      build(true);
    } catch (err) {
      this.#session.encoder.end();
      this.#router.logger.warn({ path: this.path, err: (err as Error).message }, 'gRPC trailers rejected');
      build(false);
    }
  }
}
