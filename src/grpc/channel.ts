import {
  connect,
  constants as h2,
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from 'node:http2';
import { GrpcStatus } from '../errors/index.js';
import { silentLogger, type Logger } from '../observability/logging/index.js';
import { framedLength, framedParts, MessageParser } from './framing.js';
import { customMetadata, decodeGrpcMessage, encodeTimeout, grpcStatusFromHttpStatus } from './wire.js';
import type { Metadata } from './server.js';

/**
 * How a call ended. `transport` says what happened to the call when it did not end with a status
 * from the server, which decides whether repeating it is safe:
 * - `connect-failed`: no connection could be made, so nothing was sent;
 * - `refused`: the server guaranteed it did not process the stream (REFUSED_STREAM, or a GOAWAY that
 *   excludes it, or the connection closed before the stream was opened);
 * - `reset`: the stream or connection broke after the request may have been processed.
 */
export interface CallResult {
  readonly code: number;
  readonly message: string;
  readonly trailers: IncomingHttpHeaders;
  readonly headersReceived: boolean;
  readonly transport?: 'connect-failed' | 'refused' | 'reset';
}

export interface ResponseReader {
  headers(metadata: Record<string, string | string[]>): void;
  message(bytes: Buffer): void;
  /** Called exactly once. */
  end(result: CallResult): void;
}

export interface ChannelOptions {
  /** Connection establishment, including the server's first SETTINGS frame. */
  readonly connectTimeoutMs?: number;
  readonly maxReceiveMessageBytes?: number;
  readonly maxSendMessageBytes?: number;
  /** Keepalive: a PING every this often while connected... */
  readonly pingIntervalMs?: number;
  /** ...which must be acknowledged within this, or the connection is dropped. */
  readonly pingTimeoutMs?: number;
  /** A connection without calls for this long is closed. */
  readonly idleTimeoutMs?: number;
  readonly logger?: Logger;
}

interface ResolvedOptions {
  connectTimeoutMs: number;
  maxReceiveMessageBytes: number;
  maxSendMessageBytes: number;
  pingIntervalMs: number;
  pingTimeoutMs: number;
  idleTimeoutMs: number;
  logger: Logger;
}

function resolveOptions(options: ChannelOptions): ResolvedOptions {
  return {
    connectTimeoutMs: options.connectTimeoutMs ?? 5000,
    maxReceiveMessageBytes: options.maxReceiveMessageBytes ?? 4 * 1024 * 1024,
    maxSendMessageBytes: options.maxSendMessageBytes ?? 4 * 1024 * 1024,
    pingIntervalMs: options.pingIntervalMs ?? 10_000,
    pingTimeoutMs: options.pingTimeoutMs ?? 5_000,
    idleTimeoutMs: options.idleTimeoutMs ?? 180_000,
    logger: options.logger ?? silentLogger(),
  };
}

export interface Target {
  readonly host: string;
  readonly port: number;
}

/**
 * The state of one HTTP/2 connection:
 * - `connecting`: socket and SETTINGS exchange under way; calls wait in `waiting`;
 * - `ready`: streams may be opened;
 * - `closed`: failed, went away or was closed; never reused.
 */
type SessionState = { t: 'connecting'; waiting: ClientCall[] } | { t: 'ready' } | { t: 'closed' };

class Session {
  readonly http2: ClientHttp2Session;
  state: SessionState = { t: 'connecting', waiting: [] };
  active = 0;
  /** Calls with an open stream on this session. */
  readonly calls = new Set<ClientCall>();
  goawayLastStreamId: number | undefined;
  readonly #channel: GrpcChannel;
  readonly #options: ResolvedOptions;
  #connectTimer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  #idleTimer: NodeJS.Timeout | undefined;

  constructor(channel: GrpcChannel, target: Target, options: ResolvedOptions) {
    this.#channel = channel;
    this.#options = options;
    const host = target.host.includes(':') ? `[${target.host}]` : target.host;
    this.http2 = connect(`http://${host}:${target.port}`, { settings: { enablePush: false }, peerMaxConcurrentStreams: 1000 });
    const where = `${host}:${target.port}`;
    this.#connectTimer = setTimeout(() => this.#fail(`connection to ${where} timed out after ${options.connectTimeoutMs}ms`), options.connectTimeoutMs);
    this.#connectTimer.unref();
    this.http2.once('remoteSettings', () => this.#ready());
    this.http2.on('error', (err: Error) => {
      if (this.state.t === 'connecting') this.#fail(`connection to ${where} failed: ${err.message}`);
      else options.logger.debug({ err: err.message, target: where }, 'HTTP/2 connection error');
    });
    this.http2.on('goaway', (_code: number, lastStreamId: number) => {
      this.goawayLastStreamId = lastStreamId;
      // Streams the server says it never processed end now, as refused; Node would leave them open.
      for (const call of [...this.calls]) call.refuseIfBeyond(lastStreamId);
      this.#close();
      // No new streams here; the connection goes once the streams it still carries are done.
      if (!this.http2.closed) this.http2.close();
    });
    this.http2.once('close', () => {
      if (this.state.t === 'connecting') this.#fail(`connection to ${where} closed before it was established`);
      this.#close();
      this.#channel.gone(this);
    });
    // Held open while connecting for a call; afterwards only while calls are in flight.
  }

  get usable(): boolean {
    if (this.state.t === 'closed' || this.http2.closed || this.http2.destroyed) return false;
    if (this.state.t === 'connecting') return true;
    const limit = this.http2.remoteSettings.maxConcurrentStreams ?? 100;
    return this.active < limit;
  }

  /** Runs `call` on this session now or once connected. */
  enqueue(call: ClientCall): void {
    if (this.state.t === 'connecting') this.state.waiting.push(call);
    else call.open(this);
  }

  opened(call: ClientCall): void {
    this.calls.add(call);
    if (this.active === 0) this.http2.ref();
    this.active++;
    if (this.#idleTimer !== undefined) {
      clearTimeout(this.#idleTimer);
      this.#idleTimer = undefined;
    }
  }

  closedStream(call: ClientCall): void {
    if (!this.calls.delete(call)) return;
    this.active--;
    if (this.active === 0) this.http2.unref();
    if (this.active === 0 && this.state.t === 'ready') this.#startIdleTimer();
  }

  destroy(): void {
    this.#close();
    this.http2.destroy();
  }

  #ready(): void {
    if (this.state.t !== 'connecting') return;
    const waiting = this.state.waiting;
    this.state = { t: 'ready' };
    if (this.#connectTimer !== undefined) clearTimeout(this.#connectTimer);
    this.#pingTimer = setInterval(() => this.#ping(), this.#options.pingIntervalMs);
    this.#pingTimer.unref();
    for (const call of waiting) call.open(this);
    if (this.active === 0) this.#startIdleTimer();
  }

  #startIdleTimer(): void {
    this.#idleTimer = setTimeout(() => this.http2.close(), this.#options.idleTimeoutMs);
    this.#idleTimer.unref();
  }

  #ping(): void {
    if (this.state.t !== 'ready') return;
    const timer = setTimeout(() => {
      this.#options.logger.debug('keepalive ping not acknowledged; dropping the connection');
      this.destroy();
    }, this.#options.pingTimeoutMs);
    timer.unref();
    try {
      this.http2.ping((err) => {
        clearTimeout(timer);
        if (err !== null) this.destroy();
      });
    } catch {
      clearTimeout(timer);
    }
  }

  #fail(message: string): void {
    if (this.state.t !== 'connecting') return;
    const waiting = this.state.waiting;
    this.state = { t: 'closed' };
    this.#clearTimers();
    this.#channel.forget(this);
    this.http2.destroy();
    for (const call of waiting) call.fail({ code: GrpcStatus.UNAVAILABLE, message, trailers: {}, headersReceived: false, transport: 'connect-failed' });
  }

  #close(): void {
    if (this.state.t === 'connecting') return this.#fail('the connection closed before it was established');
    this.state = { t: 'closed' };
    this.#clearTimers();
    this.#channel.forget(this);
  }

  #clearTimers(): void {
    if (this.#connectTimer !== undefined) clearTimeout(this.#connectTimer);
    if (this.#pingTimer !== undefined) clearInterval(this.#pingTimer);
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
  }
}

/**
 * A client for one server address: lazily connects, reconnects after a connection dies, and opens
 * another connection when one reaches the server's stream limit.
 */
export class GrpcChannel {
  readonly target: Target;
  readonly #options: ResolvedOptions;
  /** Sessions new calls may use. */
  readonly #sessions: Session[] = [];
  /** Every session not yet fully closed, including those draining after a GOAWAY. */
  readonly #all = new Set<Session>();
  #closed = false;

  constructor(target: Target, options: ChannelOptions = {}) {
    this.target = target;
    this.#options = resolveOptions(options);
  }

  call(path: string, metadata: Metadata, options: { deadline?: number; signal?: AbortSignal } = {}): ClientCall {
    const call = new ClientCall(path, metadata, options, this.#options);
    if (this.#closed) {
      call.fail({ code: GrpcStatus.UNAVAILABLE, message: 'the channel is closed', trailers: {}, headersReceived: false, transport: 'refused' });
      return call;
    }
    let session = this.#sessions.find((s) => s.usable);
    if (session === undefined) {
      session = new Session(this, this.target, this.#options);
      this.#sessions.push(session);
      this.#all.add(session);
    }
    session.enqueue(call);
    return call;
  }

  /** @internal a session that can no longer be used. */
  forget(session: Session): void {
    const at = this.#sessions.indexOf(session);
    if (at >= 0) this.#sessions.splice(at, 1);
  }

  /** @internal a session whose connection has closed. */
  gone(session: Session): void {
    this.#all.delete(session);
  }

  /** Drops every connection now; calls on them fail. */
  close(): void {
    this.#closed = true;
    for (const s of [...this.#all]) s.destroy();
    this.#all.clear();
  }
}

type CallPhase = 'queued' | 'open' | 'done';

/**
 * One call from the client's side. It can be written to before its stream exists (while the
 * connection is being made): messages are held, and `sendMessage` reports backpressure past 64 KiB.
 */
export class ClientCall {
  readonly #path: string;
  readonly #metadata: Metadata;
  readonly #options: ResolvedOptions;
  readonly #deadline: number | undefined;
  readonly #signal: AbortSignal | undefined;
  #phase: CallPhase = 'queued';
  #reader: ResponseReader | undefined;
  #stream: ClientHttp2Stream | undefined;
  #session: Session | undefined;
  #held: Uint8Array[] = [];
  #heldBytes = 0;
  #halfClosePending = false;
  #drainWaiters: Array<() => void> = [];
  #parser: MessageParser;
  #headersReceived = false;
  #status: { code: number; message: string; trailers: IncomingHttpHeaders } | undefined;
  #localError: CallResult | undefined;
  #pendingResult: CallResult | undefined;
  #timer: NodeJS.Timeout | undefined;
  #paused = false;
  readonly #onAbort = (): void => this.#cancelWith({ code: GrpcStatus.CANCELLED, message: 'the call was cancelled', trailers: {}, headersReceived: this.#headersReceived });

  constructor(path: string, metadata: Metadata, options: { deadline?: number; signal?: AbortSignal }, resolved: ResolvedOptions) {
    this.#path = path;
    this.#metadata = metadata;
    this.#options = resolved;
    this.#deadline = options.deadline;
    this.#signal = options.signal;
    this.#parser = new MessageParser(resolved.maxReceiveMessageBytes);
    if (options.signal?.aborted === true) {
      this.#pendingResult = { code: GrpcStatus.CANCELLED, message: 'the call was cancelled', trailers: {}, headersReceived: false };
    } else {
      options.signal?.addEventListener('abort', this.#onAbort, { once: true });
    }
    if (options.deadline !== undefined) {
      this.#timer = setTimeout(
        () => this.#cancelWith({ code: GrpcStatus.DEADLINE_EXCEEDED, message: 'deadline exceeded', trailers: {}, headersReceived: this.#headersReceived }),
        Math.max(0, options.deadline - Date.now()),
      );
      this.#timer.unref();
    }
  }

  /** Starts delivering the response. Call once. */
  setReader(reader: ResponseReader): void {
    this.#reader = reader;
    const pending = this.#pendingResult;
    if (pending !== undefined) {
      this.#pendingResult = undefined;
      this.#finish(pending);
    }
  }

  sendMessage(bytes: Uint8Array): boolean {
    return this.sendMessageParts([bytes]);
  }

  sendMessageParts(parts: readonly Uint8Array[]): boolean {
    if (this.#phase === 'done' || this.#halfClosePending) return true;
    const length = framedLength(parts);
    if (length > this.#options.maxSendMessageBytes) {
      this.#cancelWith({
        code: GrpcStatus.RESOURCE_EXHAUSTED,
        message: `trying to send message larger than max (${length} vs. ${this.#options.maxSendMessageBytes})`,
        trailers: {},
        headersReceived: this.#headersReceived,
      });
      return true;
    }
    const frames = framedParts(parts);
    const stream = this.#stream;
    if (stream === undefined) {
      for (const f of frames) {
        this.#held.push(f);
        this.#heldBytes += f.length;
      }
      return this.#heldBytes < 64 * 1024;
    }
    let ok = true;
    for (const f of frames) ok = stream.write(f);
    return ok;
  }

  onDrain(callback: () => void): void {
    if (this.#stream === undefined) this.#drainWaiters.push(callback);
    else this.#stream.once('drain', callback);
  }

  /** Half-closes: no more messages from this side. */
  end(): void {
    if (this.#phase === 'done') return;
    if (this.#stream === undefined) this.#halfClosePending = true;
    else this.#stream.end();
  }

  /** Cancels the call (RST_STREAM CANCEL); it ends with CANCELLED. */
  cancel(): void {
    this.#cancelWith({ code: GrpcStatus.CANCELLED, message: 'the call was cancelled', trailers: {}, headersReceived: this.#headersReceived });
  }

  pause(): void {
    this.#paused = true;
    this.#stream?.pause();
  }

  resume(): void {
    this.#paused = false;
    this.#stream?.resume();
  }

  /** @internal opens the stream on a ready session. */
  open(session: Session): void {
    if (this.#phase !== 'queued') return;
    const headers: OutgoingHttpHeaders = {
      ...this.#metadata,
      ':method': 'POST',
      ':path': this.#path,
      'content-type': 'application/grpc',
      te: 'trailers',
      'user-agent': 'courier-grpc',
    };
    if (this.#deadline !== undefined) headers['grpc-timeout'] = encodeTimeout(this.#deadline - Date.now());
    let stream: ClientHttp2Stream;
    try {
      stream = session.http2.request(headers, { endStream: false });
    } catch (err) {
      this.fail({ code: GrpcStatus.UNAVAILABLE, message: `could not open a stream: ${(err as Error).message}`, trailers: {}, headersReceived: false, transport: 'refused' });
      return;
    }
    this.#phase = 'open';
    this.#stream = stream;
    this.#session = session;
    session.opened(this);
    stream.on('response', (h: IncomingHttpHeaders) => this.#onResponse(h));
    stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    stream.on('trailers', (t: IncomingHttpHeaders) => this.#onTrailers(t));
    stream.on('error', (err: Error) => {
      this.#localError ??= undefined;
      this.#options.logger.debug({ err: err.message, path: this.#path }, 'gRPC stream error');
    });
    stream.once('close', () => this.#onClose());
    if (this.#paused) stream.pause();
    for (const f of this.#held) stream.write(f);
    this.#held = [];
    this.#heldBytes = 0;
    if (this.#halfClosePending) stream.end();
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) setImmediate(w);
  }

  /** @internal ends a call that never got a stream. */
  fail(result: CallResult): void {
    if (this.#phase === 'done') return;
    this.#phase = 'done';
    this.#finish(result);
  }

  #onResponse(headers: IncomingHttpHeaders): void {
    const status = Number(headers[':status']);
    if (status !== 200) {
      this.#localError = {
        code: grpcStatusFromHttpStatus(status),
        message: `the server answered HTTP ${status}`,
        trailers: {},
        headersReceived: true,
      };
      return;
    }
    if (headers['grpc-status'] !== undefined) {
      // Trailers-Only: the status arrives with the headers and the stream ends.
      this.#onTrailers(headers);
      return;
    }
    this.#headersReceived = true;
    this.#reader?.headers(customMetadata(headers));
  }

  #onData(chunk: Buffer): void {
    if (this.#phase !== 'open' || this.#localError !== undefined) return;
    const error = this.#parser.push(chunk, (message) => this.#reader?.message(message));
    if (error !== undefined) this.#cancelWith({ ...error, trailers: {}, headersReceived: this.#headersReceived });
  }

  #onTrailers(trailers: IncomingHttpHeaders): void {
    const raw = trailers['grpc-status'];
    const code = raw === undefined ? GrpcStatus.UNKNOWN : Number(raw);
    const message = trailers['grpc-message'];
    this.#status = {
      code: Number.isInteger(code) ? code : GrpcStatus.UNKNOWN,
      message: raw === undefined ? 'the server sent no grpc-status' : decodeGrpcMessage(typeof message === 'string' ? message : ''),
      trailers,
    };
    // The response is complete; if this side is still sending, stop.
    const stream = this.#stream;
    if (stream !== undefined && !stream.writableEnded) stream.close(h2.NGHTTP2_CANCEL);
  }

  #onClose(): void {
    const stream = this.#stream as ClientHttp2Stream;
    this.#session?.closedStream(this);
    if (this.#phase === 'done') return;
    this.#phase = 'done';
    if (this.#localError !== undefined) return this.#finish(this.#localError);
    const status = this.#status;
    if (status !== undefined) {
      return this.#finish({ code: status.code, message: status.message, trailers: status.trailers, headersReceived: this.#headersReceived });
    }
    const goaway = this.#session?.goawayLastStreamId;
    const id = stream.id;
    const refused =
      stream.rstCode === h2.NGHTTP2_REFUSED_STREAM || id === undefined || (goaway !== undefined && id > goaway && !this.#headersReceived);
    if (refused) {
      return this.#finish({ code: GrpcStatus.UNAVAILABLE, message: 'the server refused the stream without processing it', trailers: {}, headersReceived: false, transport: 'refused' });
    }
    this.#finish({
      code: GrpcStatus.UNAVAILABLE,
      message: `the stream was reset (${rstName(stream.rstCode)})`,
      trailers: {},
      headersReceived: this.#headersReceived,
      transport: 'reset',
    });
  }

  /** @internal the server sent GOAWAY: if this stream is beyond its last processed one, it was refused. */
  refuseIfBeyond(lastStreamId: number): void {
    const id = this.#stream?.id;
    if (this.#phase !== 'open' || this.#headersReceived || (id !== undefined && id <= lastStreamId)) return;
    this.#localError = { code: GrpcStatus.UNAVAILABLE, message: 'the server refused the stream without processing it (GOAWAY)', trailers: {}, headersReceived: false, transport: 'refused' };
    this.#stream?.close(h2.NGHTTP2_CANCEL);
  }

  #cancelWith(result: CallResult): void {
    if (this.#phase === 'done' || this.#localError !== undefined) return;
    if (this.#phase === 'queued') {
      this.fail(result);
      return;
    }
    this.#localError = result;
    this.#stream?.close(h2.NGHTTP2_CANCEL);
  }

  #finish(result: CallResult): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#held = [];
    this.#drainWaiters = [];
    const reader = this.#reader;
    if (reader === undefined) {
      this.#pendingResult = result;
      return;
    }
    reader.end(result);
  }
}

function rstName(code: number | undefined): string {
  switch (code) {
    case h2.NGHTTP2_NO_ERROR:
      return 'NO_ERROR';
    case h2.NGHTTP2_PROTOCOL_ERROR:
      return 'PROTOCOL_ERROR';
    case h2.NGHTTP2_INTERNAL_ERROR:
      return 'INTERNAL_ERROR';
    case h2.NGHTTP2_CANCEL:
      return 'CANCEL';
    case h2.NGHTTP2_REFUSED_STREAM:
      return 'REFUSED_STREAM';
    case undefined:
      return 'connection closed';
    default:
      return `code ${code}`;
  }
}

/** Channels by `host:port`, created on first use and closed together. */
export class ChannelPool {
  readonly #options: ChannelOptions;
  readonly #channels = new Map<string, GrpcChannel>();

  constructor(options: ChannelOptions = {}) {
    this.#options = options;
  }

  get(target: Target): GrpcChannel {
    const key = `${target.host}:${target.port}`;
    let channel = this.#channels.get(key);
    if (channel === undefined) {
      channel = new GrpcChannel(target, this.#options);
      this.#channels.set(key, channel);
    }
    return channel;
  }

  /** Drops the connections to one target now. */
  evict(target: Target): void {
    const key = `${target.host}:${target.port}`;
    this.#channels.get(key)?.close();
    this.#channels.delete(key);
  }

  async close(): Promise<void> {
    for (const channel of this.#channels.values()) channel.close();
    this.#channels.clear();
    await Promise.resolve();
  }
}
