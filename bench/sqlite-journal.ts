// What the journal mode of the SQLite name resolution database costs: the latency of one resolve
// (the address book's cache miss, at most once a second per app id) and the resident memory of a
// sidecar, in the rollback journal (Courier's default) and in WAL mode (`disableWAL: false`, Dapr's
// default). Ten other resolvers share the file and heartbeat every 3 s, as ten sidecars would.
//
//   node --import tsx bench/sqlite-journal.ts [-- --resolves 20000]   (npm run build first: the RSS part starts real sidecars)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '../src/observability/logging/index.js';
import { parseSqliteMetadata, SqliteNameResolver } from '../src/nameresolution/index.js';
import { TestEnv } from '../test/framework/env.js';
import { startSidecar } from '../test/framework/sidecar-process.js';
import { rssBytes } from './lib/proc.js';

const at = process.argv.indexOf('--resolves');
const RESOLVES = at >= 0 ? Number(process.argv[at + 1]) : 20_000;

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

async function latency(disableWAL: boolean): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'courier-bench-nr-'));
  const config = { connectionString: join(dir, 'nr.db'), disableWAL };
  const resolvers: SqliteNameResolver[] = [];
  try {
    for (let i = 0; i < 10; i++) {
      const r = new SqliteNameResolver(parseSqliteMetadata(config, 'bench'), { logger: silentLogger(), courierHome: dir });
      resolvers.push(r);
      await r.register({ appId: `app${i % 5}`, namespace: 'default', host: '127.0.0.1', internalPort: 40000 + i, httpPort: 41000 + i });
    }
    const caller = new SqliteNameResolver(parseSqliteMetadata(config, 'bench'), { logger: silentLogger(), courierHome: dir });
    resolvers.push(caller);
    const samples: number[] = [];
    for (let i = 0; i < RESOLVES; i++) {
      // Every 500th resolve, another sidecar heartbeats first, so the read sees a changed file.
      if (i % 500 === 0) await resolvers[(i / 500) % 10]?.heartbeat();
      const started = process.hrtime.bigint();
      await caller.resolve({ appId: `app${i % 5}`, namespace: 'default' });
      samples.push(Number(process.hrtime.bigint() - started) / 1000);
    }
    samples.sort((a, b) => a - b);
    return `resolve ${disableWAL ? 'rollback' : 'WAL     '}: median ${percentile(samples, 50).toFixed(1)} µs, p99 ${percentile(samples, 99).toFixed(1)} µs (${RESOLVES} resolves)`;
  } finally {
    await Promise.all(resolvers.map((r) => r.close()));
    rmSync(dir, { recursive: true, force: true });
  }
}

async function sidecarRss(disableWAL: boolean): Promise<string> {
  const env = new TestEnv();
  try {
    const config = join(env.home, 'config.yaml');
    writeFileSync(config, `apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: { name: bench }\nspec:\n  nameResolution:\n    component: sqlite\n    configuration: { disableWAL: ${disableWAL} }\n`);
    const sidecars = await Promise.all([0, 1, 2].map((i) => startSidecar(env, { appId: `rss${i}`, args: ['--config', config, '--log-level', 'info'] })));
    await sleep(10_000); // a few heartbeats
    const rss = sidecars.map((s) => rssBytes(s.pid));
    return `sidecar RSS ${disableWAL ? 'rollback' : 'WAL     '}: ${rss.map((b) => (b / 1024 / 1024).toFixed(1)).join(', ')} MiB (three idle sidecars after 10 s)`;
  } finally {
    await env.close();
  }
}

for (const disableWAL of [true, false]) console.log(await latency(disableWAL));
for (const disableWAL of [true, false]) console.log(await sidecarRss(disableWAL));
