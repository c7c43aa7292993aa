/** How many retries a target may get: a share of its recent calls, plus a small floor. */
export interface RetryBudgetSettings {
  /** Retries allowed per call made, over the window (0.2: at most one retry for every five calls). */
  readonly ratio: number;
  /** Retries allowed per second whatever the traffic, so a target with few calls can still be retried. */
  readonly minPerSecond: number;
}

export const DEFAULT_RETRY_BUDGET: RetryBudgetSettings = { ratio: 0.2, minPerSecond: 10 };

/** The window the calls and retries are counted over, in one-second buckets. */
const BUCKETS = 10;
const BUCKET_MS = 1000;

/**
 * The retry budget of one target (Linkerd's idea): retries, built-in and policy alike, may not exceed
 * `ratio` × the calls made in the last 10 s plus `minPerSecond` × 10. When every instance of a target
 * fails, its callers then add at most that share of extra load instead of multiplying it by the
 * retry count: a failing dependency is not hit by a retry storm. Counting is two numbers per
 * one-second bucket; nothing is allocated per call.
 */
export class RetryBudget {
  readonly #ratio: number;
  readonly #floor: number;
  readonly #now: () => number;
  readonly #calls = new Float64Array(BUCKETS);
  readonly #retries = new Float64Array(BUCKETS);
  #callTotal = 0;
  #retryTotal = 0;
  /** The index of the current one-second bucket since the clock's origin. */
  #current = -1;

  constructor(settings: RetryBudgetSettings, now: () => number = performance.now.bind(performance)) {
    this.#ratio = settings.ratio;
    this.#floor = settings.minPerSecond * ((BUCKETS * BUCKET_MS) / 1000);
    this.#now = now;
  }

  /** A call (its first attempt) is made. */
  called(): void {
    const at = this.#advance();
    this.#calls[at] = (this.#calls[at] as number) + 1;
    this.#callTotal++;
  }

  /** Takes one retry from the budget: false when the budget is spent (then do not retry). */
  tryRetry(): boolean {
    const at = this.#advance();
    if (this.#retryTotal + 1 > this.#floor + this.#ratio * this.#callTotal) return false;
    this.#retries[at] = (this.#retries[at] as number) + 1;
    this.#retryTotal++;
    return true;
  }

  /** Calls and retries counted in the current window (for tests and the live view). */
  get window(): { calls: number; retries: number } {
    this.#advance();
    return { calls: this.#callTotal, retries: this.#retryTotal };
  }

  #advance(): number {
    const bucket = Math.floor(this.#now() / BUCKET_MS);
    const current = this.#current;
    if (bucket !== current) {
      // Empty the buckets that fell out of the window (all of them after a long quiet spell).
      const stale = current < 0 ? BUCKETS : Math.min(bucket - current, BUCKETS);
      for (let i = 1; i <= stale; i++) {
        const at = (((current + i) % BUCKETS) + BUCKETS) % BUCKETS;
        this.#callTotal -= this.#calls[at] as number;
        this.#retryTotal -= this.#retries[at] as number;
        this.#calls[at] = 0;
        this.#retries[at] = 0;
      }
      this.#current = bucket;
    }
    return bucket % BUCKETS;
  }
}

/** The retry budgets of a sidecar's targets, made on first use (bounded: a caller naming random ids starts them again). */
export class RetryBudgets {
  readonly #settings: RetryBudgetSettings;
  readonly #budgets = new Map<string, RetryBudget>();

  constructor(settings: RetryBudgetSettings) {
    this.#settings = settings;
  }

  for(target: string): RetryBudget {
    let budget = this.#budgets.get(target);
    if (budget === undefined) {
      if (this.#budgets.size >= 10_000) this.#budgets.clear();
      budget = new RetryBudget(this.#settings);
      this.#budgets.set(target, budget);
    }
    return budget;
  }
}
