import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { courierBin, type TestEnv } from './env.js';

export interface SidecarSpec {
  appId: string;
  appPort?: number;
  /** Extra flags, e.g. ['--max-body-size', '20Mi']. */
  args?: string[];
  /** Extra environment, e.g. { DAPR_API_TOKEN: 'x' }. */
  env?: Record<string, string>;
  /** Wait for `GET /v1.0/healthz` to answer 204 (the app channel is ready) before returning. */
  waitForApp?: boolean;
  /** Flags for node itself, before the script (e.g. ['--cpu-prof']). */
  nodeArgs?: string[];
  /** The node binary to run the sidecar with (another runtime); this process's own by default. */
  node?: string;
  /** Called with the process as soon as it is spawned, before it is ready (to watch its start-up). */
  onSpawn?: (sidecar: SidecarProcess) => void;
}

/** A `courier sidecar` child process. */
export class SidecarProcess {
  readonly appId: string;
  readonly child: ChildProcess;
  httpPort = 0;
  /** The public gRPC API port (`--dapr-grpc-port`). */
  grpcPort = 0;
  internalPort = 0;
  /** The metrics endpoint's port (0 with metrics off). */
  metricsPort = 0;
  /** The `--enable-profiling` endpoint's port (undefined without it). */
  profilePort: number | undefined;
  #output = '';
  #exit: Promise<number | null>;
  exitCode: number | null | undefined;

  constructor(appId: string, child: ChildProcess) {
    this.appId = appId;
    this.child = child;
    child.stdout?.on('data', (d: Buffer) => (this.#output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.#output += d.toString()));
    this.#exit = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.exitCode = code ?? (signal === null ? null : -1);
        resolve(this.exitCode);
      }),
    );
  }

  get output(): string {
    return this.#output;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.httpPort}${path}`;
  }

  /** Resolves with the exit code once the process has exited. */
  exited(): Promise<number | null> {
    return this.#exit;
  }

  /** SIGTERM, then wait for a graceful exit; fails if the sidecar does not exit 0 within 15 s. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    // An unref'd timer: once the sidecar has exited, nothing should keep the test process alive.
    const code = await Promise.race([this.#exit, sleep(15_000, undefined, { ref: false }).then(() => 'timeout' as const)]);
    if (code === 'timeout') {
      this.child.kill('SIGKILL');
      await this.#exit;
      throw new Error(`sidecar ${this.appId} did not stop within 15 s after SIGTERM\n${this.#output}`);
    }
    if (code !== 0) throw new Error(`sidecar ${this.appId} exited with ${String(code)} after SIGTERM\n${this.#output}`);
  }

  /** SIGKILL: the process dies without cleaning up (a crash). */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGKILL');
    await this.#exit;
  }

  async close(): Promise<void> {
    await this.stop();
  }
}

/**
 * Starts `courier sidecar` for `spec` in `env` on free ports (port 0) and waits until it has written
 * its run record (every listener is up and it is registered). Stopped by `env.close()`.
 */
export async function startSidecar(env: TestEnv, spec: SidecarSpec): Promise<SidecarProcess> {
  const args = [courierBin, 'sidecar', '--app-id', spec.appId, '--dapr-http-port', '0', '--dapr-grpc-port', '0', '--dapr-internal-grpc-port', '0', '--log-level', 'debug'];
  if (spec.appPort !== undefined) args.push('--app-port', String(spec.appPort));
  // Metrics on a free loopback port (a sidecar's default, 9090 on every interface, would clash between tests).
  if (!(spec.args ?? []).some((a) => a.startsWith('--metrics-port') || a.startsWith('--enable-metrics') || a === '-M')) {
    args.push('--metrics-port', '0', '--metrics-listen-address', '127.0.0.1');
  }
  args.push(...(spec.args ?? []));
  const child = spawn(spec.node ?? process.execPath, [...(spec.nodeArgs ?? []), ...args], {
    env: { ...process.env, COURIER_HOME: env.home, NAMESPACE: 'default', ...spec.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const sidecar = env.track(new SidecarProcess(spec.appId, child));
  spec.onSpawn?.(sidecar);
  const record = await waitForRunRecord(spec.env?.COURIER_HOME ?? env.home, child.pid ?? 0, sidecar);
  sidecar.httpPort = record.httpPort;
  sidecar.grpcPort = record.grpcPort;
  sidecar.internalPort = record.internalGrpcPort;
  sidecar.metricsPort = record.metricsEnabled === true ? record.metricsPort : 0;
  sidecar.profilePort = record.profilePort;
  if (spec.waitForApp === true) await waitForHealthy(sidecar);
  return sidecar;
}

/** The ports a sidecar wrote in its run record. */
export interface RunRecordPorts {
  httpPort: number;
  grpcPort: number;
  internalGrpcPort: number;
  metricsPort: number;
  metricsEnabled?: boolean;
  profilePort?: number;
}

/**
 * Waits (≤ 20 s) for the run record the sidecar with `pid` writes in `<home>/run` once every listener
 * is up and it is registered; fails with its output if it exits first.
 */
export async function waitForRunRecord(home: string, pid: number, sidecar: { readonly running: boolean; readonly output: string }, name = `sidecar ${pid}`): Promise<RunRecordPorts> {
  const recordFile = join(home, 'run', `${pid}.json`);
  const deadline = Date.now() + 20_000;
  while (!existsSync(recordFile)) {
    if (!sidecar.running) throw new Error(`${name} exited before it was ready\n${sidecar.output}`);
    if (Date.now() > deadline) throw new Error(`${name} was not ready within 20 s\n${sidecar.output}`);
    await sleep(20);
  }
  return JSON.parse(readFileSync(recordFile, 'utf8')) as RunRecordPorts;
}

/** Polls `GET /v1.0/healthz` until 204. */
export async function waitForHealthy(sidecar: SidecarProcess, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(sidecar.url('/v1.0/healthz'));
      await res.arrayBuffer();
      if (res.status === 204) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`sidecar ${sidecar.appId} not healthy within ${timeoutMs} ms\n${sidecar.output}`);
    await sleep(25);
  }
}
