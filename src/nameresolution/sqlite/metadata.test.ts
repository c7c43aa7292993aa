import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { CourierError } from '../../errors/index.js';
import { parseSqliteMetadata } from './metadata.js';

const where = 'config.yaml: spec.nameResolution.configuration';

function rejects(configuration: unknown, ...fragments: string[]): void {
  assert.throws(
    () => parseSqliteMetadata(configuration, where),
    (error: unknown) => {
      assert.ok(error instanceof CourierError, 'a CourierError');
      assert.equal(error.code, 'ERR_INVALID_CONFIG');
      for (const fragment of fragments) assert.ok(error.message.includes(fragment), `"${error.message}" should include "${fragment}"`);
      return true;
    },
  );
}

test("defaults match Dapr's, except the optional connection string, the rollback journal and startupTimeout", () => {
  for (const empty of [undefined, null, {}]) {
    assert.deepEqual(parseSqliteMetadata(empty, where), {
      timeoutMs: 1000,
      busyTimeoutMs: 800,
      disableWAL: true,
      startupTimeoutMs: 30_000,
      tableName: 'hosts',
      metadataTableName: 'metadata',
      updateIntervalMs: 5000,
      heartbeatIntervalMs: 3000,
      cleanupIntervalMs: 3_600_000,
    });
  }
  // Blank values (templated files) count as unset.
  assert.equal(parseSqliteMetadata({ connectionString: '', timeout: '' }, where).database, undefined);
});

test('aliases and bare numbers (seconds) are accepted', () => {
  const parsed = parseSqliteMetadata({ url: 'data/nr.db', timeoutInSeconds: 2, cleanupIntervalInSeconds: '30', updateInterval: 10 }, where);
  assert.equal(parsed.database?.path, resolve('data/nr.db'));
  assert.equal(parsed.timeoutMs, 2000);
  assert.equal(parsed.cleanupIntervalMs, 30_000);
  assert.equal(parsed.updateIntervalMs, 10_000);
  assert.equal(parsed.heartbeatIntervalMs, 7000);
});

test('keys are case-insensitive and values may be strings, numbers or booleans', () => {
  const parsed = parseSqliteMetadata(
    { CONNECTIONSTRING: '/var/lib/nr.db', UpdateInterval: '10s', disablewal: 'TRUE', BUSYTIMEOUT: '2s', TableName: 'nr_hosts', metadatatablename: 'nr_meta' },
    where,
  );
  assert.equal(parsed.database?.path, '/var/lib/nr.db');
  assert.equal(parsed.updateIntervalMs, 10_000);
  assert.equal(parsed.disableWAL, true);
  assert.equal(parsed.busyTimeoutMs, 2000);
  assert.equal(parsed.tableName, 'nr_hosts');
  assert.equal(parsed.metadataTableName, 'nr_meta');
  assert.equal(parseSqliteMetadata({ disableWAL: 1 }, where).disableWAL, true);
  assert.equal(parseSqliteMetadata({ disableWAL: false }, where).disableWAL, false);
});

test('cleanupInterval 0 or negative disables cleanup; busyTimeout 0 disables waiting', () => {
  assert.equal(parseSqliteMetadata({ cleanupInterval: 0 }, where).cleanupIntervalMs, 0);
  assert.equal(parseSqliteMetadata({ cleanupInterval: '-1s' }, where).cleanupIntervalMs, 0);
  assert.equal(parseSqliteMetadata({ busyTimeout: '0' }, where).busyTimeoutMs, 0);
});

test('updateInterval must be whole seconds and at least timeout + 1s', () => {
  rejects({ updateInterval: '1500ms' }, `${where}.updateInterval:`, 'whole number of seconds', '"1500ms"');
  rejects({ updateinterval: '5.5s' }, `${where}.updateinterval:`);
  rejects({ updateInterval: '1s' }, `${where}.updateInterval:`, 'at least 1s longer than timeout (1s)');
  rejects({ timeout: '5s' }, `${where}.updateInterval:`, 'timeout (5s)', 'got 5s');
  assert.equal(parseSqliteMetadata({ timeout: '4s' }, where).heartbeatIntervalMs, 500, 'the edge Dapr accepts gets a floor, not 0');
});

test('bad values name the key and the reason', () => {
  rejects({ foo: 1 }, `${where}: unknown key "foo"`, 'known keys: connectionString, url, timeout, timeoutInSeconds');
  rejects({ timeout: '500ms' }, `${where}.timeout:`, 'at least 1s');
  rejects({ timeout: 'soon' }, `${where}.timeout:`, 'not a duration');
  rejects({ busyTimeout: true }, `${where}.busyTimeout:`, 'must be a duration');
  rejects({ disableWAL: 'maybe' }, `${where}.disableWAL:`, 'true or false');
  rejects({ tableName: 'bad-name' }, `${where}.tableName:`, 'not a valid table name');
  rejects({ tableName: 'sqlite_hosts' }, `${where}.tableName:`, 'reserved');
  rejects({ tableName: 'same', metadataTableName: 'SAME' }, `${where}.metadataTableName:`, 'must differ');
  rejects({ cleanupInterval: '500ms' }, `${where}.cleanupInterval:`, '0 (disabled) or at least 1s');
  rejects({ timeout: '2s', timeoutInSeconds: 2 }, `${where}.timeoutInSeconds:`, 'same option as "timeout"');
  rejects({ tableName: { nested: true } }, `${where}.tableName:`, 'string or a number');
  rejects('sqlite', `${where}: must be a map`);
  rejects(['a'], `${where}: must be a map`, 'a list');
});

test('in-memory and read-only databases are rejected', () => {
  for (const memory of [':memory:', 'file::memory:?cache=shared', 'file:nr.db?mode=memory']) {
    rejects({ connectionString: memory }, `${where}.connectionString:`, 'in-memory');
  }
  rejects({ url: 'file:nr.db?mode=ro' }, `${where}.url:`, 'read-only');
  rejects({ connectionString: 'file:nr.db?immutable=1' }, 'read-only');
  rejects({ connectionString: 'file:nr.db?mode=wal' }, 'unsupported mode "wal"');
});

test('file: URIs become paths; supported parameters are honoured, others reported', () => {
  const uri = parseSqliteMetadata({ connectionString: 'file:///tmp/a%20b.db?_txlock=immediate&mode=rw&cache=private' }, where).database;
  assert.deepEqual(uri, { path: '/tmp/a b.db', mustExist: true, ignoredParameters: ['_txlock=immediate', 'cache=private'] });
  assert.equal(parseSqliteMetadata({ connectionString: 'file://localhost/tmp/x.db' }, where).database?.path, '/tmp/x.db');
  assert.equal(parseSqliteMetadata({ connectionString: 'file:rel/x.db?mode=rwc' }, where).database?.path, resolve('rel/x.db'));
  // Dapr splits plain paths at '?' as well.
  assert.deepEqual(parseSqliteMetadata({ connectionString: 'nr.db?_pragma=foreign_keys(1)' }, where).database, {
    path: resolve('nr.db'),
    mustExist: false,
    ignoredParameters: ['_pragma=foreign_keys(1)'],
  });
  rejects({ connectionString: 'file://db.example.com/nr.db' }, 'only local files');
  rejects({ connectionString: 'file:nr.db?_pragma=busy_timeout(500)' }, 'use the busyTimeout key');
  rejects({ connectionString: 'file:nr.db?_pragma=journal_mode(WAL)' }, 'use the disableWAL key');
  rejects({ connectionString: 'file:%zz.db' }, 'percent-encoding');
  rejects({ connectionString: 'file:?mode=rw' }, 'names no database file');
});
