// `courier kubernetes manifests` run as a process from the built CLI: its output is what kubectl gets.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { loadConfiguration } from '../../src/config/configuration.js';
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

test("a directory of Dapr manifests: Services for its apps, and its Configuration as the ConfigMap dapr.io/config names", async (t) => {
  const env = testEnv(t);
  const dir = join(env.home, 'deploy');
  mkdirSync(dir);
  // As a Dapr tutorial's deploy/ folder: apps sharing a Configuration, a public Service, a store without Dapr.
  writeFileSync(
    join(dir, 'appconfig.yaml'),
    'apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: appconfig\nspec:\n  tracing:\n    samplingRate: "1"\n    zipkin:\n      endpointAddress: http://zipkin.default.svc.cluster.local:9411/api/v2/spans\n',
  );
  const app = (name: string, port: number): string =>
    `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ${name}\nspec:\n  selector:\n    matchLabels: { app: ${name} }\n  template:\n    metadata:\n      labels: { app: ${name} }\n      annotations:\n        dapr.io/enabled: "true"\n        dapr.io/app-id: "${name}"\n        dapr.io/app-port: "${port}"\n        dapr.io/config: "appconfig"\n    spec:\n      containers: [{ name: ${name}, image: example/${name}:1, ports: [{ containerPort: ${port} }] }]\n`;
  writeFileSync(join(dir, 'adder.yaml'), app('addapp', 6000));
  writeFileSync(join(dir, 'front-end.yaml'), `kind: Service\napiVersion: v1\nmetadata:\n  name: front-end\nspec:\n  selector: { app: front-end }\n  ports: [{ port: 80, targetPort: 8080 }]\n  type: LoadBalancer\n---\n${app('front-end', 8080)}`);
  writeFileSync(join(dir, 'redis.yaml'), 'apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: redis }\nspec:\n  selector: { matchLabels: { app: redis } }\n  template:\n    metadata: { labels: { app: redis } }\n    spec: { containers: [{ name: redis, image: redis:7 }] }\n');
  writeFileSync(join(dir, 'README.md'), '# not a manifest\n');

  const res = await runCli(env, ['kubernetes', 'manifests', '--apps-only', '--app', dir]);
  assert.equal(res.code, 0, res.stderr);
  const objects = parseAllDocuments(res.stdout).map((d) => d.toJS() as Obj & { data?: Record<string, string> });
  for (const o of objects) validateObject(o);
  assert.deepEqual(
    objects.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`),
    ['Service/default/addapp-dapr', 'Service/default/front-end-dapr', 'ConfigMap/default/appconfig'],
  );
  // What the injector mounts at /etc/courier/config/config.yaml is a Configuration the sidecar loads.
  const configFile = join(env.home, 'config.yaml');
  writeFileSync(configFile, objects[2]?.data?.['config.yaml'] ?? '');
  const config = loadConfiguration(configFile);
  assert.equal(config.name, 'appconfig');
  assert.equal(config.tracing?.samplingRate, '1');

  // Two Configurations of one name in one namespace cannot both be applied.
  writeFileSync(join(dir, 'again.yaml'), 'apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: appconfig\nspec: {}\n');
  const twice = await runCli(env, ['kubernetes', 'manifests', '--apps-only', '--app', dir]);
  assert.equal(twice.code, 1);
  // Files are read in name order: again.yaml, then appconfig.yaml.
  assert.match(twice.stderr, /appconfig\.yaml: Configuration appconfig: a Configuration appconfig in default is already given by \S*again\.yaml: Configuration appconfig/);
});
