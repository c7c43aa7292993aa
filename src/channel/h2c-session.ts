import type { ClientHttp2Session } from 'node:http2';
import { connect as netConnect } from 'node:net';
import type { Logger } from '../observability/logging/index.js';
import { keepStreamsInIdTable } from '../grpc/session-streams.js';
import { http2 } from '../util/builtins.js';
import { SessionKeeper } from '../grpc/keepalive.js';

export interface H2cSessionOptions {
  readonly host: string;
  readonly port: number;
  /** The socket must connect and the app's first SETTINGS frame arrive within this. */
  readonly connectTimeoutMs: number;
  /** A session without calls for this long is closed (the HTTP/1.1 pool's keep-alive timeout). */
  readonly idleTimeoutMs: number;
  readonly logger: Logger;
}

/** The window the app may fill on one stream before the sidecar reads from it (Node's default is 64 KiB). */
const STREAM_WINDOW_BYTES = 256 * 1024;
/** The window the app may fill across all streams of the session. */
const SESSION_WINDOW_BYTES = 16 * 1024 * 1024;
/** Node refuses new streams once the session buffers more than this (MB); large bodies must not trip it. */
const MAX_SESSION_MEMORY_MB = 256;

/** An error of the session's own (not of a socket), with a code the app channel can classify. */
export class H2cSessionError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/**
 * One HTTP/2 session with the app, without TLS, the HTTP/2 preface sent with prior knowledge.
 * - `connecting`: the socket is opening, or the app's SETTINGS are awaited; streams already requested
 *   wait in Node until the socket connects.
 * - `ready`: the app answered with SETTINGS.
 * - `retired`: GOAWAY received, idle, or out of stream ids: no new streams; open ones finish.
 * - `closed`: the session and its socket are gone.
 */
export type H2cSessionState = 'connecting' | 'ready' | 'retired' | 'closed';

export class H2cSession {
  readonly session: ClientHttp2Session;
  /** Resolves once the session and its socket are closed. */
  readonly closed: Promise<void>;
  #state: H2cSessionState = 'connecting';
  /** The socket connected: from then on a request may have reached the app. */
  #socketConnected = false;
  /** Why the session failed, when it did. */
  #error: Error | undefined;
  readonly #keeper: SessionKeeper;
  readonly #timer: NodeJS.Timeout;
  readonly #onGone: (session: H2cSession) => void;

  constructor(options: H2cSessionOptions, onGone: (session: H2cSession) => void) {
    this.#onGone = onGone;
    const host = options.host.includes(':') ? `[${options.host}]` : options.host;
    this.session = http2().connect(`http://${host}:${options.port}`, {
      createConnection: () => {
        const socket = netConnect({ host: options.host, port: options.port, noDelay: true });
        socket.once('connect', () => {
          this.#socketConnected = true;
        });
        // Once the session has ended its side (a graceful close), there is nothing left to wait for:
        // a Node server never closes its side of such a connection, and the session would linger.
        socket.once('finish', () => socket.destroy());
        return socket;
      },
      settings: { enablePush: false, initialWindowSize: STREAM_WINDOW_BYTES },
      maxSessionMemory: MAX_SESSION_MEMORY_MB,
    });
    keepStreamsInIdTable(this.session);
    this.session.unref();
    this.closed = new Promise((resolve) => this.session.once('close', resolve));
    this.#timer = setTimeout(() => {
      if (this.#state !== 'connecting') return;
      this.#error ??= new H2cSessionError(
        this.#socketConnected ? 'ERR_H2C_NO_SETTINGS' : 'UND_ERR_CONNECT_TIMEOUT',
        this.#socketConnected
          ? `the app did not answer the HTTP/2 preface within ${options.connectTimeoutMs}ms`
          : `connecting to the app timed out after ${options.connectTimeoutMs}ms`,
      );
      this.session.destroy();
    }, options.connectTimeoutMs);
    this.#timer.unref();
    this.#keeper = new SessionKeeper(this.session, {
      pingIntervalMs: undefined,
      pingTimeoutMs: 0,
      idleTimeoutMs: options.idleTimeoutMs,
      onIdle: () => this.#retire(true),
      onPingTimeout: () => {},
    });
    this.session.once('remoteSettings', () => {
      if (this.#state !== 'connecting') return;
      clearTimeout(this.#timer);
      this.#state = 'ready';
      try {
        this.session.setLocalWindowSize(SESSION_WINDOW_BYTES);
      } catch {
        // Not fatal: the default window only limits throughput.
      }
      this.#keeper.start();
    });
    this.session.on('goaway', (code: number, lastStreamId: number) => {
      options.logger.debug({ code, lastStreamId }, 'the app sent GOAWAY on its HTTP/2 session');
      this.#retire(false);
    });
    this.session.on('error', (err: Error) => {
      this.#error ??= err;
      options.logger.debug({ err: err.message }, 'HTTP/2 session with the app failed');
    });
    this.session.once('close', () => {
      clearTimeout(this.#timer);
      this.#keeper.stop();
      if (this.#state === 'connecting' && this.#error === undefined) {
        this.#error = new H2cSessionError('ERR_H2C_CLOSED', 'the app closed the connection before HTTP/2 was established');
      }
      this.#state = 'closed';
      this.#onGone(this);
    });
  }

  get state(): H2cSessionState {
    return this.#state;
  }

  /** Takes new streams. */
  get usable(): boolean {
    return (this.#state === 'connecting' || this.#state === 'ready') && !this.session.closed && !this.session.destroyed;
  }

  /** True once the socket connected: a stream that fails afterwards may have reached the app. */
  get socketConnected(): boolean {
    return this.#socketConnected;
  }

  /** Why the session failed, if it did. */
  get error(): Error | undefined {
    return this.#error;
  }

  callStarted(): void {
    this.#keeper.callStarted();
  }

  callEnded(): void {
    this.#keeper.callEnded();
  }

  /** Stops taking new streams; with `close`, also closes the session once its streams are done. */
  #retire(close: boolean): void {
    if (this.#state === 'closed' || this.#state === 'retired') return;
    this.#state = 'retired';
    this.#onGone(this);
    if (close) this.session.close();
  }

  /** Takes no new streams; open ones finish (stream ids ran out). */
  retire(): void {
    this.#retire(true);
  }

  destroy(): void {
    this.session.destroy();
  }
}

/**
 * The HTTP/2 sessions with one app: normally a single one carries every call; it is opened on first
 * use and replaced on the next call after it closes, receives GOAWAY or is closed for idleness.
 * Sessions being retired stay until their streams finish.
 */
export class H2cSessions {
  readonly #options: H2cSessionOptions;
  readonly #all = new Set<H2cSession>();
  #current: H2cSession | undefined;
  #closed = false;
  readonly #onGone = (session: H2cSession): void => {
    if (this.#current === session) this.#current = undefined;
    if (session.state === 'closed') this.#all.delete(session);
  };

  constructor(options: H2cSessionOptions) {
    this.#options = options;
  }

  /** The session new streams go on (opened now if there is none); undefined once closed. */
  current(): H2cSession | undefined {
    if (this.#closed) return undefined;
    const current = this.#current;
    if (current !== undefined && current.usable) return current;
    const session = new H2cSession(this.#options, this.#onGone);
    this.#current = session;
    this.#all.add(session);
    return session;
  }

  /** Number of sessions open or opening (for tests and diagnostics). */
  get size(): number {
    return this.#all.size;
  }

  /** Destroys every session now; streams in flight fail. Resolves once every socket is closed. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#current = undefined;
    const sessions = [...this.#all];
    for (const session of sessions) session.destroy();
    await Promise.all(sessions.map((s) => s.closed));
  }
}
