import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { loadConfiguration, type Configuration } from './configuration.js';
import { watchConfiguration } from './watch.js';

const policy = (action: 'allow' | 'deny'): string =>
  `apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: c\nspec:\n  accessControl:\n    defaultAction: ${action}\n    trustDomain: public\n`;

/** A configuration file allowing every call, in a directory removed after the test, and its parsed form. */
function allowingConfig(t: TestContext): { file: string; loaded: Configuration } {
  const dir = mkdtempSync(join(tmpdir(), 'courier-watch-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'config.yaml');
  writeFileSync(file, policy('allow'));
  return { file, loaded: loadConfiguration(file) };
}

test('a change made between the first read and the start of the watch is delivered at once', (t) => {
  const { file, loaded } = allowingConfig(t);
  writeFileSync(file, policy('deny')); // changed before the watch starts
  const seen: Configuration[] = [];
  const watch = watchConfiguration(file, loaded, (next) => seen.push(next), (err) => assert.fail(String(err)));
  watch.close();
  assert.equal(seen.length, 1);
  assert.deepEqual(seen[0]?.accessControl, loadConfiguration(file).accessControl);
  assert.notDeepEqual(seen[0]?.accessControl, loaded.accessControl);
});

test('an unchanged file is not delivered again; a broken one goes to onError', (t) => {
  const { file, loaded } = allowingConfig(t);
  const seen: Configuration[] = [];
  const errors: unknown[] = [];
  watchConfiguration(file, loaded, (next) => seen.push(next), (err) => errors.push(err)).close();
  assert.equal(seen.length, 0);
  assert.equal(errors.length, 0);
  writeFileSync(file, 'spec: [not, a, map');
  watchConfiguration(file, loaded, (next) => seen.push(next), (err) => errors.push(err)).close();
  assert.equal(seen.length, 0);
  assert.equal(errors.length, 1);
});
