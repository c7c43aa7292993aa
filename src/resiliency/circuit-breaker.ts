import { Environment, ParseError, TypeError as CelTypeError, type ParseResult } from '@marcbachmann/cel-js';

/**
 * The counts a circuit breaker keeps for its current generation: the variables a `trip` expression
 * sees. `requests` counts the calls admitted; the others count the outcomes reported for them.
 */
export interface BreakerCounts {
  requests: number;
  totalSuccesses: number;
  totalFailures: number;
  consecutiveSuccesses: number;
  consecutiveFailures: number;
}

/** A compiled `trip` expression: true when the breaker should open after a failure with these counts. */
export type TripFn = (counts: Readonly<BreakerCounts>) => boolean;

/** A breaker's state, named as Dapr's metrics name it. */
export type BreakerState = 'closed' | 'half-open' | 'open';

/**
 * Why `admit()` turned a call away: the breaker is `open`, or it is half-open and already let
 * `maxRequests` calls through (`too-many-requests`). Both are final: the call is not to be retried.
 */
export type Refusal = 'open' | 'too-many-requests';

const VARIABLES = ['requests', 'totalSuccesses', 'totalFailures', 'consecutiveSuccesses', 'consecutiveFailures'] as const;

/** Counts a `dyn`-typed expression is tried on at compile time, to see that it yields a bool. */
const SAMPLES: readonly BreakerCounts[] = [
  { requests: 0, totalSuccesses: 0, totalFailures: 0, consecutiveSuccesses: 0, consecutiveFailures: 0 },
  { requests: 1, totalSuccesses: 0, totalFailures: 1, consecutiveSuccesses: 0, consecutiveFailures: 1 },
  { requests: 10, totalSuccesses: 4, totalFailures: 6, consecutiveSuccesses: 0, consecutiveFailures: 6 },
  { requests: 1000, totalSuccesses: 990, totalFailures: 10, consecutiveSuccesses: 0, consecutiveFailures: 1 },
];

let environment: Environment | undefined;

/** The CEL environment of trip expressions: the five counts, declared as `int`, and nothing else. */
function tripEnvironment(): Environment {
  if (environment === undefined) {
    const env = new Environment();
    for (const name of VARIABLES) env.registerVariable(name, 'int');
    environment = env;
  }
  return environment;
}

/** What the CEL library says is wrong, on one line, with the position (1-based) when it has one. */
function describe(err: unknown): string {
  if (err instanceof ParseError || err instanceof CelTypeError) {
    const at = err.range === undefined ? '' : ` (at character ${err.range.start + 1})`;
    return `${err.summary}${at}`;
  }
  const message = err instanceof Error ? err.message : String(err);
  const end = message.indexOf('\n');
  return (end < 0 ? message : message.slice(0, end)).trim();
}

/** The CEL type name of a value the library returned, for messages. */
function celTypeName(value: unknown): string {
  switch (typeof value) {
    case 'bigint':
      return 'int';
    case 'number':
      return 'double';
    case 'string':
      return 'string';
    default:
      return value === null ? 'null' : 'a value that is not a bool';
  }
}

/**
 * Compiles a circuit breaker's `trip` expression, a CEL expression over the integer variables
 * `requests`, `totalSuccesses`, `totalFailures`, `consecutiveSuccesses` and `consecutiveFailures`
 * (Dapr's default is `consecutiveFailures > 5`). Parsing and type checking happen here, once; the
 * returned function only evaluates.
 *
 * @throws Error naming the expression when it does not parse, uses a variable or function that is
 * not declared, or does not yield a bool.
 *
 * The returned function answers false when evaluation fails at run time (an integer overflow, a
 * division by zero): such a failure does not open the breaker. It is synchronous and reuses one
 * context object, so it is not reentrant (it never needs to be).
 */
export function compileTrip(expression: string): TripFn {
  const fail = (reason: string): Error => new Error(`trip expression ${JSON.stringify(expression)} is not valid: ${reason}`);
  let program: ParseResult;
  try {
    program = tripEnvironment().parse(expression);
  } catch (err) {
    throw fail(describe(err));
  }
  const checked = program.check();
  if (!checked.valid) throw fail(describe(checked.error ?? 'type check failed'));
  // CEL integers are BigInts in the library: the counts are converted on each evaluation.
  const context: Record<(typeof VARIABLES)[number], bigint> = {
    requests: 0n,
    totalSuccesses: 0n,
    totalFailures: 0n,
    consecutiveSuccesses: 0n,
    consecutiveFailures: 0n,
  };
  const evaluate = (counts: Readonly<BreakerCounts>): unknown => {
    context.requests = BigInt(counts.requests);
    context.totalSuccesses = BigInt(counts.totalSuccesses);
    context.totalFailures = BigInt(counts.totalFailures);
    context.consecutiveSuccesses = BigInt(counts.consecutiveSuccesses);
    context.consecutiveFailures = BigInt(counts.consecutiveFailures);
    const result: unknown = program(context);
    return result;
  };
  if (checked.type === 'dyn') {
    // The checker cannot tell (e.g. `dyn(requests)`): what it yields on a few counts decides.
    for (const sample of SAMPLES) {
      let result: unknown;
      try {
        result = evaluate(sample);
      } catch {
        continue;
      }
      if (typeof result !== 'boolean') throw fail(`it yields ${celTypeName(result)}, not bool`);
    }
  } else if (checked.type !== 'bool') {
    throw fail(`it yields ${checked.type ?? 'an unknown type'}, not bool`);
  }
  return (counts) => {
    try {
      return evaluate(counts) === true;
    } catch {
      return false;
    }
  };
}

/** Options of a {@link CircuitBreaker}; the durations are in milliseconds. */
export interface CircuitBreakerOptions {
  /** How many calls half-open lets through, and how many successes in a row close it (below 1: 1). */
  readonly maxRequests: number;
  /** The cyclic period of the closed state, after which the counts are cleared; 0 never clears them. */
  readonly intervalMs: number;
  /** How long the breaker stays open before it goes half-open (0 or less: 60 s, the default). */
  readonly timeoutMs: number;
  /** Decides, after each failure in the closed state, whether the breaker opens. */
  readonly trip: TripFn;
  /** The clock, in milliseconds; monotonic `performance.now()` unless given. */
  readonly now?: () => number;
  /**
   * Called after each change of state, once the breaker is consistent in its new state. It runs
   * inside `admit`, `succeeded`, `failed` or the `state` getter, so it must not throw.
   */
  readonly onStateChange?: (from: BreakerState, to: BreakerState) => void;
}

const DEFAULT_TIMEOUT_MS = 60_000;
const defaultNow = (): number => performance.now();

/**
 * A circuit breaker with the semantics of Dapr's `circuitBreakers` policy:
 *
 * - closed: every call passes and the counts accumulate; with an interval, the counts are cleared
 *   when it ends (a new generation, and a new interval starts). After each failure `trip` is asked
 *   whether to open.
 * - open: every call is refused with `'open'` until `timeoutMs` has passed, then it is half-open.
 * - half-open: the first `maxRequests` calls are admitted, later ones refused with
 *   `'too-many-requests'`; `maxRequests` successes in a row close it, any failure opens it again.
 *
 * Each change of state, and each end of a closed interval, starts a new generation with its counts
 * cleared. `admit()` hands out the generation as a token; an outcome reported with the token of an
 * older generation is ignored, so a call started before a change never counts after it.
 *
 * Time is read from the clock when needed; there are no timers, so there is nothing to close.
 * `admit`, `succeeded` and `failed` allocate nothing (a failure allocates only while `trip` runs).
 */
export class CircuitBreaker {
  readonly #maxRequests: number;
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  readonly #trip: TripFn;
  readonly #now: () => number;
  readonly #onStateChange: ((from: BreakerState, to: BreakerState) => void) | undefined;
  #state: BreakerState = 'closed';
  #generation = 0;
  /** When the current generation ends on its own (clock value); Infinity when it does not. */
  #expiry: number;
  readonly #counts: BreakerCounts = { requests: 0, totalSuccesses: 0, totalFailures: 0, consecutiveSuccesses: 0, consecutiveFailures: 0 };

  constructor(options: CircuitBreakerOptions) {
    this.#maxRequests = Math.max(1, Math.floor(options.maxRequests));
    this.#intervalMs = options.intervalMs > 0 ? options.intervalMs : 0;
    this.#timeoutMs = options.timeoutMs > 0 ? options.timeoutMs : DEFAULT_TIMEOUT_MS;
    this.#trip = options.trip;
    this.#now = options.now ?? defaultNow;
    this.#onStateChange = options.onStateChange;
    this.#expiry = this.#intervalMs > 0 ? this.#now() + this.#intervalMs : Infinity;
  }

  /** The current state, after any change that the passing of time has brought (open to half-open). */
  get state(): BreakerState {
    this.#advance();
    return this.#state;
  }

  /** A copy of the current generation's counts. */
  get counts(): Readonly<BreakerCounts> {
    this.#advance();
    return { ...this.#counts };
  }

  /**
   * Asks to let one call through. Returns the token to report its outcome with (a non-negative
   * integer), or the reason it is refused. A refused call must not report an outcome.
   */
  admit(): number | Refusal {
    this.#advance();
    const state = this.#state;
    if (state === 'open') return 'open';
    if (state === 'half-open' && this.#counts.requests >= this.#maxRequests) return 'too-many-requests';
    this.#counts.requests++;
    return this.#generation;
  }

  /** Reports that the call admitted with `token` succeeded; ignored when its generation is over. */
  succeeded(token: number): void {
    // No look at the clock: a success only adds to counts, and the end of a closed interval that it
    // would notice clears them (and retires the token's generation) before anything reads them.
    // Half-open has no deadline, and open admits no call whose success could be reported.
    if (token !== this.#generation) return;
    const counts = this.#counts;
    counts.totalSuccesses++;
    counts.consecutiveSuccesses++;
    counts.consecutiveFailures = 0;
    if (this.#state === 'half-open' && counts.consecutiveSuccesses >= this.#maxRequests) this.#enter('closed');
  }

  /** Reports that the call admitted with `token` failed; ignored when its generation is over. */
  failed(token: number): void {
    this.#advance();
    if (token !== this.#generation) return;
    const counts = this.#counts;
    counts.totalFailures++;
    counts.consecutiveFailures++;
    counts.consecutiveSuccesses = 0;
    if (this.#state === 'half-open' || (this.#state === 'closed' && this.#trip(counts))) this.#enter('open');
  }

  /** Applies what the clock says: the end of a closed interval, or of the open timeout. */
  #advance(): void {
    if (this.#expiry === Infinity) return;
    const now = this.#now();
    if (now < this.#expiry) return;
    if (this.#state === 'open') this.#enter('half-open', now);
    else this.#newGeneration(now);
  }

  #enter(to: BreakerState, now?: number): void {
    const from = this.#state;
    this.#state = to;
    this.#newGeneration(now);
    this.#onStateChange?.(from, to);
  }

  #newGeneration(now: number | undefined): void {
    this.#generation++;
    const counts = this.#counts;
    counts.requests = 0;
    counts.totalSuccesses = 0;
    counts.totalFailures = 0;
    counts.consecutiveSuccesses = 0;
    counts.consecutiveFailures = 0;
    const state = this.#state;
    if (state === 'open') this.#expiry = (now ?? this.#now()) + this.#timeoutMs;
    else if (state === 'closed' && this.#intervalMs > 0) this.#expiry = (now ?? this.#now()) + this.#intervalMs;
    else this.#expiry = Infinity;
  }
}

/** Dapr's default `circuitBreakerCacheSize`: how many breakers (methods) one target keeps. */
export const DEFAULT_BREAKER_CACHE_SIZE = 100;

/**
 * The circuit breakers of one target, by key (`<appid>:<method>`), at most `capacity` of them:
 * making one more forgets the least recently used (which starts closed if its key comes back).
 */
export class BreakerCache {
  readonly #capacity: number;
  readonly #factory: (key: string) => CircuitBreaker;
  /** In order of use, least recent first. */
  readonly #breakers = new Map<string, CircuitBreaker>();
  #lastKey: string | undefined;

  /**
   * @param capacity how many breakers to keep (an integer of at least 1; undefined: 100)
   * @param factory makes the breaker of a key not in the cache
   */
  constructor(capacity: number | undefined, factory: (key: string) => CircuitBreaker) {
    const size = capacity ?? DEFAULT_BREAKER_CACHE_SIZE;
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`circuit breaker cache size must be an integer of at least 1, not ${size}`);
    this.#capacity = size;
    this.#factory = factory;
  }

  /** How many breakers the cache holds. */
  get size(): number {
    return this.#breakers.size;
  }

  /** The breaker of `key`, made (and the least recently used one dropped) when there is none; it becomes the most recently used. */
  get(key: string): CircuitBreaker {
    const breakers = this.#breakers;
    const found = breakers.get(key);
    if (found !== undefined) {
      if (key !== this.#lastKey) {
        breakers.delete(key);
        breakers.set(key, found);
        this.#lastKey = key;
      }
      return found;
    }
    const made = this.#factory(key);
    if (breakers.size >= this.#capacity) {
      const oldest = breakers.keys().next();
      if (oldest.done !== true) breakers.delete(oldest.value);
    }
    breakers.set(key, made);
    this.#lastKey = key;
    return made;
  }

  /** The breaker of `key` if the cache holds it, without making one or changing the order. */
  peek(key: string): CircuitBreaker | undefined {
    return this.#breakers.get(key);
  }
}
