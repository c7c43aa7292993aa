import { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { isAlive, processGroupAlive, signalProcessGroup, type ProcessRef } from '../../runtime/run-registry.js';

/**
 * How the processes `courier run` starts learn that it is gone, however it ended (SIGKILL included):
 * each sidecar (and the local Sentry) gets one end of a socket pair as file descriptor 3, named by
 * this variable, and the CLI keeps the other end. The system closes the CLI's end when the CLI exits,
 * so the child reads end-of-file at once; nothing is polled and nothing is sent per call.
 */
export const SUPERVISOR_FD_ENV = 'COURIER_SUPERVISOR_FD';
/** The descriptor the link is given as in the child. */
export const SUPERVISOR_FD = 3;

/** How long an app may take to exit after SIGTERM before it is killed (by `courier run`, `courier stop` or an orphaned sidecar). */
export const APP_STOP_GRACE_MS = 5000;
/** How long an orphaned sidecar may take to shut down before it exits regardless. */
const ORPHAN_EXIT_DEADLINE_MS = 30_000;

/** What the CLI tells a sidecar over the link, one JSON object per line. */
export interface SupervisorMessage {
  /** The app started beside the sidecar: the leader of its own process group. */
  readonly app?: ProcessRef;
}

/**
 * In a child of `courier run`: watches the link to the CLI. When the CLI is gone, the app it named
 * (with its process group) is stopped first, SIGTERM then SIGKILL after the grace period, and then
 * this process is sent SIGTERM, so it shuts down exactly as on `courier stop`. Does nothing when the
 * process was not started by `courier run`. The variable is removed so nothing started later inherits it.
 */
export function watchSupervisor(env: NodeJS.ProcessEnv): void {
  const raw = env[SUPERVISOR_FD_ENV];
  if (raw === undefined) return;
  delete env[SUPERVISOR_FD_ENV];
  // Once the CLI is gone nobody reads the output: a write must not end the process before it has
  // stopped its app (the CLI ignores a closed console the same way).
  const ignore = (): void => {};
  process.stdout.on('error', ignore);
  process.stderr.on('error', ignore);
  let socket: Socket;
  try {
    socket = new Socket({ fd: Number(raw), readable: true, writable: false });
  } catch {
    return; // not a socket we were given: nothing to watch
  }
  socket.unref();
  let app: ProcessRef | undefined;
  let pending = '';
  socket.on('data', (chunk: Buffer) => {
    pending += chunk.toString('utf8');
    let end: number;
    while ((end = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, end);
      pending = pending.slice(end + 1);
      const message = parseMessage(line);
      if (message?.app !== undefined) app = message.app;
    }
  });
  let gone = false;
  const onGone = (): void => {
    if (gone) return;
    gone = true;
    void supervisorGone(app);
  };
  socket.once('end', onGone);
  socket.once('close', onGone);
  socket.once('error', onGone);
}

function parseMessage(line: string): SupervisorMessage | undefined {
  try {
    const value = JSON.parse(line) as { app?: { pid?: unknown; startTime?: unknown } };
    const app = value.app;
    if (app === undefined || typeof app.pid !== 'number') return {};
    return { app: { pid: app.pid, startTime: typeof app.startTime === 'string' ? app.startTime : undefined } };
  } catch {
    return undefined;
  }
}

async function supervisorGone(app: ProcessRef | undefined): Promise<void> {
  if (app !== undefined) await stopProcessGroup(app, APP_STOP_GRACE_MS);
  setTimeout(() => process.exit(1), ORPHAN_EXIT_DEADLINE_MS).unref();
  process.kill(process.pid, 'SIGTERM');
}

/**
 * Stops the process group that `leader` leads (an app and whatever it started): SIGTERM, then SIGKILL
 * if anything of it is left after `graceMs`. Never signals a process that merely reuses the leader's
 * pid. Resolves once the group is gone (or 5 s after SIGKILL).
 */
export async function stopProcessGroup(leader: ProcessRef, graceMs: number): Promise<void> {
  if (!signalProcessGroup(leader, 'SIGTERM')) return;
  if (await waitGroupGone(leader, graceMs)) return;
  signalProcessGroup(leader, 'SIGKILL');
  await waitGroupGone(leader, 5000);
}

async function waitGroupGone(leader: ProcessRef, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  const alive = (): boolean => processGroupAlive(leader.pid) || isAlive(leader.pid);
  while (alive()) {
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
  return true;
}
