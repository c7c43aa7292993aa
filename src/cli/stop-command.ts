import { setTimeout as sleep } from 'node:timers/promises';
import { CourierError } from '../errors/index.js';
import { isAlive } from '../runtime/run-registry.js';
import { flagError, formatFlagHelp, parseFlags, type FlagSpec } from './flags.js';
import { resolveRunFilePath } from './run/run-file.js';
import { listInstances, type Instance } from './run/sidecar-api.js';

export const stopFlags: readonly FlagSpec[] = [
  { name: 'app-id', short: 'a', type: 'list', placeholder: '<id>[,<id>...]', help: 'the app(s) to stop (comma-separated or repeated)' },
  { name: 'run-file', short: 'f', type: 'string', placeholder: '<dir|file>', help: 'stop every app started from this run file' },
  { name: 'kubernetes', short: 'k', type: 'bool', hidden: true, help: '' },
  { name: 'help', short: 'h', type: 'bool', help: 'show this help' },
];

export const stopUsage = `Usage: courier stop --app-id <id>[,<id>...]
       courier stop -f <dir|file>

Stops apps started with \`courier run\` and their sidecars: the \`courier run\` process of an app is sent
SIGTERM (it then stops the app, then the sidecar); a sidecar started otherwise, or one app out of a run
file, is stopped through its sidecar. Waits up to 10 s for the processes to end.

Flags:
${formatFlagHelp(stopFlags)}
`;

const STOP_WAIT_MS = 10_000;

/** What to signal for one app, and what must be gone afterwards. */
export interface StopTarget {
  readonly appId: string;
  /** The process sent SIGTERM. */
  readonly pid: number;
  readonly via: 'cli' | 'sidecar';
  /** Processes that must have exited for the app to count as stopped. */
  readonly waitFor: readonly number[];
}

export async function stopMain(argv: readonly string[]): Promise<number> {
  const { values } = parseFlags('stop', argv, stopFlags);
  if (values.get('help') === true) {
    process.stdout.write(stopUsage);
    return 0;
  }
  if (values.get('kubernetes') === true) throw flagError('stop', '--kubernetes is not supported: Courier runs apps on this machine only');
  const appIds = ((values.get('app-id') as string[] | undefined) ?? [])
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
  const runFile = values.get('run-file') as string | undefined;
  if (appIds.length === 0 && runFile === undefined) throw flagError('stop', 'give --app-id or --run-file');
  if (appIds.length > 0 && runFile !== undefined) throw flagError('stop', 'give --app-id or --run-file, not both');

  const instances = await listInstances(process.env);
  let targets: StopTarget[];
  let unknown: string[] = [];
  if (runFile !== undefined) {
    const file = resolveRunFilePath(runFile);
    targets = runFileTargets(instances, file);
    if (targets.length === 0) throw new CourierError('ERR_BAD_REQUEST', `no running apps were started from ${file}`);
  } else {
    ({ targets, unknown } = appTargets(instances, appIds, isAlive));
    if (targets.length === 0) throw new CourierError('ERR_BAD_REQUEST', unknownMessage(unknown));
  }

  for (const pid of new Set(targets.map((t) => t.pid))) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }
  const deadline = Date.now() + STOP_WAIT_MS;
  let failed = false;
  for (const target of targets) {
    while (target.waitFor.some(isAlive) && Date.now() < deadline) await sleep(50);
    if (target.waitFor.some(isAlive)) {
      failed = true;
      process.stderr.write(`❌  ${target.appId} is still running ${STOP_WAIT_MS / 1000} s after SIGTERM (pids ${target.waitFor.filter(isAlive).join(', ')})\n`);
    } else {
      process.stdout.write(`✅  app stopped successfully: ${target.appId}\n`);
    }
  }
  if (unknown.length > 0) throw new CourierError('ERR_BAD_REQUEST', unknownMessage(unknown));
  return failed ? 1 : 0;
}

function unknownMessage(unknown: readonly string[]): string {
  return unknown.length === 1 ? `no running app with id "${unknown[0] ?? ''}"` : `no running apps with ids ${unknown.map((id) => `"${id}"`).join(', ')}`;
}

/**
 * For each app id: the `courier run` process that started it when that process runs only apps being
 * stopped (it then stops app and sidecar in order); otherwise the sidecar, whose end makes
 * `courier run` stop the app.
 */
export function appTargets(
  instances: readonly Instance[],
  appIds: readonly string[],
  alive: (pid: number) => boolean,
): { targets: StopTarget[]; unknown: string[] } {
  const wanted = new Set(appIds);
  const unknown = [...wanted].filter((id) => !instances.some((i) => i.record.appId === id));
  const targets: StopTarget[] = [];
  for (const instance of instances) {
    if (!wanted.has(instance.record.appId)) continue;
    const cli = instance.cliPid;
    const cliOnlyRunsWanted = cli !== undefined && alive(cli) && instances.every((other) => other.cliPid !== cli || wanted.has(other.record.appId));
    targets.push(targetFor(instance, cliOnlyRunsWanted ? 'cli' : 'sidecar'));
  }
  return { targets, unknown };
}

/** Every app whose `runTemplatePath` is `file`, stopped through its `courier run` process. */
export function runFileTargets(instances: readonly Instance[], file: string): StopTarget[] {
  return instances.filter((i) => i.runTemplatePath === file).map((i) => targetFor(i, i.cliPid === undefined ? 'sidecar' : 'cli'));
}

function targetFor(instance: Instance, via: 'cli' | 'sidecar'): StopTarget {
  const pid = via === 'cli' ? (instance.cliPid ?? instance.record.pid) : instance.record.pid;
  const waitFor = [instance.record.pid, ...(instance.appPid === undefined ? [] : [instance.appPid]), ...(via === 'cli' ? [pid] : [])];
  return { appId: instance.record.appId, pid, via, waitFor: [...new Set(waitFor)] };
}
