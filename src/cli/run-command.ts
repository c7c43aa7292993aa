import { existsSync } from '../util/builtins.js';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configFileOf, logTimestamp } from './run/launch.js';
import { courierHome } from '../runtime/options.js';
import { AppRunner, StartAborted, type RunnerContext, type RunOutcome } from './run/app-runner.js';
import type { AppLaunch } from './run/launch.js';
import { exitCodeOf } from './run/processes.js';
import { checkPortsFree } from './run/port-check.js';
import { parseRunArgs, runUsage } from './run/run-args.js';
import { IdleMemoryReclaimer } from '../runtime/idle-memory.js';

/** How long a sidecar may take to write its run record. */
const SIDECAR_START_TIMEOUT_MS = 30_000;

/**
 * `courier run`: one app and its sidecar from flags, or every app of a run file with `-f`. Returns
 * the exit code: the app's own when it exits by itself, 1 when a sidecar dies, 0 when stopped by a
 * signal (unless the app then exits with an error code of its own).
 */
export async function runMain(argv: readonly string[]): Promise<number> {
  const request = parseRunArgs(argv, { cwd: process.cwd(), env: process.env });
  if (request.kind === 'help') {
    process.stdout.write(runUsage);
    return 0;
  }
  for (const warning of request.warnings) warn(warning);
  let launches: readonly AppLaunch[];
  // Run files, Configurations and the local Sentry are loaded only when used: `courier run` stays up for
  // as long as its apps, and carries only what supervising needs (docs/performance.md, "Memory").
  if (request.kind === 'file') {
    const { loadRunFile } = await import('./run/run-file.js');
    const runFile = loadRunFile(request.path, { env: process.env });
    for (const warning of runFile.warnings) warn(warning);
    launches = runFile.apps;
    say(`ℹ️  Starting ${launches.length} app${launches.length === 1 ? '' : 's'} from ${runFile.file}`);
  } else {
    launches = [request.launch];
  }
  const home = courierHome(process.env);
  launches = launches.map((launch) => withDefaultConfiguration(launch, home));
  await checkPortsFree(launches);
  const secured: AppLaunch[] = [];
  for (const launch of launches) if (await wantsMtls(launch)) secured.push(launch);
  if (secured.length === 0) return supervise(launches, request.kind === 'file');
  const { LocalSentry } = await import('./run/local-sentry.js');
  const sentry = await LocalSentry.start({ home, mainScript: fileURLToPath(new URL('./main.js', import.meta.url)), env: process.env, say });
  try {
    const namespace = process.env.NAMESPACE || 'default';
    launches = launches.map((launch) => {
      if (!secured.includes(launch)) return launch;
      const { flags, env } = sentry.sidecarSettings(launch.appId, namespace);
      return { ...launch, sidecarFlags: [...launch.sidecarFlags, ...flags], sidecarEnv: { ...launch.sidecarEnv, ...env } };
    });
    return await supervise(launches, request.kind === 'file');
  } finally {
    await sentry.stop();
  }
}

/** Like the dapr CLI, a launch without `--config` uses `$COURIER_HOME/config.yaml` when there is one (`courier init` writes it). */
function withDefaultConfiguration(launch: AppLaunch, home: string): AppLaunch {
  if (configFileOf(launch) !== undefined) return launch;
  const file = join(home, 'config.yaml');
  return existsSync(file) ? { ...launch, sidecarFlags: [...launch.sidecarFlags, '--config', file] } : launch;
}

/** Whether the launch's configuration turns mTLS on (`spec.mtls.enabled`) and it does not already do so itself. */
async function wantsMtls(launch: AppLaunch): Promise<boolean> {
  const file = configFileOf(launch);
  if (file === undefined || launch.sidecarFlags.includes('--enable-mtls')) return false;
  const { loadConfiguration } = await import('../config/configuration.js');
  return loadConfiguration(file).mtlsEnabled;
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function warn(line: string): void {
  process.stderr.write(`⚠️  ${line}\n`);
}

/** Starts every launch, waits until all have ended, and stops everything on SIGINT, SIGTERM or SIGHUP. */
async function supervise(launches: readonly AppLaunch[], multi: boolean): Promise<number> {
  const context: RunnerContext = {
    env: process.env,
    home: courierHome(process.env),
    mainScript: fileURLToPath(new URL('./main.js', import.meta.url)),
    multi,
    startTimeoutMs: SIDECAR_START_TIMEOUT_MS,
    timestamp: logTimestamp(new Date()),
    say,
    stdout: (line) => process.stdout.write(`${line}\n`),
    stderr: (line) => process.stderr.write(`${line}\n`),
  };
  // A closed console (`courier run | head`) must not end the CLI before it has stopped its children.
  const ignoreBrokenPipe = (): void => {};
  process.stdout.on('error', ignoreBrokenPipe);
  process.stderr.on('error', ignoreBrokenPipe);
  const runners = launches.map((launch) => new AppRunner(launch, context));
  const abort = new AbortController();
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) {
      say(`⚠️  Received ${signal} again: killing the apps and sidecars`);
      for (const runner of runners) runner.kill();
      return;
    }
    signalled = true;
    say(`ℹ️  Received ${signal}: stopping ${multi ? 'the apps and their sidecars' : 'the app and its sidecar'}`);
    abort.abort();
    for (const runner of runners) void runner.stop();
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const signal of signals) process.on(signal, onSignal);

  let reclaimer: IdleMemoryReclaimer | undefined;
  try {
    let failure: Error | undefined;
    // Apps start once every sidecar is up (a run file's apps often call each other at once).
    let up = 0;
    let release: () => void = () => {};
    const allUp = new Promise<void>((resolve) => (release = resolve));
    abort.signal.addEventListener('abort', () => release(), { once: true });
    const sidecarsUp = (): Promise<void> => {
      if (++up === runners.length) release();
      return allUp;
    };
    await Promise.all(
      runners.map((runner) =>
        runner.start(abort.signal, sidecarsUp).catch((err: unknown) => {
          // Aborted: by a signal, by another app's failure, or because this app or its sidecar ended
          // while starting (its outcome then counts like any other end).
          if (err instanceof StartAborted) return;
          failure ??= err instanceof Error ? err : new Error(String(err));
          abort.abort();
        }),
      ),
    );
    if (failure !== undefined && !signalled) {
      await Promise.all(runners.map((runner) => runner.stop()));
      throw failure;
    }
    if (!signalled && !runners.some((runner) => runner.stopping)) {
      say(
        multi
          ? `✅  You're up and running! The output of the apps (and of their sidecars, per the run file) appears here.`
          : `✅  You're up and running! The output of the app and its sidecar appears here.`,
      );
    }
    // From here on the supervisor only waits; what starting the apps left is given back once it is idle.
    reclaimer = IdleMemoryReclaimer.start();
    const outcomes = await Promise.all(runners.map((runner) => (signalled ? runner.stop() : runner.finished)));
    const codes = outcomes.map(exitCode);
    return codes.find((code) => code !== 0) ?? 0;
  } finally {
    reclaimer?.close();
    await Promise.all(runners.map((runner) => runner.stop()));
    for (const signal of signals) process.off(signal, onSignal);
    process.stdout.off('error', ignoreBrokenPipe);
    process.stderr.off('error', ignoreBrokenPipe);
  }
}

/** The exit code one app contributes. */
function exitCode(outcome: RunOutcome): number {
  switch (outcome.kind) {
    case 'app-exited':
      return exitCodeOf(outcome.status);
    case 'sidecar-exited':
      // Shut down cleanly (POST /v1.0/shutdown, or SIGTERM from `courier stop`): not a failure.
      return outcome.status.code === 0 ? 0 : 1;
    case 'stopped':
      return outcome.app?.code != null && outcome.app.code !== 0 ? outcome.app.code : 0;
  }
}
