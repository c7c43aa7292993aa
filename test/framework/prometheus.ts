// A real Prometheus server on loopback, for tests that check Courier's metrics the way an operator sees
// them: scraped over HTTP, parsed by Prometheus' own exposition parser and read back through its query API.
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { freePort } from './ports.js';
import { ChildHandle } from './child.js';
import type { TestEnv } from './env.js';

/** The Prometheus binary: the Debian package's, or `PROMETHEUS_BIN`. */
export const prometheusBinary = process.env.PROMETHEUS_BIN ?? '/usr/bin/prometheus';

/** One element of an instant vector. */
export interface Sample {
  metric: Record<string, string>;
  value: number;
}

/** A scrape target as Prometheus last saw it. */
export interface TargetState {
  scrapeUrl: string;
  health: string;
  lastError: string;
}

interface ApiResponse<T> {
  status: 'success' | 'error';
  data?: T;
  errorType?: string;
  error?: string;
}

type QueryData = { resultType: 'vector'; result: { metric: Record<string, string>; value: [number, string] }[] } | { resultType: 'scalar'; result: [number, string] } | { resultType: 'matrix' | 'string'; result: unknown };

/** Prometheus logs little at warn level, but a crash loop must not grow a test's memory without bound. */
const OUTPUT_LIMIT = 64 * 1024;
/** Every API call is to loopback; one that hangs this long means Prometheus is stuck. */
const REQUEST_TIMEOUT_MS = 5000;

/** A running Prometheus; stopped by `close()`, which `env.close()` calls. */
export class PrometheusProcess {
  readonly url: string;
  readonly #handle: ChildHandle;

  constructor(handle: ChildHandle, port: number) {
    this.#handle = handle;
    this.url = `http://127.0.0.1:${port}`;
  }

  get pid(): number {
    return this.#handle.pid;
  }

  get running(): boolean {
    return this.#handle.running;
  }

  /** The last 64 KiB of its stdout and stderr. */
  get output(): string {
    return this.#handle.output;
  }

  /** Evaluates `expr` now; a scalar result comes back as one sample without labels. */
  async query(expr: string): Promise<Sample[]> {
    const data = await this.#get<QueryData>(`/api/v1/query?query=${encodeURIComponent(expr)}`);
    switch (data.resultType) {
      case 'vector':
        return data.result.map((s) => ({ metric: s.metric, value: Number(s.value[1]) }));
      case 'scalar':
        return [{ metric: {}, value: Number(data.result[1]) }];
      default:
        throw new Error(`prometheus: ${expr} gave a ${data.resultType}, not an instant vector`);
    }
  }

  /**
   * Polls `expr` until `predicate` holds for its samples. Fails with the last samples and every
   * target's scrape state, which tell a value that is wrong from a target that was never scraped.
   */
  async waitFor(expr: string, predicate: (samples: Sample[]) => boolean, timeoutMs = 60_000): Promise<Sample[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const samples = await this.query(expr);
      if (predicate(samples)) return samples;
      if (Date.now() > deadline) {
        const targets = await this.targets().then(
          (ts) => ts.map((t) => `\n  ${t.scrapeUrl} ${t.health}${t.lastError === '' ? '' : `: ${t.lastError}`}`).join('') || ' none',
          (err: unknown) => ` unknown (${String(err)})`,
        );
        throw new Error(`prometheus: ${expr} not as expected within ${timeoutMs} ms; last samples: ${JSON.stringify(samples)}; targets:${targets}`);
      }
      await sleep(200);
    }
  }

  /** The active scrape targets. */
  async targets(): Promise<TargetState[]> {
    const data = await this.#get<{ activeTargets: TargetState[] }>('/api/v1/targets?state=active');
    return data.activeTargets.map(({ scrapeUrl, health, lastError }) => ({ scrapeUrl, health, lastError }));
  }

  /** SIGTERM, then SIGKILL after 10 s; nothing to do once it has exited. */
  close(): Promise<void> {
    return this.#handle.stop(10_000);
  }

  async #get<T>(path: string): Promise<T> {
    let body: ApiResponse<T>;
    try {
      const res = await fetch(this.url + path, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      body = (await res.json()) as ApiResponse<T>;
    } catch (err) {
      throw new Error(`prometheus: GET ${path} failed: ${String(err)}${this.running ? '' : ` (it has exited)\n${this.output}`}`);
    }
    if (body.status !== 'success' || body.data === undefined) throw new Error(`prometheus: GET ${path}: ${body.errorType ?? 'error'}: ${body.error ?? 'no data'}`);
    return body.data;
  }
}

/**
 * Starts Prometheus on a free loopback port, scraping `targets` (`host:port`) as the job `courier`,
 * with its configuration and storage in a fresh folder of `env.home`, and waits until it is ready.
 * Tracked by `env`, so it is stopped even when the test fails. Ready is not yet scraping: Prometheus
 * hands static targets to its scrapers about 5 s after it starts, so check values with `waitFor`.
 */
export async function startPrometheus(env: TestEnv, targets: readonly string[], options: { scrapeIntervalMs?: number; metricsPath?: string } = {}): Promise<PrometheusProcess> {
  try {
    accessSync(prometheusBinary, constants.X_OK);
  } catch {
    throw new Error(`prometheus: ${prometheusBinary} is not executable (install the Debian package prometheus, or set PROMETHEUS_BIN)`);
  }
  // Prometheus takes any positive duration down to 1 ms; the timeout may not exceed the interval.
  const intervalMs = options.scrapeIntervalMs ?? 1000;
  if (!Number.isInteger(intervalMs) || intervalMs < 1) throw new Error(`prometheus: scrapeIntervalMs must be a whole number of ms ≥ 1, not ${intervalMs}`);
  const dir = mkdtempSync(join(env.home, 'prometheus-'));
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(
    configFile,
    stringify({
      scrape_configs: [
        {
          job_name: 'courier',
          scrape_interval: `${intervalMs}ms`,
          scrape_timeout: `${intervalMs}ms`,
          metrics_path: options.metricsPath ?? '/',
          static_configs: [{ targets: [...targets] }],
        },
      ],
    }),
  );

  // The free port can be taken between freePort() and Prometheus binding it: then start again on another.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = spawn(
      prometheusBinary,
      [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      // The configuration has no alerting, rules or remote storage: it talks to its targets and no one
      // else. Its working directory is the private folder, so its relative defaults stay in there too.
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const handle = new ChildHandle(child, 'prometheus');
    const trim = (): void => {
      if (handle.output.length > OUTPUT_LIMIT) handle.output = handle.output.slice(-OUTPUT_LIMIT);
    };
    child.stdout?.on('data', trim);
    child.stderr?.on('data', trim);
    // A failed spawn is an 'error' event (unhandled, it would end the test process) and no 'exit'.
    child.on('error', (err) => (handle.output += `\n${String(err)}`));
    const prometheus = env.track(new PrometheusProcess(handle, port));
    if (await ready(prometheus)) return prometheus;
    if (attempt < 5 && /address already in use/.test(prometheus.output)) continue;
    await prometheus.close();
    throw new Error(`prometheus did not become ready on port ${port}:\n${prometheus.output}`);
  }
}

/** Polls `GET /-/ready` for up to 60 s: true once it answers 200, false if Prometheus exits or time runs out. */
async function ready(prometheus: PrometheusProcess): Promise<boolean> {
  const deadline = Date.now() + 60_000;
  while (prometheus.running && Date.now() < deadline) {
    try {
      const res = await fetch(`${prometheus.url}/-/ready`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      await res.arrayBuffer();
      if (res.status === 200) return true;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  return false;
}
