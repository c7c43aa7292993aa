import { performance } from 'node:perf_hooks';

/** A connection that can be pinged: an HTTP/2 session, or a lane connection. */
export interface Pingable {
  readonly destroyed: boolean;
  readonly closed: boolean;
  /** Sends a PING; `callback` runs when it is acknowledged. False when it could not be sent. */
  ping(callback: (err: Error | null) => void): boolean;
}

/** What a {@link SessionKeeper} watches for and whom it tells. */
export interface SessionKeeperOptions {
  /** Send a PING this often (0 or undefined: never). */
  readonly pingIntervalMs: number | undefined;
  /** A PING not acknowledged within this means the peer or the path to it is dead. */
  readonly pingTimeoutMs: number;
  /** Close the session after this long without calls (0 or undefined: never). */
  readonly idleTimeoutMs: number | undefined;
  onPingTimeout(): void;
  onIdle(): void;
}

/**
 * Keepalive and idleness for one connection (an HTTP/2 session or a lane connection), shared by the
 * server's connections and the client's. Node has no PING timeout of its own: a PING to a peer that vanished without a FIN (a
 * crashed host, a dropped NAT mapping) would wait forever, and so would every call on the session.
 *
 * Idleness is measured without touching timers on the per-call path: the count of active calls is a
 * number, the moment it reached zero a timestamp, and one timer per session re-checks them when it
 * fires (so a session is closed between one and two idle periods after its last call). All timers are
 * unref'ed: keepalive never keeps a process alive.
 */
export class SessionKeeper {
  readonly #session: Pingable;
  readonly #options: SessionKeeperOptions;
  #active = 0;
  #idleSince = performance.now();
  #idleTimer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  #pingDeadline: NodeJS.Timeout | undefined;
  #stopped = false;
  readonly #onPingAck = (_err: Error | null): void => {
    if (this.#pingDeadline !== undefined) {
      clearTimeout(this.#pingDeadline);
      this.#pingDeadline = undefined;
    }
  };

  constructor(session: Pingable, options: SessionKeeperOptions) {
    this.#session = session;
    this.#options = options;
  }

  /** Starts the timers (for a client, once the connection is established). */
  start(): void {
    if (this.#stopped) return;
    const { idleTimeoutMs, pingIntervalMs } = this.#options;
    if (idleTimeoutMs !== undefined && idleTimeoutMs > 0 && this.#idleTimer === undefined) {
      this.#idleTimer = setTimeout(this.#checkIdle, idleTimeoutMs);
      this.#idleTimer.unref();
    }
    if (pingIntervalMs !== undefined && pingIntervalMs > 0 && this.#pingTimer === undefined) {
      this.#pingTimer = setInterval(this.#ping, pingIntervalMs);
      this.#pingTimer.unref();
    }
  }

  /** Number of calls currently using the session. */
  get active(): number {
    return this.#active;
  }

  callStarted(): void {
    this.#active++;
  }

  callEnded(): void {
    if (--this.#active === 0) this.#idleSince = performance.now();
  }

  /** Stops every timer; idempotent. */
  stop(): void {
    this.#stopped = true;
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    if (this.#pingTimer !== undefined) clearInterval(this.#pingTimer);
    if (this.#pingDeadline !== undefined) clearTimeout(this.#pingDeadline);
    this.#idleTimer = this.#pingTimer = this.#pingDeadline = undefined;
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

  readonly #ping = (): void => {
    if (this.#stopped || this.#pingDeadline !== undefined) return;
    const session = this.#session;
    if (session.destroyed || session.closed) return;
    let sent: boolean;
    try {
      sent = session.ping(this.#onPingAck);
    } catch {
      return;
    }
    if (!sent) return;
    this.#pingDeadline = setTimeout(this.#pingExpired, this.#options.pingTimeoutMs);
    this.#pingDeadline.unref();
  };

  readonly #pingExpired = (): void => {
    this.#pingDeadline = undefined;
    if (this.#stopped) return;
    this.#options.onPingTimeout();
  };
}
