import { readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from '../util/builtins.js';
import { join } from 'node:path';
import { ensurePrivateDirectory, privateFileMode } from '../util/private-files.js';

/**
 * What a running sidecar tells `courier list`: one JSON file per sidecar process in
 * `<courier home>/run/<pid>.json`, written once every listener is up (so its presence also means
 * "ready to serve") and removed on shutdown. A file whose process is gone (or whose pid now belongs
 * to another process) is stale and ignored.
 */
export interface RunRecord {
  readonly appId: string;
  readonly namespace: string;
  readonly pid: number;
  /** The sidecar process's start time (see `processStartTime`); absent where the system does not tell it. */
  readonly startTime?: string | undefined;
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly internalGrpcPort: number;
  readonly appPort: number | null;
  readonly metricsPort: number;
  /** Whether metrics are enabled (`--enable-metrics`). */
  readonly metricsEnabled?: boolean;
  /** `--max-body-size` in bytes. */
  readonly maxBodyBytes?: number;
  /** `--read-buffer-size` in bytes. */
  readonly readBufferBytes?: number;
  readonly listenAddresses: readonly string[];
  /** With `--enable-profiling`: the port of the diagnostics endpoint. */
  readonly profilePort?: number;
  /** With `--unix-domain-socket`: the sockets the HTTP and gRPC APIs listen on (their ports are then 0). */
  readonly httpSocket?: string;
  readonly grpcSocket?: string;
  /** ISO time the sidecar started. */
  readonly startedAt: string;
  readonly command: readonly string[];
  readonly cwd: string;
}

export function runDirectory(home: string): string {
  return join(home, 'run');
}

/** Writes the record atomically (temp file + rename) and returns its path. */
export function writeRunRecord(home: string, record: RunRecord): string {
  const dir = runDirectory(home);
  ensurePrivateDirectory(dir);
  const file = join(dir, `${record.pid}.json`);
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(record, null, 2)}\n`, { mode: privateFileMode });
  renameSync(temp, file);
  return file;
}

export function removeRunRecord(file: string): void {
  rmSync(file, { force: true });
}

/** Records of sidecars whose process is alive (and is the one that wrote it); stale files are deleted on the way. */
export function listRunRecords(home: string): RunRecord[] {
  const dir = runDirectory(home);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: RunRecord[] = [];
  for (const name of names) {
    if (!name.endsWith('.json')) continue;
    const file = join(dir, name);
    let record: RunRecord;
    try {
      record = JSON.parse(readFileSync(file, 'utf8')) as RunRecord;
    } catch {
      continue;
    }
    if (!isSameProcess({ pid: record.pid, startTime: record.startTime })) {
      removeRunRecord(file);
      continue;
    }
    out.push(record);
  }
  return out.sort((a, b) => a.appId.localeCompare(b.appId) || a.pid - b.pid);
}

/**
 * A process as Courier records it: its pid and, where the system tells it, its start time, so that a
 * pid the system has since given to another process is never taken for the recorded one.
 */
export interface ProcessRef {
  readonly pid: number;
  readonly startTime?: string | undefined;
}

const linux = process.platform === 'linux';
let bootId: string | undefined;

/** The fields of `/proc/<pid>/stat` after the command name (field 3, the state, first); undefined if there is no such process. */
function procStat(pid: number): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may itself contain spaces and parentheses.
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/**
 * When a process started, as an opaque string that differs between two processes that had the same
 * pid: on Linux the start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`) and the boot
 * id, `<ticks>@<boot id>`. Undefined if the process does not exist or the system does not say.
 */
export function processStartTime(pid: number): string | undefined {
  if (!linux || !Number.isInteger(pid) || pid <= 0) return undefined;
  const ticks = procStat(pid)?.[19];
  if (ticks === undefined) return undefined;
  if (bootId === undefined) {
    try {
      bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      bootId = '';
    }
  }
  return `${ticks}@${bootId}`;
}

/** Whether a process exists and is not a zombie (signal 0 checks without signalling). */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  // A zombie has ended; it only waits for a parent that may never reap it.
  return !linux || procStat(pid)?.[0] !== 'Z';
}

/**
 * Whether the recorded process still runs: alive, and started when the record says (when it says;
 * without a start time, being alive is all that can be checked).
 */
export function isSameProcess(ref: ProcessRef): boolean {
  if (!isAlive(ref.pid)) return false;
  if (ref.startTime === undefined || !linux) return true;
  return processStartTime(ref.pid) === ref.startTime;
}

/** Whether any process of the group `pgid` is alive (zombies do not count). */
export function processGroupAlive(pgid: number): boolean {
  if (!Number.isInteger(pgid) || pgid <= 0 || process.platform === 'win32') return false;
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (!linux) return true;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return true;
  }
  for (const entry of entries) {
    if (entry.charCodeAt(0) < 48 || entry.charCodeAt(0) > 57) continue;
    const stat = procStat(Number(entry));
    // Field 3 is the state, field 5 the process group.
    if (stat !== undefined && stat[2] === String(pgid) && stat[0] !== 'Z') return true;
  }
  return false;
}

/**
 * Signals the process group that `leader` leads, never another process's: if the leader still runs it
 * must be the recorded process; if it has exited, the processes left in its group keep its id (the
 * system gives out no pid still used as a group id), so the signal reaches only them. Falls back to
 * the leader alone if it leads no group. Returns false if nothing was signalled.
 */
export function signalProcessGroup(leader: ProcessRef, signal: NodeJS.Signals): boolean {
  const leaderAlive = isAlive(leader.pid);
  if (leaderAlive && !isSameProcess(leader)) return false;
  if (!leaderAlive && !processGroupAlive(leader.pid)) return false;
  if (process.platform !== 'win32') {
    try {
      process.kill(-leader.pid, signal);
      return true;
    } catch {
      // not a group leader, or the group is empty
    }
  }
  if (!leaderAlive) return false;
  try {
    process.kill(leader.pid, signal);
    return true;
  } catch {
    return false;
  }
}
