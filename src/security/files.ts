import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, fsyncSync, linkSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Mode of directories holding keys: only the owner may list or enter them. */
export const PRIVATE_DIR_MODE = 0o700;
/** Mode of private key and secret files. */
export const PRIVATE_FILE_MODE = 0o600;
/** Mode of certificates (public, but kept in the private directory anyway). */
export const PUBLIC_FILE_MODE = 0o644;

/**
 * Creates `dir` (and its parents) with mode 0700 when missing. An existing directory keeps its
 * mode: it may be shared on purpose, and silently tightening it would surprise its owner.
 */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
}

/**
 * Writes `data` to `file` so that readers see the old content or the new, never a part: a temporary
 * file in the same directory, flushed to disk, then renamed over the target. The mode is set
 * explicitly (not left to the umask) before the content becomes visible under its name.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array, mode: number): void {
  const tmp = writeTemp(file, data, mode);
  try {
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * Like {@link writeFileAtomic}, but never replaces an existing file: returns false when `file`
 * already exists (another process won the race), true when this call created it.
 */
export function createFileAtomic(file: string, data: string | Uint8Array, mode: number): boolean {
  const tmp = writeTemp(file, data, mode);
  try {
    linkSync(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    rmSync(tmp, { force: true });
  }
}

function writeTemp(file: string, data: string | Uint8Array, mode: number): string {
  const tmp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', mode);
  let complete = false;
  try {
    fchmodSync(fd, mode);
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let written = 0;
    while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written);
    fsyncSync(fd);
    complete = true;
  } finally {
    closeSync(fd);
    if (!complete) rmSync(tmp, { force: true });
  }
  return tmp;
}
