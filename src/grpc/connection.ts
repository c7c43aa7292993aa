import type { ClientHttp2Session, ClientHttp2Stream, Settings } from 'node:http2';
import { http2 } from '../util/builtins.js';
import type { Duplex } from 'node:stream';
import { GrpcStatus, errorMessage } from '../errors/index.js';
import type { Logger } from '../observability/logging/index.js';
import { kAttach, kFail, kHeaders, kQueued, type CallConnection, type Http2ClientCall } from './client-call.js';
import { keepStreamsInIdTable } from './session-streams.js';
import { SessionKeeper } from './keepalive.js';

/** Where a channel connects. `host` is a name or an IP literal (IPv6 without brackets: `::1`). */
export interface ChannelTarget {
  readonly host: string;
  readonly port: number;
  /**
   * Whom the server at this address must prove to be (with TLS, e.g. a SPIFFE path). Part of the
   * pool key, so a connection proven for one identity never serves calls meant for another.
   */
  readonly identity?: string | undefined;
}

/** The channel's resolved settings, as a connection uses them. */
export interface ConnectionSettings {
  readonly connectTimeoutMs: number;
  readonly pingIntervalMs: number;
  readonly pingTimeoutMs: number;
  /** Silence detection (0: off); see `GrpcChannelOptions.silenceMs`. */
  readonly silenceMs: number;
  readonly silenceAckTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly scheme: 'http' | 'https';
  readonly createConnection: (target: ChannelTarget) => Duplex;
  readonly logger: Logger;
}

/** The channel, as a connection sees it. */
export interface ConnectionOwner {
  readonly label: string;
  readonly target: ChannelTarget;
  readonly settings: ConnectionSettings;
  /** Places a call that this connection could not take (full, or going away) elsewhere. */
  redispatch(call: Http2ClientCall): void;
  connectionClosed(connection: Connection): void;
}

/**
 * - `connecting`: the socket is being opened and the server's first SETTINGS awaited; calls queue here
 *   (no stream yet, so a failure is cleanly "never sent").
 * - `ready`: calls get streams, up to the server's SETTINGS_MAX_CONCURRENT_STREAMS.
 * - `draining`: GOAWAY received, idle close, or a fatal request error: no new calls; open ones finish.
 * - `closed`: the session is gone.
 */
type ConnectionState =
  | { readonly kind: 'connecting'; readonly timer: NodeJS.Timeout; readonly queue: Http2ClientCall[] }
  | { readonly kind: 'ready' }
  | { readonly kind: 'draining' }
  | { readonly kind: 'closed' };

const READY: ConnectionState = { kind: 'ready' };
const DRAINING: ConnectionState = { kind: 'draining' };
const CLOSED: ConnectionState = { kind: 'closed' };

/** Node refuses new streams beyond this buffered memory (MB); see the server's note. */
const MAX_SESSION_MEMORY_MB = 256;
/** The connection-level receive window (Node's default, 64 KiB, would be shared by all streams). */
const SESSION_WINDOW_BYTES = 16 * 1024 * 1024;

function destroySocket(this: Duplex): void {
  this.destroy();
}

/**
 * The least time between two PINGs that a gRPC server's ping policy may demand when it sent nothing in
 * between (grpc-go's MinTime; Dapr's internal server sets 8 s), with a margin.
 */
const PEER_MIN_PING_INTERVAL_MS = 10_000;

/** Node's request() errors that mean "this session takes no more streams", not "this request is bad". */
const SESSION_UNUSABLE = new Set(['ERR_HTTP2_GOAWAY_SESSION', 'ERR_HTTP2_INVALID_SESSION', 'ERR_HTTP2_OUT_OF_STREAMS']);

/**
 * One HTTP/2 connection of a channel. It decides, for calls that fail without a status, what the
 * server can have seen: calls queued while connecting were never sent (`connect-failed` if the
 * connection then fails); GOAWAY's last-stream-id tells which streams the server never processed.
 */
export class Connection implements CallConnection {
  readonly session: ClientHttp2Session;
  /** Resolves once the session (and its socket) is closed. */
  readonly closed: Promise<void>;
  goawayLastStreamId: number | undefined;
  peerData = 0;

  readonly #owner: ConnectionOwner;
  readonly #keeper: SessionKeeper;
  #state: ConnectionState;
  #maxStreams = Number.POSITIVE_INFINITY;
  /** Queued calls plus open streams; the socket is ref'ed only while this is positive. */
  #users = 0;
  #connectFailure: string | undefined;
  #lossReason: string | undefined;
  #resolveClosed: (() => void) | undefined;
  #socket: Duplex | undefined;

  constructor(owner: ConnectionOwner) {
    this.#owner = owner;
    const { target, settings } = owner;
    const host = target.host.includes(':') ? `[${target.host}]` : target.host;
    this.session = http2().connect(`${settings.scheme}://${host}:${target.port}`, {
      createConnection: () => {
        const socket = settings.createConnection(target);
        this.#socket = socket;
        // Node quirk: a session that was closed gracefully (GOAWAY received, idle close) only ends
        // its socket and then waits for the server to close its side, which a Node server never
        // does: the session (and our close()) would hang. Once our side is ended there is nothing
        // left to wait for.
        socket.once('finish', destroySocket);
        return socket;
      },
      settings: { enablePush: false },
      maxSessionMemory: MAX_SESSION_MEMORY_MB,
    });
    keepStreamsInIdTable(this.session);
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    const timer = setTimeout(this.#connectTimedOut, settings.connectTimeoutMs);
    timer.unref();
    this.#state = { kind: 'connecting', timer, queue: [] };
    this.#keeper = new SessionKeeper(this.session, {
      pingIntervalMs: settings.pingIntervalMs,
      pingTimeoutMs: settings.pingTimeoutMs,
      idleTimeoutMs: settings.idleTimeoutMs,
      onIdle: this.#idle,
      onPingTimeout: this.#pingTimedOut,
      silence:
        settings.silenceMs > 0
          ? {
              silenceMs: settings.silenceMs,
              ackTimeoutMs: settings.silenceAckTimeoutMs,
              received: this.#received,
              pingPolicy: { minIntervalMs: PEER_MIN_PING_INTERVAL_MS, peerData: this.#peerData },
              onDead: this.#silentTooLong,
            }
          : undefined,
    });
    this.session.on('remoteSettings', this.#onRemoteSettings);
    this.session.on('goaway', this.#onGoaway);
    this.session.on('error', this.#onError);
    this.session.once('close', this.#onClose);
    this.session.unref();
  }

  /** True when a new call may be placed here. */
  get accepting(): boolean {
    const state = this.#state;
    return state.kind === 'connecting' || (state.kind === 'ready' && this.#keeper.active < this.#maxStreams);
  }

  /** Queues the call (while connecting) or opens its stream. */
  attach(call: Http2ClientCall): void {
    const state = this.#state;
    if (state.kind === 'connecting') {
      state.queue.push(call);
      call[kQueued](this);
      this.#retain();
      return;
    }
    this.#start(call);
  }

  /**
   * Destroys the connection now (channel closed or evicted). Queued calls fail `refused` (never sent);
   * calls with streams fail `reset` with `reason`.
   */
  destroy(reason: string): void {
    const state = this.#state;
    if (state.kind === 'closed') return;
    this.#lossReason ??= reason;
    if (state.kind === 'connecting') {
      clearTimeout(state.timer);
      this.#state = DRAINING;
      this.#failQueue(state.queue, `${reason}; the call was not sent`, 'refused');
    }
    this.session.destroy();
    // A session Node had already closed gracefully would otherwise wait for the peer (see above).
    this.#socket?.destroy();
  }

  // --- CallConnection --------------------------------------------------------------------------

  lossReason(streamError: Error | undefined): string | undefined {
    if (this.#lossReason !== undefined) return this.#lossReason;
    if (!this.session.destroyed) return undefined;
    return streamError !== undefined ? errorMessage(streamError) : 'the connection closed';
  }

  streamClosed(_call: Http2ClientCall): void {
    this.#keeper.callEnded();
    this.#release();
  }

  dequeue(call: Http2ClientCall): void {
    const state = this.#state;
    if (state.kind !== 'connecting') return;
    const at = state.queue.indexOf(call);
    if (at === -1) return;
    state.queue.splice(at, 1);
    this.#release();
  }

  // --- internals -------------------------------------------------------------------------------

  #start(call: Http2ClientCall): void {
    const headers = call[kHeaders]();
    if (headers === undefined) return;
    let stream: ClientHttp2Stream;
    try {
      stream = this.session.request(headers);
    } catch (err) {
      if (SESSION_UNUSABLE.has((err as NodeJS.ErrnoException).code ?? '')) {
        if (this.#state.kind === 'ready') this.#state = DRAINING;
        this.#owner.redispatch(call);
        return;
      }
      // Invalid metadata: Node validates header names and values.
      call[kFail](GrpcStatus.INTERNAL, `the request could not be sent: ${errorMessage(err)}`, undefined);
      return;
    }
    this.#keeper.callStarted();
    this.#retain();
    call[kAttach](stream, this);
  }

  #retain(): void {
    if (this.#users++ === 0 && !this.session.destroyed) this.session.ref();
  }

  #release(): void {
    if (--this.#users === 0 && !this.session.destroyed) this.session.unref();
  }

  #failQueue(queue: Http2ClientCall[], message: string, transport: 'connect-failed' | 'refused'): void {
    const calls = queue.splice(0);
    for (const call of calls) {
      this.#release();
      call[kFail](GrpcStatus.UNAVAILABLE, message, transport);
    }
  }

  readonly #onRemoteSettings = (settings: Settings): void => {
    this.#maxStreams = settings.maxConcurrentStreams ?? Number.POSITIVE_INFINITY;
    const state = this.#state;
    if (state.kind !== 'connecting') return;
    clearTimeout(state.timer);
    this.#state = READY;
    try {
      this.session.setLocalWindowSize(SESSION_WINDOW_BYTES);
    } catch {
      // Not fatal: the default window only limits throughput.
    }
    this.#keeper.start();
    const calls = state.queue.splice(0);
    for (const call of calls) {
      // The queue's hold on the socket passes to the stream (or to the connection that takes the call).
      if (this.accepting) this.#start(call);
      else this.#owner.redispatch(call);
      this.#release();
    }
  };

  readonly #onGoaway = (code: number, lastStreamId: number): void => {
    this.goawayLastStreamId = lastStreamId;
    const state = this.#state;
    this.#owner.settings.logger.debug({ target: this.#owner.label, code, lastStreamId }, 'gRPC connection received GOAWAY');
    if (state.kind === 'connecting') {
      clearTimeout(state.timer);
      this.#state = DRAINING;
      this.#failQueue(state.queue, `${this.#owner.label} is going away (GOAWAY); the call was not sent`, 'refused');
    } else if (state.kind === 'ready') {
      this.#state = DRAINING;
    }
    // Node itself closes the session (NO_ERROR: after open streams finish) or destroys it (errors).
  };

  readonly #onError = (err: Error): void => {
    const message = errorMessage(err);
    if (this.#state.kind === 'connecting') this.#connectFailure ??= message;
    else this.#lossReason ??= message;
    this.#owner.settings.logger.debug({ target: this.#owner.label, err: message }, 'gRPC connection error');
  };

  readonly #onClose = (): void => {
    const state = this.#state;
    this.#state = CLOSED;
    this.#keeper.stop();
    if (state.kind === 'connecting') {
      clearTimeout(state.timer);
      const reason = this.#connectFailure ?? 'the connection closed before HTTP/2 was established';
      this.#failQueue(state.queue, `connection to ${this.#owner.label} failed: ${reason}`, 'connect-failed');
    }
    this.#owner.connectionClosed(this);
    this.#resolveClosed?.();
  };

  readonly #connectTimedOut = (): void => {
    if (this.#state.kind !== 'connecting') return;
    this.#connectFailure = `timed out after ${this.#owner.settings.connectTimeoutMs}ms`;
    this.session.destroy();
  };

  readonly #idle = (): void => {
    if (this.#state.kind !== 'ready') return;
    this.#state = DRAINING;
    this.session.close();
  };

  /**
   * What silence detection watches: the bytes read from the socket, counted by Node as it reads (no
   * per-frame hook exists for a whole HTTP/2 session); the response frames the calls saw, for a socket
   * that does not count.
   */
  readonly #received = (): number => {
    const bytesRead = (this.#socket as { bytesRead?: unknown } | undefined)?.bytesRead;
    return typeof bytesRead === 'number' ? bytesRead : this.peerData;
  };

  readonly #peerData = (): number => this.peerData;

  readonly #silentTooLong = (): void => {
    const { silenceMs, silenceAckTimeoutMs } = this.#owner.settings;
    this.#lossReason ??= `nothing received for ${silenceMs}ms while calls were waiting, and a ping was not acknowledged within ${silenceAckTimeoutMs}ms`;
    this.#owner.settings.logger.debug({ target: this.#owner.label, calls: this.#keeper.active }, 'gRPC connection went silent with calls waiting; dropping it');
    this.session.destroy();
    this.#socket?.destroy();
  };

  readonly #pingTimedOut = (): void => {
    this.#lossReason ??= `keepalive ping not acknowledged within ${this.#owner.settings.pingTimeoutMs}ms`;
    this.#owner.settings.logger.debug({ target: this.#owner.label }, 'gRPC keepalive ping timed out; dropping the connection');
    this.session.destroy();
  };
}
