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

/** A DNS of its own (nothing is sent to the machine's resolver): names to addresses, counting lookups. */
function fakeDns(records: Record<string, string[]>): { lookup: (host: string) => Promise<{ address: string; family: number }[]>; asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    lookup: (host) => {
      asked.push(host);
      const found = records[host];
      if (found === undefined) return Promise.reject(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' }));
      return Promise.resolve(found.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })));
    },
  };
}

test('every address of the name is an instance (sorted, IPv6 bracketed), cached for cacheTTL, dropped by invalidate', async () => {
  const dns = fakeDns({ 'orders-dapr.prod.svc.cluster.local': ['10.0.0.2', 'fd00::3', '10.0.0.1'] });
  const r = new KubernetesNameResolver(parseKubernetesMetadata({ cacheTTL: '1h' }, where), silent, dns.lookup);
  await r.register({ appId: 'me', namespace: 'prod', host: '10.0.0.9', internalPort: 50002, httpPort: 3500 });
  const request = { appId: 'orders', namespace: 'prod' };
  const expected = [{ address: '10.0.0.1:50002' }, { address: '10.0.0.2:50002' }, { address: '[fd00::3]:50002' }];
  assert.deepEqual(await r.resolve(request), expected);
  assert.deepEqual(await r.resolve(request), expected);
  assert.equal(dns.asked.length, 1, 'the second answer came from the cache');
  r.invalidate(request);
  await r.resolve(request);
  assert.equal(dns.asked.length, 2, 'after invalidate the name is looked up again');
  assert.match(r.lastLookup(request) ?? '', /looked up orders-dapr\.prod\.svc\.cluster\.local: 3 address/);
});

test('an unknown name resolves to no instance, and the lookup is described', async () => {
  const dns = fakeDns({});
  const r = new KubernetesNameResolver(parseKubernetesMetadata({ template: 'nothing.example' }, where), silent, dns.lookup);
  assert.deepEqual(await r.resolve({ appId: 'x', namespace: 'default' }), []);
  assert.deepEqual(dns.asked, ['nothing.example']);
  assert.match(r.lastLookup({ appId: 'x', namespace: 'default' }) ?? '', /looked up nothing\.example: ENOTFOUND/);
});
