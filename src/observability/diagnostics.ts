import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from '../util/builtin-http.js';
import { closeServer, listenOn } from '../util/listen.js';
import { Session } from 'node:inspector';
import { monitorEventLoopDelay, PerformanceObserver, type IntervalHistogram } from 'node:perf_hooks';
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from './logging/index.js';

/** Pauses longer than this count as stalls. */
const STALL_MS = 5;
/** The event-loop delay probe's period; the histogram holds period + delay, which is reported as delay. */
const PROBE_MS = 10;
/** The longest CPU profile one request may ask for. */
const MAX_PROFILE_SECONDS = 60;

/** V8's garbage collection kinds (`PerformanceEntry.detail.kind`). */
const gcKinds: Readonly<Record<number, string>> = { 1: 'scavenge', 2: 'mark-compact-minor', 4: 'mark-compact', 8: 'incremental-marking', 16: 'weak-callbacks' };

interface PauseStats {
  count: number;
  totalMs: number;
  maxMs: number;
  /** Pauses longer than STALL_MS. */
  stalls: number;
}

/** What the sidecar's event loop went through since the last reset. */
export interface RuntimeReport {
  /** The window's length: from start-up or the last reset to now, or to when it was stopped. */
  readonly sinceMs: number;
  /** Whether the probes still run: false from `?stop=true` to the next `?reset=true`. */
  readonly running: boolean;
  readonly eventLoopDelayMs: { readonly p50: number; readonly p90: number; readonly p99: number; readonly p999: number; readonly max: number };
  /** Event-loop delays over STALL_MS beyond the probe's 10 ms period, as the probe saw them. */
  readonly stalls: number;
  /** Garbage collection pauses by kind. */
  readonly gc: Readonly<Record<string, PauseStats>>;
  /** Stalls the garbage collector does not explain (synchronous work: file I/O, a long computation, …). */
  readonly otherStalls: number;
  readonly memory: { readonly rssMb: number; readonly heapUsedMb: number; readonly heapTotalMb: number; readonly externalMb: number };
}

/**
 * Dapr's `--enable-profiling` for a Node sidecar: counters of what holds the event loop (its delay,
 * garbage collection pauses by kind, the stalls the collector does not explain) and CPU profiles on
 * demand, served on `--profile-port`. Nothing of it runs unless enabled: the probes are a
 * 10 ms event-loop delay timer and a GC observer. The timer wakes the process 100 times a second,
 * 3.7–8.3 ms of CPU a second for an idle sidecar (its threads' schedstat in /proc), so a window can
 * be ended (`stop`) and the probes stay off until the next `reset`.
 */
export class RuntimeDiagnostics {
  readonly #delay: IntervalHistogram;
  readonly #observer: PerformanceObserver;
  #since = performance.now();
  /** When the window was ended by `stop`; undefined while the probes run. */
  #stoppedAt: number | undefined;
  #gc: Record<string, PauseStats> = {};

  constructor() {
    this.#delay = monitorEventLoopDelay({ resolution: PROBE_MS });
    this.#observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        const kind = (entry as { detail?: { kind?: number } | null }).detail?.kind ?? 0;
        add((this.#gc[gcKinds[kind] ?? `kind-${kind}`] ??= empty()), entry.duration);
      }
    });
    this.#start();
  }

  report(): RuntimeReport {
    const d = this.#delay;
    const ms = (ns: number): number => round(Math.max(0, ns / 1e6 - PROBE_MS));
    const memory = process.memoryUsage();
    const mb = (bytes: number): number => round(bytes / 1048576);
    const stalls = countOver(d, PROBE_MS + STALL_MS);
    let gcStalls = 0;
    for (const stats of Object.values(this.#gc)) gcStalls += stats.stalls;
    return {
      sinceMs: round((this.#stoppedAt ?? performance.now()) - this.#since),
      running: this.#stoppedAt === undefined,
      eventLoopDelayMs: { p50: ms(d.percentile(50)), p90: ms(d.percentile(90)), p99: ms(d.percentile(99)), p999: ms(d.percentile(99.9)), max: ms(d.max) },
      stalls,
      gc: this.#gc,
      otherStalls: Math.max(0, stalls - gcStalls),
      memory: { rssMb: mb(memory.rss), heapUsedMb: mb(memory.heapUsed), heapTotalMb: mb(memory.heapTotal), externalMb: mb(memory.external) },
    };
  }

  /** Starts a new window: the counters start from zero and the probes run (again, after `stop`). */
  reset(): void {
    this.#delay.reset();
    this.#since = performance.now();
    this.#gc = {};
    if (this.#stoppedAt !== undefined) this.#start();
  }

  /** Ends the window: the probes stop and `report` keeps giving what they saw until the next `reset`. */
  stop(): void {
    if (this.#stoppedAt !== undefined) return;
    this.#stoppedAt = performance.now();
    this.#delay.disable();
    this.#observer.disconnect();
  }

  close(): void {
    this.stop();
  }

  #start(): void {
    this.#stoppedAt = undefined;
    this.#delay.enable();
    this.#observer.observe({ entryTypes: ['gc'] });
  }
}

/** The HTTP endpoint of `--enable-profiling` (`--profile-port`, Dapr's 7777), on loopback unless told otherwise. */
export class DiagnosticsServer {
  readonly #diagnostics: RuntimeDiagnostics;
  readonly #apiToken: Buffer | undefined;
  readonly #logger: Logger;
  readonly #server: Server;
  #profiling = false;

  constructor(diagnostics: RuntimeDiagnostics, apiToken: string | undefined, logger: Logger) {
    this.#diagnostics = diagnostics;
    this.#apiToken = apiToken === undefined ? undefined : Buffer.from(apiToken);
    this.#logger = logger;
    this.#server = createServer((req, res) => void this.#handle(req, res));
  }

  listen(host: string, port: number): Promise<number> {
    return listenOn(this.#server, host, port);
  }

  close(): Promise<void> {
    return closeServer(this.#server);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (this.#apiToken !== undefined && !tokenMatches(req.headers['dapr-api-token'], this.#apiToken)) {
      res.writeHead(401, { 'content-type': 'text/plain' }).end('invalid api token');
      return;
    }
    if (req.method === 'GET' && url.pathname === '/debug/runtime') {
      const body = JSON.stringify(this.#diagnostics.report());
      if (url.searchParams.get('reset') === 'true') this.#diagnostics.reset();
      else if (url.searchParams.get('stop') === 'true') this.#diagnostics.stop();
      res.writeHead(200, { 'content-type': 'application/json' }).end(body);
      return;
    }
    const kind = req.method === 'GET' ? profileKinds[url.pathname] : undefined;
    if (kind !== undefined) {
      const seconds = Math.min(MAX_PROFILE_SECONDS, Math.max(1, Number(url.searchParams.get('seconds') ?? 10) || 10));
      if (this.#profiling) {
        res.writeHead(409, { 'content-type': 'text/plain' }).end('a profile is already being taken');
        return;
      }
      this.#profiling = true;
      try {
        const profile = await takeProfile(kind, seconds * 1000);
        res.writeHead(200, { 'content-type': 'application/json', 'content-disposition': `attachment; filename="courier.${kind.extension}"` }).end(profile);
      } catch (err) {
        this.#logger.warn({ err: String(err), profile: kind.extension }, 'profile failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('the profile failed');
      } finally {
        this.#profiling = false;
      }
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /debug/runtime[?reset=true|?stop=true], /debug/cpu-profile?seconds=N or /debug/alloc-profile?seconds=N');
  }
}

/** The profiles served, by path: the inspector methods that start and stop one, and its file's extension. */
interface ProfileKind {
  readonly enable: string;
  readonly start: string;
  readonly startParams?: object;
  readonly stop: string;
  readonly extension: string;
}
const profileKinds: Readonly<Record<string, ProfileKind>> = {
  // Where CPU time goes (Go's pprof `profile`).
  '/debug/cpu-profile': { enable: 'Profiler.enable', start: 'Profiler.start', stop: 'Profiler.stop', extension: 'cpuprofile' },
  // Where memory is allocated, collected or not (Go's pprof `allocs`): V8's sampling heap profiler,
  // one sample per 32 KiB on average, keeping the samples of objects the collector has since freed.
  '/debug/alloc-profile': {
    enable: 'HeapProfiler.enable',
    start: 'HeapProfiler.startSampling',
    startParams: { samplingInterval: 32768, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true },
    stop: 'HeapProfiler.stopSampling',
    extension: 'heapprofile',
  },
};

/** A V8 profile of this process over `ms`, in the format Chrome DevTools opens (`.cpuprofile`, `.heapprofile`). */
function takeProfile(kind: ProfileKind, ms: number): Promise<string> {
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object): Promise<unknown> =>
    new Promise((resolve, reject) => session.post(method, params, (err, result) => (err === null ? resolve(result) : reject(err))));
  return (async () => {
    try {
      await post(kind.enable);
      await post(kind.start, kind.startParams);
      await new Promise((resolve) => setTimeout(resolve, ms));
      const result = (await post(kind.stop)) as { profile: unknown };
      return JSON.stringify(result.profile);
    } finally {
      session.disconnect();
    }
  })();
}

function tokenMatches(given: string | string[] | undefined, expected: Buffer): boolean {
  const value = Array.isArray(given) ? given[0] : given;
  if (value === undefined) return false;
  const buf = Buffer.from(value);
  return buf.length === expected.length && timingSafeEqual(buf, expected);
}

function empty(): PauseStats {
  return { count: 0, totalMs: 0, maxMs: 0, stalls: 0 };
}

function add(stats: PauseStats, ms: number): void {
  stats.count++;
  stats.totalMs = round(stats.totalMs + ms);
  if (ms > stats.maxMs) stats.maxMs = round(ms);
  if (ms > STALL_MS) stats.stalls++;
}

/** How many samples of the delay histogram lie above `ms` (its percentiles, walked from the top). */
function countOver(histogram: IntervalHistogram, ms: number): number {
  const threshold = ms * 1e6;
  let over = 0;
  for (const [percentile, value] of histogram.percentiles) if (value > threshold) over = Math.max(over, 100 - percentile);
  return Math.round((over / 100) * histogram.count);
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}
