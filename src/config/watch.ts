import type { Stats } from 'node:fs';
import { unwatchFile, watchFile } from '../util/builtins.js';
import { loadConfiguration, type Configuration } from './configuration.js';

/** How often the configuration file is checked for changes. */
const WATCH_INTERVAL_MS = 1000;

export interface ConfigurationWatch {
  close(): void;
}

/**
 * Watches a Configuration file and hands each changed version, parsed and validated, to `onChange`;
 * a version that fails to load or that `onChange` rejects (by throwing) goes to `onError`, and the
 * caller keeps what it had. Polling (`fs.watchFile`) rather than `fs.watch`, because editors and
 * config-management tools replace files by renaming, which `fs.watch` loses track of.
 *
 * `loaded` is what the caller read before calling this: the file is read once more after the watch
 * has started, so a change made between that first read and the start of the watch is not missed.
 */
export function watchConfiguration(
  file: string,
  loaded: Configuration,
  onChange: (next: Configuration) => void,
  onError: (err: unknown) => void,
): ConfigurationWatch {
  const reload = (): void => {
    try {
      onChange(loadConfiguration(file));
    } catch (err) {
      onError(err);
    }
  };
  watchFile(file, { interval: WATCH_INTERVAL_MS, persistent: false }, (curr: Stats, prev: Stats) => {
    if (curr.mtimeMs === prev.mtimeMs && curr.size === prev.size && curr.ino === prev.ino) return;
    reload();
  });
  let current: Configuration | undefined;
  try {
    current = loadConfiguration(file);
  } catch (err) {
    onError(err);
  }
  if (current !== undefined && JSON.stringify(current) !== JSON.stringify(loaded)) onChange(current);
  return { close: () => unwatchFile(file) };
}
