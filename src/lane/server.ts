import type { Duplex } from 'node:stream';
import { IdTable } from '../util/call-tables.js';
import { GrpcStatus } from '../errors/index.js';
import type { Peer, ServerCall } from '../grpc/call.js';
import { SessionKeeper } from '../grpc/keepalive.js';
import type { Metadata, ReceivedMetadata } from '../grpc/metadata.js';
import { http2ErrorName, type CallStatus } from '../grpc/status.js';
import { DONE, ENDING, OwnServerCall, STREAMING } from '../grpc/own-server-call.js';
import type { Logger } from '../observability/logging/index.js';
import { LaneEndpoint, type LaneLimits } from './endpoint.js';
import { StreamReceiver, StreamSender, type FinalFrame } from './stream.js';
import {
  CANCEL,
  emptyMetadata,
  FLAG_END,
  HALF_CLOSE,
  MESSAGE,
  metadataBound,
  NO_ERROR,
  NO_TIMEOUT,
  OPEN,
  PayloadReader,
  PROTOCOL_ERROR,
  REFUSED_STREAM,
  RESET,
  WINDOW,
} from './wire.js';

/** What a lane connection needs from the server it serves calls for (a `GrpcServer`). */
export interface LaneCallRouter {
  readonly maxReceiveMessageBytes: number;
  readonly maxSendMessageBytes: number;
  readonly logger: Logger;
  /** The handler of `path`, or the message of the UNIMPLEMENTED status to answer with. */
  handlerFor(path: string): ((call: ServerCall) => void) | string;
  /** Starts a call with its handler (the server tracks it as it tracks its HTTP/2 calls). */
  run(call: ServerCall, handler: (call: ServerCall) => void): void;
  callClosed(call: ServerCall): void;
  sessionClosed(session: LaneServerSession): void;
}

export interface LaneServerOptions {
  readonly peer: Peer;
  readonly limits: LaneLimits;
  /** The client's magic and SETTINGS must arrive within this (0: no limit). */
  readonly handshakeTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly pingIntervalMs: number | undefined;
  readonly pingTimeoutMs: number;
}

/**
 * The server end of one lane connection: it accepts calls (OPEN frames), hands them to the server's
 * handlers as {@link ServerCall}s, and shuts down gracefully with GOAWAY (calls above the last one it
 * accepted are refused, the others finish).
 */
export class LaneServerSession extends LaneEndpoint {
  readonly peer: Peer;
  readonly #router: LaneCallRouter;
  readonly #keeper: SessionKeeper;
  readonly #calls = new IdTable<LaneServerCall>();
  #lastStreamId = 0;
  #goingAway = false;
  #handshakeTimer: NodeJS.Timeout | undefined;

  constructor(socket: Duplex, router: LaneCallRouter, options: LaneServerOptions) {
    super(socket, options.limits);
    this.peer = options.peer;
    this.#router = router;
    this.#keeper = new SessionKeeper(this, {
      pingIntervalMs: options.pingIntervalMs,
      pingTimeoutMs: options.pingTimeoutMs,
      idleTimeoutMs: options.idleTimeoutMs,
      onIdle: () => this.goAway(),
      onPingTimeout: () => {
        router.logger.debug({ peer: this.peer.address }, 'lane client did not answer a keepalive ping; closing the connection');
        this.destroy('keepalive ping not acknowledged');
      },
    });
    if (options.handshakeTimeoutMs > 0) {
      this.#handshakeTimer = setTimeout(() => {
        router.logger.debug({ peer: this.peer.address }, 'lane client did not send its preface in time; closing the connection');
        this.destroy('handshake timeout');
      }, options.handshakeTimeoutMs);
      this.#handshakeTimer.unref();
    }
    this.listen();
    this.sendPreface();
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
    this.batch.goaway(this.#lastStreamId, NO_ERROR, 'the server is going away');
    this.schedule();
    if (this.#calls.size === 0) this.#end();
  }

  /** @internal A call is over (answered, cancelled, reset, or failed). */
  callDone(call: LaneServerCall): void {
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

  protected streamFrame(type: number, flags: number, id: number, payload: Buffer): void {
    if (type === OPEN) {
      this.#open(id, flags, payload);
      return;
    }
    if (type !== MESSAGE && type !== HALF_CLOSE && type !== RESET && type !== WINDOW) {
      this.protocolError(PROTOCOL_ERROR, `a client sent a frame of type ${type}`);
      return;
    }
    const call = this.#calls.get(id);
    if (call === undefined) {
      // Frames of a call already over are expected (they crossed its end); of one never opened, not.
      if (id > this.#lastStreamId) this.protocolError(PROTOCOL_ERROR, `a frame for stream ${id}, which was never opened`);
      return;
    }
    call.frame(type, flags, payload);
  }

  protected goawayReceived(): void {
    // The client opens no more calls here; those open finish normally.
  }

  protected notLane(): void {
    this.destroy('the client did not send the lane preface');
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

  #open(id: number, flags: number, payload: Buffer): void {
    if (id <= this.#lastStreamId || (id & 1) === 0) {
      this.protocolError(PROTOCOL_ERROR, `stream id ${id} is not a new odd id (last: ${this.#lastStreamId})`);
      return;
    }
    this.#lastStreamId = id;
    if (this.#goingAway || this.#calls.size >= this.limits.maxConcurrentStreams) {
      this.batch.u32(RESET, 0, id, REFUSED_STREAM);
      this.schedule();
      return;
    }
    const reader = new PayloadReader(payload);
    const timeoutMs = reader.u32();
    const path = reader.string(reader.u16());
    if (timeoutMs === 0) {
      this.batch.trailers(id, GrpcStatus.DEADLINE_EXCEEDED, 'deadline exceeded before the call started', undefined);
      this.schedule();
      return;
    }
    const handler = this.#router.handlerFor(path);
    if (typeof handler === 'string') {
      this.batch.trailers(id, GrpcStatus.UNIMPLEMENTED, handler, undefined);
      this.schedule();
      return;
    }
    const deadline = timeoutMs === NO_TIMEOUT ? undefined : Date.now() + timeoutMs;
    const call = new LaneServerCall(this, this.#router, id, path, deadline, payload, reader.position, (flags & FLAG_END) !== 0);
    this.#calls.set(id, call);
    this.#keeper.callStarted();
    this.#router.run(call, handler);
  }

  #end(): void {
    this.flush();
    const socket = this.socket;
    socket.once('finish', () => socket.destroy());
    socket.end();
  }
}

/**
 * One call received on a lane connection (see {@link ServerCall}). Backpressure: a paused call keeps
 * the messages it received (at most its window) and returns no credit, so the client's sends report a
 * full buffer.
 */
export class LaneServerCall extends OwnServerCall implements ServerCall, FinalFrame {
  readonly viaLane = true;

  readonly #session: LaneServerSession;
  readonly #router: LaneCallRouter;
  readonly #sender: StreamSender;
  readonly #receiver: StreamReceiver;
  #open: Buffer | undefined;
  #metadataAt: number;
  #metadata: ReceivedMetadata | undefined;
  #trailerStatus: CallStatus | undefined;
  #trailerMetadata: Metadata | undefined;

  constructor(
    session: LaneServerSession,
    router: LaneCallRouter,
    id: number,
    path: string,
    deadline: number | undefined,
    open: Buffer,
    metadataAt: number,
    halfClosed: boolean,
  ) {
    super(router, id, path, deadline, halfClosed);
    this.#session = session;
    this.#router = router;
    this.#open = open;
    this.#metadataAt = metadataAt;
    this.#sender = new StreamSender(session, id, session.peerLimits.initialWindow);
    this.#receiver = new StreamReceiver(session, id, router.maxReceiveMessageBytes);
  }

  /** `:path`, `content-type` and the custom metadata the caller sent (built on first access). */
  get metadata(): ReceivedMetadata {
    if (this.#metadata === undefined) {
      const metadata = emptyMetadata();
      metadata[':path'] = this.path;
      metadata['content-type'] = 'application/grpc';
      const open = this.#open;
      this.#open = undefined;
      if (open !== undefined) {
        try {
          new PayloadReader(open, this.#metadataAt).metadata(metadata);
        } catch {
          // A malformed block: the call sees what could be read.
        }
      }
      this.#metadata = metadata;
    }
    return this.#metadata;
  }

  get peer(): Peer {
    return this.#session.peer;
  }

  sendMessage(bytes: Uint8Array): boolean {
    if (!this.prepareSend(bytes.byteLength)) return true;
    return this.#sender.send(bytes);
  }

  sendMessageParts(parts: readonly Uint8Array[]): boolean {
    let length = 0;
    for (const part of parts) length += part.byteLength;
    if (!this.prepareSend(length)) return true;
    return this.#sender.sendParts(parts, length);
  }

  onDrain(callback: () => void): void {
    if (this.finished) return;
    this.#sender.onDrain(callback);
  }

  /** @internal A frame of this call from the session. */
  frame(type: number, flags: number, payload: Buffer): void {
    switch (type) {
      case MESSAGE:
        if (this.readerClosed) return;
        if (!this.#receiver.receive(flags, payload)) {
          this.fail(this.#receiver.failure as CallStatus);
          return;
        }
        if (this.reader !== undefined) this.deliver();
        return;
      case HALF_CLOSE:
        this.inboundEnded = true;
        if (!this.readerClosed && this.reader !== undefined) this.deliver();
        return;
      case WINDOW:
        this.#sender.credit(payload.readUInt32BE(0));
        return;
      case RESET: {
        const code = payload.readUInt32BE(0);
        const message = code === CANCEL ? 'the client cancelled the call' : `the stream was reset (${http2ErrorName(code)})`;
        if (this.endedBy({ code: GrpcStatus.CANCELLED, message })) this.close();
        return;
      }
      default:
        break;
    }
  }

  /** @internal The connection is gone; the session forgets the call itself. */
  connectionLost(reason: string): void {
    this.clearDeadline();
    this.#sender.discard();
    this.#receiver.discard();
    this.endedBy({ code: GrpcStatus.CANCELLED, message: `the connection was lost: ${reason}` });
  }

  /** @internal The trailers, once the messages before them are out. */
  sendFinal(): void {
    const status = this.#trailerStatus as CallStatus;
    this.state = DONE;
    const session = this.#session;
    if (!session.destroyed) {
      const code = Number.isInteger(status.code) && status.code >= 0 ? status.code : GrpcStatus.UNKNOWN;
      const message = status.message ?? '';
      session.batch.trailers(this.id, code, message, this.#fitting(this.#trailerMetadata, 8 + message.length * 3));
      session.schedule();
    }
    this.close();
  }

  // --- the lane's side of OwnServerCall ---------------------------------------------------------------

  protected respond(metadata: Metadata | undefined): boolean {
    this.state = STREAMING;
    const session = this.#session;
    session.batch.headers(this.id, this.#fitting(metadata, 0));
    session.schedule();
    return true;
  }

  protected finish(status: CallStatus, trailers: Metadata | undefined): void {
    this.state = ENDING;
    this.#trailerStatus = status;
    this.#trailerMetadata = trailers;
    this.#sender.finish(this);
  }

  protected sendCancel(): void {
    const session = this.#session;
    if (session.destroyed) return;
    session.batch.u32(RESET, 0, this.id, CANCEL);
    session.schedule();
  }

  protected close(): void {
    this.#sender.discard();
    this.#receiver.discard();
    this.#session.callDone(this);
  }

  protected nextMessage(): Buffer | undefined {
    return this.#receiver.read();
  }

  protected afterDelivery(): CallStatus | undefined {
    return undefined;
  }

  protected get atBoundary(): boolean {
    return this.#receiver.atBoundary;
  }

  /** `metadata`, or none when it would not fit in one frame the client accepts (the status still goes out). */
  #fitting(metadata: Metadata | undefined, extra: number): Metadata | undefined {
    if (metadata === undefined) return undefined;
    const limit = this.#session.peerLimits.maxFrameBytes;
    if (metadataBound(metadata) + extra <= limit) return metadata;
    this.#router.logger.warn({ path: this.path, limit }, 'lane response metadata is over the frame limit; sent without it');
    return undefined;
  }
}
