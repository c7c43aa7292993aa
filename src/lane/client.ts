import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { CallSignal } from '../invoke/call-signal.js';
import { CourierError, GrpcStatus, errorMessage } from '../errors/index.js';
import type { CallOpener, CallOptions, CallResult, ClientCall, ClientReader, TransportFailure } from '../grpc/call.js';
import { targetLabel } from '../grpc/channel.js';
import type { ChannelTarget } from '../grpc/connection.js';
import { SessionKeeper } from '../grpc/keepalive.js';
import { forGrpcPeersOnly, type Metadata, type ReceivedMetadata } from '../grpc/metadata.js';
import { grpcCodeForRstCode, http2ErrorName } from '../grpc/status.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../grpc/framing.js';
import { silentLogger, type Logger } from '../observability/logging/index.js';
import { IdTable } from '../util/call-tables.js';
import { DEFAULT_LIMITS, LaneEndpoint } from './endpoint.js';
import { StreamReceiver, StreamSender, type FinalFrame } from './stream.js';
import {
  CANCEL,
  emptyMetadata,
  HALF_CLOSE,
  HEADERS,
  LANE_PROTOCOL,
  MESSAGE,
  NO_TIMEOUT,
  openFrameBound,
  PayloadReader,
  PROTOCOL_ERROR,
  REFUSED_STREAM,
  RESET,
  TRAILERS,
  WINDOW,
} from './wire.js';

/** The settings of a lane channel, as its connections and calls use them. */
export interface LaneChannelSettings {
  readonly connectTimeoutMs: number;
  readonly pingIntervalMs: number;
  readonly pingTimeoutMs: number;
  /**
   * Silence detection: while calls are waiting on a connection and nothing at all has arrived on it
   * for this long, PING the peer (0: never).
   */
  readonly silenceMs: number;
  /**
   * A silence PING unanswered for this long (with nothing else arriving either) means the connection
   * is dead: it is destroyed and its calls fail `reset` at once.
   */
  readonly silenceAckTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxSendMessageBytes: number;
  readonly maxReceiveMessageBytes: number;
  /**
   * Opens the socket to the target. With TLS (`secure`), the socket must offer ALPN
   * `courier-lane/1` (and may offer `h2`): the lane is used only when the server picks it.
   */
  readonly createConnection: (target: ChannelTarget) => Duplex;
  readonly secure: boolean;
  /** How long a target found not to speak the lane is called over gRPC before it is asked again. */
  readonly recheckMs: number;
  readonly logger: Logger;
}

/**
 * Lane channel settings: the same defaults as a gRPC channel's, plus silence detection (a lane peer is
 * always a Courier sidecar, which answers PINGs at once however slow its app is: 300 ms of silence
 * while calls wait, then 700 ms for the PING's answer), plaintext TCP, a 5-minute recheck.
 */
export function laneChannelSettings(overrides: Partial<LaneChannelSettings> = {}): LaneChannelSettings {
  return {
    connectTimeoutMs: 5000,
    pingIntervalMs: 10_000,
    pingTimeoutMs: 5000,
    silenceMs: 300,
    silenceAckTimeoutMs: 700,
    idleTimeoutMs: 180_000,
    maxSendMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
    maxReceiveMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
    createConnection: (target) => netConnect({ host: target.host, port: target.port, noDelay: true }),
    secure: false,
    recheckMs: 5 * 60_000,
    logger: silentLogger(),
    ...overrides,
  };
}

/** What a lane connection tells its channel. */
interface ConnectionOwner {
  readonly label: string;
  readonly target: ChannelTarget;
  readonly settings: LaneChannelSettings;
  connectionReady(connection: LaneConnection): void;
  connectionNotLane(connection: LaneConnection): void;
  connectionFailed(connection: LaneConnection | undefined, reason: string): void;
  connectionClosed(connection: LaneConnection): void;
}

const CONNECTING = 0;
const READY = 1;
const DRAINING = 2;
const CLOSED = 3;

/** The largest stream id; a connection that reaches it takes no more calls. */
const MAX_STREAM_ID = 0x7fff_ffff;

/**
 * The client end of one lane connection: the preface exchange decides whether the peer speaks the
 * lane at all; then calls are streams on it. It knows, for calls that fail without a status, what
 * the server can have seen: a GOAWAY's last stream id tells which calls it never processed.
 */
export class LaneConnection extends LaneEndpoint {
  readonly #owner: ConnectionOwner;
  readonly #keeper: SessionKeeper;
  readonly #calls = new IdTable<LaneClientCall>();
  #state = CONNECTING;
  #nextId = 1;
  #goawayLastStreamId: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #users = 0;
  /** Resolves once the socket is closed. */
  readonly done: Promise<void>;
  #resolveDone: (() => void) | undefined;

  constructor(owner: ConnectionOwner) {
    const settings = owner.settings;
    super(settings.createConnection(owner.target), DEFAULT_LIMITS);
    this.#owner = owner;
    this.done = new Promise((resolve) => {
      this.#resolveDone = resolve;
    });
    this.#keeper = new SessionKeeper(this, {
      pingIntervalMs: settings.pingIntervalMs,
      pingTimeoutMs: settings.pingTimeoutMs,
      idleTimeoutMs: settings.idleTimeoutMs,
      onIdle: () => this.#idle(),
      onPingTimeout: () => {
        settings.logger.debug({ target: owner.label }, 'lane keepalive ping timed out; dropping the connection');
        this.destroy(`keepalive ping not acknowledged within ${settings.pingTimeoutMs}ms`);
      },
      silence: {
        silenceMs: settings.silenceMs,
        ackTimeoutMs: settings.silenceAckTimeoutMs,
        received: () => this.bytesReceived,
        onDead: () => {
          settings.logger.debug({ target: owner.label, calls: this.#calls.size }, 'lane connection went silent with calls waiting; dropping it');
          this.destroy(`nothing received for ${settings.silenceMs}ms while calls were waiting, and a ping was not acknowledged within ${settings.silenceAckTimeoutMs}ms`);
        },
      },
    });
    this.#timer = setTimeout(() => this.destroy(`timed out after ${settings.connectTimeoutMs}ms`), settings.connectTimeoutMs);
    this.#timer.unref();
    const socket = this.socket;
    socket.once(settings.secure ? 'secureConnect' : 'connect', () => {
      if (settings.secure && (socket as TLSSocket).alpnProtocol !== LANE_PROTOCOL) {
        this.notLane();
        return;
      }
      this.sendPreface();
    });
    this.listen();
  }

  get closed(): boolean {
    return this.#state >= DRAINING;
  }

  /** True when a new call may be opened here now. */
  get accepting(): boolean {
    return this.#state === READY && this.#calls.size < this.peerLimits.maxConcurrentStreams && this.#nextId < MAX_STREAM_ID;
  }

  get connecting(): boolean {
    return this.#state === CONNECTING;
  }

  /** @internal Opens a stream for `call` (the connection is `accepting`). */
  attach(call: LaneClientCall): number {
    const id = this.#nextId;
    this.#nextId += 2;
    this.#calls.set(id, call);
    this.#keeper.callStarted();
    if (this.#users++ === 0 && this.#state !== CONNECTING) (this.socket as Socket).ref();
    return id;
  }

  /** @internal The call's stream is over (status, reset, or cancelled here). */
  callDone(call: LaneClientCall, id: number): void {
    if (this.#calls.get(id) !== call) return;
    this.#calls.delete(id);
    this.#keeper.callEnded();
    if (--this.#users === 0) (this.socket as Socket).unref();
    if (this.#state === DRAINING && this.#calls.size === 0) this.#end();
  }

  protected established(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#state !== CONNECTING) return;
    this.#state = READY;
    this.#keeper.start();
    // The socket keeps the process alive only while calls use it (and while it connects for them).
    if (this.#users === 0) (this.socket as Socket).unref();
    this.#owner.connectionReady(this);
  }

  protected streamFrame(type: number, flags: number, id: number, payload: Buffer): void {
    if (type !== HEADERS && type !== MESSAGE && type !== TRAILERS && type !== RESET && type !== WINDOW) {
      this.protocolError(PROTOCOL_ERROR, `a server sent a frame of type ${type}`);
      return;
    }
    // Frames of a call already over (cancelled here) are expected; they crossed the reset.
    this.#calls.get(id)?.frame(type, flags, payload);
  }

  protected goawayReceived(lastStreamId: number, code: number, reason: string): void {
    this.#goawayLastStreamId = lastStreamId;
    this.#owner.settings.logger.debug({ target: this.#owner.label, code, lastStreamId, reason }, 'lane connection received GOAWAY');
    if (this.#state === READY || this.#state === CONNECTING) this.#state = DRAINING;
    for (const [id, call] of this.#calls.entries()) {
      if (id > lastStreamId) call.connectionLost('refused', `${this.#owner.label} is going away (GOAWAY) and did not process the call`);
    }
    if (this.#calls.size === 0) this.#end();
  }

  protected notLane(): void {
    if (this.#state !== CONNECTING) {
      this.destroy('the peer stopped speaking the lane');
      return;
    }
    this.#state = CLOSED;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#owner.connectionNotLane(this);
    this.socket.destroy();
  }

  protected lastPeerStream(): number {
    return 0;
  }

  protected connectionClosed(): void {
    const state = this.#state;
    this.#state = CLOSED;
    this.#keeper.stop();
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (state === CONNECTING) {
      this.#owner.connectionFailed(this, this.failure ?? 'the connection closed before the lane was established');
    } else {
      const label = this.#owner.label;
      const last = this.#goawayLastStreamId;
      const reason = this.failure ?? 'the connection closed';
      for (const [id, call] of this.#calls.entries()) {
        if (last !== undefined && id > last) call.connectionLost('refused', `${label} is going away (GOAWAY) and did not process the call`);
        else call.connectionLost('reset', `the connection to ${label} was lost: ${reason}`);
      }
    }
    this.#calls.clear();
    this.#owner.connectionClosed(this);
    this.#resolveDone?.();
  }

  #idle(): void {
    if (this.#state !== READY) return;
    this.#state = DRAINING;
    if (this.#calls.size === 0) this.#end();
  }

  #end(): void {
    this.flush();
    const socket = this.socket;
    socket.once('finish', () => socket.destroy());
    socket.end();
  }
}

/** What a call needs from its channel. */
interface CallOwner {
  readonly label: string;
  readonly settings: LaneChannelSettings;
}

const OPEN_PHASE = 0;
const CLOSING = 1;
const DONE_PHASE = 2;

const EMPTY_METADATA: ReceivedMetadata = Object.freeze(emptyMetadata());

function deliverEndLater(call: { deliverEnd(): void }): void {
  call.deliverEnd();
}

/**
 * One call on a lane connection (see {@link ClientCall}); created only once the connection is ready,
 * so it always has its stream. `pause()` stops delivery and the return of credit, so the server's
 * sends soon report a full buffer.
 */
export class LaneClientCall implements ClientCall, FinalFrame {
  readonly path: string;
  readonly #owner: CallOwner;
  readonly #connection: LaneConnection;
  readonly #id: number;
  readonly #deadline: number | undefined;
  readonly #signal: CallSignal | undefined;
  readonly #sender: StreamSender;
  readonly #receiver: StreamReceiver;

  #phase = OPEN_PHASE;
  #reader: ClientReader | undefined;
  #paused = false;
  #delivering = false;
  #unreadHeaders: ReceivedMetadata | undefined;
  #headersReceived = false;
  #halfClosed = false;
  #streamOpen = true;
  #result: CallResult | undefined;
  #endDelivered = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(owner: CallOwner, connection: LaneConnection, path: string, options: CallOptions) {
    this.#owner = owner;
    this.#connection = connection;
    this.path = path;
    this.#deadline = options.deadline;
    this.#signal = options.signal;
    this.#id = connection.attach(this);
    this.#sender = new StreamSender(connection, this.#id, connection.peerLimits.initialWindow);
    this.#receiver = new StreamReceiver(connection, this.#id, owner.settings.maxReceiveMessageBytes);
  }

  /**
   * @internal Sends OPEN, arming the deadline and the signal; a call whose signal already aborted or
   * whose deadline already passed is finished instead, without being sent.
   */
  start(metadata: Metadata | undefined): void {
    const signal = this.#signal;
    if (signal?.aborted === true) {
      this.#streamOpen = false;
      this.#connection.callDone(this, this.#id);
      this.handleEvent();
      return;
    }
    let timeout = NO_TIMEOUT;
    const deadline = this.#deadline;
    if (deadline !== undefined) {
      const remaining = Math.ceil(deadline - Date.now());
      if (remaining <= 0) {
        this.#streamOpen = false;
        this.#connection.callDone(this, this.#id);
        this.#finish(this.#local(GrpcStatus.DEADLINE_EXCEEDED, 'deadline exceeded before the call was sent', undefined), true);
        return;
      }
      timeout = Math.min(remaining, NO_TIMEOUT - 1);
      this.#timer = setTimeout(LaneClientCall.#deadlineExpired, remaining, this);
      this.#timer.unref();
    }
    const connection = this.#connection;
    if (openFrameBound(this.path, metadata) > connection.peerLimits.maxFrameBytes) {
      this.#streamOpen = false;
      connection.callDone(this, this.#id);
      this.#finish(this.#local(GrpcStatus.INTERNAL, `the request could not be sent: its metadata is over ${connection.peerLimits.maxFrameBytes} bytes`, undefined), true);
      return;
    }
    signal?.addEventListener('abort', this);
    connection.batch.open(this.#id, 0, timeout, this.path, metadata);
    connection.schedule();
  }

  setReader(reader: ClientReader): void {
    if (this.#reader !== undefined) throw new CourierError('ERR_INTERNAL', `setReader called twice on a call to ${this.path}`);
    this.#reader = reader;
    if (this.#phase === DONE_PHASE) {
      process.nextTick(deliverEndLater, this);
      return;
    }
    const headers = this.#unreadHeaders;
    if (headers !== undefined) {
      this.#unreadHeaders = undefined;
      reader.headers(headers);
    }
    this.#pump();
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#pump();
  }

  sendMessage(bytes: Uint8Array): boolean {
    if (!this.#canSend(bytes.byteLength)) return true;
    return this.#sender.send(bytes);
  }

  sendMessageParts(parts: readonly Uint8Array[]): boolean {
    let length = 0;
    for (const part of parts) length += part.byteLength;
    if (!this.#canSend(length)) return true;
    return this.#sender.sendParts(parts, length);
  }

  onDrain(callback: () => void): void {
    if (this.#phase !== OPEN_PHASE || !this.#streamOpen) return;
    this.#sender.onDrain(callback);
  }

  end(): void {
    if (this.#halfClosed) return;
    this.#halfClosed = true;
    if (this.#streamOpen) this.#sender.finish(this);
  }

  /** @internal The half-close, once the messages before it are out. */
  sendFinal(): void {
    if (!this.#streamOpen) return;
    const connection = this.#connection;
    connection.batch.head(HALF_CLOSE, 0, this.#id, 0);
    connection.schedule();
  }

  cancel(): void {
    this.#terminate(GrpcStatus.CANCELLED, 'the call was cancelled by the client', true);
  }

  /** @internal The `abort` listener of `options.signal`. */
  handleEvent(): void {
    const reason: unknown = this.#signal?.reason;
    const detail = reason instanceof Error ? `: ${reason.message}` : '';
    this.#terminate(GrpcStatus.CANCELLED, `the call was cancelled${detail}`, true);
  }

  /** @internal A frame of this call. */
  frame(type: number, flags: number, payload: Buffer): void {
    if (this.#phase !== OPEN_PHASE) return;
    switch (type) {
      case MESSAGE:
        if (!this.#receiver.receive(flags, payload)) {
          const failure = this.#receiver.failure;
          this.#terminate(failure?.code ?? GrpcStatus.INTERNAL, failure?.message ?? '', false);
          return;
        }
        this.#pump();
        return;
      case HEADERS: {
        this.#headersReceived = true;
        const metadata = new PayloadReader(payload).metadata(emptyMetadata());
        if (this.#reader === undefined) this.#unreadHeaders = metadata;
        else this.#reader.headers(metadata);
        return;
      }
      case TRAILERS: {
        const reader = new PayloadReader(payload);
        const code = reader.u32();
        const message = reader.string(reader.u32());
        const trailers = reader.metadata(emptyMetadata());
        this.#closeStream();
        this.#halfClosed = true;
        this.#result = { code, message, trailers, headersReceived: this.#headersReceived };
        this.#phase = CLOSING;
        this.#pump();
        return;
      }
      case RESET:
        this.#closeStream();
        this.#finish(this.#resetResult(payload.readUInt32BE(0)), false);
        return;
      case WINDOW:
        this.#sender.credit(payload.readUInt32BE(0));
        return;
      default:
        break;
    }
  }

  /** @internal The connection is gone (or going away without this call). */
  connectionLost(transport: TransportFailure, message: string): void {
    this.#closeStream();
    this.#finish(this.#local(GrpcStatus.UNAVAILABLE, message, transport), false);
  }

  /** @internal */
  deliverEnd(): void {
    const reader = this.#reader;
    const result = this.#result;
    if (this.#endDelivered || reader === undefined || result === undefined) return;
    this.#endDelivered = true;
    reader.end(result);
  }

  // --- internals ---------------------------------------------------------------------------------

  #canSend(length: number): boolean {
    if (this.#phase !== OPEN_PHASE || this.#halfClosed || !this.#streamOpen) return false;
    const max = this.#owner.settings.maxSendMessageBytes;
    if (length > max) {
      this.#terminate(GrpcStatus.RESOURCE_EXHAUSTED, `trying to send message larger than max (${length} vs. ${max})`, true);
      return false;
    }
    return true;
  }

  #resetResult(code: number): CallResult {
    const label = this.#owner.label;
    if (code === REFUSED_STREAM) return this.#local(GrpcStatus.UNAVAILABLE, `${label} refused the call (REFUSED_STREAM)`, 'refused');
    const grpcCode = grpcCodeForRstCode(code);
    if (grpcCode === GrpcStatus.CANCELLED && this.#deadline !== undefined && Date.now() >= this.#deadline) {
      return this.#local(GrpcStatus.DEADLINE_EXCEEDED, 'deadline exceeded', undefined);
    }
    return this.#local(grpcCode, `${label} reset the stream (${http2ErrorName(code)})`, 'reset');
  }

  #local(code: number, message: string, transport: TransportFailure | undefined): CallResult {
    return transport === undefined
      ? { code, message, trailers: EMPTY_METADATA, headersReceived: this.#headersReceived }
      : { code, message, trailers: EMPTY_METADATA, headersReceived: this.#headersReceived, transport };
  }

  /** The stream is over on the wire: the connection forgets it. */
  #closeStream(): void {
    if (!this.#streamOpen) return;
    this.#streamOpen = false;
    this.#sender.discard();
    this.#connection.callDone(this, this.#id);
  }

  /** Ends the call from this side: a local result, and a reset of the stream if it is still open. */
  #terminate(code: number, message: string, deferEnd: boolean): void {
    if (this.#phase === DONE_PHASE) return;
    if (this.#streamOpen) {
      const connection = this.#connection;
      if (!connection.destroyed) {
        connection.batch.u32(RESET, 0, this.#id, CANCEL);
        connection.schedule();
      }
      this.#closeStream();
    }
    this.#finish(this.#local(code, message, undefined), deferEnd);
  }

  #finish(result: CallResult, deferEnd: boolean): void {
    if (this.#phase === DONE_PHASE) return;
    this.#phase = DONE_PHASE;
    this.#result = result;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    this.#signal?.removeEventListener('abort', this);
    this.#sender.discard();
    this.#receiver.discard();
    if (deferEnd) process.nextTick(deliverEndLater, this);
    else this.deliverEnd();
  }

  #pump(): void {
    const reader = this.#reader;
    if (this.#delivering || reader === undefined) return;
    const receiver = this.#receiver;
    this.#delivering = true;
    try {
      while (!this.#paused && this.#phase !== DONE_PHASE) {
        const message = receiver.read();
        if (message === undefined) break;
        reader.message(message);
      }
    } catch (err) {
      this.#delivering = false;
      this.#owner.settings.logger.error({ path: this.path, err: errorMessage(err) }, 'lane response reader threw');
      this.#terminate(GrpcStatus.INTERNAL, `the response reader failed: ${errorMessage(err)}`, false);
      return;
    }
    this.#delivering = false;
    if (this.#phase !== CLOSING || this.#paused) return;
    const result = this.#result as CallResult;
    if (result.code === GrpcStatus.OK && !receiver.atBoundary) {
      this.#finish(this.#local(GrpcStatus.INTERNAL, 'the server ended the stream inside a message', undefined), false);
      return;
    }
    this.#finish(result, false);
  }

  static #deadlineExpired(this: void, call: LaneClientCall): void {
    call.#timer = undefined;
    call.#terminate(GrpcStatus.DEADLINE_EXCEEDED, 'deadline exceeded', false);
  }
}

/** How much a call waiting for its connection buffers before `sendMessage` reports a full buffer. */
const PENDING_HIGH_WATER_MARK = 64 * 1024;

/**
 * A call made while no lane connection to the target is ready (the first call to a new address,
 * or after a connection was lost): it keeps what is sent until the connection is negotiated, then
 * passes everything to a lane call, or to a gRPC call when the peer turned out not to speak the
 * lane. Nothing is sent before the outcome is known, so a call is never sent twice or to a peer that
 * could mistake it for something else.
 */
class PendingCall implements ClientCall {
  readonly path: string;
  readonly metadata: Metadata | undefined;
  readonly options: CallOptions;
  readonly #channel: LaneChannel;
  #target: ClientCall | undefined;
  #reader: ClientReader | undefined;
  #paused = false;
  #messages: (Uint8Array | readonly Uint8Array[])[] = [];
  #bytes = 0;
  #halfClosed = false;
  #drains: (() => void)[] | undefined;
  #result: CallResult | undefined;
  #endDelivered = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(channel: LaneChannel, path: string, metadata: Metadata | undefined, options: CallOptions) {
    this.#channel = channel;
    this.path = path;
    this.metadata = metadata;
    this.options = options;
  }

  /** True once the call ended before it was handed on. */
  get done(): boolean {
    return this.#result !== undefined;
  }

  /** Arms the deadline and the signal; false (and finished) when the call must not be sent at all. */
  prepare(): boolean {
    const { signal, deadline } = this.options;
    if (signal?.aborted === true) {
      this.handleEvent();
      return false;
    }
    if (deadline !== undefined) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        this.fail(GrpcStatus.DEADLINE_EXCEEDED, 'deadline exceeded before the call was sent', undefined);
        return false;
      }
      this.#timer = setTimeout(() => this.fail(GrpcStatus.DEADLINE_EXCEEDED, 'deadline exceeded', undefined), remaining);
      this.#timer.unref();
    }
    signal?.addEventListener('abort', this);
    return true;
  }

  /** Hands the call over to `target`, replaying what was sent so far. */
  bind(target: ClientCall): void {
    this.#disarm();
    this.#target = target;
    if (this.#reader !== undefined) target.setReader(this.#reader);
    if (this.#paused) target.pause();
    const messages = this.#messages;
    this.#messages = [];
    this.#bytes = 0;
    for (const message of messages) {
      if (message instanceof Uint8Array) target.sendMessage(message);
      else target.sendMessageParts(message);
    }
    if (this.#halfClosed) target.end();
    const drains = this.#drains;
    this.#drains = undefined;
    if (drains !== undefined) for (const callback of drains) target.onDrain(callback);
  }

  /** Ends the call without sending it. */
  fail(code: number, message: string, transport: TransportFailure | undefined): void {
    if (this.#result !== undefined || this.#target !== undefined) return;
    this.#disarm();
    this.#channel.forget(this);
    this.#messages = [];
    this.#drains = undefined;
    this.#result =
      transport === undefined ? { code, message, trailers: EMPTY_METADATA, headersReceived: false } : { code, message, trailers: EMPTY_METADATA, headersReceived: false, transport };
    process.nextTick(deliverEndLater, this);
  }

  /** @internal */
  deliverEnd(): void {
    const reader = this.#reader;
    const result = this.#result;
    if (this.#endDelivered || reader === undefined || result === undefined) return;
    this.#endDelivered = true;
    reader.end(result);
  }

  setReader(reader: ClientReader): void {
    if (this.#reader !== undefined) throw new CourierError('ERR_INTERNAL', `setReader called twice on a call to ${this.path}`);
    this.#reader = reader;
    if (this.#target !== undefined) this.#target.setReader(reader);
    else if (this.#result !== undefined) process.nextTick(deliverEndLater, this);
  }

  pause(): void {
    this.#paused = true;
    this.#target?.pause();
  }

  resume(): void {
    this.#paused = false;
    this.#target?.resume();
  }

  sendMessage(bytes: Uint8Array): boolean {
    if (this.#target !== undefined) return this.#target.sendMessage(bytes);
    return this.#keep(bytes, bytes.byteLength);
  }

  sendMessageParts(parts: readonly Uint8Array[]): boolean {
    if (this.#target !== undefined) return this.#target.sendMessageParts(parts);
    let length = 0;
    for (const part of parts) length += part.byteLength;
    return this.#keep(parts, length);
  }

  onDrain(callback: () => void): void {
    if (this.#target !== undefined) {
      this.#target.onDrain(callback);
      return;
    }
    if (this.#result !== undefined) return;
    if (this.#bytes < PENDING_HIGH_WATER_MARK) process.nextTick(callback);
    else (this.#drains ??= []).push(callback);
  }

  end(): void {
    if (this.#target !== undefined) this.#target.end();
    else this.#halfClosed = true;
  }

  cancel(): void {
    if (this.#target !== undefined) this.#target.cancel();
    else this.fail(GrpcStatus.CANCELLED, 'the call was cancelled by the client', undefined);
  }

  /** @internal The `abort` listener of the signal, while the call waits. */
  handleEvent(): void {
    const reason: unknown = this.options.signal?.reason;
    const detail = reason instanceof Error ? `: ${reason.message}` : '';
    this.fail(GrpcStatus.CANCELLED, `the call was cancelled${detail}`, undefined);
  }

  #keep(message: Uint8Array | readonly Uint8Array[], length: number): boolean {
    if (this.#result !== undefined || this.#halfClosed) return true;
    const max = this.#channel.settings.maxSendMessageBytes;
    if (length > max) {
      this.fail(GrpcStatus.RESOURCE_EXHAUSTED, `trying to send message larger than max (${length} vs. ${max})`, undefined);
      return true;
    }
    this.#messages.push(message);
    this.#bytes += length;
    return this.#bytes < PENDING_HIGH_WATER_MARK;
  }

  #disarm(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    this.options.signal?.removeEventListener('abort', this);
  }
}

/**
 * Calls to one Courier sidecar over the lane, with gRPC as the fallback: the first connection to the
 * target negotiates; a target that does not speak the lane (a Dapr sidecar, or a Courier started with
 * `--internal-lane=false`) is called through `fallback` for `recheckMs`, then asked again.
 * Connections open lazily; another is opened when the open ones are at the server's limit of
 * concurrent calls. `close()` releases every socket and timer.
 */
export class LaneChannel implements CallOpener, ConnectionOwner {
  readonly label: string;
  readonly target: ChannelTarget;
  readonly settings: LaneChannelSettings;
  readonly #fallback: () => CallOpener;
  readonly #connections: LaneConnection[] = [];
  #waiting: PendingCall[] = [];
  #notLaneUntil = 0;
  #closed: Promise<void> | undefined;

  constructor(target: ChannelTarget, settings: LaneChannelSettings, fallback: () => CallOpener) {
    this.target = target;
    this.label = targetLabel(target);
    this.settings = settings;
    this.#fallback = fallback;
  }

  /** Whether calls currently go over the lane (true), over gRPC (false), or that is not known yet. */
  get mode(): 'lane' | 'grpc' | 'unknown' {
    if (this.#notLaneUntil > Date.now()) return 'grpc';
    return this.#connections.some((connection) => !connection.connecting) ? 'lane' : 'unknown';
  }

  get connectionCount(): number {
    return this.#connections.length;
  }

  /**
   * Starts a call to `path` with request `metadata`. Returns at once; set a reader, send messages,
   * then `end()` it. Failures are reported through the reader's `end`, never thrown.
   */
  call(path: string, metadata: Metadata = {}, options: CallOptions = {}): ClientCall {
    if (this.#notLaneUntil !== 0) {
      if (this.#notLaneUntil > Date.now()) return this.#fallback().call(path, metadata, options);
      this.#notLaneUntil = 0;
    }
    if (this.#closed === undefined) {
      for (const connection of this.#connections) {
        if (connection.accepting) return this.#open(connection, path, metadata, options);
      }
    }
    const pending = new PendingCall(this, path, metadata, options);
    if (this.#closed !== undefined) {
      pending.fail(GrpcStatus.UNAVAILABLE, `the channel to ${this.label} is closed; the call was not sent`, 'refused');
      return pending;
    }
    if (!pending.prepare()) return pending;
    this.#waiting.push(pending);
    if (!this.#connections.some((connection) => connection.connecting)) this.#connect();
    return pending;
  }

  /** @internal A waiting call finished before it was handed on. */
  forget(call: PendingCall): void {
    const at = this.#waiting.indexOf(call);
    if (at !== -1) this.#waiting.splice(at, 1);
  }

  /** Destroys every connection: waiting calls fail `refused`, calls in flight `reset`. Idempotent. */
  close(): Promise<void> {
    if (this.#closed === undefined) {
      const waiting = this.#waiting;
      this.#waiting = [];
      for (const call of waiting) call.fail(GrpcStatus.UNAVAILABLE, `the channel to ${this.label} was closed; the call was not sent`, 'refused');
      const connections = [...this.#connections];
      for (const connection of connections) connection.destroy('the channel was closed');
      this.#closed = Promise.all(connections.map((connection) => connection.done)).then(() => undefined);
    }
    return this.#closed;
  }

  // --- ConnectionOwner ---------------------------------------------------------------------------

  connectionReady(_connection: LaneConnection): void {
    this.settings.logger.debug({ target: this.label }, 'lane connection established');
    this.#flushWaiting();
  }

  connectionNotLane(_connection: LaneConnection): void {
    this.#notLaneUntil = Date.now() + this.settings.recheckMs;
    this.settings.logger.info({ target: this.label }, 'the peer does not speak the Courier lane; calling it over gRPC');
    const waiting = this.#waiting;
    this.#waiting = [];
    const fallback = this.#fallback();
    for (const call of waiting) {
      if (!call.done) call.bind(fallback.call(call.path, call.metadata ?? {}, call.options));
    }
  }

  connectionFailed(_connection: LaneConnection | undefined, reason: string): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const call of waiting) call.fail(GrpcStatus.UNAVAILABLE, `connection to ${this.label} failed: ${reason}`, 'connect-failed');
  }

  connectionClosed(connection: LaneConnection): void {
    const at = this.#connections.indexOf(connection);
    if (at !== -1) this.#connections.splice(at, 1);
  }

  // --- internals ---------------------------------------------------------------------------------

  #open(connection: LaneConnection, path: string, metadata: Metadata | undefined, options: CallOptions): LaneClientCall {
    const call = new LaneClientCall(this, connection, path, options);
    call.start(forGrpcPeersOnly(metadata) ? undefined : metadata);
    return call;
  }

  /** Hands waiting calls to ready connections; opens another connection for those left over. */
  #flushWaiting(): void {
    const waiting = this.#waiting;
    while (waiting.length > 0) {
      const connection = this.#connections.find((candidate) => candidate.accepting);
      if (connection === undefined) break;
      const call = waiting.shift() as PendingCall;
      if (!call.done) call.bind(this.#open(connection, call.path, call.metadata, call.options));
    }
    if (waiting.length > 0 && !this.#connections.some((candidate) => candidate.connecting)) this.#connect();
  }

  #connect(): void {
    let connection: LaneConnection;
    try {
      connection = new LaneConnection(this);
    } catch (err) {
      // createConnection or Node's connect() threw (e.g. an invalid port): nothing was sent.
      this.connectionFailed(undefined, errorMessage(err));
      return;
    }
    this.#connections.push(connection);
  }
}
