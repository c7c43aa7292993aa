import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse } from 'yaml';
import { silentLogger } from '../observability/logging/index.js';
import { loadResiliency, ResiliencyRunner } from './index.js';

test('a tuned DaprBuiltInServiceRetries with maxRetries -1 retries without a count limit, at its own spacing', () => {
  const value = parse('kind: Resiliency\nmetadata: { name: r }\nspec:\n  policies:\n    retries:\n      DaprBuiltInServiceRetries: { duration: 250ms, maxRetries: -1 }\n') as unknown;
  const spec = loadResiliency([{ file: 'r.yaml', where: 'r.yaml', apiVersion: 'dapr.io/v1alpha1', kind: 'Resiliency', name: 'r', namespace: undefined, type: undefined, version: undefined, scopes: undefined, value }], () => {});
  assert.ok(spec !== undefined);
  const runner = new ResiliencyRunner(spec, { namespace: 'default', replayLimitBytes: 1024, budgets: undefined, logger: silentLogger(), metrics: undefined });
  assert.equal(runner.builtIn?.backoffMs, 250);
  assert.ok((runner.builtIn?.maxRetries ?? 0) > 1_000_000, 'no limit on the count (the retry budget bounds it)');
});
