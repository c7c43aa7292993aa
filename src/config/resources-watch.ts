import { readdirSync, statSync } from '../util/builtins.js';
import { join } from 'node:path';

/** How often the resource directories are checked for changes. */
const WATCH_INTERVAL_MS = 1000;

export interface ResourcesWatch {
  close(): void;
}

/**
 * Calls `onChange` when a YAML file in one of `paths` is added, removed, replaced or modified. The
 * directories are polled (names, sizes, modification times and inodes of their YAML files), because
 * editors and config-management tools replace files by renaming, and because Kubernetes updates a
 * mounted ConfigMap by swapping a symlink, which watchers lose track of. One unref'd timer.
 */
export function watchResources(paths: readonly string[], onChange: () => void, intervalMs = WATCH_INTERVAL_MS): ResourcesWatch {
  let last = signature(paths);
  const timer = setInterval(() => {
    const now = signature(paths);
    if (now === last) return;
    last = now;
    onChange();
  }, intervalMs);
  timer.unref();
  return { close: () => clearInterval(timer) };
}

function signature(paths: readonly string[]): string {
  let out = '';
  for (const dir of paths) {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      out += `${dir}:missing;`;
      continue;
    }
    for (const name of names) {
      if (!/\.ya?ml$/i.test(name)) continue;
      try {
        const st = statSync(join(dir, name));
        out += `${dir}/${name}:${st.mtimeMs}:${st.size}:${st.ino};`;
      } catch {
        out += `${dir}/${name}:gone;`;
      }
    }
  }
  return out;
}
