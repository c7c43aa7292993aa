import type { WriteStream } from 'node:fs';
import { createWriteStream, existsSync, mkdirSync, readFileSync } from '../../util/builtins.js';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CourierError, errorMessage } from '../../errors/index.js';
import { processStartTime, runDirectory, type RunRecord } from '../../runtime/run-registry.js';
import { appEnvironment, sidecarArgs, sidecarEnvironment, type AppLaunch, type LaunchPorts, type LogDestination } from './launch.js';
import { describeExit, ManagedProcess, type ExitStatus, type LineSink, type StartOptions } from './processes.js';
import { portInUseMessage, portOrigin, sidecarPortInUse } from './port-check.js';
import { putMetadata } from './metadata-put.js';
import { APP_STOP_GRACE_MS } from './supervision.js';
import { NODE_FLAGS } from '../../runtime/heap-flags.js';

/** How long the sidecar may take to shut down gracefully after SIGTERM before it is killed. */
export const SIDECAR_STOP_GRACE_MS = 20_000;
const OUTPUT_TAIL_LINES = 40;
/** The CLI's own start time, for `courier stop` to check before it signals the CLI. */
const cliStartTime = processStartTime(process.pid);

export interface RunnerContext {
  /** The CLI's environment, inherited by every child. */
  readonly env: NodeJS.ProcessEnv;
  /** The Courier home the sidecars write their run records to. */
  readonly home: string;
  /** The CLI's entry script (`dist/cli/main.js`), started with `sidecar` for each sidecar. */
  readonly mainScript: string;
  /** Several apps from a run file: output prefixes name the app. */
  readonly multi: boolean;
  /** How long a sidecar may take to be up. */
  readonly startTimeoutMs: number;
  /** In log file names. */
  readonly timestamp: string;
  /** The CLI's own messages. */
  readonly say: (line: string) => void;
  readonly stdout: (line: string) => void;
  readonly stderr: (line: string) => void;
}

/** How an app and its sidecar ended. */
export type RunOutcome =
  | { readonly kind: 'app-exited'; readonly status: ExitStatus }
  | { readonly kind: 'sidecar-exited'; readonly status: ExitStatus }
  | { readonly kind: 'stopped'; readonly app: ExitStatus | undefined };

/** Thrown by `start` when the start was aborted (a signal arrived, or another app failed to start). */
export class StartAborted extends Error {
  constructor() {
    super('start aborted');
  }
}

/** A log file that takes lines; writes after close are dropped. */
class LogFile {
  readonly path: string;
  readonly #stream: WriteStream;
  #open = true;

  constructor(path: string) {
    this.path = path;
    this.#stream = createWriteStream(path, { flags: 'a' });
    this.#stream.on('error', () => {
      this.#open = false;
    });
  }

  write(line: string): void {
    if (this.#open) this.#stream.write(`${line}\n`);
  }

  close(): Promise<void> {
    if (!this.#open) return Promise.resolve();
    this.#open = false;
    return new Promise((resolve) => this.#stream.end(() => resolve()));
  }
}

/**
 * One app and its sidecar under `courier run`: starts the sidecar, waits until it is up (its run
 * record exists), starts the app and tells the sidecar's metadata who started what. When either
 * process ends on its own, the other is stopped; `stop()` stops the app first, then the sidecar.
 */
export class AppRunner {
  readonly launch: AppLaunch;
  readonly #ctx: RunnerContext;
  #record: RunRecord | undefined;
  #sidecar: ManagedProcess | undefined;
  #app: ManagedProcess | undefined;
  #appLog: LogFile | undefined;
  #sidecarLog: LogFile | undefined;
  readonly #sidecarTail: string[] = [];
  #stopping: Promise<RunOutcome> | undefined;
  /** The process being started, if any: a stop that comes meanwhile waits for it, then stops it. */
  #spawning: Promise<unknown> = Promise.resolve();
  readonly #finished: Promise<RunOutcome>;
  #resolveFinished: (outcome: RunOutcome) => void = () => {};

  constructor(launch: AppLaunch, ctx: RunnerContext) {
    this.launch = launch;
    this.#ctx = ctx;
    this.#finished = new Promise((resolve) => (this.#resolveFinished = resolve));
  }

  get record(): RunRecord | undefined {
    return this.#record;
  }

  /** Whether it is stopping or has stopped. */
  get stopping(): boolean {
    return this.#stopping !== undefined;
  }

  /** Resolves once both processes are gone, however that came about. */
  get finished(): Promise<RunOutcome> {
    return this.#finished;
  }

  /**
   * Starts the sidecar, then (once `sidecarsUp` resolves: with a run file, when every app's sidecar is
   * up, so no app calls an app whose sidecar has not registered yet) the app.
   */
  async start(signal: AbortSignal, sidecarsUp?: () => Promise<void>): Promise<void> {
    const launch = this.launch;
    const ctx = this.#ctx;
    // The sidecar binds port 0 itself (no window in which another listener, its own among them, can
    // take a port chosen here) and reports the ports it got in its run record.
    const requested: LaunchPorts = { httpPort: launch.httpPort ?? 0, grpcPort: launch.grpcPort ?? 0, metricsPort: launch.metricsPort ?? 0 };
    this.#openLogs();

    this.#checkNotStopping(signal);
    this.#sidecar = await this.#spawn({
      command: process.execPath,
      args: [...NODE_FLAGS, ctx.mainScript, 'sidecar', ...sidecarArgs(launch, requested)],
      cwd: launch.cwd,
      env: sidecarEnvironment(launch, ctx.env),
      stdout: this.#sidecarSink(ctx.stdout),
      stderr: this.#sidecarSink(ctx.stderr),
      supervised: true,
    });
    this.#watch(this.#sidecar, 'sidecar-exited');
    this.#checkNotStopping(signal);
    const record = await this.#waitForRecord(this.#sidecar, signal);
    this.#record = record;
    const ports: LaunchPorts = { httpPort: record.httpPort, grpcPort: record.grpcPort, metricsPort: record.metricsPort };
    const appPort = launch.appPort === undefined ? '' : `, app port ${launch.appPort}`;
    const api =
      record.httpSocket === undefined || record.grpcSocket === undefined
        ? `HTTP port ${ports.httpPort}, gRPC port ${ports.grpcPort}`
        : `HTTP socket ${record.httpSocket}, gRPC socket ${record.grpcSocket}`;
    ctx.say(
      `✅  Courier sidecar for app "${launch.appId}" is up: ${api}, ` +
        `internal gRPC port ${record.internalGrpcPort}${appPort}, ${record.metricsEnabled === false ? 'metrics off' : `metrics port ${ports.metricsPort}`} (pid ${record.pid})`,
    );
    this.#sayLogFiles();
    this.#checkNotStopping(signal);
    await sidecarsUp?.();
    this.#checkNotStopping(signal);

    const [program, ...args] = launch.command;
    if (program !== undefined) {
      this.#app = await this.#spawn({
        command: program,
        args,
        cwd: launch.cwd,
        env: appEnvironment(launch, ports, ctx.env),
        stdout: this.#appSink(ctx.stdout),
        stderr: this.#appSink(ctx.stderr),
      });
      // At once: should the CLI die from here on, the sidecar stops the app before itself.
      this.#sidecar.tell({ app: this.#app.ref });
      this.#watch(this.#app, 'app-exited');
      ctx.say(`ℹ️  Started app "${launch.appId}" (pid ${this.#app.pid}): ${launch.command.join(' ')}`);
      this.#checkNotStopping(signal);
    }
    await this.#publishMetadata(record);
  }

  #spawn(options: StartOptions): Promise<ManagedProcess> {
    const started = ManagedProcess.start(options);
    this.#spawning = started.catch(() => undefined);
    return started;
  }

  /** Ends a start that a stop (or an abort) overtook; the stop takes care of what was started. */
  #checkNotStopping(signal: AbortSignal): void {
    if (signal.aborted || this.#stopping !== undefined) throw new StartAborted();
  }

  /** Stops the app (SIGTERM, SIGKILL after 5 s), then the sidecar. Idempotent; resolves when both are gone. */
  stop(): Promise<RunOutcome> {
    return this.#shutdown(undefined);
  }

  /** SIGKILL both at once (a second Ctrl-C). */
  kill(): void {
    this.#app?.signal('SIGKILL');
    this.#sidecar?.signal('SIGKILL');
  }

  #watch(child: ManagedProcess, kind: 'app-exited' | 'sidecar-exited'): void {
    void child.exited.then((status) => {
      if (this.#stopping !== undefined) return;
      // A sidecar that exits before it is up is reported by start().
      if (kind === 'sidecar-exited' && this.#record === undefined) return;
      const who = kind === 'app-exited' ? `App "${this.launch.appId}"` : `The Courier sidecar of app "${this.launch.appId}"`;
      const icon = status.code === 0 ? 'ℹ️ ' : '❌ ';
      const then = kind === 'app-exited' ? (this.#sidecar === undefined ? '' : '; stopping its sidecar') : this.#app?.running === true ? '; stopping the app' : '';
      this.#ctx.say(`${icon} ${who} exited (${describeExit(status)})${then}`);
      void this.#shutdown({ kind, status });
    });
  }

  #shutdown(trigger: RunOutcome | undefined): Promise<RunOutcome> {
    this.#stopping ??= (async () => {
      await this.#spawning;
      let appStatus: ExitStatus | undefined;
      if (this.#app !== undefined) {
        appStatus = await this.#app.stop(APP_STOP_GRACE_MS);
        await this.#app.drained(1000);
      }
      if (this.#sidecar !== undefined) {
        const wasRunning = this.#sidecar.running;
        const status = await this.#sidecar.stop(SIDECAR_STOP_GRACE_MS);
        await this.#sidecar.drained(1000);
        if (wasRunning && this.#record !== undefined) {
          this.#ctx.say(
            status.code === 0 || status.signal === 'SIGTERM'
              ? `✅  Stopped the Courier sidecar of app "${this.launch.appId}"`
              : `⚠️  The Courier sidecar of app "${this.launch.appId}" ended with ${describeExit(status)}`,
          );
        }
      }
      await Promise.all([this.#appLog?.close(), this.#sidecarLog?.close()]);
      const outcome: RunOutcome = trigger ?? { kind: 'stopped', app: appStatus };
      this.#resolveFinished(outcome);
      return outcome;
    })();
    return this.#stopping;
  }

  async #waitForRecord(sidecar: ManagedProcess, signal: AbortSignal): Promise<RunRecord> {
    const file = join(runDirectory(this.#ctx.home), `${sidecar.pid}.json`);
    const deadline = Date.now() + this.#ctx.startTimeoutMs;
    for (;;) {
      this.#checkNotStopping(signal);
      if (existsSync(file)) {
        try {
          return JSON.parse(readFileSync(file, 'utf8')) as RunRecord;
        } catch {
          // being replaced; read it again
        }
      }
      const status = sidecar.status;
      if (status !== undefined) {
        await sidecar.drained(1000);
        throw this.#startError(`exited with ${describeExit(status)} before it was up`);
      }
      if (Date.now() > deadline) throw this.#startError(`was not up within ${Math.round(this.#ctx.startTimeoutMs / 1000)} s`);
      await sleep(25);
    }
  }

  #startError(what: string): CourierError {
    const inUse = sidecarPortInUse(this.#sidecarTail);
    if (inUse !== undefined) return new CourierError('ERR_INVALID_FLAG', portInUseMessage(inUse.port, portOrigin(this.launch, inUse.flag)));
    let message = `the Courier sidecar of app "${this.launch.appId}" ${what}`;
    const onConsole = this.launch.sidecarLogDestination !== 'file';
    if (!onConsole && this.#sidecarTail.length > 0) message += `; its last output:\n${this.#sidecarTail.map((l) => `  ${l}`).join('\n')}`;
    if (this.#sidecarLog !== undefined) message += `${onConsole ? '' : '\n'} (log: ${this.#sidecarLog.path})`;
    return new CourierError('ERR_INTERNAL', message);
  }

  async #publishMetadata(record: RunRecord): Promise<void> {
    const launch = this.launch;
    // Each start time goes before its pid, so a reader never sees a pid without the means to check it.
    const values: Array<[string, string]> = [];
    if (cliStartTime !== undefined) values.push(['cliStartTime', cliStartTime]);
    values.push(['cliPID', String(process.pid)]);
    if (this.#app !== undefined) {
      if (this.#app.startTime !== undefined) values.push(['appStartTime', this.#app.startTime]);
      values.push(['appPID', String(this.#app.pid)], ['appCommand', launch.command.join(' ')]);
    }
    if (launch.runTemplate !== undefined) {
      values.push(['runTemplatePath', launch.runTemplate.path], ['runTemplateName', launch.runTemplate.name]);
      if (this.#appLog !== undefined) values.push(['appLogPath', this.#appLog.path]);
      if (this.#sidecarLog !== undefined) values.push(['daprdLogPath', this.#sidecarLog.path]);
    }
    for (const [key, value] of values) {
      try {
        await putMetadata(record, this.#ctx.env, key, value);
      } catch (err) {
        if (this.#stopping === undefined) this.#ctx.say(`⚠️  Could not set ${key} in the metadata of app "${launch.appId}": ${errorMessage(err)}`);
        return;
      }
    }
  }

  #openLogs(): void {
    const launch = this.launch;
    const dir = launch.logDirectory;
    const wants = (d: LogDestination): boolean => d === 'file' || d === 'fileAndConsole';
    if (dir === undefined || (!wants(launch.appLogDestination) && !wants(launch.sidecarLogDestination))) return;
    mkdirSync(dir, { recursive: true });
    const ts = this.#ctx.timestamp;
    if (wants(launch.appLogDestination) && launch.command.length > 0) this.#appLog = new LogFile(join(dir, `${launch.appId}_app_${ts}.log`));
    if (wants(launch.sidecarLogDestination)) this.#sidecarLog = new LogFile(join(dir, `${launch.appId}_daprd_${ts}.log`));
  }

  /** Where this app's and its sidecar's output is written, as `dapr run -f` tells it. */
  #sayLogFiles(): void {
    const { appId, logDirectory } = this.launch;
    if (logDirectory === undefined || (this.#appLog === undefined && this.#sidecarLog === undefined)) return;
    this.#ctx.say(`ℹ️  Writing log files to directory : ${logDirectory}`);
    if (this.#appLog !== undefined) this.#ctx.say(`ℹ️  App log of "${appId}": ${this.#appLog.path}`);
    if (this.#sidecarLog !== undefined) this.#ctx.say(`ℹ️  Sidecar log of "${appId}": ${this.#sidecarLog.path}`);
  }

  #prefix(kind: 'APP' | 'COURIER'): string {
    return this.#ctx.multi ? `== ${kind} - ${this.launch.appId} == ` : `== ${kind} == `;
  }

  #appSink(console: (line: string) => void): LineSink {
    const prefix = this.#prefix('APP');
    const toConsole = this.launch.appLogDestination !== 'file';
    return (line) => {
      this.#appLog?.write(line);
      if (toConsole) console(`${prefix}${line}`);
    };
  }

  #sidecarSink(console: (line: string) => void): LineSink {
    const prefix = this.#prefix('COURIER');
    const toConsole = this.launch.sidecarLogDestination !== 'file';
    return (line) => {
      this.#sidecarTail.push(line);
      if (this.#sidecarTail.length > OUTPUT_TAIL_LINES) this.#sidecarTail.shift();
      this.#sidecarLog?.write(line);
      if (toConsole) console(`${prefix}${line}`);
    };
  }
}
