/**
 * How the address book chooses among the instances of an app, and what it remembers of each instance.
 *
 * Power of two choices over peak-EWMA (the default, `p2c`): every instance keeps a latency estimate
 * that jumps up to any answer slower than it (the "peak") and moves toward faster answers with a time
 * constant (`decayMs`, 10 s), so one slow answer makes an instance look slow at once and it earns its
 * way back over seconds. Its load is the estimate times (calls in flight + 1). A pick draws two
 * distinct candidates at random and takes the one with the lower load: the slowest or busiest
 * instance is avoided without every caller herding onto the one that looks best. Beyond that core:
 * - a failure or overload answer counts as a sample of at least twice the estimate (and at least the
 *   default cost), so an instance that fails fast does not look fast;
 * - the estimate of an instance with nothing in flight decays toward zero (same time constant), so an
 *   instance that was avoided is tried again after a while;
 * - while calls are in flight, the estimate is at least the time since the instance last answered
 *   anything, so an instance that stalls is avoided before any of its calls ends;
 * - an instance that has never answered has no load while nothing is in flight (it gets a call at
 *   once), then the default cost (30 ms) per call in flight until its first answer.
 *
 * Round robin (`round-robin`) hands the candidates out in turn, as Courier always did.
 *
 * Both choose among the most preferred candidates: live, not tried by this call and not ejected;
 * else live and not tried; else any live. So an ejection is never final: when every instance is
 * ejected (or was tried), the ejected ones are still used — the last instance is never taken away.
 *
 * Outlier ejection: an instance that fails `consecutiveFailures` calls in a row (failures and
 * overload answers alike; a success resets the count) is ejected for `baseMs` × the number of times
 * it has been ejected, at most `maxMs`, ±15 % so instances that failed together do not come back
 * together. Each full penalty period it then goes without an ejection halves that number. When an
 * ejection ends the instance is on probation: the next failure ejects it again (for longer), a
 * success clears it.
 */

/** Which instance a call goes to: `p2c` (power of two choices over peak-EWMA, the default) or `round-robin`. */
export type BalancerKind = 'p2c' | 'round-robin';

export const balancerKinds: readonly BalancerKind[] = ['p2c', 'round-robin'];

/**
 * How an attempt on an instance ended, as the invoker reports it: answered (any status that is not
 * the instance's fault), failed (no answer, or one saying the instance cannot serve), overloaded
 * (HTTP 429, gRPC RESOURCE_EXHAUSTED), or abandoned by the caller before an answer (no verdict).
 */
export type InstanceOutcome = 'success' | 'failure' | 'overload' | 'cancelled';

/** When an instance is ejected after failing calls in a row. */
export interface EjectionSettings {
  /** Failures (or overload answers) in a row that eject an instance. */
  readonly consecutiveFailures: number;
  /** The penalty of a first ejection; the n-th is n times as long. */
  readonly baseMs: number;
  /** The longest penalty. */
  readonly maxMs: number;
}

export const DEFAULT_EJECTION: EjectionSettings = { consecutiveFailures: 5, baseMs: 10_000, maxMs: 300_000 };
/** A penalty is its nominal length ± this fraction, drawn at random. */
export const EJECTION_JITTER = 0.15;
/** The time constant with which a latency estimate moves toward faster answers (and an idle instance's decays). */
export const DEFAULT_DECAY_MS = 10_000;
/** The latency estimate of an instance that has not answered yet. */
export const DEFAULT_COST_MS = 30;
/** A failure raises an instance's estimate to at least twice what it was (and the default cost), up to this. */
const FAILURE_COST_CAP_MS = 10_000;

/** The state of the xorshift32 generator, in a typed array: updating it allocates nothing. */
const rngState = new Int32Array([(Math.random() * 0x7fffffff) | 1]);

/** The next number of the xorshift32 generator, as an unsigned 32-bit integer. */
function nextRandom(): number {
  let x = rngState[0] as number;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  rngState[0] = x;
  return x >>> 0;
}

/**
 * A uniform whole number in [0, n) from xorshift32: good enough to draw P2C candidates, and unlike
 * Math.random (which returns a new heap number each call) it allocates nothing.
 */
export function randomIndex(n: number): number {
  return Math.floor((nextRandom() * n) / 4294967296);
}

/** A uniform number in [0, 1) from the same generator. */
export function fastRandom(): number {
  return nextRandom() / 4294967296;
}

/** The parameters the per-instance figures are kept with. */
export interface CostModel {
  readonly decayMs: number;
  readonly defaultCostMs: number;
  /** Settings of outlier ejection; undefined: off. */
  readonly ejection: EjectionSettings | undefined;
  /** A whole number in [0, n): P2C's draws. */
  readonly randomIndex: (n: number) => number;
  /** In [0, 1): the ejection jitter. */
  readonly random: () => number;
}

/** Where `InstanceStats` leaves a load it computed (see `#computeLoad`). */
const scratch = new Float64Array(1);

/**
 * What is known of one instance (an address), shared by every app id it serves. Every number field
 * has a numeric initializer (a field declared without one starts as undefined, and V8 then boxes
 * every fractional number stored in it): updates allocate nothing.
 */
export class InstanceStats {
  readonly address: string;
  /** Latency estimate (ms) as of `updatedAt`. */
  cost = 0;
  /** Whether `cost` comes from an answer (else it is the default cost). */
  sampled = false;
  updatedAt = 0;
  /** Attempts sent and not yet finished. */
  inFlight = 0;
  /** Since when no attempt has finished while `inFlight` > 0 (a lower bound of the oldest one's age). */
  progressAt = 0;
  consecutiveFailures = 0;
  /** How many times it was ejected (halved for each full penalty period without an ejection). */
  ejections = 0;
  /** The nominal length of the last ejection (for the halving). */
  lastPenaltyMs = 0;
  /** Outlier ejection: skipped until then while others remain. */
  ejectedUntil = 0;
  /** The short skip after a call that failed over to another instance (`AddressBook.eject`). */
  skipUntil = 0;
  /** When a resolver answer last named it (or it was first used): idle figures are dropped after a while. */
  seenAt = 0;

  constructor(address: string, now: number, defaultCostMs: number) {
    this.address = address;
    this.cost = defaultCostMs;
    this.updatedAt = now;
    this.seenAt = now;
  }

  /** Neither ejected nor skipped at `now`. */
  available(now: number): boolean {
    return this.ejectedUntil <= now && this.skipUntil <= now;
  }

  /**
   * The load P2C compares: the latency estimate × (in flight + 1). An idle instance's estimate decays
   * toward zero, so an instance that was avoided is tried again after a while; a busy one's is at
   * least the time its calls have gone without an answer, so an instance that stalls is avoided
   * before any of its calls ends. An instance that never answered has no load while idle, so a new
   * instance gets a call at once, and the default cost per call once it has one in flight.
   */
  load(now: number, decayMs: number): number {
    this.#computeLoad(now, decayMs);
    return scratch[0] as number;
  }

  /** Whether its load is below `other`'s. */
  lighterThan(other: InstanceStats, now: number, decayMs: number): boolean {
    other.#computeLoad(now, decayMs);
    const theirs = scratch[0] as number;
    this.#computeLoad(now, decayMs);
    return (scratch[0] as number) < theirs;
  }

  /**
   * Puts the load in `scratch[0]`: a fractional number returned by a call V8 does not inline is
   * boxed (allocated), one left in a Float64Array is not.
   */
  #computeLoad(now: number, decayMs: number): void {
    if (this.inFlight === 0) {
      // Never answered and nothing in flight: try it (then the default cost counts per call in flight).
      if (!this.sampled) scratch[0] = 0;
      else {
        const idle = now - this.updatedAt;
        scratch[0] = idle > 0 ? this.cost * Math.exp(-idle / decayMs) : this.cost;
      }
      return;
    }
    const waiting = now - this.progressAt;
    scratch[0] = (waiting > this.cost ? waiting : this.cost) * (this.inFlight + 1);
  }

  started(now: number, decayMs: number): void {
    if (this.inFlight === 0) {
      // The idle decay `load` applied becomes the estimate: it holds while calls are in flight.
      const idle = now - this.updatedAt;
      if (idle > 0) this.cost *= Math.exp(-idle / decayMs);
      this.updatedAt = now;
      this.progressAt = now;
    }
    this.inFlight++;
  }

  finished(now: number, latencyMs: number, outcome: InstanceOutcome, model: CostModel): void {
    if (this.inFlight > 0) this.inFlight--;
    this.progressAt = now;
    if (outcome === 'cancelled') return;
    let sample = latencyMs > 0 ? latencyMs : 0;
    if (outcome === 'success') {
      this.consecutiveFailures = 0;
    } else {
      // A fast failure must not make an instance look good: it counts as at least twice the estimate.
      const penalty = Math.min(FAILURE_COST_CAP_MS, Math.max(2 * this.cost, model.defaultCostMs));
      if (penalty > sample) sample = penalty;
      this.consecutiveFailures++;
      const ejection = model.ejection;
      if (ejection !== undefined && this.consecutiveFailures >= ejection.consecutiveFailures && this.ejectedUntil <= now) {
        this.#eject(now, ejection, model.random);
      }
    }
    // Peak-EWMA: a slower answer is taken at once, a faster one moves the estimate with the time constant.
    if (!this.sampled || sample >= this.cost) {
      this.sampled = true;
      this.cost = sample;
    } else {
      const elapsed = now - this.updatedAt;
      if (elapsed > 0) {
        const keep = Math.exp(-elapsed / model.decayMs);
        this.cost = this.cost * keep + sample * (1 - keep);
      }
    }
    this.updatedAt = now;
  }

  #eject(now: number, ejection: EjectionSettings, random: () => number): void {
    if (this.ejections > 0 && this.lastPenaltyMs > 0) {
      const quietPeriods = Math.floor((now - this.ejectedUntil) / this.lastPenaltyMs);
      if (quietPeriods > 0) this.ejections = quietPeriods >= 31 ? 0 : this.ejections >> quietPeriods;
    }
    this.ejections++;
    const penalty = Math.min(ejection.maxMs, ejection.baseMs * this.ejections);
    this.lastPenaltyMs = penalty;
    this.ejectedUntil = now + penalty * (1 - EJECTION_JITTER + 2 * EJECTION_JITTER * random());
    // Probation: once the penalty is over, one more failure ejects it again.
    this.consecutiveFailures = ejection.consecutiveFailures - 1;
  }
}

/** One instance in a resolver answer. */
export interface Slot {
  readonly stats: InstanceStats;
  /** Its liveness deadline (Infinity: none). */
  readonly expiresAtMs: number;
}

/** The round-robin position of one app id. */
export interface Rotation {
  next: number;
}

const FRESH = 2;
const UNTRIED = 1;
const LIVE = 0;

/**
 * Chooses among `slots` as `kind` says, without allocating; undefined when none is live at `now`.
 * `exclude` holds the addresses this call already tried.
 */
export function chooseInstance(
  slots: readonly Slot[],
  exclude: ReadonlySet<string>,
  now: number,
  kind: BalancerKind,
  rotation: Rotation,
  model: CostModel,
): InstanceStats | undefined {
  // Count the candidates of each preference (fresh, then untried, then any live).
  let live = 0;
  let untried = 0;
  let fresh = 0;
  const excluding = exclude.size > 0;
  for (let k = 0; k < slots.length; k++) {
    const slot = slots[k] as Slot;
    if (slot.expiresAtMs <= now) continue;
    live++;
    if (excluding && exclude.has(slot.stats.address)) continue;
    untried++;
    if (slot.stats.available(now)) fresh++;
  }
  if (live === 0) return undefined;
  const level = fresh > 0 ? FRESH : untried > 0 ? UNTRIED : LIVE;
  const count = level === FRESH ? fresh : level === UNTRIED ? untried : live;
  if (kind === 'round-robin') {
    const index = rotation.next % count;
    rotation.next = (rotation.next + 1) % 0x7fffffff;
    return nth(slots, exclude, now, level, index, -1).first;
  }
  if (count === 1) return nth(slots, exclude, now, level, 0, -1).first;
  const i = draw(model, count);
  let j = draw(model, count - 1);
  if (j >= i) j++;
  const pair = nth(slots, exclude, now, level, i, j);
  const a = pair.first as InstanceStats;
  const b = pair.second as InstanceStats;
  return b.lighterThan(a, now, model.decayMs) ? b : a;
}

function draw(model: CostModel, n: number): number {
  const i = model.randomIndex(n);
  return i < 0 ? 0 : i >= n ? n - 1 : i;
}

/** The result of `nth`, reused (single-threaded, read at once by the caller): no allocation per pick. */
const found: { first: InstanceStats | undefined; second: InstanceStats | undefined } = { first: undefined, second: undefined };

/** The candidates of preference `level` at positions `i` and `j` (-1: not wanted), in one pass. */
function nth(slots: readonly Slot[], exclude: ReadonlySet<string>, now: number, level: number, i: number, j: number): typeof found {
  found.first = undefined;
  found.second = undefined;
  const excluding = level >= UNTRIED && exclude.size > 0;
  let index = 0;
  for (let k = 0; k < slots.length; k++) {
    const slot = slots[k] as Slot;
    if (slot.expiresAtMs <= now) continue;
    const stats = slot.stats;
    if (excluding && exclude.has(stats.address)) continue;
    if (level === FRESH && !stats.available(now)) continue;
    if (index === i) found.first = stats;
    else if (index === j) found.second = stats;
    if (found.first !== undefined && (j < 0 || found.second !== undefined)) break;
    index++;
  }
  return found;
}
