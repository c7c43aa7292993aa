import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CourierError } from '../../errors/index.js';
import { pino } from 'pino';
import { expandTemplate, KubernetesNameResolver, parseKubernetesMetadata } from './index.js';

const where = 'config.yaml: spec.nameResolution.configuration';
const silent = pino({ level: 'silent' });

test("kubernetes metadata: Dapr's defaults and keys", () => {
  assert.deepEqual(parseKubernetesMetadata(undefined, where), { clusterDomain: 'cluster.local', template: undefined, cacheTtlMs: 20_000 });
  assert.deepEqual(parseKubernetesMetadata({ clusterDomain: 'corp.example', cacheTTL: '0s' }, where), { clusterDomain: 'corp.example', template: undefined, cacheTtlMs: 0 });
  assert.throws(() => parseKubernetesMetadata({ clusterDomain: 'bad domain' }, where), (e: unknown) => e instanceof CourierError && /clusterDomain: "bad domain" is not a DNS domain/.test(e.message));
  assert.throws(() => parseKubernetesMetadata({ region: 'x' }, where), (e: unknown) => e instanceof CourierError && /region: unknown setting/.test(e.message));
});

test("the looked-up name is <id>-dapr.<namespace>.svc.<clusterDomain> on the sidecar's own internal port", async () => {
  const r = new KubernetesNameResolver(parseKubernetesMetadata({ clusterDomain: 'corp.example' }, where), silent);
  await r.register({ appId: 'me', namespace: 'prod', host: '10.0.0.1', internalPort: 50002, httpPort: 3500 });
  assert.deepEqual(r.target({ appId: 'orders', namespace: 'prod' }), { host: 'orders-dapr.prod.svc.corp.example', port: 50002 });
});

test("a template (Dapr's fields) decides the name, and its port when it has one", async () => {
  const r = new KubernetesNameResolver(parseKubernetesMetadata({ template: '{{.ID}}.{{ .Namespace }}.internal:{{.Port}}' }, where), silent);
  await r.register({ appId: 'me', namespace: 'prod', host: '10.0.0.1', internalPort: 50010, httpPort: 3500 });
  assert.deepEqual(r.target({ appId: 'orders', namespace: 'prod' }), { host: 'orders.prod.internal', port: 50010 });
  assert.equal(expandTemplate('{{.ID}}-{{.Data.region}}:7000', { id: 'a', namespace: 'n', port: 1, data: { region: 'eu' } }), 'a-eu:7000');
  assert.throws(() => expandTemplate('{{.Host}}', { id: 'a', namespace: 'n', port: 1 }), /unknown field \{\{.Host\}\}/);
});

test('an unknown name resolves to no instance, and the lookup is described', async () => {
  const r = new KubernetesNameResolver(parseKubernetesMetadata({ template: 'courier-test-nonexistent.invalid' }, where), silent);
  assert.deepEqual(await r.resolve({ appId: 'x', namespace: 'default' }), []);
  assert.match(r.lastLookup({ appId: 'x', namespace: 'default' }) ?? '', /looked up courier-test-nonexistent\.invalid: (ENOTFOUND|ENODATA)/);
});
