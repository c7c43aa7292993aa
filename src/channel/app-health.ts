import { connect } from 'node:net';
import { CourierError } from '../errors/index.js';
import type { CallSignal } from '../invoke/call-signal.js';
import { cancelledError, type InvokeRequest, type ResponseSink } from '../invoke/types.js';
import type { Logger } from '../observability/logging/index.js';
import { appNotReadyError, type AppChannelState } from './app-channel.js';
import { Semaphore } from './semaphore.js';

export interface HealthProbeOptions {
  /** Path probed with GET; any 2xx is healthy (`--app-health-check-path`). */
  readonly path: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Consecutive failures that make the app unhealthy (`--app-health-threshold`). */
  readonly threshold: number;
}

/**
 * One health probe of the app: resolves with undefined when healthy, or with why not. It must stop
 * when `signal` aborts (the probe timed out or the channel closed).
 */
export type HealthCheck = (signal: AbortSignal) => Promise<string | undefined>;

export interface AppHealthOptions {
  readonly host: string;
  readonly port: number;
  readonly probe: HealthProbeOptions | undefined;
  /** How the app is probed (HTTP GET of the probe path, or gRPC HealthCheck). */
  readonly check: HealthCheck;
  readonly logger: Logger;
  readonly onChange: (state: AppChannelState) => void;
  /**
   * How long a call that arrives before the app is ready (its port not yet open, or its first health
   * probe not yet passed) waits for it (`--app-ready-timeout`).
   */
  readonly readyTimeoutMs: number;
}

/** How often the app's port is tried while waiting for it, as daprd does. */
const PORT_RETRY_MS = 500;
/** How often it is tried while calls are waiting for it. */
const PORT_RETRY_WAITING_MS = 25;
/** At most this many calls wait for the app at once; more are refused as if it were unhealthy. */
const MAX_WAITING_CALLS = 10_000;

/** A call waiting for the app to become ready. */
interface Waiter {
  readonly signal: CallSignal;
  readonly ready: () => void;
  readonly fail: (error: CourierError) => void;
  readonly timer: NodeJS.Timeout;
  readonly onAbort: () => void;
}
/** How often "still waiting" is logged. */
const WAIT_LOG_EVERY_MS = 10_000;

/**
 * Decides whether the app can take calls. First it waits for the app's port to accept TCP
 * connections; then, with health checks on, it probes the app and turns unhealthy after `threshold`
 * consecutive failures and healthy again after one success. Without health checks the app is ready
 * once its port has opened: a later restart shows up as refused connections, which callers retry
 * elsewhere. All timers are unref'd.
 */
export class AppHealthMonitor {
  readonly #options: AppHealthOptions;
  #state: AppChannelState = { t: 'starting' };
  #timer: NodeJS.Timeout | undefined;
  #failures = 0;
  #closed = false;
  #probeAbort: AbortController | undefined;
  #waitStartedAt = 0;
  #lastWaitLog = 0;
  #portOpen = false;
  #connecting = false;
  readonly #waiters = new Set<Waiter>();

  constructor(options: AppHealthOptions) {
    this.#options = options;
  }

  get state(): AppChannelState {
    return this.#state;
  }

  start(): void {
    this.#waitStartedAt = Date.now();
    this.#lastWaitLog = this.#waitStartedAt;
    this.#options.logger.info({ app_address: `${this.#options.host}:${this.#options.port}` }, 'waiting for the app to listen');
    this.#tryPort();
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#probeAbort?.abort();
    this.#set({ t: 'closed' });
  }

  /**
   * Runs `ready` as soon as the app can take calls: at once when it can, or once its port has opened
   * (and its first health probe passed) if it is still starting, as daprd waits for the app port. Calls
   * `fail` if the app is unhealthy, the sidecar closes, the caller gives up (`signal`), or the app is not
   * ready within `readyTimeoutMs`. Costs nothing once the app is ready.
   */
  whenReady(signal: CallSignal, ready: () => void, fail: (error: CourierError) => void): void {
    const state = this.#state;
    if (state.t === 'ready') {
      ready();
      return;
    }
    if (state.t !== 'starting' || this.#waiters.size >= MAX_WAITING_CALLS) {
      fail(appNotReadyError());
      return;
    }
    if (signal.aborted) {
      fail(cancelledError());
      return;
    }
    const timeoutMs = this.#options.readyTimeoutMs;
    const waiter: Waiter = {
      signal,
      ready,
      fail,
      timer: setTimeout(() => {
        this.#release(waiter);
        fail(this.#notReadyInTime(timeoutMs));
      }, timeoutMs),
      onAbort: () => {
        this.#release(waiter);
        fail(cancelledError());
      },
    };
    waiter.timer.unref();
    signal.addEventListener('abort', waiter.onAbort, { once: true });
    this.#waiters.add(waiter);
    // Look at the port now rather than at the next slow retry, so the call proceeds promptly.
    if (!this.#portOpen && !this.#connecting) {
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#tryPort();
    }
  }

  #release(waiter: Waiter): void {
    clearTimeout(waiter.timer);
    waiter.signal.removeEventListener('abort', waiter.onAbort);
    this.#waiters.delete(waiter);
  }

  #notReadyInTime(timeoutMs: number): CourierError {
    const address = `${this.#options.host}:${this.#options.port}`;
    const why = this.#portOpen
      ? `its first health probe did not succeed within ${formatMs(timeoutMs)}`
      : `it did not start listening on ${address} within ${formatMs(timeoutMs)}`;
    return new CourierError('ERR_DIRECT_INVOKE', `app is not in a healthy state: ${why} (--app-ready-timeout)`, { grpcCode: 14, retry: 'safe' });
  }

  #set(state: AppChannelState): void {
    const before = this.#state;
    if (before.t === state.t && (before.t !== 'unhealthy' || (state.t === 'unhealthy' && before.reason === state.reason))) return;
    if (before.t === 'closed') return;
    this.#state = state;
    if (this.#waiters.size > 0 && state.t !== 'starting') {
      const waiters = [...this.#waiters];
      for (const waiter of waiters) this.#release(waiter);
      for (const waiter of waiters) {
        if (state.t === 'ready') waiter.ready();
        else waiter.fail(appNotReadyError());
      }
    }
    this.#options.onChange(state);
  }

  #schedule(fn: () => void, ms: number): void {
    if (this.#closed) return;
    this.#timer = setTimeout(fn, ms);
    this.#timer.unref();
  }

  #tryPort(): void {
    if (this.#closed) return;
    this.#timer = undefined;
    this.#connecting = true;
    const socket = connect({ host: this.#options.host, port: this.#options.port });
    socket.unref();
    const done = (open: boolean): void => {
      this.#connecting = false;
      socket.removeAllListeners();
      socket.on('error', () => {});
      socket.destroy();
      if (this.#closed) return;
      if (open) {
        this.#portOpen = true;
        this.#options.logger.info({ app_address: `${this.#options.host}:${this.#options.port}` }, 'the app is listening');
        if (this.#options.probe === undefined) this.#set({ t: 'ready' });
        else this.#probe();
        return;
      }
      const now = Date.now();
      if (now - this.#lastWaitLog >= WAIT_LOG_EVERY_MS) {
        this.#lastWaitLog = now;
        this.#options.logger.info(
          { app_address: `${this.#options.host}:${this.#options.port}`, waited_ms: now - this.#waitStartedAt },
          'still waiting for the app to listen',
        );
      }
      this.#schedule(() => this.#tryPort(), this.#waiters.size > 0 ? PORT_RETRY_WAITING_MS : PORT_RETRY_MS);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  }

  #probe(): void {
    const probe = this.#options.probe;
    if (this.#closed || probe === undefined) return;
    const abort = new AbortController();
    this.#probeAbort = abort;
    const timer = setTimeout(() => abort.abort(), probe.timeoutMs);
    timer.unref();
    this.#options
      .check(abort.signal)
      .then(
        (failure) => (failure !== undefined && abort.signal.aborted ? `health probe timed out after ${probe.timeoutMs}ms` : failure),
        (err: unknown) => (abort.signal.aborted ? `health probe timed out after ${probe.timeoutMs}ms` : `health probe failed: ${String((err as Error).message)}`),
      )
      .then((failure) => {
        clearTimeout(timer);
        if (this.#closed) return;
        if (failure === undefined) {
          if (this.#failures > 0 || this.#state.t !== 'ready') this.#options.logger.info('the app is healthy');
          this.#failures = 0;
          this.#set({ t: 'ready' });
        } else {
          this.#failures++;
          this.#options.logger.debug({ failures: this.#failures, reason: failure }, 'app health probe failed');
          if (this.#failures >= probe.threshold && this.#state.t !== 'unhealthy') {
            this.#options.logger.warn({ reason: failure, failures: this.#failures }, 'the app is unhealthy');
            this.#set({ t: 'unhealthy', reason: failure });
          }
        }
        this.#schedule(() => this.#probe(), probe.intervalMs);
      }, () => {});
  }
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

export interface AppGateOptions {
  readonly host: string;
  readonly port: number;
  /** App health checks, when `--enable-app-health-check` is set. */
  readonly probe: HealthProbeOptions | undefined;
  /** How the app is probed. */
  readonly check: HealthCheck;
  /** `--app-ready-timeout`. */
  readonly readyTimeoutMs: number;
  /** `--app-max-concurrency`; 0 or less means unlimited. */
  readonly maxConcurrency: number;
  readonly logger: Logger;
}

/** How a channel sends one admitted call to its app; `semaphore` is the slot to release when the call is over. */
export type Dispatch = (request: InvokeRequest, sink: ResponseSink, semaphore: Semaphore | undefined) => void;

/**
 * What every app channel puts in front of its app: the app's readiness (port wait, health probes,
 * calls waiting for a starting app), the listeners of its state, and `--app-max-concurrency`.
 */
export class AppGate {
  readonly #health: AppHealthMonitor;
  readonly #semaphore: Semaphore | undefined;
  readonly #listeners = new Set<(state: AppChannelState) => void>();

  constructor(options: AppGateOptions) {
    this.#semaphore = options.maxConcurrency > 0 ? new Semaphore(options.maxConcurrency) : undefined;
    this.#health = new AppHealthMonitor({
      host: options.host,
      port: options.port,
      probe: options.probe,
      check: options.check,
      logger: options.logger,
      readyTimeoutMs: options.readyTimeoutMs,
      onChange: (state) => {
        for (const listener of this.#listeners) listener(state);
      },
    });
  }

  get state(): AppChannelState {
    return this.#health.state;
  }

  start(): void {
    this.#health.start();
  }

  close(): void {
    this.#health.close();
  }

  onStateChange(listener: (state: AppChannelState) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** See {@link AppHealthMonitor.whenReady}. */
  whenReady(signal: CallSignal, ready: () => void, fail: (error: CourierError) => void): void {
    this.#health.whenReady(signal, ready, fail);
  }

  /**
   * Lets a call through to `dispatch`: once the app is ready (a call that arrives while it is starting
   * waits for it, bounded) and a concurrency slot is free. On the common path (ready, no limit) it
   * adds no allocation.
   */
  admit(request: InvokeRequest, sink: ResponseSink, dispatch: Dispatch): void {
    if (this.#health.state.t !== 'ready') {
      this.#health.whenReady(request.signal, () => this.#takeSlot(request, sink, dispatch), (err) => sink.error(err));
      return;
    }
    this.#takeSlot(request, sink, dispatch);
  }

  #takeSlot(request: InvokeRequest, sink: ResponseSink, dispatch: Dispatch): void {
    const semaphore = this.#semaphore;
    if (semaphore === undefined) {
      dispatch(request, sink, undefined);
      return;
    }
    semaphore.acquire(
      request.signal,
      () => dispatch(request, sink, semaphore),
      () => sink.error(cancelledError()),
    );
  }
}
