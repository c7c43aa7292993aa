import {
  createServer,
  type Http2Server,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import { GrpcStatus } from '../errors/index.js';
import { silentLogger, type Logger } from '../observability/logging/index.js';
import { framedLength, framedParts, MessageParser } from './framing.js';
import { encodeGrpcMessage, parseTimeout } from './wire.js';

export type Metadata = Record<string, string | string[]>;

export interface CallStatus {
  readonly code: number;
  readonly message?: string;
}

/** Receives a call's inbound messages, in order. Exactly one of `end` or `error` ends the sequence. */
export interface MessageReader {
  message(bytes: Buffer): void;
  /** The peer half-closed: no more messages. */
  end(): void;
  /** The call failed or was cancelled before the peer finished sending. */
  error(status: CallStatus): void;
}

export interface GrpcServerOptions {
  readonly maxReceiveMessageBytes?: number;
  readonly maxSendMessageBytes?: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS advertised to clients. */
  readonly maxConcurrentStreams?: number;
  readonly logger?: Logger;
}

export type CallHandler = (call: ServerCall) => void;

const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/**
 * A gRPC server over plaintext HTTP/2 (h2c with prior knowledge), carrying opaque message bytes.
 * Handlers are registered by full method path (`/package.Service/Method`); anything else is answered
 * UNIMPLEMENTED. `listen` may be called for several addresses; `close` drains gracefully.
 */
export class GrpcServer {
  readonly #handlers = new Map<string, CallHandler>();
  readonly #servers: Http2Server[] = [];
  readonly #sessions = new Set<ServerHttp2Session>();
  readonly #calls = new Set<ServerCall>();
  readonly #maxReceive: number;
  readonly #maxSend: number;
  readonly #maxConcurrentStreams: number;
  readonly #logger: Logger;
  #closing: Promise<void> | undefined;

  constructor(options: GrpcServerOptions = {}) {
    this.#maxReceive = options.maxReceiveMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.#maxSend = options.maxSendMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.#maxConcurrentStreams = options.maxConcurrentStreams ?? 2048;
    this.#logger = options.logger ?? silentLogger();
  }

  register(path: string, handler: CallHandler): void {
    this.#handlers.set(path, handler);
  }

  /** Calls in progress. */
  get activeCalls(): number {
    return this.#calls.size;
  }

  async listen(host: string, port: number): Promise<AddressInfo> {
    const server = createServer({ settings: { maxConcurrentStreams: this.#maxConcurrentStreams, enablePush: false } });
    server.on('session', (session: ServerHttp2Session) => {
      this.#sessions.add(session);
      session.once('close', () => this.#sessions.delete(session));
      session.on('error', (err: Error) => this.#logger.debug({ err: err.message }, 'HTTP/2 session error'));
    });
    server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => this.#onStream(stream, headers));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port, exclusive: true }, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
    this.#servers.push(server);
    return server.address() as AddressInfo;
  }

  /**
   * Stops accepting connections and sends GOAWAY on every session, so clients open no new streams
   * here (streams they had not yet sent are refused, unprocessed). Calls in progress may finish for
   * `graceMs`; then they are cancelled and every session is destroyed.
   */
  close(options: { graceMs: number }): Promise<void> {
    this.#closing ??= this.#close(options.graceMs);
    return this.#closing;
  }

  async #close(graceMs: number): Promise<void> {
    const serversClosed = Promise.all(this.#servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    for (const session of this.#sessions) session.close();
    // These timers keep the process alive on purpose: a shutdown waits for calls in flight, up to the grace period.
    if (this.#calls.size > 0) {
      await new Promise<void>((resolve) => {
        const check = setInterval(() => {
          if (this.#calls.size === 0) done();
        }, 10);
        const timer = setTimeout(() => done(), graceMs);
        const done = (): void => {
          clearInterval(check);
          clearTimeout(timer);
          resolve();
        };
      });
    }
    for (const call of [...this.#calls]) call.end({ code: GrpcStatus.UNAVAILABLE, message: 'the server is shutting down' });
    for (const session of this.#sessions) session.destroy();
    await serversClosed;
  }

  #onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    stream.on('error', () => {});
    const contentType = headers['content-type'] ?? '';
    if (headers[':method'] !== 'POST' || !(contentType === 'application/grpc' || contentType.startsWith('application/grpc+') || contentType.startsWith('application/grpc;'))) {
      stream.respond({ ':status': 415, 'content-type': 'text/plain' }, { endStream: false });
      stream.end('gRPC requests must be POST with content-type application/grpc\n');
      return;
    }
    const path = headers[':path'] ?? '';
    const call = new ServerCall(stream, headers, this.#maxReceive, this.#maxSend, () => this.#calls.delete(call));
    this.#calls.add(call);
    const encoding = headers['grpc-encoding'];
    if (encoding !== undefined && encoding !== 'identity') {
      call.end({ code: GrpcStatus.UNIMPLEMENTED, message: `compression "${String(encoding)}" is not supported` });
      return;
    }
    if (this.#closing !== undefined) {
      call.end({ code: GrpcStatus.UNAVAILABLE, message: 'the server is shutting down' });
      return;
    }
    const handler = this.#handlers.get(path);
    if (handler === undefined) {
      const match = /^\/([^/]+)\/([^/]+)$/.exec(path);
      const service = match?.[1];
      const known = service !== undefined && [...this.#handlers.keys()].some((p) => p.startsWith(`/${service}/`));
      call.end({
        code: GrpcStatus.UNIMPLEMENTED,
        message: known ? `unknown method ${match?.[2] ?? ''} for service ${service}` : `unknown service ${service ?? path}`,
      });
      return;
    }
    try {
      handler(call);
    } catch (err) {
      this.#logger.error({ err: (err as Error).message, path }, 'gRPC handler failed');
      call.end({ code: GrpcStatus.INTERNAL, message: 'internal error' });
    }
  }
}

type CallState = 'open' | 'responding' | 'finished';

/**
 * One call on the server: inbound messages through a MessageReader with pause/resume backpressure,
 * outbound messages and a final status. Once finished or cancelled, further sends are ignored.
 */
export class ServerCall {
  readonly path: string;
  readonly metadata: IncomingHttpHeaders;
  /** When the client's `grpc-timeout` runs out (epoch ms), if it sent one. */
  readonly deadline: number | undefined;
  readonly peer: { readonly address: string; readonly port: number };
  readonly #stream: ServerHttp2Stream;
  readonly #abort = new AbortController();
  readonly #parser: MessageParser;
  readonly #maxSend: number;
  readonly #onDone: () => void;
  #state: CallState = 'open';
  #reader: MessageReader | undefined;
  #inputDone = false;
  #trailers: OutgoingHttpHeaders | undefined;
  #deadlineTimer: NodeJS.Timeout | undefined;

  constructor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, maxReceive: number, maxSend: number, onDone: () => void) {
    this.#stream = stream;
    this.path = headers[':path'] ?? '';
    this.metadata = headers;
    this.#parser = new MessageParser(maxReceive);
    this.#maxSend = maxSend;
    this.#onDone = onDone;
    const socket = stream.session?.socket;
    const address = socket?.remoteAddress ?? '';
    this.peer = { address: address.startsWith('::ffff:') ? address.slice(7) : address, port: socket?.remotePort ?? 0 };
    const timeout = headers['grpc-timeout'];
    const ms = typeof timeout === 'string' ? parseTimeout(timeout) : undefined;
    this.deadline = ms === undefined ? undefined : Date.now() + ms;
    if (ms !== undefined) {
      this.#deadlineTimer = setTimeout(() => this.end({ code: GrpcStatus.DEADLINE_EXCEEDED, message: 'deadline exceeded' }), ms);
      this.#deadlineTimer.unref();
    }
    stream.pause();
    stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    stream.once('end', () => this.#onInputEnd());
    stream.once('close', () => this.#onClose());
  }

  /** Aborted when the client cancels, the deadline passes, or the call ends with an error. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** Starts delivering inbound messages. Call once. */
  setReader(reader: MessageReader): void {
    this.#reader = reader;
    this.#stream.resume();
  }

  pause(): void {
    this.#stream.pause();
  }

  resume(): void {
    if (!this.#inputDone) this.#stream.resume();
  }

  sendHeaders(metadata: Metadata = {}): void {
    if (this.#state !== 'open' || this.#stream.destroyed) return;
    this.#state = 'responding';
    this.#stream.respond({ ...metadata, ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    this.#stream.once('wantTrailers', () => {
      this.#stream.sendTrailers(this.#trailers ?? { 'grpc-status': String(GrpcStatus.OK) });
    });
  }

  /** Sends one message; false when the stream's buffer is full (wait for `onDrain`). */
  sendMessage(bytes: Uint8Array): boolean {
    return this.sendMessageParts([bytes]);
  }

  /** Sends one message made of several buffers, without concatenating large ones. */
  sendMessageParts(parts: readonly Uint8Array[]): boolean {
    if (this.#state === 'finished' || this.#stream.destroyed) return true;
    if (framedLength(parts) > this.#maxSend) {
      this.end({ code: GrpcStatus.RESOURCE_EXHAUSTED, message: `trying to send message larger than max (${framedLength(parts)} vs. ${this.#maxSend})` });
      return true;
    }
    if (this.#state === 'open') this.sendHeaders();
    let ok = true;
    for (const part of framedParts(parts)) ok = this.#stream.write(part);
    return ok;
  }

  onDrain(callback: () => void): void {
    this.#stream.once('drain', callback);
  }

  /** Ends the call with a status (Trailers-Only when nothing was sent yet). */
  end(status: CallStatus, trailers: Metadata = {}): void {
    if (this.#state === 'finished') return;
    const wasOpen = this.#state === 'open';
    this.#state = 'finished';
    this.#clearDeadline();
    const statusHeaders: OutgoingHttpHeaders = { ...trailers, 'grpc-status': String(status.code) };
    if (status.message !== undefined && status.message !== '') statusHeaders['grpc-message'] = encodeGrpcMessage(status.message);
    if (status.code !== GrpcStatus.OK) this.#abortWith(status);
    const stream = this.#stream;
    if (stream.destroyed || stream.closed) {
      this.#onDone();
      return;
    }
    if (wasOpen) {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', ...statusHeaders }, { endStream: true });
    } else {
      this.#trailers = statusHeaders;
      stream.end();
    }
    this.#onDone();
  }

  #onData(chunk: Buffer): void {
    if (this.#state === 'finished') return;
    const reader = this.#reader;
    const error = this.#parser.push(chunk, (message) => reader?.message(message));
    if (error !== undefined) {
      this.#inputDone = true;
      reader?.error(error);
      this.end(error);
    }
  }

  #onInputEnd(): void {
    if (this.#inputDone) return;
    this.#inputDone = true;
    if (!this.#parser.idle) {
      const status = { code: GrpcStatus.INTERNAL, message: 'the request ended inside a message' };
      this.#reader?.error(status);
      this.end(status);
      return;
    }
    this.#reader?.end();
  }

  #onClose(): void {
    this.#clearDeadline();
    if (this.#state !== 'finished') {
      // The client reset the stream (cancelled) or the connection went away.
      this.#state = 'finished';
      const status = { code: GrpcStatus.CANCELLED, message: 'the call was cancelled by the client' };
      if (!this.#inputDone) {
        this.#inputDone = true;
        this.#reader?.error(status);
      }
      this.#abortWith(status);
      this.#onDone();
    }
  }

  #abortWith(status: CallStatus): void {
    if (!this.#abort.signal.aborted) this.#abort.abort(Object.assign(new Error(status.message ?? 'call ended'), { code: status.code }));
  }

  #clearDeadline(): void {
    if (this.#deadlineTimer !== undefined) {
      clearTimeout(this.#deadlineTimer);
      this.#deadlineTimer = undefined;
    }
  }
}
