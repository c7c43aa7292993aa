// `courier kubernetes manifests` run as a process from the built CLI: its output is what kubectl gets.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { validateObject } from '../../src/kubernetes/manifests/testing/schema.js';
import { runCli } from '../framework/cli-process.js';
import { TestEnv } from '../framework/env.js';

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: Record<string, unknown>;
}

function testEnv(t: TestContext): TestEnv {
  const env = new TestEnv();
  t.after(() => env.close());
  return env;
}

const workloads = `apiVersion: apps/v1
kind: Deployment
metadata: { name: orders, namespace: shop }
spec:
  replicas: 2
  selector: { matchLabels: { app: orders } }
  template:
    metadata:
      labels: { app: orders }
      annotations: { dapr.io/enabled: "true", dapr.io/app-id: orders }
    spec:
      containers: [{ name: orders, image: orders:1 }]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: { name: ledger, namespace: shop }
spec:
  serviceName: ledger
  selector: { matchLabels: { app: ledger } }
  template:
    metadata:
      labels: { app: ledger, role: db }
      annotations: { dapr.io/enabled: "true", dapr.io/app-id: ledger }
    spec:
      containers: [{ name: ledger, image: ledger:1 }]
`;

test('courier kubernetes manifests prints valid multi-document YAML and a JSON List', async (t) => {
  const env = testEnv(t);
  const file = join(env.home, 'apps.yaml');
  writeFileSync(file, workloads);
  const args = ['kubernetes', 'manifests', '--namespace', 'mesh', '--image', 'registry.example.com/courier:1.2.3', '--replicas', '2', '--app', file, '--app-id', 'checkout'];
  const res = await runCli(env, args);
  assert.equal(res.code, 0, res.stderr);
  assert.equal(res.stderr, '');
  const docs = parseAllDocuments(res.stdout);
  for (const doc of docs) assert.deepEqual(doc.errors, []);
  const objects = docs.map((d) => d.toJS() as Obj);
  for (const o of objects) validateObject(o);
  const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`);
  for (const expected of [
    'Namespace/mesh',
    'Deployment/courier-sentry',
    'Deployment/courier-sidecar-injector',
    'Service/courier-sentry',
    'Service/courier-sidecar-injector',
    'PodDisruptionBudget/courier-sentry',
    'PodDisruptionBudget/courier-sidecar-injector',
    'MutatingWebhookConfiguration/courier-sidecar-injector',
    'Service/orders-dapr',
    'Service/ledger-dapr',
    'Service/checkout-dapr',
  ]) {
    assert.ok(kinds.includes(expected), `${expected} in ${kinds.join(', ')}`);
  }
  const ledger = objects.find((o) => o.metadata.name === 'ledger-dapr');
  assert.equal(ledger?.metadata.namespace, 'shop');
  assert.equal(ledger?.spec?.clusterIP, 'None');
  assert.deepEqual(ledger?.spec?.selector, { app: 'ledger', role: 'db' });
  assert.equal(objects.find((o) => o.metadata.name === 'checkout-dapr')?.metadata.namespace, 'default');

  const json = await runCli(env, [...args, '-o', 'json']);
  assert.equal(json.code, 0, json.stderr);
  const list = JSON.parse(json.stdout) as { kind: string; items: Obj[] };
  assert.equal(list.kind, 'List');
  assert.deepEqual(list.items, objects);

  const appsOnly = await runCli(env, ['kubernetes', 'manifests', '--apps-only', '--app', file]);
  assert.equal(appsOnly.code, 0, appsOnly.stderr);
  assert.deepEqual(
    parseAllDocuments(appsOnly.stdout).map((d) => (d.toJS() as Obj).metadata.name),
    ['orders-dapr', 'ledger-dapr'],
  );
});

test('courier kubernetes manifests: a bad input is one line on stderr and exit code 1', async (t) => {
  const env = testEnv(t);
  const file = join(env.home, 'plain.yaml');
  writeFileSync(file, workloads.split('---')[0]?.replace('dapr.io/enabled: "true", ', '') ?? '');
  for (const [args, pattern] of [
    [['--namespace', 'Bad_NS'], /not a valid namespace name/],
    [['--app-id', 'UPPER'], /"UPPER-dapr" must be an RFC 1123 label/],
    [['--app', file], /Deployment orders has no dapr\.io\/enabled: "true" annotation/],
  ] as const) {
    const res = await runCli(env, ['kubernetes', 'manifests', ...args]);
    assert.equal(res.code, 1, res.stdout);
    assert.equal(res.stdout, '');
    const lines = res.stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, res.stderr);
    assert.match(lines[0] ?? '', pattern);
  }
  const help = await runCli(env, ['kubernetes', 'manifests', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: courier kubernetes manifests/);
});
