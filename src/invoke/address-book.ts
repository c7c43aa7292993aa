import { setTimeout as sleep } from 'node:timers/promises';
import { CourierError, errorMessage } from '../errors/index.js';
import {
  chooseInstance,
  DEFAULT_COST_MS,
  DEFAULT_DECAY_MS,
  DEFAULT_EJECTION,
  fastRandom,
  InstanceStats,
  randomIndex,
  type BalancerKind,
  type CostModel,
  type EjectionSettings,
  type InstanceOutcome,
  type Slot,
} from './balancer.js';
import type { AppIdentity } from './identity.js';

const EMPTY_RETRY_DELAY_MS = 100;
/** How often the figures of instances no answer names any more are looked for. */
const SWEEP_INTERVAL_MS = 60_000;
/** How long the figures of an instance are kept after the last resolver answer that named it. */
const STATS_IDLE_MS = 300_000;

/** The part of a name resolver the address book uses (see src/nameresolution). */
export interface AddressSource {
  readonly component: string;
  resolve(request: { appId: string; namespace: string }): Promise<readonly { address: string; expiresAtMs?: number }[]>;
  invalidate?(request: { appId: string; namespace: string }): void;
  lastLookup?(request: { appId: string; namespace: string }): string | undefined;
}

/** Outlier ejection settings; any left out take the defaults (5 failures in a row, 10 s, at most 5 min). */
export type EjectionOptions = { readonly [K in keyof EjectionSettings]?: EjectionSettings[K] | undefined };

export interface AddressBookOptions {
  /** How long a resolver answer is reused before asking again. */
  readonly cacheTtlMs: number;
  /** How long an address that failed a call that was retried elsewhere is skipped while others are available. */
  readonly ejectMs: number;
  /**
   * When the resolver knows no instance, how long to keep asking again (every 100 ms, as daprd retries
   * an empty answer 5 times) before failing the call: an app that is just registering is found. 0: at once.
   */
  readonly emptyRetryMs?: number;
  /** How an instance is chosen (default `p2c`: power of two choices over peak-EWMA latency). */
  readonly balancer?: BalancerKind | undefined;
  /** Outlier ejection of instances that fail calls in a row; false: off. Default: on, with its defaults. */
  readonly ejection?: EjectionOptions | false | undefined;
  /** The time constant of the latency estimates (default 10 s). */
  readonly decayMs?: number | undefined;
  /** The latency estimate of an instance that has not answered yet (default 30 ms). */
  readonly defaultCostMs?: number | undefined;
  /** In [0, 1): P2C's draws and the ejection jitter (default: a xorshift generator, which allocates nothing). */
  readonly random?: (() => number) | undefined;
  readonly now?: () => number;
  /** Told of every lookup the resolver answered (the name-resolution metrics). */
  readonly onLookup?: ((resolver: string, result: 'found' | 'not-found' | 'error') => void) | undefined;
}

interface Entry {
  fetchedAt: number;
  /** The instances of the last answer, each with the figures of its address. */
  slots: readonly Slot[];
  /** The round-robin position. */
  next: number;
  pending: Promise<void> | undefined;
}

/** The figures of ejection in force, checked. */
function ejectionSettings(options: AddressBookOptions['ejection']): EjectionSettings | undefined {
  if (options === false) return undefined;
  const settings: EjectionSettings = {
    consecutiveFailures: options?.consecutiveFailures ?? DEFAULT_EJECTION.consecutiveFailures,
    baseMs: options?.baseMs ?? DEFAULT_EJECTION.baseMs,
    maxMs: options?.maxMs ?? Math.max(DEFAULT_EJECTION.maxMs, options?.baseMs ?? 0),
  };
  if (!Number.isInteger(settings.consecutiveFailures) || settings.consecutiveFailures < 1) {
    throw new RangeError(`ejection.consecutiveFailures must be a whole number of at least 1, not ${settings.consecutiveFailures}`);
  }
  if (!(settings.baseMs > 0) || !(settings.maxMs >= settings.baseMs)) {
    throw new RangeError(`ejection needs 0 < baseMs <= maxMs (got ${settings.baseMs} and ${settings.maxMs})`);
  }
  return settings;
}

/**
 * Picks the instance each call goes to: asks the name resolver (at most once per `cacheTtlMs` per app
 * id, concurrent callers sharing one query), drops instances whose liveness has lapsed, and chooses
 * among the rest by power of two choices over their latency and load, or in round-robin order (see
 * balancer.ts). The invoker reports each attempt (`started`, `finished`), which feeds the latency
 * figures and ejects an instance that fails calls in a row. An address whose call was retried
 * elsewhere is also skipped for `ejectMs` while other instances remain, so a dead instance stops
 * receiving calls before the resolver notices it.
 *
 * The figures are kept per address, shared by every app id served there, in one object each; the
 * per-call path (`pickCached`, `started`, `finished`) does map lookups and arithmetic only.
 */
export class AddressBook {
  readonly #source: AddressSource;
  readonly #onLookup: AddressBookOptions['onLookup'];
  readonly #cacheTtlMs: number;
  readonly #ejectMs: number;
  readonly #emptyRetryMs: number;
  readonly #now: () => number;
  readonly #balancer: BalancerKind;
  readonly #model: CostModel;
  readonly #statsIdleMs: number;
  /** Cached answers by namespace, then app id (two lookups, so a call builds no key string). */
  readonly #entries = new Map<string, Map<string, Entry>>();
  /** The figures of each address. */
  readonly #stats = new Map<string, InstanceStats>();
  #sweptAt = 0;
  /** The last time read (by a pick, `finished` or `eject`): `started` follows a pick and takes its time. */
  #clock = 0;

  constructor(source: AddressSource, options: AddressBookOptions) {
    this.#source = source;
    this.#onLookup = options.onLookup;
    this.#cacheTtlMs = options.cacheTtlMs;
    this.#ejectMs = options.ejectMs;
    this.#emptyRetryMs = options.emptyRetryMs ?? 0;
    this.#now = options.now ?? Date.now;
    this.#balancer = options.balancer ?? 'p2c';
    const decayMs = options.decayMs ?? DEFAULT_DECAY_MS;
    const defaultCostMs = options.defaultCostMs ?? DEFAULT_COST_MS;
    if (!(decayMs > 0)) throw new RangeError(`decayMs must be positive, not ${decayMs}`);
    if (!(defaultCostMs > 0)) throw new RangeError(`defaultCostMs must be positive, not ${defaultCostMs}`);
    const random = options.random;
    this.#model = {
      decayMs,
      defaultCostMs,
      ejection: ejectionSettings(options.ejection),
      randomIndex: random === undefined ? randomIndex : (n) => Math.floor(random() * n),
      random: random ?? fastRandom,
    };
    // Never drop the figures of an address a fresh answer names.
    this.#statsIdleMs = Math.max(STATS_IDLE_MS, 2 * this.#cacheTtlMs);
    this.#sweptAt = this.#now();
    this.#clock = this.#sweptAt;
  }

  /** Reads the clock (a heap number and tens of ns each time: read once per pick and once per `finished`). */
  #tick(): number {
    const now = this.#now();
    this.#clock = now;
    return now;
  }

  /**
   * The next address for `target` when a fresh answer for it is cached (the common case): the same
   * choice as `pick`, made synchronously and without allocating. Undefined when the resolver must be
   * asked (nothing cached, the answer is stale, or no instance in it is live): use `pick` then.
   */
  pickCached(target: AppIdentity, exclude: ReadonlySet<string>): string | undefined {
    const entry = this.#entries.get(target.namespace)?.get(target.appId);
    if (entry === undefined || entry.pending !== undefined) return undefined;
    const now = this.#tick();
    if (now - entry.fetchedAt >= this.#cacheTtlMs) return undefined;
    return chooseInstance(entry.slots, exclude, now, this.#balancer, entry, this.#model)?.address;
  }

  /**
   * The next address for `target`, preferring ones not in `exclude` (already tried by this call) and
   * neither ejected nor recently failed. Throws ERR_DIRECT_INVOKE when the resolver knows no live instance.
   */
  async pick(target: AppIdentity, exclude: ReadonlySet<string>): Promise<string> {
    let entry = this.#entries.get(target.namespace)?.get(target.appId);
    if (entry === undefined || this.#now() - entry.fetchedAt >= this.#cacheTtlMs) entry = await this.#refresh(target);
    let chosen = chooseInstance(entry.slots, exclude, this.#tick(), this.#balancer, entry, this.#model);
    if (chosen === undefined && this.#now() - entry.fetchedAt > 0) {
      // The cached answer ran dry (every instance expired): ask once more before giving up.
      entry = await this.#refresh(target, true);
      chosen = chooseInstance(entry.slots, exclude, this.#tick(), this.#balancer, entry, this.#model);
    }
    // Dapr retries an empty answer (5 × 100 ms): a caller that races its target's registration (two
    // apps started together) is not failed at once. Within a budget, so a slow resolver is asked once.
    const budgetEnd = Date.now() + this.#emptyRetryMs;
    while (chosen === undefined && Date.now() + EMPTY_RETRY_DELAY_MS <= budgetEnd) {
      await sleep(EMPTY_RETRY_DELAY_MS);
      entry = await this.#refresh(target, true);
      chosen = chooseInstance(entry.slots, exclude, this.#tick(), this.#balancer, entry, this.#model);
    }
    if (chosen === undefined) {
      const tried = this.#source.lastLookup?.({ appId: target.appId, namespace: target.namespace });
      throw new CourierError(
        'ERR_DIRECT_INVOKE',
        `no instance of app "${target.appId}" in namespace "${target.namespace}" is registered with the ${this.#source.component} name resolver${tried === undefined ? '' : ` (${tried})`}`,
        { grpcCode: 14 },
      );
    }
    return chosen.address;
  }

  /**
   * An attempt was sent to `address`: call it right after the pick that chose `address` (it takes
   * that pick's time rather than reading the clock again), and `finished` once when the attempt ends.
   */
  started(address: string): void {
    const now = this.#clock;
    this.#statsFor(address, now).started(now, this.#model.decayMs);
  }

  /**
   * The attempt on `address` started `latencyMs` ago ended: its response head arrived (`success`,
   * or `failure` / `overload` for a status saying the instance cannot serve or is overloaded), it
   * failed without one (`failure`), or the caller gave it up (`cancelled`: no verdict on the instance).
   */
  finished(address: string, latencyMs: number, outcome: InstanceOutcome): void {
    const now = this.#tick();
    this.#statsFor(address, now).finished(now, latencyMs, outcome, this.#model);
  }

  /**
   * Skips `address` for a while after a failure; with `target`, its cached answer is also dropped
   * (here and in the resolver) so the next call asks the resolver again.
   */
  eject(address: string, target?: AppIdentity): void {
    const now = this.#tick();
    this.#statsFor(address, now).skipUntil = now + this.#ejectMs;
    if (target !== undefined) {
      const entry = this.#entries.get(target.namespace)?.get(target.appId);
      if (entry !== undefined && entry.pending === undefined) entry.fetchedAt = 0;
      this.#source.invalidate?.({ appId: target.appId, namespace: target.namespace });
    }
  }

  /**
   * Whether the last answer for `target` names a live instance outside `exclude` and other than `also`
   * (one this call has not tried): a retry can then go there at once instead of waiting to try the same one again.
   */
  hasUntried(target: AppIdentity, exclude: ReadonlySet<string>, also?: string): boolean {
    const entry = this.#entries.get(target.namespace)?.get(target.appId);
    if (entry === undefined) return false;
    const now = this.#clock;
    for (const slot of entry.slots) {
      const address = slot.stats.address;
      if (slot.expiresAtMs > now && address !== also && !exclude.has(address)) return true;
    }
    return false;
  }

  /** What is known of `address` (for tests and diagnostics); undefined when nothing. */
  instance(address: string): Readonly<InstanceStats> | undefined {
    return this.#stats.get(address);
  }

  /** How many addresses have figures (for tests: they are dropped when no answer names them any more). */
  get instancesKnown(): number {
    return this.#stats.size;
  }

  #statsFor(address: string, now: number): InstanceStats {
    let stats = this.#stats.get(address);
    if (stats === undefined) {
      stats = new InstanceStats(address, now, this.#model.defaultCostMs);
      this.#stats.set(address, stats);
    }
    return stats;
  }

  /** Drops the figures of addresses no answer has named for a while, unless calls are in flight there or it is ejected. */
  #sweep(now: number): void {
    this.#sweptAt = now;
    for (const [address, stats] of this.#stats) {
      if (now - stats.seenAt > this.#statsIdleMs && stats.inFlight === 0 && stats.available(now)) this.#stats.delete(address);
    }
  }

  async #refresh(target: AppIdentity, force = false): Promise<Entry> {
    let apps = this.#entries.get(target.namespace);
    let entry = apps?.get(target.appId);
    if (entry?.pending !== undefined) {
      await entry.pending;
      return entry;
    }
    if (entry !== undefined && !force && this.#now() - entry.fetchedAt < this.#cacheTtlMs) return entry;
    const current: Entry = entry ?? { fetchedAt: 0, slots: [], next: Math.floor(Math.random() * 1024), pending: undefined };
    if (entry === undefined) {
      if (apps === undefined) {
        apps = new Map();
        this.#entries.set(target.namespace, apps);
      }
      apps.set(target.appId, current);
    }
    current.pending = (async () => {
      try {
        const addresses = await this.#source.resolve({ appId: target.appId, namespace: target.namespace });
        const now = this.#tick();
        current.slots = addresses.map((a) => {
          const stats = this.#statsFor(a.address, now);
          stats.seenAt = now;
          return { stats, expiresAtMs: a.expiresAtMs ?? Infinity };
        });
        current.fetchedAt = now;
        if (now - this.#sweptAt >= SWEEP_INTERVAL_MS) this.#sweep(now);
        this.#onLookup?.(this.#source.component, addresses.length > 0 ? 'found' : 'not-found');
      } catch (err) {
        this.#onLookup?.(this.#source.component, 'error');
        throw new CourierError('ERR_DIRECT_INVOKE', `the ${this.#source.component} name resolver failed to resolve "${target.appId}": ${errorMessage(err)}`, {
          cause: err,
        });
      } finally {
        current.pending = undefined;
      }
    })();
    await current.pending;
    entry = current;
    return entry;
  }
}
