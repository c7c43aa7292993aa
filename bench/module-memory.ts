// What each module costs a process in memory, and which of them a sidecar loads.
//
//   npm run bench:modules
//
// 1. Share: for each package (and Courier's own layers), a fresh `node` imports it alone, collects
//    garbage twice and reports RSS and V8 heap; the share is the difference from a process that imports
//    nothing (median of 3). Shares overlap (undici is in both the HTTP client and the full sidecar), so
//    they do not add up to a whole.
// 2. Loaded: a default `courier sidecar` (SQLite resolution, no mTLS, HTTP app) and a `courier run`
//    supervisor are started with a module-resolution hook that records every package they import.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../test/framework/env.js';
import { NODE_FLAGS } from '../src/runtime/heap-flags.js';

const dist = (path: string): string => pathToFileURL(join(repoRoot, 'dist', path)).href;
/** [label, what to import, the package whose loading the last two columns report]. */
const MODULES: [string, string, string | undefined][] = [
  ['undici (the whole package)', 'undici', undefined],
  ['undici: the connection pool and request API alone (what Courier imports)', 'undici/lib/dispatcher/pool.js', 'undici'],
  ['protobufjs', 'protobufjs', 'protobufjs'],
  ['yaml', 'yaml', 'yaml'],
  ['zod', 'zod', 'zod'],
  ['pino', 'pino', 'pino'],
  ['better-sqlite3', 'better-sqlite3', 'better-sqlite3'],
  ['multicast-dns', 'multicast-dns', 'multicast-dns'],
  ['@peculiar/x509 with Courier\'s certificate code (sentry/identity.js)', dist('sentry/identity.js'), '@peculiar/x509'],
  ['Courier: configuration loader (config/configuration.js, with zod and yaml)', dist('config/configuration.js'), undefined],
  ['Courier: the sidecar runtime (runtime/sidecar.js, everything it imports at start-up)', dist('runtime/sidecar.js'), undefined],
  ['Courier: `courier run` (cli/run-command.js)', dist('cli/run-command.js'), undefined],
];

interface Usage {
  rss: number;
  heapUsed: number;
}

function measure(specifier: string | undefined): Usage {
  const code = `${specifier === undefined ? 'Promise.resolve()' : `import(${JSON.stringify(specifier)})`}.then(() => { gc(); gc(); const m = process.memoryUsage(); console.log(JSON.stringify({ rss: m.rss, heapUsed: m.heapUsed })); })`;
  const runs: Usage[] = [];
  for (let i = 0; i < 3; i++) {
    const out = spawnSync(process.execPath, [...NODE_FLAGS, '--expose-gc', '--input-type=module', '-e', code], { cwd: repoRoot, encoding: 'utf8' });
    if (out.status !== 0) throw new Error(`importing ${specifier ?? 'nothing'} failed: ${out.stderr}`);
    runs.push(JSON.parse(out.stdout.trim()) as Usage);
  }
  const median = (key: keyof Usage): number => (runs.map((r) => r[key]).sort((a, b) => a - b)[1] as number);
  return { rss: median('rss'), heapUsed: median('heapUsed') };
}

const HOOK = `
import { appendFileSync } from 'node:fs';
const out = process.env.COURIER_MODULE_TRACE;
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  const at = result.url.lastIndexOf('/node_modules/');
  if (at !== -1 && out) {
    const rest = result.url.slice(at + 14).split('/');
    appendFileSync(out, (rest[0].startsWith('@') ? rest[0] + '/' + rest[1] : rest[0]) + '\\n');
  }
  return result;
}`;
const REGISTER = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(HOOK)}`)});`;

/** Starts `args` (a courier command) with the hook, waits for `ready` in its output, returns the packages it imported. */
async function packagesOf(args: string[], home: string, ready: string): Promise<string[]> {
  const trace = join(home, `trace-${args[0] ?? 'x'}.txt`);
  const child = spawn(process.execPath, [...NODE_FLAGS, '--import', `data:text/javascript,${encodeURIComponent(REGISTER)}`, join(repoRoot, 'dist', 'cli', 'main.js'), ...args], {
    env: { ...process.env, COURIER_HOME: home, COURIER_MODULE_TRACE: trace },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  try {
    const deadline = Date.now() + 30_000;
    while (!output.includes(ready)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`courier ${args.join(' ')} did not come up:\n${output}`);
      await sleep(50);
    }
    await sleep(1000);
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => (child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve)));
  }
  return existsSync(trace) ? [...new Set(readFileSync(trace, 'utf8').split('\n').filter(Boolean))].sort() : [];
}

const mb = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);
const home = mkdtempSync(join(tmpdir(), 'courier-modules-'));
try {
  const base = measure(undefined);
  console.log(`Node ${process.version}, flags ${NODE_FLAGS.join(' ')}; a process importing nothing: RSS ${mb(base.rss)} MB, heap ${mb(base.heapUsed)} MB\n`);
  const sidecar = await packagesOf(['sidecar', '--app-id', 'modules', '--dapr-http-port', '0', '--dapr-grpc-port', '0', '--dapr-internal-grpc-port', '0', '--metrics-port', '0', '--app-port', '1'], home, 'registered with name resolution');
  const supervisor = await packagesOf(['run', '--app-id', 'modules-run', '--', process.execPath, '-e', 'setInterval(() => {}, 1000)'], home, "You're up and running");
  console.log('| module | RSS share (MB) | heap share (MB) | loaded by a default sidecar | loaded by the courier run supervisor |');
  console.log('|---|---|---|---|---|');
  for (const [label, specifier, name] of MODULES) {
    const used = measure(specifier);
    const loadedBy = (list: string[]): string => (name === undefined ? '–' : list.includes(name) ? 'yes' : 'no');
    console.log(`| ${label} | ${mb(used.rss - base.rss)} | ${mb(used.heapUsed - base.heapUsed)} | ${loadedBy(sidecar)} | ${loadedBy(supervisor)} |`);
  }
  console.log(`\nPackages a default sidecar imported: ${sidecar.join(', ')}`);
  console.log(`Packages the courier run supervisor imported itself: ${supervisor.join(', ') || 'none'}`);
} finally {
  rmSync(home, { recursive: true, force: true });
}
