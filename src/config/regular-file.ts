import type { Stats } from 'node:fs';
import { closeSync, constants, fstatSync, openSync, readFileSync, statSync } from '../util/builtins.js';

/** A path that names something other than a regular file (after following symlinks). */
export interface NotRegularFile {
  /** What it is, for messages: `a FIFO (named pipe)`, `a socket`, `a directory`, … */
  readonly notRegular: string;
}

/**
 * Reads a configuration file, refusing anything that is not a regular file. Reading a FIFO with no
 * writer, a character device or a terminal would block the whole process (the read is synchronous, so
 * not even SIGTERM is handled) or never end; a socket cannot be read at all. The path is checked
 * before it is opened and the opened descriptor is checked again (the file may have been replaced in
 * between); it is opened non-blocking, so opening a FIFO that appeared in the meantime cannot block.
 * Symlinks are followed: a symlink to a regular file is read. Other failures (missing file, no
 * permission) are thrown as Node's errors.
 */
export function readRegularFile(file: string): string | NotRegularFile {
  const before = statSync(file);
  if (!before.isFile()) return { notRegular: describeFileType(before) };
  const fd = openSync(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOCTTY ?? 0));
  try {
    const opened = fstatSync(fd);
    if (!opened.isFile()) return { notRegular: describeFileType(opened) };
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

export function isNotRegular(value: string | NotRegularFile): value is NotRegularFile {
  return typeof value !== 'string';
}

function describeFileType(stats: Stats): string {
  if (stats.isFIFO()) return 'a FIFO (named pipe)';
  if (stats.isSocket()) return 'a socket';
  if (stats.isDirectory()) return 'a directory';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}
