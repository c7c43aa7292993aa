import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, fstatSync, fsyncSync, linkSync, openSync, readFileSync, renameSync, rmSync, writeSync } from '../util/builtins.js';
import { basename, dirname, join } from 'node:path';
import { CourierError, errorMessage } from '../errors/index.js';
export { ensurePrivateDirectory } from '../util/private-files.js';

/** Mode of private key and secret files. */
export const PRIVATE_FILE_MODE = 0o600;
/** Mode of certificates (public, but kept in the private directory anyway). */
export const PUBLIC_FILE_MODE = 0o644;

/**
 * The content of a private key or secret file, or undefined when it does not exist. Refused, with
 * one line naming the file, its mode and the fix, when its group or others may read or write it: a
 * key others could read is as good as theirs, and one they could write lets them swap in their own.
 * The mode is checked on the opened file, so it cannot be changed between the check and the read.
 * Windows has no such modes, and is not checked.
 */
export function readPrivateFile(file: string, what: string): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CourierError('ERR_INVALID_CONFIG', `${what} ${file}: ${errorMessage(err)}`, { cause: err });
  }
  try {
    const stat = fstatSync(fd);
    const mode = stat.mode & 0o777;
    // Anything but a file fails to read below, with the system's reason.
    if (stat.isFile() && process.platform !== 'win32' && (mode & 0o077) !== 0) {
      throw new CourierError(
        'ERR_INVALID_CONFIG',
        `${what} ${file} has mode ${mode.toString(8).padStart(4, '0')}: ${exposure(mode)} can ${access(mode)} it; ` +
          `a private key must be readable by its owner only: chmod 600 ${file}`,
      );
    }
    return readFileSync(fd);
  } catch (err) {
    if (err instanceof CourierError) throw err;
    throw new CourierError('ERR_INVALID_CONFIG', `${what} ${file}: ${errorMessage(err)}`, { cause: err });
  } finally {
    closeSync(fd);
  }
}

function exposure(mode: number): string {
  const group = (mode & 0o070) !== 0;
  const others = (mode & 0o007) !== 0;
  return group && others ? 'its group and others' : group ? 'its group' : 'others';
}

function access(mode: number): string {
  const read = (mode & 0o044) !== 0;
  const write = (mode & 0o022) !== 0;
  return read && write ? 'read and write' : read ? 'read' : write ? 'write' : 'use';
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
