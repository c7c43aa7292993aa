import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { GrpcStatus, errorMessage } from '../errors/index.js';
import { silentLogger, type Logger } from '../observability/logging/index.js';
import type { CallOptions, ClientCall } from './call.js';
import { Http2ClientCall, kFail, kPrepare, type ClientCallOwner } from './client-call.js';
import { Connection, type ChannelTarget, type ConnectionOwner, type ConnectionSettings } from './connection.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from './framing.js';
import type { Metadata } from './metadata.js';

export interface GrpcChannelOptions {
  /**
   * Connection establishment, including the server's first SETTINGS frame (proof that an HTTP/2
   * server answers), must finish within this. Default 5000.
   */
  readonly connectTimeoutMs?: number | undefined;
  /** Largest response message accepted; larger ones fail the call with RESOURCE_EXHAUSTED. Default 4 MiB. */
  readonly maxReceiveMessageBytes?: number | undefined;
  /** Largest request message; sending a larger one fails the call with RESOURCE_EXHAUSTED. Default 4 MiB. */
  readonly maxSendMessageBytes?: number | undefined;
  /** Keepalive: PING the server this often while connected (0: never). Default 10 s. */
  readonly pingIntervalMs?: number | undefined;
  /** A PING not acknowledged within this destroys the connection; its calls fail `reset`. Default 5 s. */
  readonly pingTimeoutMs?: number | undefined;
  /**
   * Silence detection: while calls are waiting on a connection and nothing at all has arrived on it
   * for this long, PING the server (0: never). Default 0: the server may be any gRPC server, and
   * silence PINGs respect gRPC's ping policy only as far as a Courier or Dapr sidecar needs (see
   * `SilenceOptions.pingPolicy`).
   */
  readonly silenceMs?: number | undefined;
  /**
   * A silence PING unanswered for this long (with nothing else arriving either) destroys the
   * connection; its calls fail `reset` at once. Default 1 s.
   */
  readonly silenceAckTimeoutMs?: number | undefined;
  /** A connection without calls for this long is closed (0: never). Default 3 minutes. */
  readonly idleTimeoutMs?: number | undefined;
  /**
   * Opens the transport socket; the seam for TLS (return a `tls.connect(...)` socket negotiating ALPN
   * `h2`, and set `scheme: 'https'`). Default: plain TCP, HTTP/2 with prior knowledge (h2c).
   */
  readonly createConnection?: ((target: ChannelTarget) => Duplex) | undefined;
  /** `:scheme` of requests. Default 'http'. */
  readonly scheme?: 'http' | 'https' | undefined;
  readonly logger?: Logger | undefined;
}

const DEFAULTS = {
  connectTimeoutMs: 5000,
  pingIntervalMs: 10_000,
  pingTimeoutMs: 5000,
  silenceMs: 0,
  silenceAckTimeoutMs: 1000,
  idleTimeoutMs: 180_000,
} as const;

const NO_OPTIONS: CallOptions = {};

function plainConnection(target: ChannelTarget): Duplex {
  return netConnect({ host: target.host, port: target.port, noDelay: true });
}

/** `host:port`, with IPv6 literals bracketed: the form used in messages and as the pool's key. */
export function targetLabel(target: ChannelTarget): string {
  const address = target.host.includes(':') ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
  return target.identity === undefined ? address : `${address} as ${target.identity}`;
}

/** The channel's state shared with its calls and connections. */
class ChannelCore implements ClientCallOwner, ConnectionOwner {
  readonly label: string;
  readonly target: ChannelTarget;
  readonly settings: ConnectionSettings;
  readonly maxSendMessageBytes: number;
  readonly maxReceiveMessageBytes: number;
  readonly logger: Logger;
  readonly connections: Connection[] = [];
  closed = false;

  constructor(target: ChannelTarget, options: GrpcChannelOptions) {
    this.target = target.identity === undefined ? { host: target.host, port: target.port } : { host: target.host, port: target.port, identity: target.identity };
    this.label = targetLabel(target);
    this.logger = options.logger ?? silentLogger();
    this.maxSendMessageBytes = options.maxSendMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.maxReceiveMessageBytes = options.maxReceiveMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.settings = {
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
      pingIntervalMs: options.pingIntervalMs ?? DEFAULTS.pingIntervalMs,
      pingTimeoutMs: options.pingTimeoutMs ?? DEFAULTS.pingTimeoutMs,
      silenceMs: options.silenceMs ?? DEFAULTS.silenceMs,
      silenceAckTimeoutMs: options.silenceAckTimeoutMs ?? DEFAULTS.silenceAckTimeoutMs,
      idleTimeoutMs: options.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs,
      scheme: options.scheme ?? 'http',
      createConnection: options.createConnection ?? plainConnection,
      logger: this.logger,
    };
  }

  /** The first connection that takes new calls, else a new one (also when all are at the server's limit). */
  dispatch(call: Http2ClientCall): void {
    if (this.closed) {
      call[kFail](GrpcStatus.UNAVAILABLE, `the channel to ${this.label} is closed; the call was not sent`, 'refused');
      return;
    }
    for (const connection of this.connections) {
      if (connection.accepting) {
        connection.attach(call);
        return;
      }
    }
    let connection: Connection;
    try {
      connection = new Connection(this);
    } catch (err) {
      // createConnection or Node's connect() threw (e.g. an invalid port): nothing was sent.
      call[kFail](GrpcStatus.UNAVAILABLE, `connection to ${this.label} failed: ${errorMessage(err)}`, 'connect-failed');
      return;
    }
    this.connections.push(connection);
    connection.attach(call);
  }

  redispatch(call: Http2ClientCall): void {
    this.dispatch(call);
  }

  connectionClosed(connection: Connection): void {
    const at = this.connections.indexOf(connection);
    if (at !== -1) this.connections.splice(at, 1);
  }
}

/**
 * A client for one gRPC server address, over HTTP/2 connections it opens lazily and reopens on the
 * next call after one dies. Normally a single connection carries every call; another is opened when
 * the open ones reach the server's SETTINGS_MAX_CONCURRENT_STREAMS (rather than queueing calls in
 * nghttp2 with no bound), or while one drains after GOAWAY.
 *
 * Every timer is unref'ed, and an idle connection's socket too, so a channel never keeps a process
 * alive by itself; `close()` releases everything.
 */
export class GrpcChannel {
  readonly target: ChannelTarget;
  readonly #core: ChannelCore;
  #closed: Promise<void> | undefined;

  constructor(target: ChannelTarget, options: GrpcChannelOptions = {}) {
    this.#core = new ChannelCore(target, options);
    this.target = this.#core.target;
  }

  /** `host:port` of the target (`[v6]:port` for IPv6). */
  get label(): string {
    return this.#core.label;
  }

  /** Number of open or opening connections (for tests and diagnostics). */
  get connectionCount(): number {
    return this.#core.connections.length;
  }

  /**
   * Starts a call to `path` (`/package.Service/Method`) with request `metadata` (reserved fields are
   * ignored; `user-agent` overrides the default). Returns at once; set a reader on the call, send
   * messages, then `end()` it. Failures are reported through the reader's `end`, never thrown.
   */
  call(path: string, metadata?: Metadata, options: CallOptions = NO_OPTIONS): ClientCall {
    const core = this.#core;
    const call = new Http2ClientCall(core, path, metadata, options);
    if (call[kPrepare]()) core.dispatch(call);
    return call;
  }

  /**
   * Destroys every connection now: calls not yet sent fail `refused`, calls in flight fail `reset`.
   * Later calls fail `refused` immediately. Resolves once every socket is closed. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closed === undefined) {
      this.#core.closed = true;
      const connections = [...this.#core.connections];
      for (const connection of connections) connection.destroy('the channel was closed');
      this.#closed = Promise.all(connections.map((connection) => connection.closed)).then(() => undefined);
    }
    return this.#closed;
  }
}
