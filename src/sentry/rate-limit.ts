import { isIPv6 } from 'node:net';

/** A token bucket's shape: `burst` requests at once, refilled at `perSecond`. `perSecond: 0` means no limit. */
export interface RateLimit {
  readonly perSecond: number;
  readonly burst: number;
}

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date (ms, monotonic). */
  at: number;
}

/**
 * Token buckets by key (a client address, an identity), with bounded memory: at most `maxEntries`
 * buckets, the least recently used one dropped to make room, and `sweep()` forgetting buckets that have
 * been idle long enough to be full again (a forgotten bucket and a full one behave the same, so
 * forgetting them changes nothing). A dropped bucket that was not full gives its key a fresh burst:
 * that is the price of the bound, paid only by a client spreading itself over more keys than the cap.
 */
export class RateLimiter {
  readonly limit: RateLimit;
  readonly #perMs: number;
  readonly #burst: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  /** How long an emptied bucket takes to be full again. */
  readonly #refillMs: number;
  /** In order of last use: the least recently used first. */
  readonly #buckets = new Map<string, Bucket>();

  constructor(limit: RateLimit, options: { maxEntries: number; now?: () => number }) {
    if (!(Number.isFinite(limit.perSecond) && limit.perSecond >= 0)) throw new RangeError(`rate ${limit.perSecond} is not a number of requests per second`);
    if (!(Number.isInteger(limit.burst) && limit.burst >= 1)) throw new RangeError(`burst ${limit.burst} is not a whole number of requests, at least 1`);
    if (!(Number.isInteger(options.maxEntries) && options.maxEntries >= 1)) throw new RangeError(`maxEntries ${options.maxEntries} must be at least 1`);
    this.limit = limit;
    this.#perMs = limit.perSecond / 1000;
    this.#burst = limit.burst;
    this.#maxEntries = options.maxEntries;
    this.#now = options.now ?? performance.now.bind(performance);
    this.#refillMs = limit.perSecond === 0 ? 0 : limit.burst / this.#perMs;
  }

  /** Whether limiting is on at all. */
  get enabled(): boolean {
    return this.#perMs > 0;
  }

  /** Number of buckets held. */
  get size(): number {
    return this.#buckets.size;
  }

  /** Whether `key` has a request left now, without spending it. Creates nothing. */
  allows(key: string): boolean {
    if (this.#perMs === 0) return true;
    const bucket = this.#buckets.get(key);
    return bucket === undefined || this.#refilled(bucket, this.#now()) >= 1;
  }

  /** Spends one request of `key`'s bucket: false (and nothing spent) when it is empty. */
  take(key: string): boolean {
    if (this.#perMs === 0) return true;
    const now = this.#now();
    const buckets = this.#buckets;
    const bucket = buckets.get(key);
    if (bucket === undefined) {
      if (buckets.size >= this.#maxEntries) this.#makeRoom();
      buckets.set(key, { tokens: this.#burst - 1, at: now });
      return true;
    }
    bucket.tokens = this.#refilled(bucket, now);
    bucket.at = now;
    // Most recently used goes last, so the least recently used is always first.
    buckets.delete(key);
    buckets.set(key, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Forgets the buckets that are full again (idle for the time a whole burst takes to refill). */
  sweep(): void {
    const now = this.#now();
    for (const [key, bucket] of this.#buckets) {
      // In order of last use: the first one not idle long enough ends the sweep.
      if (now - bucket.at < this.#refillMs) break;
      this.#buckets.delete(key);
    }
  }

  #makeRoom(): void {
    // Full buckets first (free to drop); failing that, the least recently used.
    this.sweep();
    if (this.#buckets.size < this.#maxEntries) return;
    const oldest = this.#buckets.keys().next();
    if (oldest.done !== true) this.#buckets.delete(oldest.value);
  }

  #refilled(bucket: Bucket, now: number): number {
    return Math.min(this.#burst, bucket.tokens + (now - bucket.at) * this.#perMs);
  }
}

/**
 * At most `max` open connections per key: `open` says whether one more may be accepted (and counts it),
 * `close` forgets it. Holds one entry per key with open connections, so it is bounded by the sockets
 * the process has.
 */
export class ConnectionCounter {
  readonly max: number;
  readonly #open = new Map<string, number>();

  constructor(max: number) {
    this.max = max;
  }

  open(key: string): boolean {
    const count = this.#open.get(key) ?? 0;
    if (this.max > 0 && count >= this.max) return false;
    this.#open.set(key, count + 1);
    return true;
  }

  close(key: string): void {
    const count = this.#open.get(key) ?? 0;
    if (count <= 1) this.#open.delete(key);
    else this.#open.set(key, count - 1);
  }

  get size(): number {
    return this.#open.size;
  }
}

/**
 * The key a client's requests are counted under: its IPv4 address, or for IPv6 its /64 prefix (one
 * host usually holds a whole /64, so counting single IPv6 addresses would let it spread over millions
 * of keys). IPv4-mapped IPv6 addresses count as the IPv4 address. '' stays '' (a socket already gone).
 */
export function clientKey(address: string): string {
  if (address.startsWith('::ffff:') && address.includes('.')) return address.slice(7);
  if (!isIPv6(address)) return address;
  const groups = ipv6Groups(address);
  return groups === undefined ? address : `${groups.slice(0, 4).join(':')}::/64`;
}

/** The eight 16-bit groups of an IPv6 address, in lower-case hex without leading zeros. */
function ipv6Groups(address: string): string[] | undefined {
  const zone = address.indexOf('%');
  const text = zone < 0 ? address : address.slice(0, zone);
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parse = (part: string | undefined): string[] => {
    if (part === undefined || part === '') return [];
    const out: string[] = [];
    for (const group of part.split(':')) {
      if (group.includes('.')) {
        // An embedded IPv4 address: two groups.
        const [a = 0, b = 0, c = 0, d = 0] = group.split('.').map(Number);
        out.push(((a << 8) | b).toString(16), ((c << 8) | d).toString(16));
      } else {
        out.push(parseInt(group, 16).toString(16));
      }
    }
    return out;
  };
  const head = parse(halves[0]);
  const tail = halves.length === 2 ? parse(halves[1]) : [];
  const zeros = halves.length === 2 ? 8 - head.length - tail.length : 0;
  if (zeros < 0) return undefined;
  const groups = [...head, ...Array<string>(zeros).fill('0'), ...tail];
  return groups.length === 8 ? groups : undefined;
}
