// Apps, sidecars and a call driver on the test hosts of a NetLab.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { courierBin, repoRoot } from '../env.js';
import type { HostProcess, NetLab } from '../netlab.js';
import { waitForRunRecord } from '../sidecar-process.js';

const here = join(repoRoot, 'test', 'framework', 'netlab');

export interface CallResult {
  host?: string;
  error?: string;
  ms: number;
  /** Milliseconds from the start of a load run at which the call was sent. */
  t?: number;
}

/** The call driver on one host (see driver.mjs). */
export class Driver {
  readonly #proc: HostProcess;
  #next = 0;
  readonly #waiting = new Map<number, (value: Record<string, unknown>) => void>();
  #buffer = '';

  constructor(proc: HostProcess) {
    this.#proc = proc;
    proc.child.stdout?.on('data', (d: Buffer) => {
      this.#buffer += d.toString();
      let nl;
      while ((nl = this.#buffer.indexOf('\n')) >= 0) {
        const line = this.#buffer.slice(0, nl);
        this.#buffer = this.#buffer.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        const msg = JSON.parse(line) as { id: number };
        this.#waiting.get(msg.id)?.(msg);
        this.#waiting.delete(msg.id);
      }
    });
  }

  send<T>(op: string, args: Record<string, unknown>): Promise<T> {
    const id = this.#next++;
    return new Promise((resolve) => {
      this.#waiting.set(id, resolve as (value: Record<string, unknown>) => void);
      this.#proc.child.stdin?.write(`${JSON.stringify({ id, op, ...args })}\n`);
    });
  }

  async healthy(port: number): Promise<void> {
    const r = await this.send<{ ok: boolean }>('healthy', { port });
    if (!r.ok) throw new Error(`the sidecar on port ${port} did not become healthy`);
  }

  async calls(url: string, count: number): Promise<CallResult[]> {
    return (await this.send<{ results: CallResult[] }>('calls', { url, count })).results;
  }

  async load(url: string, rate: number, seconds: number): Promise<CallResult[]> {
    return (await this.send<{ results: CallResult[] }>('load', { url, rate, seconds })).results;
  }
}

export async function startDriver(lab: NetLab, host: number): Promise<Driver> {
  const proc = lab.spawn(host, process.execPath, [join(here, 'driver.mjs')]);
  await proc.waitFor(/ready/);
  return new Driver(proc);
}

/** The app of host `h`, answering with `name`; resolves with its port. */
export async function startHostApp(lab: NetLab, host: number, name: string): Promise<{ proc: HostProcess; port: number }> {
  const proc = lab.spawn(host, process.execPath, [join(here, 'app.mjs')], { HOST_NAME: name });
  const m = await proc.waitFor(/port (\d+)/);
  return { proc, port: Number(m[1]) };
}

export interface HostSidecar {
  proc: HostProcess;
  httpPort: number;
  internalPort: number;
  pid: number;
}

/** Writes a Configuration file selecting `component` with `configuration`, in the lab's directory. */
export function writeConfig(lab: NetLab, name: string, component: string, configuration: Record<string, unknown>): string {
  const file = join(lab.dir, `${name}.yaml`);
  const body = Object.entries(configuration)
    .map(([k, v]) => `      ${k}: ${JSON.stringify(v)}`)
    .join('\n');
  writeFileSync(
    file,
    `apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: ${name}\nspec:\n  nameResolution:\n    component: ${component}\n    configuration:\n${body}\n`,
  );
  return file;
}

/** `courier sidecar` on host `h`, its internal port on the host's address, waiting for its run record. */
export async function startHostSidecar(
  lab: NetLab,
  host: number,
  options: { appId: string; appPort?: number; config: string; internalPort?: number; listenAddress?: string; args?: string[] },
): Promise<HostSidecar> {
  const home = join(lab.dir, `home-h${host}`);
  mkdirSync(home, { recursive: true });
  const args = [
    courierBin,
    'sidecar',
    '--app-id',
    options.appId,
    '--dapr-http-port',
    '0',
    '--dapr-grpc-port',
    '0',
    '--dapr-internal-grpc-port',
    String(options.internalPort ?? 0),
    '--dapr-internal-grpc-listen-address',
    options.listenAddress ?? lab.address(host),
    '--config',
    options.config,
    '--log-level',
    'debug',
    '--metrics-port',
    '0',
    ...(options.appPort === undefined ? [] : ['--app-port', String(options.appPort)]),
    ...(options.args ?? []),
  ];
  const proc = lab.spawn(host, process.execPath, args, { COURIER_HOME: home, NAMESPACE: 'default' });
  const pid = proc.pid;
  const r = await waitForRunRecord(home, pid, proc, `sidecar ${options.appId} on h${host}`);
  return { proc, httpPort: r.httpPort, internalPort: r.internalGrpcPort, pid };
}

/** How many results each host answered, and the failures. */
export function tally(results: readonly CallResult[]): { byHost: Record<string, number>; failures: string[] } {
  const byHost: Record<string, number> = {};
  const failures: string[] = [];
  for (const r of results) {
    if (r.host !== undefined) byHost[r.host] = (byHost[r.host] ?? 0) + 1;
    else failures.push(r.error ?? 'unknown');
  }
  return { byHost, failures };
}

/**
 * The longest a call may wait when the instance it was sent to is cut off, as the resiliency issue
 * puts it: 2 s. A connection that went silent with calls waiting is dropped 1.0-1.15 s after its
 * last byte, the built-in retry goes at once to the other instance (it waits its 1 s backoff only
 * when no untried instance is left), and the retry takes a few milliseconds: about 1.2 s in all,
 * which leaves 0.8 s for a busy test machine. The figure printed is the measured one.
 */
export const FAILOVER_BOUND_MS = 2000;

/** When (ms after `sinceMs`) the sidecar whose log is `output` dropped a connection that went silent, and how many calls were waiting on it. */
export function silentConnectionDrops(output: string, sinceMs: number): { ms: number; calls: number }[] {
  const drops: { ms: number; calls: number }[] = [];
  for (const m of output.matchAll(/time="?([^"\s]+)"? level=debug msg="(?:lane|gRPC) connection went silent with calls waiting; dropping it"[^\n]*?calls=(\d+)/g)) {
    const at = Date.parse(m[1] ?? '');
    if (at >= sinceMs) drops.push({ ms: at - sinceMs, calls: Number(m[2]) });
  }
  return drops;
}
