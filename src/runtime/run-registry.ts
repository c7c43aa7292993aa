import { readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensurePrivateDirectory, privateFileMode } from './private-files.js';

/**
 * What a running sidecar tells `courier list`: one JSON file per sidecar process in
 * `<courier home>/run/<pid>.json`, written once every listener is up (so its presence also means
 * "ready to serve") and removed on shutdown. A file whose process is gone is stale and ignored.
 */
export interface RunRecord {
  readonly appId: string;
  readonly namespace: string;
  readonly pid: number;
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly internalGrpcPort: number;
  readonly appPort: number | null;
  readonly metricsPort: number;
  readonly listenAddresses: readonly string[];
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

/** Records of sidecars whose process is alive; stale files are deleted on the way. */
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
    if (!isAlive(record.pid)) {
      removeRunRecord(file);
      continue;
    }
    out.push(record);
  }
  return out.sort((a, b) => a.appId.localeCompare(b.appId) || a.pid - b.pid);
}

/** Whether a process exists (signal 0 checks without signalling). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
