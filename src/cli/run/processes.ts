import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { StringDecoder } from 'node:string_decoder';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Socket } from 'node:net';
import { CourierError, errorMessage } from '../../errors/index.js';
import { processGroupAlive, processStartTime, signalProcessGroup, type ProcessRef } from '../../runtime/run-registry.js';
import { SUPERVISOR_FD, SUPERVISOR_FD_ENV, type SupervisorMessage } from './supervision.js';

/** How a child process ended. */
export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** The shell convention: the exit code, or 128 + the signal number for a process killed by a signal. */
export function exitCodeOf(status: ExitStatus): number {
  if (status.code !== null) return status.code;
  const number = status.signal === null ? undefined : constants.signals[status.signal];
  return number === undefined ? 1 : 128 + number;
}

export function describeExit(status: ExitStatus): string {
  return status.code !== null ? `exit code ${status.code}` : `signal ${status.signal ?? 'unknown'}`;
}

export type LineSink = (line: string) => void;

/** A line longer than this is passed on in pieces rather than held in memory. */
const MAX_LINE_CHARS = 64 * 1024;

/** Cuts a byte stream into lines (UTF-8 safe across chunks); `end()` flushes a last unterminated line. */
export class LineSplitter {
  readonly #decoder = new StringDecoder('utf8');
  readonly #sink: LineSink;
  #partial = '';

  constructor(sink: LineSink) {
    this.#sink = sink;
  }

  push(chunk: Buffer): void {
    const text = this.#partial + this.#decoder.write(chunk);
    const lines = text.split('\n');
    this.#partial = lines.pop() ?? '';
    for (const line of lines) this.#sink(line.endsWith('\r') ? line.slice(0, -1) : line);
    while (this.#partial.length > MAX_LINE_CHARS) {
      this.#sink(this.#partial.slice(0, MAX_LINE_CHARS));
      this.#partial = this.#partial.slice(MAX_LINE_CHARS);
    }
  }

  end(): void {
    const rest = this.#partial + this.#decoder.end();
    this.#partial = '';
    if (rest !== '') this.#sink(rest.endsWith('\r') ? rest.slice(0, -1) : rest);
  }
}

export interface StartOptions {
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  readonly stdout: LineSink;
  readonly stderr: LineSink;
  /** Give the child a link whose end tells it that the CLI is gone (see `watchSupervisor`). */
  readonly supervised?: boolean;
}

const posix = process.platform !== 'win32';
/** Every child still running, killed outright if the CLI exits without stopping them. */
const live = new Set<ManagedProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) child.signal('SIGKILL');
  });
}

/**
 * A child process in its own process group (its own session on POSIX), so that Ctrl-C in a terminal
 * reaches only the CLI, which then stops its children in order. Signals go to the whole group, so an
 * app started through a wrapper (`npm start`, a shell script) is stopped together with what it started.
 */
export class ManagedProcess {
  readonly pid: number;
  /** When the process started (see `processStartTime`), read as soon as it was spawned. */
  readonly startTime: string | undefined;
  readonly #child: ChildProcess;
  readonly #link: Socket | undefined;
  readonly #exited: Promise<ExitStatus>;
  readonly #closed: Promise<void>;
  #status: ExitStatus | undefined;

  private constructor(child: ChildProcess, options: StartOptions) {
    this.#child = child;
    this.pid = child.pid ?? -1;
    this.startTime = processStartTime(this.pid);
    const link = options.supervised === true ? (child.stdio[SUPERVISOR_FD] as Socket | null | undefined) : undefined;
    if (link != null) {
      // The child holds the other end until it exits; the CLI's end must not keep the CLI alive.
      link.on('error', () => {});
      link.unref();
      this.#link = link;
    }
    const out = new LineSplitter(options.stdout);
    const err = new LineSplitter(options.stderr);
    child.stdout?.on('data', (chunk: Buffer) => out.push(chunk));
    child.stdout?.on('end', () => out.end());
    child.stderr?.on('data', (chunk: Buffer) => err.push(chunk));
    child.stderr?.on('end', () => err.end());
    this.#exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#status = { code, signal };
        resolve(this.#status);
      });
    });
    this.#closed = new Promise((resolve) => child.once('close', () => resolve()));
    live.add(this);
    installExitHook();
  }

  /** Starts the process; rejects (ERR_INTERNAL with the reason) if it cannot be started at all. */
  static start(options: StartOptions): Promise<ManagedProcess> {
    return new Promise((resolve, reject) => {
      let child: ChildProcess;
      try {
        const supervised = options.supervised === true;
        child = spawn(options.command, [...options.args], {
          cwd: options.cwd,
          env: supervised ? { ...options.env, [SUPERVISOR_FD_ENV]: String(SUPERVISOR_FD) } : options.env,
          stdio: supervised ? ['ignore', 'pipe', 'pipe', 'pipe'] : ['ignore', 'pipe', 'pipe'],
          detached: posix,
          windowsHide: true,
        });
      } catch (err) {
        reject(startError(options, err));
        return;
      }
      const onError = (err: Error): void => reject(startError(options, err));
      child.once('error', onError);
      child.once('spawn', () => {
        child.off('error', onError);
        // Later errors (a failed kill) are not fatal; the exit event reports the outcome.
        child.on('error', () => {});
        resolve(new ManagedProcess(child, options));
      });
    });
  }

  /** The process as `courier stop` and an orphaned sidecar check it before signalling it. */
  get ref(): ProcessRef {
    return { pid: this.pid, startTime: this.startTime };
  }

  /** Sends a message over the link of a supervised child; dropped if the child is gone. */
  tell(message: SupervisorMessage): void {
    if (this.#link !== undefined && this.#link.writable) this.#link.write(`${JSON.stringify(message)}\n`);
  }

  /** Resolves once the process itself has exited. */
  get exited(): Promise<ExitStatus> {
    return this.#exited;
  }

  /** Resolves once the output has been read to its end (or after `timeoutMs`, if something else holds the pipes open). */
  async drained(timeoutMs: number): Promise<void> {
    const timer = sleep(timeoutMs, undefined, { ref: false });
    await Promise.race([this.#closed, timer]);
  }

  /** Undefined while the process runs. */
  get status(): ExitStatus | undefined {
    return this.#status;
  }

  get running(): boolean {
    return this.#status === undefined;
  }

  /** Signals the whole process group; false if there was nothing left to signal. */
  signal(signal: NodeJS.Signals): boolean {
    // Once the process has exited (and been reaped) its pid may be given to another process: what is
    // left of its group is then signalled only after checking who holds the pid.
    if (!this.running) return posix && signalProcessGroup(this.ref, signal);
    try {
      if (posix) process.kill(-this.pid, signal);
      else this.#child.kill(signal);
      return true;
    } catch {
      return false;
    }
  }

  /** Whether the process or anything else in its group is still alive. */
  groupAlive(): boolean {
    if (this.running) return true;
    // Zombies do not count: a process left behind whose parent was gone may never be reaped.
    return posix && processGroupAlive(this.pid);
  }

  /**
   * SIGTERM to the group, then SIGKILL if anything in it is still alive after `graceMs`. Resolves with
   * the process's exit status once it and its group are gone.
   */
  async stop(graceMs: number): Promise<ExitStatus> {
    if (this.groupAlive()) {
      this.signal('SIGTERM');
      if (!(await this.#waitGone(graceMs))) {
        this.signal('SIGKILL');
        await this.#waitGone(5000);
      }
    }
    const status = await this.#exited;
    live.delete(this);
    return status;
  }

  /** Forgets the process once it and its group are gone (after it exited on its own). */
  async reap(): Promise<ExitStatus> {
    const status = await this.#exited;
    if (this.groupAlive()) return this.stop(5000);
    live.delete(this);
    return status;
  }

  async #waitGone(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (this.groupAlive()) {
      if (Date.now() >= deadline) return false;
      await sleep(25);
    }
    return true;
  }
}

function startError(options: StartOptions, err: unknown): CourierError {
  const code = (err as NodeJS.ErrnoException).code;
  const reason = code === 'ENOENT' ? `${options.command}: command not found (or ${options.cwd} does not exist)` : errorMessage(err);
  return new CourierError('ERR_INTERNAL', `cannot start ${[options.command, ...options.args].join(' ')}: ${reason}`, { cause: err });
}
