import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { courierBin, type TestEnv } from './env.js';
import { isAlive } from '../../src/runtime/run-registry.js';
import { freePort } from './ports.js';

export { freePort, isAlive };

/** How a process ended. */
export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface CliOptions {
  cwd?: string;
  env?: Record<string, string>;
}

function cliEnv(env: TestEnv, extra: Record<string, string> | undefined): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...process.env, COURIER_HOME: env.home, NAMESPACE: 'default', ...extra };
  delete out.DAPR_API_TOKEN;
  if (extra?.DAPR_API_TOKEN !== undefined) out.DAPR_API_TOKEN = extra.DAPR_API_TOKEN;
  return out;
}

/**
 * A long-running `courier run` started from the built CLI, with its output collected. Everything it
 * started is tracked by pid; `close()` stops the CLI and then kills and checks every tracked process.
 */
export class CliProcess {
  readonly child: ChildProcess;
  #stdout = '';
  #stderr = '';
  readonly #exit: Promise<Exit>;
  exitStatus: Exit | undefined;

  constructor(env: TestEnv, args: readonly string[], options: CliOptions = {}) {
    this.child = spawn(process.execPath, [courierBin, ...args], {
      cwd: options.cwd ?? env.home,
      env: cliEnv(env, options.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout?.on('data', (d: Buffer) => (this.#stdout += d.toString()));
    this.child.stderr?.on('data', (d: Buffer) => (this.#stderr += d.toString()));
    this.#exit = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        this.exitStatus = { code, signal };
        resolve(this.exitStatus);
      }),
    );
    env.track({ close: () => this.close() });
    trackPids(env, () => (this.child.pid === undefined ? [] : [this.child.pid]));
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get stdout(): string {
    return this.#stdout;
  }

  get stderr(): string {
    return this.#stderr;
  }

  get output(): string {
    return `${this.#stdout}\n--- stderr ---\n${this.#stderr}`;
  }

  get running(): boolean {
    return this.exitStatus === undefined;
  }

  exited(): Promise<Exit> {
    return this.#exit;
  }

  /** Waits until stdout or stderr matches; fails with the output so far if the CLI exits first or time runs out. */
  async waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = pattern.exec(this.#stdout) ?? pattern.exec(this.#stderr);
      if (match !== null) return match;
      if (!this.running) throw new Error(`courier exited (${JSON.stringify(this.exitStatus)}) before printing ${String(pattern)}\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`courier did not print ${String(pattern)} within ${timeoutMs} ms\n${this.output}`);
      await sleep(25);
    }
  }

  /** Waits for the exit, failing with the output if it takes longer than `timeoutMs`. */
  async waitForExit(timeoutMs = 30_000): Promise<Exit> {
    const result = await Promise.race([this.#exit, sleep(timeoutMs, undefined, { ref: false }).then(() => undefined)]);
    if (result === undefined) throw new Error(`courier did not exit within ${timeoutMs} ms\n${this.output}`);
    return result;
  }

  async close(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const exit = await Promise.race([this.#exit, sleep(30_000, undefined, { ref: false }).then(() => undefined)]);
    if (exit === undefined) {
      this.child.kill('SIGKILL');
      await this.#exit;
    }
  }
}

/** Runs a short CLI command (list, stop, invoke, a failing run) to its end. */
export function runCli(env: TestEnv, args: readonly string[], options: CliOptions & { timeoutMs?: number } = {}): Promise<Exit & { stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [courierBin, ...args], {
      cwd: options.cwd ?? env.home,
      env: cliEnv(env, options.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`courier ${args.join(' ')} did not finish within ${options.timeoutMs ?? 30_000} ms\n${stdout}\n${stderr}`));
    }, options.timeoutMs ?? 30_000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** One entry of `courier list -o json`: Dapr CLI's keys (0 or '' when unknown), then Courier's own. */
export interface ListEntry {
  appId: string;
  httpPort: number;
  grpcPort: number;
  appPort: number;
  metricsEnabled: boolean;
  command: string;
  age: string;
  created: string;
  daprdPid: number;
  cliPid: number;
  appPid: number;
  maxRequestBodySize: number;
  httpReadBufferSize: number;
  runTemplatePath: string;
  appLogPath: string;
  daprdLogPath: string;
  runTemplateName: string;
  courierPid: number;
  namespace: string;
  internalGrpcPort: number;
}

export async function listJson(env: TestEnv, options: CliOptions = {}): Promise<ListEntry[]> {
  const res = await runCli(env, ['list', '-o', 'json'], options);
  if (res.code !== 0) throw new Error(`courier list failed: ${res.stderr}`);
  return JSON.parse(res.stdout) as ListEntry[];
}

/**
 * Polls `courier list -o json` until every app id is listed with its app pid (when `withApp`), and
 * tracks their pids so the test kills them if anything goes wrong.
 */
export async function waitForListed(
  env: TestEnv,
  appIds: readonly string[],
  options: { withApp?: boolean; timeoutMs?: number; cli?: CliOptions } = {},
): Promise<ListEntry[]> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  for (;;) {
    const entries = await listJson(env, options.cli);
    const found = appIds.map((id) => entries.find((e) => e.appId === id));
    if (found.every((e) => e !== undefined && (options.withApp === false || e.appPid !== 0))) {
      const listed = found as ListEntry[];
      trackPids(env, () => listed.flatMap((e) => [e.daprdPid, ...(e.appPid === 0 ? [] : [e.appPid])]));
      return listed;
    }
    if (Date.now() > deadline) throw new Error(`apps ${appIds.join(', ')} not listed in time; listed: ${JSON.stringify(entries)}`);
    await sleep(100);
  }
}

/** Waits (≤ `timeoutMs`) until none of the pids is alive; returns those still alive. */
export async function waitGone(pids: readonly number[], timeoutMs = 10_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(isAlive) && Date.now() < deadline) await sleep(50);
  return pids.filter(isAlive);
}

/**
 * Tracks processes a test caused to be started (sidecars, apps, in their own process groups): when the
 * test ends, any still alive is killed with its group, and the test fails if one had to be.
 */
export function trackPids(env: TestEnv, pids: () => readonly number[]): void {
  env.track({
    close: async () => {
      const alive = pids().filter(isAlive);
      if (alive.length === 0) return;
      for (const pid of alive) {
        for (const target of [-pid, pid]) {
          try {
            process.kill(target, 'SIGKILL');
          } catch {
            // not a group leader, or already gone
          }
        }
      }
      const left = await waitGone(alive, 5000);
      throw new Error(`processes left running at the end of the test: ${alive.join(', ')}${left.length > 0 ? ` (still alive after SIGKILL: ${left.join(', ')})` : ''}`);
    },
  });
}

/** A temporary directory with the given files (name → content), removed when the test env closes. */
export function appDirectory(env: TestEnv, files: Record<string, string>): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'courier-cli-app-')));
  for (const [name, content] of Object.entries(files)) {
    const file = join(dir, name);
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, content);
  }
  env.track({ close: () => Promise.resolve(rmSync(dir, { recursive: true, force: true })) });
  return dir;
}

/** Polls a sidecar's `GET /v1.0/healthz` until 204 (the sidecar sees its app), failing after `timeoutMs`. */
export async function waitForHealthz(httpPort: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${httpPort}/v1.0/healthz`);
      await res.arrayBuffer();
      if (res.status === 204) return;
    } catch {
      // not answering yet
    }
    if (Date.now() > deadline) throw new Error(`the sidecar on port ${httpPort} was not healthy within ${timeoutMs} ms`);
    await sleep(50);
  }
}
