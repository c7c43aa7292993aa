// The SQLite name resolution database turning unhealthy under running sidecars: made immutable
// (chattr +i), locked by another process, deleted, locked while a sidecar starts; and the modes of
// the files a sidecar creates in a fresh Courier home.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { TestEnv } from '../framework/env.js';
import { runCli } from '../framework/cli-process.js';
import { send } from '../framework/http-client.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { startApp } from '../framework/test-app.js';

const DB = 'nameresolution.db';

/** A Configuration selecting the SQLite resolver with a short liveness window (3 s, heartbeat every second). */
function configFile(env: TestEnv, extra: Record<string, string> = {}): string {
  const file = join(env.home, 'nr-config.yaml');
  const lines = Object.entries({ updateInterval: '3s', ...extra }).map(([k, v]) => `      ${k}: ${v}`);
  writeFileSync(file, ['apiVersion: dapr.io/v1alpha1', 'kind: Configuration', 'metadata:', '  name: nr', 'spec:', '  nameResolution:', '    component: sqlite', '    configuration:', ...lines, ''].join('\n'));
  return file;
}

/** An app answering `pong from <name>` and its sidecar, plus a caller sidecar, sharing the env's database. */
async function pair(env: TestEnv, config: string, names = { callee: 'back', caller: 'front' }): Promise<{ callee: SidecarProcess; caller: SidecarProcess }> {
  const app = await startApp(env, (a) => a.route('/ping', (_req, res) => res.end(`pong from ${names.callee}`)));
  app.checkConnectionsOnClose = false;
  const callee = await startSidecar(env, { appId: names.callee, appPort: app.port, args: ['--config', config], waitForApp: true });
  const caller = await startSidecar(env, { appId: names.caller, args: ['--config', config] });
  return { callee, caller };
}

async function ping(from: SidecarProcess, to: string): Promise<{ status: number; text: string }> {
  return send(from.httpPort, { path: `/v1.0/invoke/${to}/method/ping` });
}

/** Calls `to` from `from` every 100 ms for `ms`; returns the failures. */
async function steadyCalls(from: SidecarProcess, to: string, ms: number): Promise<string[]> {
  const failures: string[] = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const res = await ping(from, to).catch((err: unknown) => ({ status: -1, text: String(err) }));
    if (res.status !== 200) failures.push(`${res.status} ${res.text}`);
    await sleep(100);
  }
  return failures;
}

async function waitForOutput(sidecar: SidecarProcess, pattern: RegExp, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(sidecar.output)) {
    if (Date.now() > deadline) throw new Error(`${sidecar.appId} did not log ${String(pattern)} within ${timeoutMs} ms\n${sidecar.output}`);
    await sleep(50);
  }
}

function storeFiles(env: TestEnv): string[] {
  return readdirSync(env.home).filter((name) => name.startsWith(DB)).map((name) => join(env.home, name));
}

/** Why `chattr +i` cannot be used on `dir`'s filesystem, or undefined when it can. */
function chattrProblem(dir: string): string | undefined {
  if (process.getuid?.() !== 0) return 'chattr +i needs root';
  const probe = join(dir, 'chattr-probe');
  writeFileSync(probe, '');
  try {
    execFileSync('chattr', ['+i', probe], { stdio: 'pipe' });
    execFileSync('chattr', ['-i', probe], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return `chattr +i does not work on the filesystem of ${dir}: ${String(err)}`;
  } finally {
    rmSync(probe, { force: true });
  }
}

/** Sets or clears `chattr +i` on `file`; false when the file is gone (the journal lives only during a write). */
function setImmutable(file: string, on: boolean): boolean {
  try {
    execFileSync('chattr', [on ? '+i' : '-i', file], { stdio: 'pipe' });
    return true;
  } catch (err) {
    if (!existsSync(file)) return false;
    throw err;
  }
}

describe('the SQLite database turns unhealthy under running sidecars', () => {
  test('made immutable (chattr +i) shortly after start: no signal kills a sidecar, calls keep working, the log says why', async (t) => {
    const env = new TestEnv();
    const problem = chattrProblem(env.home);
    if (problem !== undefined) {
      await env.close();
      t.skip(problem);
      return;
    }
    let frozen: string[] = [];
    t.after(async () => {
      try {
        for (const file of frozen) setImmutable(file, false);
      } finally {
        await env.close();
      }
    });
    const { callee, caller } = await pair(env, configFile(env));
    assert.equal((await ping(caller, 'back')).text, 'pong from back');

    // The rollback journal exists only during a write: a file that is gone by the time chattr runs is skipped.
    frozen = storeFiles(env).filter((file) => setImmutable(file, true));
    assert.ok(frozen.includes(join(env.home, DB)), `the database itself is frozen: ${frozen.join(', ')}`);
    // Two and a half liveness windows: every row in the file is long dead by the end.
    const failures = await steadyCalls(caller, 'back', 7500);
    for (const sidecar of [caller, callee]) assert.ok(sidecar.running, `${sidecar.appId} died (exit ${String(sidecar.exitCode)}, -1 is a signal)\n${sidecar.output}`);
    assert.deepEqual(failures, []);
    for (const sidecar of [caller, callee]) {
      const warnings = sidecar.output.split('\n').filter((line) => line.includes('the name resolution database is unhealthy'));
      assert.equal(warnings.length, 1, `one warning from ${sidecar.appId}\n${sidecar.output}`);
      assert.ok(warnings[0]?.includes(join(env.home, DB)), warnings[0]);
      // The first failure a sidecar meets names the frozen file's error, or the lock the other sidecar
      // still holds when its own write was cut off by the freeze (SQLITE_BUSY, seen on a busy machine).
      assert.match(warnings[0] ?? '', /SQLITE_(IOERR|READONLY|PERM|CANTOPEN|BUSY)/);
    }
    for (const file of frozen.splice(0)) setImmutable(file, false);
    await waitForOutput(caller, /the name resolution database has recovered/);
    assert.equal((await ping(caller, 'back')).status, 200);
  });

  test('locked by another process: calls keep working, courier resolve shows the unhealthy database and the last known answer', async () => {
    const env = new TestEnv();
    const holder = new Database(join(env.home, DB), { timeout: 5000 });
    try {
      const { callee, caller } = await pair(env, configFile(env));
      assert.equal((await ping(caller, 'back')).status, 200);
      holder.exec('BEGIN EXCLUSIVE');
      const failures = await steadyCalls(caller, 'back', 4000);
      assert.deepEqual(failures, []);
      await waitForOutput(caller, /the name resolution database is unhealthy/);
      assert.match(caller.output, /SQLITE_BUSY/);

      const shown = await runCli(env, ['resolve', 'back']);
      assert.equal(shown.code, 0, `${shown.stdout}\n${shown.stderr}`);
      const line = shown.stdout.split('\n').find((l) => l.includes('as seen by the sidecar of front'));
      assert.ok(line !== undefined, shown.stdout);
      assert.ok(line.includes(`database ${join(env.home, DB)} unhealthy since 20`), line);
      assert.match(line, /SQLITE_BUSY/);
      assert.match(line, /use the last known answer, read at/);
      assert.ok(shown.stdout.includes(`127.0.0.1:${callee.internalPort}  (last known)`), shown.stdout);
      const json = JSON.parse((await runCli(env, ['resolve', 'back', '-o', 'json'])).stdout) as {
        store: { healthy: boolean };
        sidecars: { appId: string; healthy: boolean; cause: string; unhealthySince: string; lastKnown: { addresses: string[] } | null }[];
      };
      assert.equal(json.store.healthy, false);
      const front = json.sidecars.find((s) => s.appId === 'front');
      assert.equal(front?.healthy, false);
      assert.match(front?.cause ?? '', /SQLITE_BUSY/);
      assert.deepEqual(front?.lastKnown?.addresses, [`127.0.0.1:${callee.internalPort}`]);

      holder.exec('COMMIT');
      await waitForOutput(caller, /the name resolution database has recovered/);
      const healthy = await runCli(env, ['resolve', 'back']);
      assert.equal(healthy.code, 0);
      assert.ok(!healthy.stdout.includes('unhealthy'), healthy.stdout);
    } finally {
      if (holder.inTransaction) holder.exec('COMMIT');
      holder.close();
      await env.close();
    }
  });

  test('deleted while two sidecars run: a sidecar started afterwards and the two find each other again', async () => {
    const env = new TestEnv();
    try {
      const config = configFile(env);
      const { caller } = await pair(env, config);
      for (const file of storeFiles(env)) rmSync(file);
      const app = await startApp(env, (a) => a.route('/ping', (_req, res) => res.end('pong from third')));
      app.checkConnectionsOnClose = false;
      const third = await startSidecar(env, { appId: 'third', appPort: app.port, args: ['--config', config], waitForApp: true });
      const started = Date.now();
      for (;;) {
        const [a, b] = await Promise.all([ping(caller, 'third'), ping(third, 'back')]);
        if (a.status === 200 && b.status === 200) break;
        assert.ok(Date.now() - started < 15_000, `not found again within 15 s: ${a.text} / ${b.text}\n${caller.output}`);
        await sleep(100);
      }
      // The caller switches to the new file before it has registered there again and said so: the
      // calls above can succeed a moment before its line is written.
      await waitForOutput(caller, /database file was (deleted|replaced) under this sidecar/);
      const lines = caller.output.split('\n').filter((l) => /database file was (deleted|replaced) under this sidecar/.test(l));
      assert.equal(lines.length, 1, caller.output);
      assert.match(lines[0] ?? '', /registered again/);
    } finally {
      await env.close();
    }
  });
});

describe('start-up and private files', () => {
  test('a sidecar started while the database is locked waits, says why, and starts once it is released', async () => {
    const env = new TestEnv();
    const holder = new Database(join(env.home, DB), { timeout: 5000 });
    try {
      holder.exec('BEGIN EXCLUSIVE');
      let spawned: SidecarProcess | undefined;
      const starting = startSidecar(env, { appId: 'late', args: ['--config', configFile(env)], onSpawn: (s) => (spawned = s) });
      const deadline = Date.now() + 15_000;
      while (!(spawned?.output.includes('waiting for the name resolution database') ?? false)) {
        assert.ok(spawned?.running !== false, `exited while waiting\n${spawned?.output}`);
        assert.ok(Date.now() < deadline, `no waiting line\n${spawned?.output}`);
        await sleep(50);
      }
      assert.match(spawned?.output ?? '', /SQLITE_BUSY/);
      assert.ok(spawned?.output.includes(join(env.home, DB)));
      holder.exec('COMMIT');
      const sidecar = await starting;
      assert.ok(sidecar.running);
    } finally {
      if (holder.inTransaction) holder.exec('COMMIT');
      holder.close();
      await env.close();
    }
  });

  test('past startupTimeout, it exits with one line naming the file and the cause', async () => {
    const env = new TestEnv();
    const holder = new Database(join(env.home, DB), { timeout: 5000 });
    try {
      holder.exec('BEGIN EXCLUSIVE');
      let spawned: SidecarProcess | undefined;
      await assert.rejects(startSidecar(env, { appId: 'late', args: ['--config', configFile(env, { startupTimeout: '1s' })], onSpawn: (s) => (spawned = s) }), /exited before it was ready/);
      const sidecar = spawned as SidecarProcess;
      assert.equal(await sidecar.exited(), 1);
      const lines = sidecar.output.split('\n').filter((l) => l.startsWith('courier sidecar:'));
      assert.deepEqual(lines, [
        `courier sidecar: name resolution (sqlite): cannot use database ${join(env.home, DB)} within startupTimeout (1s): SQLITE_BUSY: database is locked`,
      ]);
    } finally {
      if (holder.inTransaction) holder.exec('COMMIT');
      holder.close();
      await env.close();
    }
  });

  test('a sidecar in a fresh Courier home makes it 0700 and its files 0600, whatever the umask', async () => {
    const env = new TestEnv();
    try {
      rmSync(env.home, { recursive: true });
      const previous = process.umask(0);
      let starting: Promise<SidecarProcess>;
      try {
        starting = startSidecar(env, { appId: 'fresh' }); // the child inherits umask 0
      } finally {
        process.umask(previous);
      }
      const sidecar = await starting;
      const mode = (path: string): string => (statSync(path).mode & 0o777).toString(8);
      assert.equal(mode(env.home), '700');
      assert.equal(mode(join(env.home, DB)), '600');
      assert.equal(mode(join(env.home, 'run')), '700');
      assert.equal(mode(join(env.home, 'run', `${sidecar.pid}.json`)), '600');
    } finally {
      await env.close();
    }
  });
});
