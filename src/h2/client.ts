import { connect as netConnect, type Socket } from 'node:net';
import type { CallSignal } from '../invoke/call-signal.js';
import { CourierError, GrpcStatus, errorMessage } from '../errors/index.js';
import type { CallOpener, CallOptions, CallResult, ClientCall, ClientReader, TransportFailure } from '../grpc/call.js';
import { DEFAULT_MAX_MESSAGE_BYTES, MessageDecoder, messageHead } from '../grpc/framing.js';
import { SessionKeeper } from '../grpc/keepalive.js';
import { isGrpcContentType, metadataToSend, type Metadata, type ReceivedMetadata } from '../grpc/metadata.js';
import { decodeGrpcMessage, grpcCodeForHttpStatus, grpcCodeForRstCode, http2ErrorName, parseGrpcStatus } from '../grpc/status.js';
import { encodeGrpcTimeout } from '../grpc/timeout.js';
import { silentLogger, type Logger } from '../observability/logging/index.js';
import { IdTable } from '../util/call-tables.js';
import { version } from '../version.js';
import { encodeMetadata, H2Endpoint, type SendWaiter } from './endpoint.js';
import { CANCEL, CLIENT_PREFACE, ENHANCE_YOUR_CALM, FLOW_CONTROL_ERROR, NO_ERROR, PROTOCOL_ERROR, REFUSED_STREAM, SETTINGS_ENABLE_PUSH } from './frames.js';
import { DECODED, LIST_TOO_LARGE, type HpackEncoder } from './hpack.js';
import { Inbox, Outbox } from './outbox.js';

/** Where a channel connects: a name or an IP literal (IPv6 without brackets), and a port. */
export interface H2Target {
  readonly host: string;
  readonly port: number;
}

export interface H2ChannelOptions {
  /** The TCP connection and the server's first SETTINGS must arrive within this. Default 5000. */
  readonly connectTimeoutMs?: number | undefined;
  /** Largest response message accepted; larger ones fail the call with RESOURCE_EXHAUSTED. Default 4 MiB. */
  readonly maxReceiveMessageBytes?: number | undefined;
  /** Largest request message; a larger one fails the call with RESOURCE_EXHAUSTED. Default 4 MiB. */
  readonly maxSendMessageBytes?: number | undefined;
  /** Keepalive: PING the server this often while connected (0: never). Default 10 s. */
  readonly pingIntervalMs?: number | undefined;
  /** A PING not acknowledged within this destroys the connection; its calls fail `reset`. Default 5 s. */
  readonly pingTimeoutMs?: number | undefined;
  /** A connection without calls for this long is closed (0: never). Default 3 minutes. */
  readonly idleTimeoutMs?: number | undefined;
  readonly logger?: Logger | undefined;
}

/** What a call and a connection need from their channel. */
interface ChannelCore {
  readonly label: string;
  readonly authority: string;
  readonly target: H2Target;
  readonly maxSendMessageBytes: number;
  readonly maxReceiveMessageBytes: number;
  readonly connectTimeoutMs: number;
  readonly pingIntervalMs: number;
  readonly pingTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly logger: Logger;
  dispatch(call: H2ClientCall): void;
  connectionClosed(connection: H2ClientSession): void;
}

const USER_AGENT = `grpc-node-courier/${version}`;
const GRPC = 'application/grpc';
/** The connection-level receive window (the protocol's 64 KiB would be shared by all streams). */
const CONNECTION_WINDOW_BYTES = 16 * 1024 * 1024;
/** The largest response header list accepted (name + value + 32 per field). */
const MAX_HEADER_LIST_BYTES = 65_535;
const EMPTY_METADATA: ReceivedMetadata = Object.freeze(Object.create(null) as ReceivedMetadata);
const NO_OPTIONS: CallOptions = {};
/** The largest stream id (31 bits). */
const MAX_STREAM_ID = 0x7fff_ffff;
let setNextStreamId: (session: H2ClientSession, id: number) => void;
let connectionsOf: (channel: H2Channel) => readonly H2ClientSession[];

/** For tests: a connection's next stream id (to reach the end of the id space), and a channel's connections. */
export const forTests = {
  setNextStreamId: (session: H2ClientSession, id: number): void => setNextStreamId(session, id),
  connections: (channel: H2Channel): readonly H2ClientSession[] => connectionsOf(channel),
};

/**
 * - `connecting`: the socket opens and the server's first SETTINGS is awaited; calls queue here
 *   (no stream yet, so a failure is cleanly "never sent").
 * - `ready`: calls get streams, up to the server's SETTINGS_MAX_CONCURRENT_STREAMS.
 * - `draining`: GOAWAY received, or idle: no new calls; open ones finish.
 * - `closed`: the socket is gone.
 */
const CONNECTING = 0;
const READY = 1;
const DRAINING = 2;
const CLOSED = 3;

/**
 * The client end of one plaintext HTTP/2 connection to a gRPC server (Courier's own, in place of
 * `node:http2`; see src/h2/server.ts for why). It decides, for calls that fail without a status,
 * what the server can have seen: calls queued while connecting were never sent, and GOAWAY's
 * last-stream-id tells which streams the server never processed.
 */
export class H2ClientSession extends H2Endpoint {
  /** Resolves once the socket is closed. */
  readonly closedPromise: Promise<void>;
  goawayLastStreamId: number | undefined;

  readonly #core: ChannelCore;
  readonly #keeper: SessionKeeper;
  readonly #calls = new IdTable<H2ClientCall>();
  #state = CONNECTING;
  #queue: H2ClientCall[] = [];
  #nextStreamId = 1;
  static {
    setNextStreamId = (session, id) => {
      session.#nextStreamId = id;
    };
  }
  #connectTimer: NodeJS.Timeout | undefined;
  #connectFailure: string | undefined;
  #resolveClosed: (() => void) | undefined;
  /** Queued calls plus open streams; the socket is ref'ed only while this is positive. */
  #users = 0;
  #ending = false;

  constructor(core: ChannelCore, socket: Socket) {
    super(socket, { maxConcurrentStreams: 0, connectionWindow: CONNECTION_WINDOW_BYTES, maxHeaderListBytes: MAX_HEADER_LIST_BYTES }, false);
    this.#core = core;
    this.closedPromise = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    this.#keeper = new SessionKeeper(this, {
      pingIntervalMs: core.pingIntervalMs,
      pingTimeoutMs: core.pingTimeoutMs,
      idleTimeoutMs: core.idleTimeoutMs,
      onIdle: () => this.#idle(),
      onPingTimeout: () => {
        this.failure ??= `keepalive ping not acknowledged within ${core.pingTimeoutMs}ms`;
        core.logger.debug({ target: core.label }, 'gRPC keepalive ping timed out; dropping the connection');
        this.destroy(this.failure);
      },
    });
    this.#connectTimer = setTimeout(() => {
      this.#connectTimer = undefined;
      if (this.#state !== CONNECTING) return;
      this.#connectFailure = `timed out after ${core.connectTimeoutMs}ms`;
      this.destroy(this.#connectFailure);
    }, core.connectTimeoutMs);
    this.#connectTimer.unref();
    socket.on('error', (err: Error) => {
      if (this.#state === CONNECTING) this.#connectFailure ??= errorMessage(err);
    });
    this.listen();
    socket.unref();
    this.out.bytes(CLIENT_PREFACE);
    this.sendSettings([[SETTINGS_ENABLE_PUSH, 0]]);
  }

  get closed(): boolean {
    return this.#state >= DRAINING || this.destroyed;
  }

  /** True when a new call may be placed here. */
  get accepting(): boolean {
    return this.#state === CONNECTING || (this.#state === READY && this.#calls.size < this.peerMaxConcurrentStreams && this.#nextStreamId <= MAX_STREAM_ID);
  }

  /** Queues the call (while connecting) or opens its stream. */
  attach(call: H2ClientCall): void {
    this.#retain();
    if (this.#state === CONNECTING) {
      this.#queue.push(call);
      call.queued(this);
      return;
    }
    this.#start(call);
  }

  /** @internal A queued call finished before it got a stream. */
  dequeue(call: H2ClientCall): void {
    const at = this.#queue.indexOf(call);
    if (at === -1) return;
    this.#queue.splice(at, 1);
    this.#release();
  }

  /** @internal A call with a stream is over. */
  streamClosed(call: H2ClientCall): void {
    if (this.#calls.get(call.id) !== call) return;
    this.#calls.delete(call.id);
    this.#keeper.callEnded();
    this.#release();
    if (this.#state === DRAINING && this.#calls.size === 0) this.#end();
  }

  /** Closes the connection now: queued calls fail `refused` (never sent), open ones `reset`. */
  shutdown(reason: string): void {
    if (this.#state === CONNECTING) this.#failQueue(`${reason}; the call was not sent`, 'refused');
    this.destroy(reason);
  }

  /** Why the connection was lost, for the calls it fails. */
  get lossReason(): string {
    return this.failure ?? 'the connection closed';
  }

  protected established(): void {
    if (this.#connectTimer !== undefined) {
      clearTimeout(this.#connectTimer);
      this.#connectTimer = undefined;
    }
    if (this.#state !== CONNECTING) return;
    this.#state = READY;
    this.#keeper.start();
    const queue = this.#queue;
    this.#queue = [];
    for (const call of queue) {
      if (this.accepting) {
        this.#start(call);
      } else {
        this.#release();
        this.#core.dispatch(call);
      }
    }
  }

  protected headerBlock(stream: number, endStream: boolean, block: Buffer, start: number, end: number): void {
    const fields = this.decodeFields(block, start, end);
    if (fields === undefined) return;
    const result = this.decodeResult;
    const call = this.#calls.get(stream);
    if (call === undefined) {
      if (stream >= this.#nextStreamId || (stream & 1) === 0) this.protocolError(PROTOCOL_ERROR, `HEADERS on stream ${stream}, which was never opened`);
      return;
    }
    if (result !== DECODED) {
      call.brokenByServer(result === LIST_TOO_LARGE ? ENHANCE_YOUR_CALM : PROTOCOL_ERROR, 'the server sent headers this client does not accept');
      return;
    }
    call.headerBlock(fields, endStream);
  }

  protected data(stream: number, endStream: boolean, payload: Buffer, length: number): void {
    const call = this.#calls.get(stream);
    if (call === undefined) {
      if (stream >= this.#nextStreamId || (stream & 1) === 0) {
        this.protocolError(PROTOCOL_ERROR, `DATA on stream ${stream}, which was never opened`);
        return;
      }
      this.consumed(length);
      return;
    }
    call.data(payload, length, endStream);
  }

  protected reset(stream: number, code: number): void {
    this.#calls.get(stream)?.resetByServer(code);
  }

  protected streamCredit(stream: number, increment: number): void {
    this.#calls.get(stream)?.credit(increment, false);
  }

  protected initialWindowChanged(delta: number): void {
    for (const call of this.#calls.values()) call.credit(delta, true);
  }

  protected goawayReceived(lastStreamId: number, code: number): void {
    this.goawayLastStreamId = lastStreamId;
    this.#core.logger.debug({ target: this.#core.label, code, lastStreamId }, 'gRPC connection received GOAWAY');
    if (this.#state === CONNECTING) this.#failQueue(`${this.#core.label} is going away (GOAWAY); the call was not sent`, 'refused');
    if (this.#state < DRAINING) this.#state = DRAINING;
    // Streams above the last one the server processed were not processed: they fail `refused` now.
    for (const call of this.#calls.values()) if (call.id > lastStreamId) call.refused(`${this.#core.label} is going away (GOAWAY) and did not process the stream`);
    if (code !== NO_ERROR) {
      // An error: nghttp2 leaves the socket open after it, so the calls it processed would wait
      // for a close that never comes. They fail `reset` (their outcome is unknown).
      this.destroy(`${this.#core.label} sent GOAWAY (${http2ErrorName(code)})`);
      return;
    }
    if (this.#calls.size === 0) this.#end();
  }

  protected lastPeerStream(): number {
    return 0;
  }

  protected connectionClosed(): void {
    const was = this.#state;
    this.#state = CLOSED;
    this.#keeper.stop();
    if (this.#connectTimer !== undefined) clearTimeout(this.#connectTimer);
    if (was === CONNECTING) {
      const reason = this.#connectFailure ?? this.failure ?? 'the connection closed before HTTP/2 was established';
      this.#failQueue(`connection to ${this.#core.label} failed: ${reason}`, 'connect-failed');
    }
    const calls = this.#calls.values();
    this.#calls.clear();
    for (const call of calls) call.connectionLost(this.lossReason);
    this.#core.connectionClosed(this);
    this.#resolveClosed?.();
  }

  #start(call: H2ClientCall): void {
    const id = this.#nextStreamId;
    if (!call.open(this, id, this.encoder, this.#core)) {
      this.#release();
      return;
    }
    this.#nextStreamId += 2;
    // Stream ids are 31 bits: a connection that used them all takes no more calls and closes once
    // its last call is done; the channel opens another.
    if (this.#nextStreamId > MAX_STREAM_ID && this.#state === READY) this.#state = DRAINING;
    this.#calls.set(id, call);
    this.#keeper.callStarted();
  }

  #failQueue(message: string, transport: TransportFailure): void {
    const queue = this.#queue;
    this.#queue = [];
    for (const call of queue) {
      this.#release();
      call.failLocally(GrpcStatus.UNAVAILABLE, message, transport);
    }
  }

  #retain(): void {
    if (this.#users++ === 0 && !this.socket.destroyed) this.socket.ref();
  }

  #release(): void {
    if (--this.#users === 0 && !this.socket.destroyed) this.socket.unref();
  }

  #idle(): void {
    if (this.#state !== READY) return;
    this.#state = DRAINING;
    if (this.#calls.size === 0) this.#end();
  }

  #end(): void {
    if (this.destroyed || this.#ending) return;
    this.#ending = true;
    this.sendGoaway(0, NO_ERROR, '');
    this.flush();
    const socket = this.socket;
    socket.once('finish', () => socket.destroy());
    socket.end();
  }
}

/**
 * Call phases:
 * - `waiting`: no stream yet (dispatched, or queued on a connection that is still connecting);
 * - `open`: the stream exists;
 * - `closing`: the status arrived, but the paused reader has messages still to take;
 * - `done`: the result is decided; `end` was delivered or is about to be.
 */
const WAITING = 0;
const OPEN = 1;
const CLOSING = 2;
const DONE = 3;

/**
 * One outbound gRPC call on a {@link H2ClientSession} (see {@link ClientCall}). `pause()` returns no
 * credit to the server, so HTTP/2 flow control holds it back.
 */
export class H2ClientCall implements ClientCall, SendWaiter {
  readonly path: string;
  id = 0;
  readonly #core: ChannelCore;
  readonly #metadata: Metadata | undefined;
  readonly #deadline: number | undefined;
  readonly #signal: CallSignal | undefined;
  #phase = WAITING;
  #session: H2ClientSession | undefined;
  #outbox: Outbox | undefined;
  /** Messages sent before the stream exists, and who waits for room among them. */
  #early: Outbox | undefined;
  #earlyDrain: (() => void)[] | undefined;
  #halfClosed = false;
  #endSent = false;

  #reader: ClientReader | undefined;
  #paused = false;
  #delivering = false;
  #decoder: MessageDecoder | undefined;
  /** The response's flow control: the server's stream window, and what the reader has not taken yet. */
  readonly #inbox = new Inbox();
  #unreadHeaders: ReceivedMetadata | undefined;
  #headersReceived = false;
  /** The server ended its side (END_STREAM). */
  #inboundEnded = false;
  #statusReceived = false;
  #statusCode = 0;
  #statusMessage = '';
  #trailers: ReceivedMetadata = EMPTY_METADATA;

  #result: CallResult | undefined;
  #endDelivered = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(core: ChannelCore, path: string, metadata: Metadata | undefined, options: CallOptions) {
    this.#core = core;
    this.path = path;
    this.#metadata = metadata;
    this.#deadline = options.deadline;
    this.#signal = options.signal;
  }

  setReader(reader: ClientReader): void {
    if (this.#reader !== undefined) throw new CourierError('ERR_INTERNAL', `setReader called twice on a call to ${this.path}`);
    this.#reader = reader;
    if (this.#phase === DONE) {
      process.nextTick(H2ClientCall.#deliverEndLater, this);
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
    const length = bytes.byteLength;
    if (!this.#canSend(length)) return true;
    const outbox = this.#outboxFor();
    outbox.addOne(messageHead(length), bytes);
    return this.#afterQueue(outbox);
  }

  sendMessageParts(parts: readonly Uint8Array[]): boolean {
    let length = 0;
    for (const part of parts) length += part.byteLength;
    if (!this.#canSend(length)) return true;
    const outbox = this.#outboxFor();
    outbox.add(messageHead(length), parts, length);
    return this.#afterQueue(outbox);
  }

  onDrain(callback: () => void): void {
    if (this.#phase >= CLOSING) return;
    const session = this.#session;
    const outbox = this.#outbox;
    if (outbox === undefined || session === undefined) {
      const early = this.#early;
      if (early === undefined || !early.overHighWater) process.nextTick(callback);
      else (this.#earlyDrain ??= []).push(callback);
      return;
    }
    outbox.onDrain(session, this, callback);
  }

  end(): void {
    if (this.#halfClosed) return;
    this.#halfClosed = true;
    if (this.#phase === OPEN) this.sendMore();
  }

  cancel(): void {
    this.#terminate(GrpcStatus.CANCELLED, 'the call was cancelled by the client', true);
  }

  /** @internal The `abort` listener of `options.signal` (the call itself: no closure per call). */
  handleEvent(): void {
    const reason: unknown = this.#signal?.reason;
    const detail = reason instanceof Error ? `: ${reason.message}` : '';
    this.#terminate(GrpcStatus.CANCELLED, `the call was cancelled${detail}`, true);
  }

  // --- from the channel and the connection ----------------------------------------------------

  /** @internal Arms the deadline and the signal; false (call finished) when it must not be sent. */
  prepare(): boolean {
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
      this.#timer = setTimeout(H2ClientCall.#deadlineExpired, remaining, this);
      this.#timer.unref();
    }
    signal?.addEventListener('abort', this);
    return true;
  }

  /** @internal Queued on `session` while it connects. */
  queued(session: H2ClientSession): void {
    this.#session = session;
  }

  /** @internal Opens the stream: HEADERS, then what was sent before. False when the request cannot be sent. */
  open(session: H2ClientSession, id: number, encoder: HpackEncoder, core: ChannelCore): boolean {
    if (this.#phase !== WAITING) return false;
    encoder.begin();
    encoder.add(':method', 'POST');
    encoder.add(':scheme', 'http');
    encoder.add(':path', this.path);
    encoder.add(':authority', core.authority);
    encoder.add('content-type', GRPC);
    encoder.add('te', 'trailers');
    if (this.#deadline !== undefined) encoder.add('grpc-timeout', encodeGrpcTimeout(this.#deadline - Date.now()));
    try {
      if (!encodeMetadata(encoder, metadataToSend(this.#metadata))) encoder.add('user-agent', USER_AGENT);
    } catch (err) {
      encoder.end();
      this.failLocally(GrpcStatus.INTERNAL, `the request could not be sent: ${errorMessage(err)}`, undefined);
      return false;
    }
    this.id = id;
    this.#session = session;
    this.#phase = OPEN;
    const outbox = new Outbox(session.peerInitialWindow);
    const early = this.#early;
    this.#early = undefined;
    if (early !== undefined) outbox.takeFrom(early);
    this.#outbox = outbox;
    const endNow = this.#halfClosed && outbox.queued === 0;
    session.sendBlock(id, endNow);
    if (endNow) this.#endSent = true;
    else this.sendMore();
    const drains = this.#earlyDrain;
    if (drains !== undefined) {
      this.#earlyDrain = undefined;
      for (const callback of drains) outbox.onDrain(session, this, callback);
    }
    return true;
  }

  /** Sends what the windows allow, and END_STREAM once everything is out after `end()`. */
  sendMore(): void {
    const session = this.#session;
    const outbox = this.#outbox;
    if (this.#phase !== OPEN || session === undefined || outbox === undefined || this.#endSent || session.destroyed) return;
    const ending = this.#halfClosed;
    if (outbox.pump(session, this.id, this, ending) && ending) this.#endSent = true;
  }

  /** @internal The response's HEADERS, or its trailers. */
  headerBlock(fields: Record<string, string | string[]>, endStream: boolean): void {
    if (this.#phase !== OPEN) return;
    if (this.#headersReceived || this.#statusReceived) {
      if (!endStream) {
        this.brokenByServer(PROTOCOL_ERROR, 'the server sent a second header block that does not end the stream');
        return;
      }
      this.#takeStatus(fields, 200);
      this.#serverEnded();
      return;
    }
    const status = Number(fields[':status'] ?? 0);
    if (endStream) {
      // Trailers-Only: the status is in this HEADERS frame.
      this.#takeStatus(fields, status);
      this.#serverEnded();
      return;
    }
    const contentType = fields['content-type'];
    if (status !== 200 || !isGrpcContentType(contentType)) {
      const label = this.#core.label;
      const code = status !== 200 ? grpcCodeForHttpStatus(status) : GrpcStatus.UNKNOWN;
      const message =
        status !== 200
          ? `${label} answered with HTTP status ${status}, not a gRPC response`
          : `${label} answered with content-type "${typeof contentType === 'string' ? contentType : ''}", not a gRPC response`;
      this.#terminate(code, message, false);
      return;
    }
    this.#headersReceived = true;
    const metadata = fields as ReceivedMetadata;
    if (this.#reader === undefined) this.#unreadHeaders = metadata;
    else this.#reader.headers(metadata);
  }

  /** @internal DATA of the response. */
  data(payload: Buffer, length: number, endStream: boolean): void {
    const session = this.#session as H2ClientSession;
    if (this.#phase !== OPEN || this.#inboundEnded) {
      session.consumed(length);
      return;
    }
    if (!this.#headersReceived) {
      // RFC 9113 §8.1: a response starts with its HEADERS.
      session.consumed(length);
      this.brokenByServer(PROTOCOL_ERROR, 'the server sent DATA before the response headers');
      return;
    }
    if (!this.#inbox.receive(length)) {
      session.consumed(length);
      this.brokenByServer(FLOW_CONTROL_ERROR, 'the server sent more than the stream window');
      return;
    }
    if (payload.length > 0) (this.#decoder ??= new MessageDecoder(this.#core.maxReceiveMessageBytes)).push(payload);
    if (endStream) {
      this.#serverEnded();
      return;
    }
    this.#pump();
  }

  /** @internal WINDOW_UPDATE of this stream, or (`settings`) a change of the server's initial window. */
  credit(increment: number, settings: boolean): void {
    const outbox = this.#outbox;
    if (outbox === undefined) return;
    if ((!settings && increment === 0) || !outbox.credit(increment)) {
      this.brokenByServer(settings ? FLOW_CONTROL_ERROR : PROTOCOL_ERROR, 'an invalid WINDOW_UPDATE');
      return;
    }
    if (outbox.window > 0) this.sendMore();
  }

  /** @internal RST_STREAM from the server. */
  resetByServer(code: number): void {
    const session = this.#session as H2ClientSession;
    session.streamClosed(this);
    if (this.#phase !== OPEN) return;
    if (this.#statusReceived) {
      // The status came first (grpc-go resets the stream after its trailers): the call is complete.
      this.#complete();
      return;
    }
    const label = this.#core.label;
    if (code === REFUSED_STREAM) {
      this.#finish(this.#localResult(GrpcStatus.UNAVAILABLE, `${label} refused the stream (REFUSED_STREAM)`, 'refused'), false);
      return;
    }
    const grpcCode = grpcCodeForRstCode(code);
    if (grpcCode === GrpcStatus.CANCELLED && this.#deadline !== undefined && Date.now() >= this.#deadline) {
      // The spec: a CANCELLED past the deadline is the server enforcing it.
      this.#finish(this.#localResult(GrpcStatus.DEADLINE_EXCEEDED, 'deadline exceeded', undefined), false);
      return;
    }
    this.#finish(this.#localResult(grpcCode, `${label} reset the stream (${http2ErrorName(code)})`, 'reset'), false);
  }

  /** @internal The server broke the protocol on this stream: reset it, fail the call. */
  brokenByServer(code: number, reason: string): void {
    const session = this.#session as H2ClientSession;
    session.sendReset(this.id, code);
    session.streamClosed(this);
    this.#dropHeld();
    if (this.#phase === OPEN) this.#finish(this.#localResult(GrpcStatus.INTERNAL, `${this.#core.label}: ${reason}`, undefined), false);
  }

  /** @internal GOAWAY says the server did not process this stream. */
  refused(message: string): void {
    (this.#session as H2ClientSession).streamClosed(this);
    if (this.#phase === OPEN) this.#finish(this.#localResult(GrpcStatus.UNAVAILABLE, message, 'refused'), false);
  }

  /** @internal The connection is gone. */
  connectionLost(reason: string): void {
    if (this.#phase !== OPEN) return;
    if (this.#statusReceived) {
      this.#complete();
      return;
    }
    const session = this.#session as H2ClientSession;
    const last = session.goawayLastStreamId;
    if (last !== undefined && this.id > last) {
      this.#finish(this.#localResult(GrpcStatus.UNAVAILABLE, `${this.#core.label} is going away (GOAWAY) and did not process the stream`, 'refused'), false);
      return;
    }
    this.#finish(this.#localResult(GrpcStatus.UNAVAILABLE, `the connection to ${this.#core.label} was lost: ${reason}`, 'reset'), false);
  }

  /** @internal Fails a call that never got a stream (or whose request could not be built). */
  failLocally(code: number, message: string, transport: TransportFailure | undefined): void {
    this.#finish(this.#localResult(code, message, transport), true);
  }

  // --- internals ---------------------------------------------------------------------------------

  #outboxFor(): Outbox {
    return this.#outbox ?? (this.#early ??= new Outbox(0));
  }

  #afterQueue(outbox: Outbox): boolean {
    const session = this.#session;
    if (this.#phase !== OPEN || session === undefined || outbox !== this.#outbox) return !outbox.overHighWater;
    this.sendMore();
    return !outbox.full(session);
  }

  #canSend(length: number): boolean {
    if (this.#phase >= CLOSING || this.#halfClosed || this.#statusReceived) return false;
    if (length > this.#core.maxSendMessageBytes) {
      this.#terminate(GrpcStatus.RESOURCE_EXHAUSTED, `trying to send message larger than max (${length} vs. ${this.#core.maxSendMessageBytes})`, true);
      return false;
    }
    return true;
  }

  /** Records the status from trailers or a Trailers-Only response. */
  #takeStatus(fields: Record<string, string | string[]>, httpStatus: number): void {
    const code = parseGrpcStatus(fields['grpc-status']);
    const message = fields['grpc-message'];
    this.#statusReceived = true;
    this.#trailers = fields;
    if (code !== undefined) {
      this.#statusCode = code;
      this.#statusMessage = typeof message === 'string' ? decodeGrpcMessage(message) : '';
    } else if (httpStatus !== 200) {
      this.#statusCode = grpcCodeForHttpStatus(httpStatus);
      this.#statusMessage = `${this.#core.label} answered with HTTP status ${httpStatus}, not a gRPC response`;
    } else {
      this.#statusCode = GrpcStatus.UNKNOWN;
      this.#statusMessage = 'the server ended the call without a grpc-status';
    }
  }

  /** The server sent END_STREAM: our side ends too (PROTOCOL-HTTP2.md "Early Server Closure"), then the call completes. */
  #serverEnded(): void {
    this.#inboundEnded = true;
    const session = this.#session as H2ClientSession;
    if (!this.#endSent) {
      // The status came before our END_STREAM: the call is over, stop sending.
      this.#endSent = true;
      this.#halfClosed = true;
      this.#outbox?.clear();
      session.sendReset(this.id, NO_ERROR);
    }
    session.streamClosed(this);
    if (!this.#statusReceived) {
      this.#finish(this.#localResult(GrpcStatus.INTERNAL, `${this.#core.label} closed the stream without sending trailers`, undefined), false);
      return;
    }
    this.#complete();
  }

  /** The status is known: deliver the messages still held, then `end`. */
  #complete(): void {
    this.#result = { code: this.#statusCode, message: this.#statusMessage, trailers: this.#trailers, headersReceived: this.#headersReceived };
    this.#phase = CLOSING;
    this.#pump();
  }

  #localResult(code: number, message: string, transport: TransportFailure | undefined): CallResult {
    return transport === undefined
      ? { code, message, trailers: EMPTY_METADATA, headersReceived: this.#headersReceived }
      : { code, message, trailers: EMPTY_METADATA, headersReceived: this.#headersReceived, transport };
  }

  /** Ends the call from this side: the result is local, the stream (if any) is reset with CANCEL. */
  #terminate(code: number, message: string, deferEnd: boolean): void {
    const phase = this.#phase;
    if (phase === DONE) return;
    const session = this.#session;
    if (phase === WAITING) {
      session?.dequeue(this);
    } else if (phase === OPEN && session !== undefined) {
      session.sendReset(this.id, CANCEL);
      session.streamClosed(this);
      this.#dropHeld();
    }
    this.#finish(this.#localResult(code, message, undefined), deferEnd);
  }

  /**
   * Decides the result and releases what the call holds (timer, signal listener, queued data).
   * `deferEnd`: deliver `end` on the next tick, for finishes triggered from the caller's own code.
   */
  #finish(result: CallResult, deferEnd: boolean): void {
    if (this.#phase === DONE) return;
    this.#phase = DONE;
    this.#result = result;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    this.#signal?.removeEventListener('abort', this);
    this.#outbox?.clear();
    this.#early = undefined;
    this.#earlyDrain = undefined;
    this.#dropHeld();
    if (deferEnd) process.nextTick(H2ClientCall.#deliverEndLater, this);
    else this.#deliverEnd();
  }

  /** Returns what the call held to the connection's window (the stream is over). */
  #dropHeld(): void {
    const session = this.#session;
    if (session !== undefined) this.#inbox.drop(session);
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
        while (!this.#paused && (this.#phase === OPEN || this.#phase === CLOSING)) {
          const message = decoder.read();
          if (message === undefined) break;
          reader.message(message);
        }
      } catch (err) {
        this.#delivering = false;
        this.#core.logger.error({ path: this.path, err: errorMessage(err) }, 'gRPC response reader threw');
        this.#terminate(GrpcStatus.INTERNAL, `the response reader failed: ${errorMessage(err)}`, false);
        return;
      }
      this.#delivering = false;
      const failure = decoder.failure;
      if (failure !== undefined && (this.#phase === OPEN || this.#phase === CLOSING)) {
        this.#terminate(failure.code, failure.message ?? '', false);
        return;
      }
    }
    if (this.#paused) return;
    if (this.#phase === OPEN) {
      this.#inbox.consumed(this.#session as H2ClientSession, this.id, this.#inboundEnded);
      return;
    }
    if (this.#phase !== CLOSING) return;
    const result = this.#result as CallResult;
    if (result.code === GrpcStatus.OK && decoder !== undefined && !decoder.atBoundary) {
      this.#finish(this.#localResult(GrpcStatus.INTERNAL, 'the server ended the stream inside a message', undefined), false);
      return;
    }
    this.#finish(result, false);
  }

  static #deadlineExpired(this: void, call: H2ClientCall): void {
    call.#timer = undefined;
    call.#terminate(GrpcStatus.DEADLINE_EXCEEDED, 'deadline exceeded', false);
  }

  static #deliverEndLater(this: void, call: H2ClientCall): void {
    call.#deliverEnd();
  }
}

/**
 * A client for one gRPC server address over plaintext HTTP/2 (h2c with prior knowledge), on
 * connections it opens lazily and reopens on the next call after one dies. One connection carries
 * every call; another is opened when it reaches the server's SETTINGS_MAX_CONCURRENT_STREAMS, or
 * while one drains after GOAWAY. Every timer is unref'ed, and an idle connection's socket too;
 * `close()` releases everything.
 */
export class H2Channel implements CallOpener {
  readonly target: H2Target;
  readonly #core: ChannelCore;
  readonly #connections: H2ClientSession[] = [];
  static {
    connectionsOf = (channel) => channel.#connections;
  }
  #closed: Promise<void> | undefined;

  constructor(target: H2Target, options: H2ChannelOptions = {}) {
    this.target = { host: target.host, port: target.port };
    const host = target.host.includes(':') ? `[${target.host}]` : target.host;
    const label = `${host}:${target.port}`;
    const connections = this.#connections;
    const core: ChannelCore = {
      label,
      authority: label,
      target: this.target,
      maxSendMessageBytes: options.maxSendMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      maxReceiveMessageBytes: options.maxReceiveMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      connectTimeoutMs: options.connectTimeoutMs ?? 5000,
      pingIntervalMs: options.pingIntervalMs ?? 10_000,
      pingTimeoutMs: options.pingTimeoutMs ?? 5000,
      idleTimeoutMs: options.idleTimeoutMs ?? 180_000,
      logger: options.logger ?? silentLogger(),
      dispatch: (call) => this.#dispatch(call),
      connectionClosed: (connection) => {
        const at = connections.indexOf(connection);
        if (at !== -1) connections.splice(at, 1);
      },
    };
    this.#core = core;
  }

  /** `host:port` of the target (`[v6]:port` for IPv6). */
  get label(): string {
    return this.#core.label;
  }

  /** Number of open or opening connections (for tests and diagnostics). */
  get connectionCount(): number {
    return this.#connections.length;
  }

  call(path: string, metadata?: Metadata, options: CallOptions = NO_OPTIONS): ClientCall {
    const call = new H2ClientCall(this.#core, path, metadata, options);
    if (call.prepare()) this.#dispatch(call);
    return call;
  }

  /**
   * Destroys every connection now: calls not yet sent fail `refused`, calls in flight fail `reset`.
   * Later calls fail `refused` immediately. Resolves once every socket is closed. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closed === undefined) {
      const connections = [...this.#connections];
      for (const connection of connections) connection.shutdown('the channel was closed');
      this.#closed = Promise.all(connections.map((connection) => connection.closedPromise)).then(() => undefined);
    }
    return this.#closed;
  }

  #dispatch(call: H2ClientCall): void {
    if (this.#closed !== undefined) {
      call.failLocally(GrpcStatus.UNAVAILABLE, `the channel to ${this.#core.label} is closed; the call was not sent`, 'refused');
      return;
    }
    for (const connection of this.#connections) {
      if (connection.accepting) {
        connection.attach(call);
        return;
      }
    }
    let connection: H2ClientSession;
    try {
      const { host, port } = this.#core.target;
      connection = new H2ClientSession(this.#core, netConnect({ host, port, noDelay: true }));
    } catch (err) {
      call.failLocally(GrpcStatus.UNAVAILABLE, `connection to ${this.#core.label} failed: ${errorMessage(err)}`, 'connect-failed');
      return;
    }
    this.#connections.push(connection);
    connection.attach(call);
  }
}
