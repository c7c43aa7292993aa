import { performance } from 'node:perf_hooks';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from '../observability/logging/index.js';

/** How often the sidecar looks at whether it is idle. */
const CHECK_EVERY_MS = 5000;
/** Below this share of the interval spent working, the sidecar counts as idle. */
const IDLE_UTILIZATION = 0.02;
/** Heap grown by more than this over its floor is worth giving back once idle. */
const SLACK_BYTES = 24 * 1024 * 1024;
/** At most one collection this often (a burst's connections may still be closing at the first). */
const MIN_GAP_MS = 20_000;
/** A collection that frees less than this shows the heap is live data: the floor rises to it. */
const WORTHWHILE_BYTES = 4 * 1024 * 1024;

/**
 * Gives memory back after a burst. V8 collects its old generation only when allocation asks for it,
 * so after a load peak (say 2000 concurrent connections) a sidecar that then goes quiet keeps
 * hundreds of megabytes of dead objects indefinitely. This watches the event loop's utilisation
 * (no per-call work: it reads a counter Node keeps anyway) and, when the sidecar has been idle for
 * an interval and V8 holds well more heap than the sidecar needs when quiet, runs one full collection
 * (at most one per 20 s). Under load it never runs; idle and small, it never runs either.
 */
export class IdleMemoryReclaimer {
  readonly #gc: () => void;
  readonly #logger: Logger;
  readonly #timer: NodeJS.Timeout;
  #last = performance.eventLoopUtilization();
  /** What the heap comes down to when the sidecar is quiet. */
  #floor = getHeapStatistics().total_heap_size;
  #lastRun = 0;

  private constructor(gc: () => void, logger: Logger) {
    this.#gc = gc;
    this.#logger = logger;
    this.#timer = setInterval(() => this.#check(), CHECK_EVERY_MS);
    this.#timer.unref();
  }

  /** Starts watching; undefined where the runtime does not allow an explicit collection. */
  static start(logger: Logger): IdleMemoryReclaimer | undefined {
    const gc = exposeGc();
    return gc === undefined ? undefined : new IdleMemoryReclaimer(gc, logger);
  }

  close(): void {
    clearInterval(this.#timer);
  }

  #check(): void {
    const now = performance.eventLoopUtilization();
    const busy = performance.eventLoopUtilization(now, this.#last).utilization;
    this.#last = now;
    // The heap V8 holds (committed), not what is live: after a burst both dead objects and the empty
    // pages around them stay until a full collection, which is what gives the pages back.
    const held = getHeapStatistics().total_heap_size;
    if (busy > IDLE_UTILIZATION || held - this.#floor < SLACK_BYTES || Date.now() - this.#lastRun < MIN_GAP_MS) return;
    this.#lastRun = Date.now();
    const rss = process.memoryUsage.rss();
    this.#gc();
    const after = getHeapStatistics().total_heap_size;
    if (held - after < WORTHWHILE_BYTES) this.#floor = after;
    this.#logger.debug({ heap_before_mb: mb(held), heap_after_mb: mb(after), rss_before_mb: mb(rss) }, 'idle: memory from the last burst given back');
  }
}

function mb(bytes: number): number {
  return Math.round(bytes / 1048576);
}

/** The `gc` function V8 offers with `--expose-gc`, enabled at run time; undefined if unavailable. */
function exposeGc(): (() => void) | undefined {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (typeof existing === 'function') return existing;
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as () => void) : undefined;
  } catch {
    return undefined;
  }
}
