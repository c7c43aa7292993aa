/*
 * The resolver while its database is unhealthy: locked by another connection, full, deleted under
 * it, or locked at start. Locks come from a second real connection (`BEGIN EXCLUSIVE`, which in
 * the rollback journal keeps every other connection from reading too); a full disk from a small
 * tmpfs the test mounts (root only).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { CourierError } from '../../errors/index.js';
import { silentLogger } from '../../observability/logging/index.js';
import { parseSqliteMetadata } from './metadata.js';
import { SqliteNameResolver } from './resolver.js';
import { capturingLogger, fixture, self } from './testing/fixtures.js';

const orders = { appId: 'orders', namespace: 'default' };

/** Watches the event loop with a 10 ms timer; `stop()` returns the longest gap between ticks (a stall). */
function loopWatch(): { stop(): number } {
  let last = Date.now();
  let longest = 0;
  const timer = setInterval(() => {
    const now = Date.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 10);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(longest, Date.now() - last);
    },
  };
}

function messages(records: Record<string, unknown>[], level: string): string[] {
  return records.filter((r) => r.level === level).map((r) => String(r.msg));
}

test('a locked database: resolve answers the last known instances at once, deadlines extended; one warning, one recovery line', async (t) => {
  const f = fixture(t);
  const { logger, records } = capturingLogger();
  await f.make().register(self('orders', 50001));
  const caller = f.make({}, logger);
  await caller.register(self('front', 50009));
  assert.deepEqual((await caller.resolve(orders)).map((a) => a.address), ['127.0.0.1:50001']);
  f.age('127.0.0.1:50001', 4); // its window ends in a second: the answer below must outlive it

  f.peek().exec('BEGIN EXCLUSIVE');
  const watch = loopWatch();
  const started = Date.now();
  const first = await caller.resolve(orders);
  const firstTookMs = Date.now() - started;
  const stall = watch.stop();
  assert.deepEqual(first.map((a) => a.address), ['127.0.0.1:50001'], 'the last known answer');
  assert.ok(firstTookMs >= 700 && firstTookMs < 5000, `a healthy store waits busyTimeout (800 ms) for the lock first, took ${firstTookMs} ms`);
  assert.ok(stall < 400, `the event loop kept running while the lock was waited for (longest stall ${stall} ms)`);
  assert.ok((first[0]?.expiresAtMs ?? 0) >= Date.now() + 4000, 'deadline extended to now + updateInterval');

  await caller.heartbeat(); // fails too: the store stays unhealthy
  const again = Date.now();
  for (let i = 0; i < 5; i++) assert.deepEqual((await caller.resolve(orders)).map((a) => a.address), ['127.0.0.1:50001']);
  assert.ok(Date.now() - again < 500, `once unhealthy, answers come at once (${Date.now() - again} ms for 5)`);
  assert.deepEqual(messages(records, 'warn').filter((m) => m.includes('unhealthy')).length, 1, 'one warning, not one per call');
  const warning = records.find((r) => r.level === 'warn' && String(r.msg).includes('unhealthy'));
  assert.match(String(warning?.cause), /SQLITE_BUSY/);
  assert.equal(warning?.path, f.dbPath);
  const status = caller.status();
  assert.equal(status.healthy, false);
  assert.match(status.cause ?? '', /SQLITE_BUSY/);
  assert.deepEqual(status.lastKnown['default/orders']?.addresses, ['127.0.0.1:50001']);
  assert.match(caller.lastLookup(orders) ?? '', /unhealthy since .*SQLITE_BUSY.*last known instances/);
  await assert.rejects(caller.resolve({ appId: 'never-seen', namespace: 'default' }), (e: unknown) => e instanceof CourierError && /no earlier answer/.test(e.message));

  f.peek().exec('COMMIT');
  await caller.heartbeat();
  assert.equal(caller.status().healthy, true);
  assert.deepEqual(messages(records, 'info').filter((m) => m.includes('recovered')).length, 1);
  assert.equal(caller.lastLookup(orders), undefined);
});

test('a write that meets a lock waits up to busyTimeout without blocking the event loop', async (t) => {
  const f = fixture(t);
  const { logger, records } = capturingLogger();
  const resolver = f.make({}, logger);
  await resolver.register(self('orders', 50001));
  const old = f.age('127.0.0.1:50001', 3);
  f.peek().exec('BEGIN EXCLUSIVE');
  setTimeout(() => f.peek().exec('COMMIT'), 300);
  const watch = loopWatch();
  await resolver.heartbeat();
  const stall = watch.stop();
  assert.ok((f.rows()[0]?.last_update ?? 0) > old, 'renewed once the lock was released');
  assert.ok(stall < 250, `the event loop ran while waiting (longest stall ${stall} ms)`);
  assert.equal(resolver.status().healthy, true, 'a lock shorter than busyTimeout is not a sick store');
  assert.deepEqual(messages(records, 'warn'), []);
});

test('the heartbeat keeps trying while the store is locked, and the row is renewed once it is released', async (t) => {
  const f = fixture(t);
  const { logger, records } = capturingLogger();
  const resolver = f.make({}, logger);
  await resolver.register(self('orders', 50001));
  f.peek().exec('BEGIN EXCLUSIVE');
  for (let i = 0; i < 3; i++) await resolver.heartbeat();
  assert.equal(resolver.status().healthy, false);
  assert.equal(messages(records, 'warn').length, 1, 'one warning over three failed heartbeats');
  f.peek().exec('COMMIT');
  const old = f.age('127.0.0.1:50001', 3);
  await resolver.heartbeat();
  assert.ok((f.rows()[0]?.last_update ?? 0) > old);
  assert.equal(resolver.status().healthy, true);
});

test('a resolver created while the database is locked waits for it, then registers', async (t) => {
  const f = fixture(t);
  const { logger, records } = capturingLogger();
  f.peek().exec('BEGIN EXCLUSIVE');
  const resolver = f.make({}, logger); // does not throw SQLITE_BUSY
  let registered = false;
  const registering = resolver.register(self('orders', 50001)).then(() => (registered = true));
  const waitLogged = Date.now() + 10_000;
  while (!messages(records, 'info').some((m) => m.includes('waiting for the name resolution database')) && Date.now() < waitLogged) await sleep(20);
  const waiting = records.find((r) => String(r.msg).includes('waiting for the name resolution database'));
  assert.ok(waiting !== undefined, 'says what it waits for');
  assert.equal(waiting.path, f.dbPath);
  assert.match(String(waiting.cause), /SQLITE_BUSY/);
  assert.equal(registered, false);
  f.peek().exec('COMMIT');
  await registering;
  assert.deepEqual(f.rows().map((r) => r.address), ['127.0.0.1:50001']);
});

test('past startupTimeout, register fails with one line naming the file and the cause', async (t) => {
  const f = fixture(t);
  f.peek().exec('BEGIN EXCLUSIVE'); // closing the fixture ends it
  const resolver = f.make({ startupTimeout: '1s' });
  const started = Date.now();
  await assert.rejects(resolver.register(self('orders', 50001)), (e: unknown) => {
    assert.ok(e instanceof CourierError);
    assert.equal(e.code, 'ERR_INVALID_CONFIG');
    assert.ok(e.message.includes(f.dbPath), e.message);
    assert.match(e.message, /within startupTimeout \(1s\): SQLITE_BUSY: database is locked/);
    assert.ok(!e.message.includes('\n'));
    return true;
  });
  assert.ok(Date.now() - started < 5000);
});

test('a database file deleted under running resolvers is recreated, and they find each other again', async (t) => {
  const f = fixture(t);
  const a = capturingLogger();
  const first = f.make({}, a.logger);
  const second = f.make();
  await first.register(self('orders', 50001));
  await second.register(self('payments', 50002));
  for (const name of readdirSync(f.dir)) if (name.startsWith('nr.db')) unlinkSync(join(f.dir, name));
  // A sidecar started now creates a new file and sees neither of them, until their heartbeats notice.
  const third = f.make();
  await third.register(self('shipping', 50003));
  assert.deepEqual(await third.resolve(orders), []);
  await first.heartbeat();
  await second.heartbeat();
  assert.deepEqual((await third.resolve(orders)).map((x) => x.address), ['127.0.0.1:50001']);
  assert.deepEqual((await first.resolve({ appId: 'shipping', namespace: 'default' })).map((x) => x.address), ['127.0.0.1:50003']);
  assert.deepEqual((await second.resolve(orders)).map((x) => x.address), ['127.0.0.1:50001']);
  const changed = () => a.records.filter((r) => /database file was (deleted|replaced)/.test(String(r.msg)));
  assert.equal(changed().length, 1, 'one log line');
  assert.match(String(changed()[0]?.msg), /reopened it and registered again/);
  assert.equal(changed()[0]?.level, 'warn');
  await first.heartbeat();
  assert.equal(changed().length, 1, 'and only once');
});

test('a fresh Courier home is 0700 and the database and its side files 0600, whatever the umask', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'courier-home-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const home = join(dir, 'user', '.courier');
  const previous = process.umask(0);
  let resolver: SqliteNameResolver;
  try {
    resolver = new SqliteNameResolver(parseSqliteMetadata({ disableWAL: false }, 'test'), { logger: silentLogger(), courierHome: home });
  } finally {
    process.umask(previous);
  }
  t.after(() => resolver.close());
  await resolver.register(self('orders', 50001));
  assert.equal(statSync(home).mode & 0o777, 0o700);
  assert.equal(statSync(join(dir, 'user')).mode & 0o777, 0o700, 'every directory it created');
  const files = readdirSync(home).sort();
  assert.deepEqual(files, ['nameresolution.db', 'nameresolution.db-shm', 'nameresolution.db-wal']);
  for (const file of files) assert.equal(statSync(join(home, file)).mode & 0o777, 0o600, file);
});

test('existing Courier home and database keep their modes', async (t) => {
  const home = mkdtempSync(join(tmpdir(), 'courier-home-'));
  t.after(() => rmSync(home, { recursive: true, force: true }));
  execFileSync('chmod', ['0750', home]);
  new Database(join(home, 'nameresolution.db')).close();
  execFileSync('chmod', ['0640', join(home, 'nameresolution.db')]);
  const resolver = new SqliteNameResolver(parseSqliteMetadata({}, 'test'), { logger: silentLogger(), courierHome: home });
  t.after(() => resolver.close());
  await resolver.register(self('orders', 50001));
  assert.equal(statSync(home).mode & 0o777, 0o750);
  assert.equal(statSync(join(home, 'nameresolution.db')).mode & 0o777, 0o640);
});

const root = process.getuid?.() === 0;

test('a full disk: heartbeats fail without harm, resolve answers the last known instances, and it recovers', { skip: root ? false : 'mounting a small tmpfs needs root' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'courier-full-'));
  const mount = join(dir, 'fs');
  mkdirSync(mount);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', mount], { stdio: 'pipe' });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    t.skip(`cannot mount a tmpfs here: ${String(error)}`);
    return;
  }
  const resolvers: SqliteNameResolver[] = [];
  t.after(async () => {
    await Promise.all(resolvers.map((r) => r.close()));
    execFileSync('umount', [mount]);
    rmSync(dir, { recursive: true, force: true });
  });
  const { logger, records } = capturingLogger();
  const make = (l = silentLogger()) => {
    const r = new SqliteNameResolver(parseSqliteMetadata({ connectionString: join(mount, 'nr.db') }, 'test'), { logger: l, courierHome: dir });
    resolvers.push(r);
    return r;
  };
  const target = make();
  await target.register(self('orders', 50001));
  const caller = make(logger);
  await caller.register(self('front', 50002));
  assert.deepEqual((await caller.resolve(orders)).map((a) => a.address), ['127.0.0.1:50001']);
  const db = new Database(join(mount, 'nr.db'));
  db.prepare("UPDATE hosts SET last_update = unixepoch() - 60 WHERE app_id = 'orders'").run(); // its row now looks dead
  db.close();

  // Fill the filesystem: the next write needs a journal page and fails with SQLITE_FULL.
  const filler = join(mount, 'filler');
  try {
    execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=4k'], { stdio: 'ignore' });
  } catch {
    // dd stops with "No space left on device": that is the point
  }
  await caller.heartbeat();
  assert.equal(caller.status().healthy, false);
  assert.match(caller.status().cause ?? '', /SQLITE_FULL/);
  const answer = await caller.resolve(orders);
  assert.deepEqual(answer.map((a) => a.address), ['127.0.0.1:50001'], 'the last known answer, though its row looks dead');
  assert.ok((answer[0]?.expiresAtMs ?? 0) > Date.now() + 4000);
  assert.equal(messages(records, 'warn').filter((m) => m.includes('unhealthy')).length, 1);

  unlinkSync(filler);
  await caller.heartbeat();
  assert.equal(caller.status().healthy, true);
  assert.ok(messages(records, 'info').some((m) => m.includes('recovered')));
  assert.ok(existsSync(join(mount, 'nr.db')));
});
