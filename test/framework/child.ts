// A child process started by a test or the benchmark: its output kept (for messages and for waiting on
// a line), stopped by its PID with SIGTERM and, if it does not go, SIGKILL.
import type { ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export class ChildHandle {
  readonly name: string;
  readonly child: ChildProcess;
  output = '';
  /** Resolves once the process has exited. */
  readonly exited: Promise<void>;

  constructor(child: ChildProcess, name = '') {
    this.child = child;
    this.name = name;
    child.stdout?.on('data', (d: Buffer) => (this.output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Waits until the output matches `pattern`; fails with the output if the process exits or time runs out. */
  async waitFor(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = pattern.exec(this.output);
      if (m !== null) return m;
      if (!this.running || Date.now() > deadline) throw new Error(`${this.name || 'the process'}: no ${String(pattern)} in its output:\n${this.output}`);
      await sleep(20);
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const gone = await Promise.race([this.exited.then(() => true), sleep(graceMs, undefined, { ref: false }).then(() => false)]);
    if (!gone) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }

  close(): Promise<void> {
    return this.stop(5000);
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => (socket.destroy(), resolve(false)));
  });
}
