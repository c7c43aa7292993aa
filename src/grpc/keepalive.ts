import { performance } from 'node:perf_hooks';

/** A connection that can be pinged: an HTTP/2 session, or a lane connection. */
export interface Pingable {
  readonly destroyed: boolean;
  readonly closed: boolean;
  /** Sends a PING; `callback` runs when it is acknowledged. False when it could not be sent. */
  ping(callback: (err: Error | null) => void): boolean;
}

/**
 * Silence detection, for the client side of a connection: a call waiting on a connection whose peer
 * vanished (no FIN, no RST: a host cut off, a crashed machine) fails in about `silenceMs` +
 * `ackTimeoutMs` instead of waiting for the next keepalive PING and its timeout.
 */
export interface SilenceOptions {
  /** While calls are active and nothing at all has been received for this long, PING the peer. */
  readonly silenceMs: number;
  /**
   * A PING unanswered for this long, with nothing at all received for as long, while calls are
   * active: the connection is dead. The peer's sidecar answers PINGs however slow its app is, so only
   * a dead path (or a peer stalled this long) trips it.
   */
  readonly ackTimeoutMs: number;
  /** A number that grows whenever anything is received on the connection (bytes read). Read a few times a second, never per frame. */
  readonly received: () => number;
  /**
   * For an HTTP/2 peer that may enforce gRPC's ping policy, as grpc-go and grpc-java servers do (Dapr's
   * internal server: one PING per 8 s). Such a server counts a PING that comes sooner than its
   * minimum after the previous one, with no HEADERS or DATA written by it in between, as a strike, and
   * closes the connection (GOAWAY ENHANCE_YOUR_CALM "too_many_pings") on the third. With this set, a
   * silence PING sooner than `minIntervalMs` after the previous PING is sent only when the peer sent
   * HEADERS or DATA after acknowledging that one (`peerData`: a count of those), or as the one early
   * PING allowed until it does: at most one strike is ever owed to us.
   */
  readonly pingPolicy?: { readonly minIntervalMs: number; readonly peerData: () => number } | undefined;
  /** The connection is dead (see `ackTimeoutMs`): destroy it, failing its calls. Called once. */
  onDead(): void;
}

/** What a {@link SessionKeeper} watches for and whom it tells. */
export interface SessionKeeperOptions {
  /** Send a PING this often (0 or undefined: never). PINGs sent for silence detection count. */
  readonly pingIntervalMs: number | undefined;
  /** A PING not acknowledged within this means the peer or the path to it is dead. */
  readonly pingTimeoutMs: number;
  /** Close the session after this long without calls (0 or undefined: never). */
  readonly idleTimeoutMs: number | undefined;
  /** Silence detection while calls are active (client side); undefined: none. */
  readonly silence?: SilenceOptions | undefined;
  onPingTimeout(): void;
  onIdle(): void;
}

/** Early PINGs (see `SilenceOptions.pingPolicy`) sent before the peer must have reset its strikes. */
const MAX_EARLY_PINGS = 1;
/** How much earlier than its limit a silence check may fire and still count as at the limit. */
const TICK_SLACK_MS = 5;

/**
 * Keepalive, idleness and (for a client) silence detection for one connection (an HTTP/2 session or
 * a lane connection), shared by the server's connections and the client's. Node has no PING timeout
 * of its own: a PING to a peer that vanished without a FIN (a crashed host, a dropped NAT mapping)
 * would wait forever, and so would every call on the session.
 *
 * Nothing here touches timers on the per-call path: the count of active calls is a number, the moment
 * it reached zero a timestamp, and one timer per session re-checks them when it fires (so a session is
 * closed between one and two idle periods after its last call). Silence detection is one more timer
 * per connection, running only while calls are active: every `silenceMs / 2` it compares the
 * connection's received-bytes count with the last one it saw, so nothing is done per frame. All
 * timers are unref'ed: keepalive never keeps a process alive.
 */
export class SessionKeeper {
  readonly #session: Pingable;
  readonly #options: SessionKeeperOptions;
  readonly #silence: SilenceOptions | undefined;
  #active = 0;
  #idleSince = performance.now();
  #idleTimer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  #pingDeadline: NodeJS.Timeout | undefined;
  /** When the PING in flight was sent; undefined when none is. */
  #pingSentAt: number | undefined;
  #lastPingAt = Number.NEGATIVE_INFINITY;
  #started = false;
  #stopped = false;
  // Silence detection.
  #watch: NodeJS.Timeout | undefined;
  #watching = false;
  #lastReceived = 0;
  /** When `received()` was last seen to grow (or the watch started, or a PING was acknowledged). */
  #heardAt = 0;
  #confirm: NodeJS.Immediate | undefined;
  #dataAtAck = 0;
  #earlyPings = 0;

  readonly #onPingAck = (err: Error | null): void => {
    if (this.#pingDeadline !== undefined) {
      clearTimeout(this.#pingDeadline);
      this.#pingDeadline = undefined;
    }
    this.#pingSentAt = undefined;
    const silence = this.#silence;
    if (err === null && silence !== undefined) {
      this.#heardAt = performance.now();
      if (silence.pingPolicy !== undefined) this.#dataAtAck = silence.pingPolicy.peerData();
    }
  };

  constructor(session: Pingable, options: SessionKeeperOptions) {
    this.#session = session;
    this.#options = options;
    const silence = options.silence;
    this.#silence = silence !== undefined && silence.silenceMs > 0 && silence.ackTimeoutMs > 0 ? silence : undefined;
  }

  /** Starts the timers (for a client, once the connection is established). */
  start(): void {
    if (this.#stopped || this.#started) return;
    this.#started = true;
    const { idleTimeoutMs, pingIntervalMs } = this.#options;
    if (idleTimeoutMs !== undefined && idleTimeoutMs > 0) {
      this.#idleTimer = setTimeout(this.#checkIdle, idleTimeoutMs);
      this.#idleTimer.unref();
    }
    if (pingIntervalMs !== undefined && pingIntervalMs > 0) this.#armPing(pingIntervalMs);
    if (this.#active > 0 && this.#silence !== undefined) this.#startWatch();
  }

  /** Number of calls currently using the session. */
  get active(): number {
    return this.#active;
  }

  callStarted(): void {
    if (this.#active++ === 0 && !this.#watching && this.#silence !== undefined && this.#started && !this.#stopped) this.#startWatch();
  }

  callEnded(): void {
    // The silence watch notices the zero at its next tick and stops itself.
    if (--this.#active === 0) this.#idleSince = performance.now();
  }

  /** Stops every timer; idempotent. */
  stop(): void {
    this.#stopped = true;
    this.#watching = false;
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    if (this.#pingTimer !== undefined) clearTimeout(this.#pingTimer);
    if (this.#pingDeadline !== undefined) clearTimeout(this.#pingDeadline);
    if (this.#watch !== undefined) clearTimeout(this.#watch);
    if (this.#confirm !== undefined) clearImmediate(this.#confirm);
    this.#idleTimer = this.#pingTimer = this.#pingDeadline = this.#watch = undefined;
    this.#confirm = undefined;
  }

  readonly #checkIdle = (): void => {
    this.#idleTimer = undefined;
    if (this.#stopped) return;
    const idleMs = this.#options.idleTimeoutMs ?? 0;
    const idleFor = performance.now() - this.#idleSince;
    if (this.#active === 0 && idleFor >= idleMs) {
      this.#options.onIdle();
      return;
    }
    this.#idleTimer = setTimeout(this.#checkIdle, this.#active === 0 ? Math.max(1, idleMs - idleFor) : idleMs);
    this.#idleTimer.unref();
  };

  #armPing(delayMs: number): void {
    this.#pingTimer = setTimeout(this.#intervalPing, delayMs);
    this.#pingTimer.unref();
  }

  /** Keepalive: a PING every `pingIntervalMs`, counted from the last PING of any kind. */
  readonly #intervalPing = (): void => {
    this.#pingTimer = undefined;
    if (this.#stopped) return;
    const interval = this.#options.pingIntervalMs ?? 0;
    const wait = this.#lastPingAt + interval - performance.now();
    // A silence PING went out meanwhile (a timer's few ms of lateness or earliness do not count).
    if (wait > Math.min(1000, interval / 10)) {
      this.#armPing(wait);
      return;
    }
    // A connection draining after GOAWAY still carries its calls: a peer that goes silent then
    // must not leave them waiting forever.
    if (!this.#session.closed || this.#active > 0) this.#sendPing();
    this.#armPing(interval);
  };

  /** Sends a PING unless one is in flight; its deadline is `pingTimeoutMs`. */
  #sendPing(): boolean {
    const session = this.#session;
    if (this.#pingSentAt !== undefined || session.destroyed) return false;
    let sent: boolean;
    try {
      sent = session.ping(this.#onPingAck);
    } catch {
      return false;
    }
    if (!sent) return false;
    const now = performance.now();
    this.#pingSentAt = now;
    this.#lastPingAt = now;
    this.#pingDeadline = setTimeout(this.#pingExpired, this.#options.pingTimeoutMs);
    this.#pingDeadline.unref();
    return true;
  }

  readonly #pingExpired = (): void => {
    this.#pingDeadline = undefined;
    if (this.#stopped) return;
    this.#options.onPingTimeout();
  };

  // --- silence detection -------------------------------------------------------------------------

  #startWatch(): void {
    const silence = this.#silence as SilenceOptions;
    this.#watching = true;
    this.#lastReceived = silence.received();
    this.#heardAt = performance.now();
    if (this.#watch === undefined) {
      this.#watch = setTimeout(this.#tick, Math.max(1, Math.floor(silence.silenceMs / 2)));
      this.#watch.unref();
    } else {
      this.#watch.refresh();
    }
  }

  readonly #tick = (): void => {
    if (this.#stopped) return;
    if (this.#active === 0) {
      this.#watching = false;
      return;
    }
    const silence = this.#silence as SilenceOptions;
    // Ticks are silenceMs / 2 apart; a tick a little early (timers and performance.now() keep time
    // differently) still counts as the one at the limit.
    const at = performance.now();
    const now = at + TICK_SLACK_MS;
    const received = silence.received();
    if (received !== this.#lastReceived) {
      this.#lastReceived = received;
      this.#heardAt = at;
    }
    const sentAt = this.#pingSentAt;
    if (sentAt !== undefined) {
      if (now - sentAt >= silence.ackTimeoutMs && now - this.#heardAt >= silence.ackTimeoutMs && this.#confirm === undefined) {
        // This timer may have run late, before this turn's I/O was read (an event loop that was
        // blocked runs timers first): look again once the pending reads are done.
        this.#confirm = setImmediate(this.#confirmDead);
      }
    } else if (now - this.#heardAt >= silence.silenceMs) {
      this.#silencePing(silence, at);
    }
    (this.#watch as NodeJS.Timeout).refresh();
  };

  #silencePing(silence: SilenceOptions, now: number): void {
    const policy = silence.pingPolicy;
    let early = false;
    if (policy !== undefined) {
      if (policy.peerData() !== this.#dataAtAck) {
        // The peer wrote HEADERS or DATA after answering our last PING: it cleared its strikes.
        this.#earlyPings = 0;
      } else if (now - this.#lastPingAt < policy.minIntervalMs) {
        if (this.#earlyPings >= MAX_EARLY_PINGS) return;
        early = true;
      }
    }
    if (this.#sendPing() && early) this.#earlyPings++;
  }

  readonly #confirmDead = (): void => {
    this.#confirm = undefined;
    if (this.#stopped || this.#pingSentAt === undefined || this.#active === 0) return;
    const silence = this.#silence as SilenceOptions;
    const received = silence.received();
    if (received !== this.#lastReceived) {
      this.#lastReceived = received;
      this.#heardAt = performance.now();
      return;
    }
    this.stop();
    silence.onDead();
  };
}
