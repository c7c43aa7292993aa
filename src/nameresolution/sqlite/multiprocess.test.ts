/*
 * Two processes on one database file: a child sidecar registers and is killed with SIGKILL (so it
 * never deregisters); its row must stop resolving once older than updateInterval and be deleted by
 * the next cleanup round. Age is simulated by rewriting last_update, never by sleeping.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixture } from './testing/fixtures.js';

const childScript = (resolverUrl: string, loggingUrl: string) => `
import { SqliteNameResolver, parseSqliteMetadata } from ${JSON.stringify(resolverUrl)};
import { silentLogger } from ${JSON.stringify(loggingUrl)};
const [dbPath, home, port] = process.argv.slice(2);
const resolver = new SqliteNameResolver(parseSqliteMetadata({ connectionString: dbPath }, 'child'), { logger: silentLogger(), courierHome: home });
await resolver.register({ appId: 'child-app', namespace: 'default', host: '127.0.0.1', internalPort: Number(port), httpPort: 3500 });
process.stdout.write('registered\\n');
setInterval(() => {}, 60_000); // stay alive until killed
`;

test('a killed sidecar stops resolving after updateInterval and is cleaned up', { timeout: 15_000 }, async (t) => {
  const f = fixture(t);
  const script = join(f.dir, 'child.mjs');
  writeFileSync(script, childScript(new URL('./index.ts', import.meta.url).href, new URL('../../observability/logging/index.ts', import.meta.url).href));
  const parent = f.make();

  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), script, f.dbPath, f.dir, '50099'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const registered = new Promise<void>((resolve, reject) => {
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes('registered\n')) resolve();
    });
    child.on('exit', (code, signal) => reject(new Error(`child exited (${code ?? signal}) before registering: ${stderr}`)));
  });
  await registered;

  const request = { appId: 'child-app', namespace: 'default' };
  assert.deepEqual((await parent.resolve(request)).map((entry) => entry.address), ['127.0.0.1:50099']);

  child.kill('SIGKILL');
  await once(child, 'exit');
  assert.equal(child.signalCode, 'SIGKILL');
  assert.equal(f.rows().length, 1, 'a killed sidecar leaves its row behind');
  assert.equal((await parent.resolve(request)).length, 1, 'still inside its liveness window');

  f.age('127.0.0.1:50099', 5); // updateInterval has passed without a heartbeat
  assert.deepEqual(await parent.resolve(request), []);

  f.expireCleanupClaim();
  assert.equal(parent.cleanupExpired(), 1);
  assert.equal(f.rows().length, 0);
});
