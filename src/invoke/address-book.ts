import { setTimeout as sleep } from 'node:timers/promises';
import { CourierError, errorMessage } from '../errors/index.js';

const EMPTY_RETRY_DELAY_MS = 100;
import type { AppIdentity } from './identity.js';

/** The part of a name resolver the address book uses (see src/nameresolution). */
export interface AddressSource {
  readonly component: string;
  resolve(request: { appId: string; namespace: string }): Promise<readonly { address: string; expiresAtMs?: number }[]>;
  invalidate?(request: { appId: string; namespace: string }): void;
  lastLookup?(request: { appId: string; namespace: string }): string | undefined;
}

export interface AddressBookOptions {
  /** How long a resolver answer is reused before asking again. */
  readonly cacheTtlMs: number;
  /** How long an address that failed is skipped while others are available. */
  readonly ejectMs: number;
  /**
   * When the resolver knows no instance, how long to keep asking again (every 100 ms, as daprd retries
   * an empty answer 5 times) before failing the call: an app that is just registering is found. 0: at once.
   */
  readonly emptyRetryMs?: number;
  readonly now?: () => number;
  /** Told of every lookup the resolver answered (the name-resolution metrics). */
  readonly onLookup?: ((resolver: string, result: 'found' | 'not-found' | 'error') => void) | undefined;
}

interface Entry {
  fetchedAt: number;
  addresses: readonly { address: string; expiresAtMs?: number }[];
  next: number;
  pending: Promise<void> | undefined;
}

/**
 * Picks the instance each call goes to: asks the name resolver (at most once per `cacheTtlMs` per app
 * id, concurrent callers sharing one query), drops instances whose liveness has lapsed, and hands
 * out the rest in round-robin order. An address that just failed is skipped for `ejectMs` while other
 * instances remain, so a dead instance stops receiving calls before the resolver notices it.
 */
export class AddressBook {
  readonly #source: AddressSource;
  readonly #onLookup: AddressBookOptions['onLookup'];
  readonly #cacheTtlMs: number;
  readonly #ejectMs: number;
  readonly #emptyRetryMs: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();
  readonly #ejected = new Map<string, number>();

  constructor(source: AddressSource, options: AddressBookOptions) {
    this.#source = source;
    this.#onLookup = options.onLookup;
    this.#cacheTtlMs = options.cacheTtlMs;
    this.#ejectMs = options.ejectMs;
    this.#emptyRetryMs = options.emptyRetryMs ?? 0;
    this.#now = options.now ?? Date.now;
  }

  /**
   * The next address for `target` when a fresh answer for it is cached (the common case): the same
   * choice as `pick`, made synchronously and without allocating. Undefined when the resolver must be
   * asked (nothing cached, the answer is stale, or no instance in it is live): use `pick` then.
   */
  pickCached(target: AppIdentity, exclude: ReadonlySet<string>): string | undefined {
    const entry = this.#entries.get(`${target.namespace}/${target.appId}`);
    if (entry === undefined || entry.pending !== undefined) return undefined;
    const now = this.#now();
    if (now - entry.fetchedAt >= this.#cacheTtlMs) return undefined;
    // Count the candidates of each preference (fresh, then untried, then any live), then take the
    // round-robin's next one among the most preferred non-empty kind.
    let live = 0;
    let untried = 0;
    let fresh = 0;
    for (const a of entry.addresses) {
      if (a.expiresAtMs !== undefined && a.expiresAtMs <= now) continue;
      live++;
      if (exclude.has(a.address)) continue;
      untried++;
      if ((this.#ejected.get(a.address) ?? 0) <= now) fresh++;
    }
    if (live === 0) return undefined;
    const kind = fresh > 0 ? 2 : untried > 0 ? 1 : 0;
    let index = entry.next % (kind === 2 ? fresh : kind === 1 ? untried : live);
    entry.next = (entry.next + 1) % 0x7fffffff;
    for (const a of entry.addresses) {
      if (a.expiresAtMs !== undefined && a.expiresAtMs <= now) continue;
      if (kind >= 1 && exclude.has(a.address)) continue;
      if (kind === 2 && (this.#ejected.get(a.address) ?? 0) > now) continue;
      if (index === 0) return a.address;
      index--;
    }
    return undefined;
  }

  /**
   * The next address for `target`, preferring ones not in `exclude` (already tried by this call) and
   * not recently failed. Throws ERR_DIRECT_INVOKE when the resolver knows no live instance.
   */
  async pick(target: AppIdentity, exclude: ReadonlySet<string>): Promise<string> {
    const key = `${target.namespace}/${target.appId}`;
    let entry = this.#entries.get(key);
    const now = this.#now();
    if (entry === undefined || now - entry.fetchedAt >= this.#cacheTtlMs) entry = await this.#refresh(key, target);
    let live = this.#live(entry, this.#now());
    if (live.length === 0 && this.#now() - entry.fetchedAt > 0) {
      // The cached answer ran dry (every instance expired): ask once more before giving up.
      entry = await this.#refresh(key, target, true);
      live = this.#live(entry, this.#now());
    }
    // Dapr retries an empty answer (5 × 100 ms): a caller that races its target's registration (two
    // apps started together) is not failed at once. Within a budget, so a slow resolver is asked once.
    const budgetEnd = Date.now() + this.#emptyRetryMs;
    while (live.length === 0 && Date.now() + EMPTY_RETRY_DELAY_MS <= budgetEnd) {
      await sleep(EMPTY_RETRY_DELAY_MS);
      entry = await this.#refresh(key, target, true);
      live = this.#live(entry, this.#now());
    }
    if (live.length === 0) {
      const tried = this.#source.lastLookup?.({ appId: target.appId, namespace: target.namespace });
      throw new CourierError(
        'ERR_DIRECT_INVOKE',
        `no instance of app "${target.appId}" in namespace "${target.namespace}" is registered with the ${this.#source.component} name resolver${tried === undefined ? '' : ` (${tried})`}`,
        { grpcCode: 14 },
      );
    }
    const at = this.#now();
    const fresh = live.filter((a) => !exclude.has(a) && (this.#ejected.get(a) ?? 0) <= at);
    const untried = live.filter((a) => !exclude.has(a));
    const choices = fresh.length > 0 ? fresh : untried.length > 0 ? untried : live;
    const chosen = choices[entry.next % choices.length] as string;
    entry.next = (entry.next + 1) % 0x7fffffff;
    return chosen;
  }

  /**
   * Skips `address` for a while after a failure; with `target`, its cached answer is also dropped
   * (here and in the resolver) so the next call asks the resolver again.
   */
  eject(address: string, target?: AppIdentity): void {
    this.#ejected.set(address, this.#now() + this.#ejectMs);
    if (target !== undefined) {
      const entry = this.#entries.get(`${target.namespace}/${target.appId}`);
      if (entry !== undefined && entry.pending === undefined) entry.fetchedAt = 0;
      this.#source.invalidate?.({ appId: target.appId, namespace: target.namespace });
    }
    if (this.#ejected.size > 4096) {
      const now = this.#now();
      for (const [a, until] of this.#ejected) if (until <= now) this.#ejected.delete(a);
    }
  }

  #live(entry: Entry, now: number): string[] {
    const out: string[] = [];
    for (const a of entry.addresses) if (a.expiresAtMs === undefined || a.expiresAtMs > now) out.push(a.address);
    return out;
  }

  async #refresh(key: string, target: AppIdentity, force = false): Promise<Entry> {
    let entry = this.#entries.get(key);
    if (entry?.pending !== undefined) {
      await entry.pending;
      return entry;
    }
    if (entry !== undefined && !force && this.#now() - entry.fetchedAt < this.#cacheTtlMs) return entry;
    const current: Entry = entry ?? { fetchedAt: 0, addresses: [], next: Math.floor(Math.random() * 1024), pending: undefined };
    if (entry === undefined) this.#entries.set(key, current);
    current.pending = (async () => {
      try {
        current.addresses = await this.#source.resolve({ appId: target.appId, namespace: target.namespace });
        current.fetchedAt = this.#now();
        this.#onLookup?.(this.#source.component, current.addresses.length > 0 ? 'found' : 'not-found');
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
