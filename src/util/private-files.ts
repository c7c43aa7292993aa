import { chmodSync, closeSync, constants, fchmodSync, mkdirSync, openSync } from './builtins.js';
import { relative, resolve, sep } from 'node:path';

/** Mode of the directories Courier creates for its own state (`COURIER_HOME`, `run/`). */
export const privateDirectoryMode = 0o700;
/** Mode of the files Courier creates for its own state (the name resolution database, run records). */
export const privateFileMode = 0o600;

/**
 * Creates `path` and any missing parent, each new directory exactly 0700 whatever the umask (mkdir
 * applies the umask, so every directory this call created is chmod-ed afterwards). A directory that
 * already exists keeps its mode: Courier never loosens, nor second-guesses, what an operator set.
 */
export function ensurePrivateDirectory(path: string): void {
  const target = resolve(path);
  const first = mkdirSync(target, { recursive: true, mode: privateDirectoryMode });
  if (first === undefined) return;
  // `first` is the outermost directory created; every directory from it down to `target` is new.
  const steps = relative(first, target).split(sep).filter((part) => part !== '');
  let current = first;
  chmodSync(current, privateDirectoryMode);
  for (const part of steps) {
    current = resolve(current, part);
    chmodSync(current, privateDirectoryMode);
  }
}

/**
 * Creates an empty `path` with mode 0600 (exactly: the umask is undone with fchmod) unless it
 * exists. Returns whether this call created it. An existing file keeps its mode. The parent
 * directory must exist.
 */
export function createPrivateFile(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, privateFileMode);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    fchmodSync(fd, privateFileMode);
  } finally {
    closeSync(fd);
  }
  return true;
}
