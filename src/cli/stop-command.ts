import { setTimeout as sleep } from 'node:timers/promises';
import { CourierError } from '../errors/index.js';
import { isSameProcess, type ProcessRef } from '../runtime/run-registry.js';
import { flagError, formatFlagHelp, parseFlags, type FlagSpec } from './flags.js';
import { resolveRunFilePath } from './run/run-file.js';
import { listInstances, type Instance } from './run/sidecar-api.js';
import { APP_STOP_GRACE_MS, stopProcessGroup } from './run/supervision.js';

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
file, is stopped through its sidecar. When the \`courier run\` process is gone, the app (with its process
group) is stopped directly, then its sidecar. A process is signalled only after checking that its pid
still belongs to the process that was recorded (its start time). Waits up to 10 s for the processes to end.

Flags:
${formatFlagHelp(stopFlags)}
`;

const STOP_WAIT_MS = 10_000;

/** What to signal for one app, and what must be gone afterwards. */
export interface StopTarget {
  readonly appId: string;
  /** `cli`: its \`courier run\` process is sent SIGTERM and stops app and sidecar in order; `sidecar`: the sidecar is. */
  readonly via: 'cli' | 'sidecar';
  /** The process sent SIGTERM. */
  readonly signal: ProcessRef;
  /** An app whose \`courier run\` is gone: stopped directly (with its process group) before its sidecar. */
  readonly app: ProcessRef | undefined;
  /** Processes that must have exited for the app to count as stopped. */
  readonly waitFor: readonly ProcessRef[];
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
    ({ targets, unknown } = appTargets(instances, appIds));
    if (targets.length === 0) throw new CourierError('ERR_BAD_REQUEST', unknownMessage(unknown));
  }

  const signalled = new Set<number>();
  const terminate = (ref: ProcessRef): void => {
    if (signalled.has(ref.pid)) return;
    signalled.add(ref.pid);
    // Never a process that merely reuses a recorded pid.
    if (!isSameProcess(ref)) return;
    try {
      process.kill(ref.pid, 'SIGTERM');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  };
  await Promise.all(
    targets.map(async (target) => {
      // As `courier run` would: the app (and what it started) first, then its sidecar.
      if (target.app !== undefined) await stopProcessGroup(target.app, APP_STOP_GRACE_MS);
      terminate(target.signal);
    }),
  );
  const deadline = Date.now() + STOP_WAIT_MS;
  const running = (target: StopTarget): ProcessRef[] => target.waitFor.filter((ref) => isSameProcess(ref));
  let failed = false;
  for (const target of targets) {
    while (running(target).length > 0 && Date.now() < deadline) await sleep(50);
    const left = running(target);
    if (left.length > 0) {
      failed = true;
      process.stderr.write(`❌  ${target.appId} is still running ${STOP_WAIT_MS / 1000} s after SIGTERM (pids ${left.map((ref) => ref.pid).join(', ')})\n`);
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
 * For each app id: the \`courier run\` process that started it when that process still runs and runs
 * only apps being stopped (it then stops app and sidecar in order); otherwise the sidecar, whose end
 * makes a running \`courier run\` stop the app (and when that is gone, the app is stopped directly).
 */
export function appTargets(instances: readonly Instance[], appIds: readonly string[]): { targets: StopTarget[]; unknown: string[] } {
  const wanted = new Set(appIds);
  const unknown = [...wanted].filter((id) => !instances.some((i) => i.record.appId === id));
  const targets: StopTarget[] = [];
  for (const instance of instances) {
    if (!wanted.has(instance.record.appId)) continue;
    const cli = instance.cli;
    const cliOnlyRunsWanted = cli !== undefined && instances.every((other) => other.cli?.pid !== cli.pid || wanted.has(other.record.appId));
    targets.push(targetFor(instance, cliOnlyRunsWanted ? 'cli' : 'sidecar'));
  }
  return { targets, unknown };
}

/** Every app whose \`runTemplatePath\` is \`file\`, stopped through its \`courier run\` process while that runs. */
export function runFileTargets(instances: readonly Instance[], file: string): StopTarget[] {
  return instances.filter((i) => i.runTemplatePath === file).map((i) => targetFor(i, i.cli === undefined ? 'sidecar' : 'cli'));
}

function targetFor(instance: Instance, via: 'cli' | 'sidecar'): StopTarget {
  const sidecar: ProcessRef = { pid: instance.record.pid, startTime: instance.record.startTime };
  const cli = via === 'cli' ? instance.cli : undefined;
  const waitFor = [sidecar, ...(instance.app === undefined ? [] : [instance.app]), ...(cli === undefined ? [] : [cli])];
  return {
    appId: instance.record.appId,
    via: cli === undefined ? 'sidecar' : 'cli',
    signal: cli ?? sidecar,
    app: instance.cli === undefined ? instance.app : undefined,
    waitFor,
  };
}
