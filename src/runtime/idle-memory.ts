import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from '../observability/logging/index.js';

/** How often the process looks at whether it is idle. */
const CHECK_EVERY_MS = 5000;
/** Below this share of the interval spent working, the process counts as idle. */
const IDLE_UTILIZATION = 0.02;
/** Heap grown by more than this over its floor is worth giving back once idle. */
const SLACK_BYTES = 24 * 1024 * 1024;
/** At most one collection this often (a burst's connections may still be closing at the first). */
const MIN_GAP_MS = 20_000;
/** A collection that frees less than this shows the heap is live data: the floor rises to it. */
const WORTHWHILE_BYTES = 4 * 1024 * 1024;

/**
 * Whether V8's `gc` makes a collection of its last-resort kind when asked (V8 12 and later, Node 22+).
 * V8 11 (Node 20) takes the same options but then makes no full collection at all (0.1 ms against 3.7
 * for `gc()` over a 37 MB heap). A plain full collection does not do there what settling is for: an
 * idle Node 20 sidecar collected with `gc()` 5 s after start held 56 MB at 12 s, against 54 when left
 * to V8's memory reducer, and a `courier run` supervisor 46.4 against 44.7-45.1. So on V8 11 there is
 * no settling (the collection after a burst stays, a plain one).
 */
const THOROUGH_GC = Number(process.versions.v8.split('.')[0]) >= 12;

/** V8's `gc` (`--expose-gc`): with no argument one full collection; with options the kind asked for. */
type Gc = (options?: { type: 'major'; execution: 'sync'; flavor: 'regular' | 'last-resort' }) => void;

export interface IdleMemoryOptions {
  /** Where to say what was given back (debug level); nothing is said without one. */
  logger?: Logger;
  /** How often to look (tests); CHECK_EVERY_MS otherwise. */
  checkEveryMs?: number;
  /** The least time between two collections (tests); MIN_GAP_MS otherwise. */
  minGapMs?: number;
  /** Whether to settle once idle after start-up (tests); where V8 can do it thoroughly otherwise. */
  settle?: boolean;
  /** The collector to call (tests); V8's otherwise. */
  gc?: Gc;
}

/**
 * Gives memory back once start-up is over and after a burst. V8 collects its old generation only
 * when allocation asks for it (or, for an idle process, when its memory reducer gets round to it,
 * 8 to 20 s after start on Node 24), so a process that has just started, or that goes quiet after
 * a load peak (say 2000 concurrent connections), keeps dead objects and the pages around them.
 * This watches the event loop's utilisation (no per-call work: it reads a counter Node keeps anyway)
 * and, in the first interval that was idle, runs one thorough collection ("settling": several
 * passes, compaction, the young generation shrunk to its start size; V8 12 and later), which gives
 * back what loading the modules, the configuration and the certificates left (docs/performance.md,
 * "Memory"). After that, when an interval was idle and V8 holds well more heap than the process
 * needs when quiet, it runs one full collection (at most one per 20 s). Under load it never runs;
 * idle and small, it runs only the once.
 */
export class IdleMemoryReclaimer {
  readonly #gc: Gc;
  readonly #logger: Logger | undefined;
  readonly #timer: NodeJS.Timeout;
  readonly #minGapMs: number;
  #last = performance.eventLoopUtilization();
  /** What the heap comes down to when the process is quiet. */
  #floor = getHeapStatistics().total_heap_size;
  #lastRun = 0;
  /** Whether the collection after start-up is behind us (or not to be made on this runtime). */
  #settled: boolean;

  private constructor(gc: Gc, options: IdleMemoryOptions) {
    this.#gc = gc;
    this.#logger = options.logger;
    this.#minGapMs = options.minGapMs ?? MIN_GAP_MS;
    this.#settled = !(options.settle ?? THOROUGH_GC);
    this.#timer = setInterval(() => this.#check(), options.checkEveryMs ?? CHECK_EVERY_MS);
    this.#timer.unref();
  }

  /** Starts watching; undefined where the runtime does not allow an explicit collection. */
  static start(options: IdleMemoryOptions = {}): IdleMemoryReclaimer | undefined {
    const gc = options.gc ?? exposeGc();
    return gc === undefined ? undefined : new IdleMemoryReclaimer(gc, options);
  }

  close(): void {
    clearInterval(this.#timer);
  }

  #check(): void {
    const now = performance.eventLoopUtilization();
    const busy = performance.eventLoopUtilization(now, this.#last).utilization;
    this.#last = now;
    if (busy > IDLE_UTILIZATION) return;
    // The heap V8 holds (committed), not what is live: after a burst both dead objects and the empty
    // pages around them stay until a full collection, which is what gives the pages back.
    const held = getHeapStatistics().total_heap_size;
    if (!this.#settled) {
      this.#settled = true;
      this.#floor = this.#collect(held, true, 'idle after start-up: start-up garbage collected');
      return;
    }
    if (held - this.#floor < SLACK_BYTES || Date.now() - this.#lastRun < this.#minGapMs) return;
    const after = this.#collect(held, false, 'idle: memory from the last burst given back');
    if (held - after < WORTHWHILE_BYTES) this.#floor = after;
  }

  /** One collection (`thorough`: as V8's memory reducer makes them); returns the heap held after it. */
  #collect(held: number, thorough: boolean, message: string): number {
    this.#lastRun = Date.now();
    const rss = process.memoryUsage.rss();
    const started = performance.now();
    if (thorough && THOROUGH_GC) this.#gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    else this.#gc();
    const took = performance.now() - started;
    const after = getHeapStatistics().total_heap_size;
    this.#logger?.debug({ heap_before_mb: mb(held), heap_after_mb: mb(after), rss_before_mb: mb(rss), pause_ms: Math.round(took * 10) / 10 }, message);
    return after;
  }
}

function mb(bytes: number): number {
  return Math.round((bytes / 1048576) * 10) / 10;
}

/** The `gc` function V8 offers with `--expose-gc`, enabled at run time; undefined if unavailable. */
function exposeGc(): Gc | undefined {
  const existing = (globalThis as { gc?: Gc }).gc;
  if (typeof existing === 'function') return existing;
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as Gc) : undefined;
  } catch {
    return undefined;
  }
}

export const forTests = { thoroughGc: THOROUGH_GC };
