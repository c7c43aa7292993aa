import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ResourceDocument } from '../config/resources.js';
import { CourierError } from '../errors/index.js';
import { issue, newCa, spiffe } from '../security/testing/helpers.js';
import { loadHttpEndpoint } from './http-endpoint.js';
import type { SecretStore } from './secret-stores.js';

function resource(spec: unknown, extra: Record<string, unknown> = {}): ResourceDocument {
  const value = { apiVersion: 'dapr.io/v1alpha1', kind: 'HTTPEndpoint', metadata: { name: 'ep' }, spec, ...extra };
  return { file: 'ep.yaml', where: 'ep.yaml', apiVersion: 'dapr.io/v1alpha1', kind: 'HTTPEndpoint', name: 'ep', namespace: undefined, type: undefined, version: undefined, scopes: undefined, value };
}

const store: SecretStore = {
  name: 'vault',
  type: 'secretstores.local.file',
  value(secret, key) {
    if (secret === 'api' && key === 'api') return 'from-the-store';
    if (secret === 'multi' && key === 'token') return 'keyed';
    throw new CourierError('ERR_INVALID_CONFIG', `no ${secret}/${key}`);
  },
};
const options = (env: NodeJS.ProcessEnv = {}, warnings: string[] = []) => ({ secretStores: new Map([['vault', store]]), env, warn: (m: string) => warnings.push(m) });
const fails = (pattern: RegExp) => (err: unknown): boolean => err instanceof CourierError && err.code === 'ERR_INVALID_CONFIG' && pattern.test(err.message);

test('headers come from values of any scalar type, a secret (key defaulting to the name) or the environment', () => {
  const loaded = loadHttpEndpoint(
    resource(
      {
        baseUrl: 'HTTPS://Api.Example.com:443/v1/',
        headers: [
          { name: 'X-Text', value: 'plain' },
          { name: 'X-Number', value: 7 },
          { name: 'X-Bool', value: false },
          { name: 'X-Secret', secretKeyRef: { name: 'api' } },
          { name: 'X-Keyed', secretKeyRef: { name: 'multi', key: 'token' } },
          { name: 'X-Env', envRef: 'SOME_VAR' },
        ],
      },
      { auth: { secretStore: 'vault' } },
    ),
    options({ SOME_VAR: 'from-env' }),
  );
  assert.deepEqual(loaded.target, { kind: 'endpoint', id: 'ep', origin: 'https://api.example.com', basePath: '/v1/' });
  assert.deepEqual(loaded.headers, [
    ['x-text', 'plain'],
    ['x-number', '7'],
    ['x-bool', 'false'],
    ['x-secret', 'from-the-store'],
    ['x-keyed', 'keyed'],
    ['x-env', 'from-env'],
  ]);
  assert.equal(loaded.tls, undefined);
});

test('header mistakes are refused: two sources, headers Courier sets, line breaks, variables that are not allowed', () => {
  const spec = (headers: unknown[]): unknown => ({ baseUrl: 'http://x', headers });
  assert.throws(() => loadHttpEndpoint(resource(spec([{ name: 'A', value: 'v', envRef: 'X' }])), options({ X: '1' })), fails(/spec\.headers\.0 \(A\) needs exactly one of value, secretKeyRef or envRef/));
  assert.throws(() => loadHttpEndpoint(resource(spec([{ name: 'A' }])), options()), fails(/needs exactly one of/));
  assert.throws(() => loadHttpEndpoint(resource(spec([{ name: 'Host', value: 'x' }])), options()), fails(/\(Host\) cannot be set: Courier sets Host itself/));
  assert.throws(() => loadHttpEndpoint(resource(spec([{ name: 'Transfer-Encoding', value: 'x' }])), options()), fails(/cannot be set/));
  assert.throws(() => loadHttpEndpoint(resource(spec([{ name: 'A', value: 'x' }, { name: 'a', value: 'y' }])), options()), fails(/spec\.headers\.1 \(a\) is given twice/));
  assert.throws(() => loadHttpEndpoint(resource(spec([{ name: 'A', value: 'two\nlines' }])), options()), fails(/line break/));
  assert.throws(() => loadHttpEndpoint(resource(spec([{ name: 'A', envRef: 'DAPR_API_TOKEN' }])), options({ DAPR_API_TOKEN: 't' })), fails(/may not read DAPR_API_TOKEN/));
  // DAPR_ENV_KEYS, when set, lists the only variables resources may read.
  const allowList = { DAPR_ENV_KEYS: 'ALLOWED OTHER', ALLOWED: 'ok', NOT_LISTED: 'no' };
  assert.equal(loadHttpEndpoint(resource(spec([{ name: 'A', envRef: 'ALLOWED' }])), options(allowList)).headers[0]?.[1], 'ok');
  assert.throws(() => loadHttpEndpoint(resource(spec([{ name: 'A', envRef: 'NOT_LISTED' }])), options(allowList)), fails(/may not read NOT_LISTED/));
  assert.throws(
    () => loadHttpEndpoint(resource(spec([{ name: 'A', secretKeyRef: { name: 'nope' } }]), { auth: { secretStore: 'vault' } }), options()),
    fails(/spec\.headers\.0 \(A\)\.secretKeyRef: no nope\/nope/),
  );
});

test('clientTLS: PEM material is checked at load; renegotiation is Never unless asked; TLS settings on http:// only warn', async () => {
  const { ca, material } = await newCa();
  const one = await issue(ca, spiffe('one'));
  const two = await issue(ca, spiffe('two'));
  const loaded = loadHttpEndpoint(resource({ baseUrl: 'https://x', clientTLS: { rootCA: { value: material.rootCertPem }, certificate: { value: one.cert }, privateKey: { value: one.key } } }), options());
  assert.deepEqual(loaded.tls, { ca: material.rootCertPem, cert: one.cert, key: one.key, allowRenegotiation: false });
  const renegotiating = loadHttpEndpoint(resource({ baseUrl: 'https://x', clientTLS: { renegotiation: 'OnceAsClient' } }), options());
  assert.equal(renegotiating.tls?.allowRenegotiation, true);
  assert.throws(
    () => loadHttpEndpoint(resource({ baseUrl: 'https://x', clientTLS: { certificate: { value: one.cert }, privateKey: { value: two.key } } }), options()),
    fails(/spec\.clientTLS certificate and privateKey cannot be used together/),
  );
  const warnings: string[] = [];
  loadHttpEndpoint(resource({ baseUrl: 'http://x', clientTLS: { rootCA: { value: material.rootCertPem } } }), options({}, warnings));
  assert.match(warnings.join('\n'), /spec\.clientTLS has no effect on an http:\/\/ baseUrl/);
});

test('the resource shape: apiVersion, a base URL without credentials or query, no unknown keys', () => {
  assert.throws(() => loadHttpEndpoint({ ...resource({ baseUrl: 'http://x' }), value: { apiVersion: 'dapr.io/v2', kind: 'HTTPEndpoint', metadata: { name: 'ep' }, spec: { baseUrl: 'http://x' } } }, options()), fails(/apiVersion must be "dapr\.io\/v1alpha1"/));
  assert.throws(() => loadHttpEndpoint(resource({ baseUrl: 'http://u:p@x' }), options()), fails(/spec\.baseUrl may not carry a user name or password/));
  assert.throws(() => loadHttpEndpoint(resource({ baseUrl: 'http://x/?a=b' }), options()), fails(/spec\.baseUrl may not carry a query/));
  assert.throws(() => loadHttpEndpoint(resource({ baseUrl: 'http://x', timeout: '5s' }), options()), fails(/spec: unknown key "timeout"/));
  assert.throws(() => loadHttpEndpoint(resource(undefined), options()), fails(/spec is required/));
});
