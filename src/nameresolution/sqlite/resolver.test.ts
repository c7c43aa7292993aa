import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CourierError } from '../../errors/index.js';
import { silentLogger } from '../../observability/logging/index.js';
import { parseSqliteMetadata } from './metadata.js';
import { SqliteNameResolver } from './resolver.js';
import { capturingLogger, fixture, self } from './testing/fixtures.js';

const ns = { namespace: 'default' };

test('a registration is visible to another resolver on the same file', async (t) => {
  const f = fixture(t);
  const orders = f.make();
  const caller = f.make();
  const before = Math.floor(Date.now() / 1000);
  await orders.register(self('orders', 50001));
  const found = await caller.resolve({ appId: 'orders', ...ns });
  assert.equal(found.length, 1);
  assert.equal(found[0]?.address, '127.0.0.1:50001');
  const expiresAtMs = found[0]?.expiresAtMs ?? 0;
  assert.ok(expiresAtMs >= (before + 5) * 1000 && expiresAtMs <= (before + 7) * 1000, `expiresAtMs ${expiresAtMs}`);
  assert.deepEqual(await caller.resolve({ appId: 'payments', ...ns }), [], 'an app with no rows resolves to []');
});

test('several instances of one app come back in a stable order', async (t) => {
  const f = fixture(t);
  for (const port of [50003, 50001, 50002]) await f.make().register(self('orders', port));
  await f.make().register(self('payments', 50004));
  const caller = f.make();
  const first = (await caller.resolve({ appId: 'orders', ...ns })).map((entry) => entry.address);
  assert.deepEqual(first, ['127.0.0.1:50001', '127.0.0.1:50002', '127.0.0.1:50003']);
  assert.deepEqual((await caller.resolve({ appId: 'orders', ...ns })).map((entry) => entry.address), first);
});

test('a row as old as updateInterval is not returned; a younger one is, with its exact expiry', async (t) => {
  const f = fixture(t);
  await f.make().register(self('orders', 50001));
  await f.make().register(self('orders', 50002));
  const caller = f.make();
  await caller.resolve({ appId: 'none', ...ns });
  // Ages are whole seconds of the database's clock: the rows are aged early in a second, so that the
  // lookup right after runs in that same second, and the younger row is exactly one second short.
  while (Date.now() % 1000 > 300) await sleep(5);
  f.age('127.0.0.1:50001', 5);
  const lastUpdate = f.age('127.0.0.1:50002', 4);
  const found = await caller.resolve({ appId: 'orders', ...ns });
  assert.deepEqual(found, [{ address: '127.0.0.1:50002', expiresAtMs: (lastUpdate + 5) * 1000 }]);
});

test('resolving matches the own namespace and Dapr rows (namespace ""), not other namespaces', async (t) => {
  const f = fixture(t);
  const resolver = f.make();
  await resolver.register(self('orders', 50001, 'default'));
  assert.equal(f.rows()[0]?.namespace, 'default', 'Courier records the real namespace');
  const insert = f.peek().prepare("INSERT INTO hosts VALUES (?, ?, 'orders', ?, unixepoch())");
  insert.run('dapr-1', '127.0.0.1:50002', '');
  insert.run('prod-1', '127.0.0.1:50003', 'prod');
  const addresses = async (namespace: string) => (await resolver.resolve({ appId: 'orders', namespace })).map((entry) => entry.address);
  assert.deepEqual(await addresses('default'), ['127.0.0.1:50001', '127.0.0.1:50002']);
  assert.deepEqual(await addresses('prod'), ['127.0.0.1:50002', '127.0.0.1:50003']);
});

test('registering an address that is already taken replaces the older registration', async (t) => {
  const f = fixture(t);
  const first = f.make();
  await first.register(self('orders', 50001));
  f.age('127.0.0.1:50001', 30);
  const { logger, records } = capturingLogger();
  await f.make({}, logger).register(self('payments', 50001));
  const rows = f.rows();
  assert.equal(rows.length, 1);
  assert.equal(rows[0]?.app_id, 'payments');
  assert.deepEqual(await first.resolve({ appId: 'orders', ...ns }), []);
  assert.ok(records.some((r) => r.level === 'debug' && String(r.msg).includes('replaced a stale registration')));
});

test('IPv6 hosts are written bracketed', async (t) => {
  const f = fixture(t);
  await f.make().register({ ...self('orders', 50001), host: '::1' });
  assert.equal(f.rows()[0]?.address, '[::1]:50001');
});

test('the heartbeat keeps a row fresh', async (t) => {
  const f = fixture(t);
  const resolver = f.make();
  await resolver.register(self('orders', 50001));
  const id = f.rows()[0]?.registration_id;
  const old = f.age('127.0.0.1:50001', 4);
  await resolver.heartbeat();
  const row = f.rows()[0];
  assert.equal(row?.registration_id, id, 'same registration');
  assert.ok((row?.last_update ?? 0) >= old + 3, `last_update ${row?.last_update} renewed from ${old}`);
});

test('the heartbeat timer fires every updateInterval - timeout - 1s', async (t) => {
  const f = fixture(t);
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const resolver = f.make();
  await resolver.register(self('orders', 50001));
  const old = f.age('127.0.0.1:50001', 4);
  // The delay is worked out from the real clock (the interval less the time the registration took),
  // so real milliseconds that pass on a busy machine shorten it: "not yet" is checked well before 3 s.
  t.mock.timers.tick(2800);
  assert.equal(f.rows()[0]?.last_update, old, 'not yet');
  t.mock.timers.tick(200);
  // The timer's UPDATE runs synchronously inside the callback, so the row is fresh right away.
  assert.ok((f.rows()[0]?.last_update ?? 0) >= old + 3, 'renewed by the timer');
  await resolver.heartbeat();
});

test('a lost registration is written again under a new id, with a warning', async (t) => {
  const f = fixture(t);
  const { logger, records } = capturingLogger();
  const resolver = f.make({}, logger);
  await resolver.register(self('orders', 50001));
  const lostId = f.rows()[0]?.registration_id;
  f.peek().prepare('DELETE FROM hosts').run(); // as a cleanup would after a long stall
  await resolver.heartbeat();
  const rows = f.rows();
  assert.equal(rows.length, 1);
  assert.equal(rows[0]?.address, '127.0.0.1:50001');
  assert.notEqual(rows[0]?.registration_id, lostId);
  assert.ok(records.some((r) => r.level === 'warn' && String(r.msg).includes('registration lost')));
  assert.equal((await f.make().resolve({ appId: 'orders', ...ns })).length, 1);
});

test('a sidecar whose address was taken by a live one takes it back, and both warn', async (t) => {
  const f = fixture(t);
  const a = capturingLogger();
  const b = capturingLogger();
  const first = f.make({}, a.logger);
  await first.register(self('orders', 50001));
  await f.make({}, b.logger).register(self('payments', 50001));
  assert.ok(b.records.some((r) => r.level === 'warn' && String(r.msg).includes('took over an address another live sidecar')));
  await first.heartbeat();
  assert.equal(f.rows()[0]?.app_id, 'orders');
  assert.ok(a.records.some((r) => r.level === 'warn' && String(r.msg).includes('registration lost')));
});

test('cleanup deletes expired rows only, once per interval across resolvers', (t) => {
  const f = fixture(t);
  const first = f.make(); // its start-up round claims the slot (nothing to delete yet)
  const insert = f.peek().prepare("INSERT INTO hosts VALUES (?, ?, 'orders', 'default', unixepoch() - ?)");
  insert.run('stale-1', '10.0.0.1:1', 5);
  insert.run('stale-2', '10.0.0.2:1', 600);
  insert.run('fresh-1', '10.0.0.3:1', 0);
  insert.run('fresh-2', '10.0.0.4:1', 3); // 3, not 4: the clock may pass a second boundary before the cleanup
  const second = f.make(); // start-up round skipped: claimed moments ago
  assert.equal(f.rows().length, 4);
  assert.equal(first.cleanupExpired(), undefined);
  assert.equal(second.cleanupExpired(), undefined);

  f.expireCleanupClaim(); // an interval later
  assert.equal(second.cleanupExpired(), 2);
  assert.equal(first.cleanupExpired(), undefined, 'the round was taken');
  assert.deepEqual(f.rows().map((row) => row.registration_id), ['fresh-1', 'fresh-2']);

  // A claim written by Dapr (CURRENT_TIMESTAMP, no fraction) is read the same way.
  f.peek().prepare("UPDATE metadata SET value = CURRENT_TIMESTAMP WHERE key = 'nr-last-cleanup'").run();
  assert.equal(first.cleanupExpired(), undefined);
});

test('cleanup runs at start-up when the slot is free, and not at all when disabled', (t) => {
  const f = fixture(t);
  f.make({ cleanupInterval: 0 });
  f.peek().prepare("INSERT INTO hosts VALUES ('stale', '10.0.0.1:1', 'orders', 'default', unixepoch() - 60)").run();
  f.make({ cleanupInterval: 0 });
  assert.equal(f.rows().length, 1, 'disabled');
  f.make();
  assert.equal(f.rows().length, 0, 'start-up round');
});

test('close deletes the row, is idempotent, and is safe without register', async (t) => {
  const f = fixture(t);
  const resolver = f.make();
  await resolver.register(self('orders', 50001));
  const other = f.make();
  await other.register(self('orders', 50002));
  await resolver.close();
  await resolver.close();
  assert.deepEqual(f.rows().map((row) => row.address), ['127.0.0.1:50002']);
  await assert.rejects(resolver.resolve({ appId: 'orders', ...ns }), (e: unknown) => e instanceof CourierError && e.code === 'ERR_INTERNAL');
  await assert.rejects(resolver.register(self('orders', 50001)), /closed/);
  assert.throws(() => resolver.cleanupExpired(), /closed/);
  const unused = f.make();
  await Promise.all([unused.close(), unused.close()]);
});

test('close waits out a lock held longer than busyTimeout, and still deletes the row', async (t) => {
  const f = fixture(t);
  const { logger, records } = capturingLogger();
  const resolver = f.make({ busyTimeout: '200ms' }, logger);
  await resolver.register(self('orders', 50001));
  // Another process's transaction (a heartbeat stuck behind a slow disk) holds the database.
  const other = f.peek();
  other.exec('BEGIN EXCLUSIVE');
  const release = setTimeout(() => other.exec('COMMIT'), 1000);
  t.after(() => clearTimeout(release));
  const started = Date.now();
  await resolver.close();
  assert.ok(Date.now() - started >= 900, `close returned after ${Date.now() - started} ms, before the lock was released`);
  assert.deepEqual(f.rows(), [], 'the row is gone');
  assert.ok(!records.some((r) => String(r.msg).includes('failed to remove registration')), 'no warning');
});

test('close gives up on a lock that outlasts its budget, with a warning; the row expires by itself', async (t) => {
  const f = fixture(t);
  const { logger, records } = capturingLogger();
  const resolver = f.make({}, logger);
  await resolver.register(self('orders', 50001));
  const other = f.peek();
  other.exec('BEGIN EXCLUSIVE');
  t.after(() => {
    if (other.inTransaction) other.exec('COMMIT');
  });
  const started = Date.now();
  await resolver.close();
  const took = Date.now() - started;
  assert.ok(took >= 2900 && took < 20_000, `gave up after ${took} ms`);
  other.exec('COMMIT');
  assert.deepEqual(f.rows().map((row) => row.address), ['127.0.0.1:50001']);
  assert.ok(records.some((r) => r.level === 'warn' && String(r.msg).includes('failed to remove registration; it will expire by itself')));
});

test('close waits only for a lock: a database that refuses the delete ends the attempt at once, with a warning', async (t) => {
  const f = fixture(t);
  const { logger, records } = capturingLogger();
  // A long busyTimeout: were the failure waited out like a lock, close would take 10 s.
  const resolver = f.make({ busyTimeout: '10s' }, logger);
  await resolver.register(self('orders', 50001));
  // Another process removes the table: the delete fails with an error that time does not cure.
  f.peek().exec('DROP TABLE hosts');
  const started = Date.now();
  await resolver.close();
  const took = Date.now() - started;
  assert.ok(took < 5000, `close took ${took} ms`);
  assert.ok(records.some((r) => r.level === 'warn' && String(r.msg).includes('failed to remove registration; it will expire by itself')));
});

test('register validates the instance and runs once', async (t) => {
  const f = fixture(t);
  await assert.rejects(f.make().register(self('orders', 0)), (e: unknown) => e instanceof CourierError && e.code === 'ERR_INVALID_CONFIG' && /internalPort/.test(e.message));
  const retried = f.make();
  await assert.rejects(retried.register(self('', 50001)), /appId is empty/);
  await retried.register(self('orders', 50002)); // a rejected instance does not use up the one call
  const resolver = f.make();
  await resolver.register(self('orders', 50001));
  await assert.rejects(resolver.register(self('orders', 50001)), /already called/);
});

test('the schema is Dapr-compatible (same tables, indexes and migration level); the journal maps no memory', (t) => {
  const f = fixture(t);
  f.make();
  const db = f.peek();
  const names = db.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name").all().map((r) => r.name);
  assert.deepEqual(names, ['hosts', 'hosts_address_idx', 'hosts_last_update_idx', 'metadata']);
  assert.equal(db.prepare("SELECT value FROM metadata WHERE key = 'nr-migrations'").pluck().get(), '1');
  assert.equal(db.pragma('journal_mode', { simple: true }), 'delete', 'the rollback journal: no memory-mapped -shm file');
  assert.equal(f.make({ disableWAL: false }).status().journalMode, 'wal', 'disableWAL: false asks for WAL, as in Dapr');
});

test('a database created by Dapr is used as it is', async (t) => {
  const f = fixture(t);
  const db = f.peek();
  db.exec(`CREATE TABLE metadata (key text NOT NULL PRIMARY KEY, value text NOT NULL);
    CREATE TABLE nr (registration_id TEXT NOT NULL PRIMARY KEY, address TEXT NOT NULL, app_id TEXT NOT NULL, namespace TEXT NOT NULL, last_update INTEGER NOT NULL);
    CREATE UNIQUE INDEX nr_address_idx ON nr (address);
    CREATE INDEX nr_last_update_idx ON nr (last_update);
    INSERT INTO metadata VALUES ('nr-migrations', '1');
    INSERT INTO nr VALUES ('dapr', '127.0.0.1:50001', 'orders', '', unixepoch());`);
  const resolver = f.make({ tableName: 'nr' });
  assert.deepEqual((await resolver.resolve({ appId: 'orders', ...ns })).map((entry) => entry.address), ['127.0.0.1:50001']);
});

test('an incompatible table is refused at creation', (t) => {
  const f = fixture(t);
  f.peek().exec('CREATE TABLE hosts (name TEXT)');
  assert.throws(() => f.make(), (e: unknown) => e instanceof CourierError && e.code === 'ERR_INVALID_CONFIG' && /missing columns: registration_id/.test(e.message));
});

test('without a connection string the database lives in Courier home, in a private directory', async (t) => {
  const f = fixture(t);
  const home = join(f.dir, 'home', '.courier');
  const resolver = new SqliteNameResolver(parseSqliteMetadata({}, 'test'), { logger: silentLogger(), courierHome: home });
  t.after(() => resolver.close());
  assert.equal(resolver.databasePath, join(home, 'nameresolution.db'));
  assert.equal(statSync(home).mode & 0o777, 0o700);
  await resolver.register(self('orders', 50001));
  assert.equal((await resolver.resolve({ appId: 'orders', ...ns })).length, 1);
});

test('mode=rw requires an existing file', (t) => {
  const f = fixture(t);
  const metadata = parseSqliteMetadata({ connectionString: `file:${join(f.dir, 'missing', 'nr.db')}?mode=rw` }, 'test');
  assert.throws(() => new SqliteNameResolver(metadata, { logger: silentLogger(), courierHome: f.dir }), /cannot open database/);
});
