import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { ResourceDocument } from '../config/resources.js';
import { CourierError } from '../errors/index.js';
import { loadSecretStores, type SecretStore } from './secret-stores.js';

function component(name: string, type: string, metadata: Array<{ name: string; value: unknown }>): ResourceDocument {
  const value = { apiVersion: 'dapr.io/v1alpha1', kind: 'Component', metadata: { name }, spec: { type, version: 'v1', metadata } };
  return { file: `${name}.yaml`, where: `${name}.yaml`, apiVersion: 'dapr.io/v1alpha1', kind: 'Component', name, namespace: undefined, type, version: 'v1', scopes: undefined, value };
}

function secretsFile(t: TestContext, content: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'courier-secrets-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'secrets.json');
  writeFileSync(file, content);
  return file;
}

function fileStore(t: TestContext, content: string, extra: Array<{ name: string; value: unknown }> = []): SecretStore {
  const stores = loadSecretStores([component('files', 'secretstores.local.file', [{ name: 'secretsFile', value: secretsFile(t, content) }, ...extra])], {}, () => {});
  return stores.get('files') as SecretStore;
}

const fails = (pattern: RegExp) => (err: unknown): boolean => err instanceof CourierError && err.code === 'ERR_INVALID_CONFIG' && pattern.test(err.message);

test('local.file: nested keys are joined with ":" (or nestedSeparator), arrays by index, scalars as text', (t) => {
  const doc = JSON.stringify({ db: { user: 'u', port: 5432, tls: true, hosts: ['a', 'b'] }, top: 'x', none: null });
  const store = fileStore(t, doc);
  assert.equal(store.value('db:user', 'db:user'), 'u');
  assert.equal(store.value('db:port', 'db:port'), '5432');
  assert.equal(store.value('db:tls', 'db:tls'), 'true');
  assert.equal(store.value('db:hosts:1', 'db:hosts:1'), 'b');
  assert.equal(store.value('top', 'top'), 'x');
  assert.equal(store.value('none', 'none'), '');
  assert.throws(() => store.value('db', 'db'), fails(/has no secret "db"/));
  const dotted = fileStore(t, doc, [{ name: 'nestedSeparator', value: '.' }]);
  assert.equal(dotted.value('db.user', 'db.user'), 'u');
});

test('local.file with multiValued: each top-level key is a secret whose keys are the values under it', (t) => {
  const store = fileStore(t, JSON.stringify({ db: { user: 'u', pass: 'p', nested: { k: 'v' } }, single: 's' }), [{ name: 'multiValued', value: 'true' }]);
  assert.equal(store.value('db', 'user'), 'u');
  assert.equal(store.value('db', 'nested:k'), 'v');
  assert.equal(store.value('single', 'single'), 's');
  assert.throws(() => store.value('db', 'absent'), fails(/secret "db" .* has no key "absent" \(its keys: "user", "pass", "nested:k"\)/));
});

test('local.file: a broken file is refused without quoting it (it holds secrets)', (t) => {
  assert.throws(() => fileStore(t, '{"password": "hunter2", }'), (err: unknown) => fails(/secretsFile .* is not valid JSON/)(err) && !(err as Error).message.includes('hunter2'));
  assert.throws(() => fileStore(t, '["a"]'), fails(/must hold a JSON object/));
  assert.throws(() => fileStore(t, JSON.stringify({ 'a:b': '1', a: { b: '2' } })), fails(/the key "a:b" appears twice/));
  assert.throws(() => fileStore(t, '{}', [{ name: 'multiValued', value: 'maybe' }]), fails(/multiValued: "maybe" is not true or false/));
  assert.throws(() => loadSecretStores([component('files', 'secretstores.local.file', [])], {}, () => {}), fails(/secretsFile is required/));
});

test('local.env: secret X is the variable <prefix>X; the sidecar\'s own tokens are never exposed', () => {
  const env = { APP_TOKEN: 'from-env', APP_DAPR_X: 'x' };
  const stores = loadSecretStores([component('env', 'secretstores.local.env', [{ name: 'prefix', value: 'APP_' }])], env, () => {});
  const store = stores.get('env') as SecretStore;
  assert.equal(store.value('TOKEN', 'TOKEN'), 'from-env');
  assert.throws(() => store.value('MISSING', 'MISSING'), fails(/the environment variable APP_MISSING is not set/));
  assert.throws(() => store.value('TOKEN', 'other'), fails(/has one key, "TOKEN", not "other"/));
  const bare = loadSecretStores([component('env', 'secretstores.local.env', [])], { APP_API_TOKEN: 't', DAPR_API_TOKEN: 't' }, () => {}).get('env') as SecretStore;
  assert.throws(() => bare.value('APP_API_TOKEN', 'APP_API_TOKEN'), fails(/does not expose APP_API_TOKEN/));
  assert.throws(() => bare.value('dapr_api_token', 'dapr_api_token'), fails(/does not expose dapr_api_token/));
});

test('unknown metadata is reported, not fatal; other component types are not secret stores', () => {
  const warnings: string[] = [];
  const stores = loadSecretStores(
    [component('env', 'secretstores.local.env', [{ name: 'prefx', value: 'A_' }]), component('state', 'state.redis', [{ name: 'redisHost', value: 'x' }])],
    {},
    (m) => warnings.push(m),
  );
  assert.deepEqual([...stores.keys()], ['env']);
  assert.match(warnings.join('\n'), /spec\.metadata prefx has no effect on secretstores\.local\.env \(it takes prefix\)/);
});
