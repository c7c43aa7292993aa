import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { CourierError } from '../errors/index.js';
import { loadConfiguration } from './configuration.js';
import { loadResources, selectResources, type ResourceDocument } from './resources.js';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'courier-resources-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const component = (name: string, extra = ''): string => `apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: ${name}\n${extra}spec:\n  type: state.in-memory\n  version: v1\n`;

test('only regular files are read: a FIFO, a directory and a dangling name are skipped or refused clearly; a symlink is followed', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'a.yaml'), component('a'));
  writeFileSync(join(dir, 'elsewhere.txt'), component('linked'));
  symlinkSync(join(dir, 'elsewhere.txt'), join(dir, 'b.yml'));
  assert.equal(spawnSync('mkfifo', [join(dir, 'c.yaml')]).status, 0);
  mkdirSync(join(dir, 'd.yaml'));
  const loaded = loadResources([dir]);
  assert.deepEqual(loaded.resources.map((r) => r.name), ['a', 'linked']);
  assert.deepEqual(loaded.skipped, [
    { file: join(dir, 'c.yaml'), reason: 'it is a FIFO (named pipe), not a regular file' },
    { file: join(dir, 'd.yaml'), reason: 'it is a directory, not a regular file' },
  ]);
  symlinkSync(join(dir, 'gone.txt'), join(dir, 'e.yaml'));
  assert.throws(() => loadResources([dir]), (err: unknown) => err instanceof CourierError && /e\.yaml: cannot be read: ENOENT/.test(err.message));
});

test('a resource applies to this app unless another namespace or scopes without it say otherwise; duplicates are refused', () => {
  const doc = (name: string, extra: Partial<ResourceDocument> = {}): ResourceDocument => ({
    file: `${name}.yaml`,
    where: `${name}.yaml`,
    apiVersion: 'dapr.io/v1alpha1',
    kind: 'HTTPEndpoint',
    name,
    namespace: undefined,
    type: undefined,
    version: undefined,
    scopes: undefined,
    value: {},
    ...extra,
  });
  const self = { appId: 'orders', namespace: 'prod' };
  const { applied, notApplied } = selectResources(
    [doc('plain'), doc('ours', { namespace: 'prod', scopes: ['orders', 'billing'] }), doc('theirs', { namespace: 'dev' }), doc('scoped', { scopes: ['billing'] }), doc('open', { scopes: [] })],
    self,
  );
  assert.deepEqual(applied.map((r) => r.name), ['plain', 'ours', 'open']);
  assert.deepEqual(notApplied.map((n) => `${n.resource.name}:${n.reason}`), ['theirs:namespace', 'scoped:scopes']);
  assert.throws(
    () => selectResources([doc('twice'), doc('twice', { where: 'other.yaml (document 2)' })], self),
    (err: unknown) => err instanceof CourierError && err.message === 'other.yaml (document 2): HTTPEndpoint/twice is defined twice (also in twice.yaml)',
  );
  assert.doesNotThrow(() => selectResources([doc('same'), { ...doc('same'), kind: 'Component' }], self), 'the same name in two kinds is fine');
});

test('a Configuration file must hold one document; an empty trailing document does not count', (t) => {
  const dir = tempDir(t);
  const config = 'apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: c\nspec: {}\n';
  writeFileSync(join(dir, 'one.yaml'), `${config}---\n`);
  assert.equal(loadConfiguration(join(dir, 'one.yaml')).name, 'c');
  writeFileSync(join(dir, 'three.yaml'), `${config}---\n${config}---\n${config}`);
  assert.throws(
    () => loadConfiguration(join(dir, 'three.yaml')),
    (err: unknown) => err instanceof CourierError && err.code === 'ERR_INVALID_CONFIG' && err.message.startsWith(`${join(dir, 'three.yaml')}: the file holds 3 YAML documents`),
  );
  assert.equal(spawnSync('mkfifo', [join(dir, 'pipe.yaml')]).status, 0);
  assert.throws(() => loadConfiguration(join(dir, 'pipe.yaml')), (err: unknown) => err instanceof CourierError && /pipe\.yaml: cannot be read: it is a FIFO \(named pipe\), not a regular file/.test(err.message));
});
