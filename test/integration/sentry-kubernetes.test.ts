// The Sentry's Kubernetes validator, with real processes: sidecars that prove themselves with a projected
// ServiceAccount token (signed by a test key set standing in for the cluster) next to ones with join tokens.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { courierBin, TestEnv } from '../framework/env.js';
import { startSentry, type SentryProcess } from '../framework/sentry-process.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { jwks, serviceAccountToken, signingKey, TEST_ISSUER, type SigningKey } from '../../src/kubernetes/sentry/testing/cluster.js';
import { FakeApiServer, recorded } from '../../src/kubernetes/sentry/testing/api-server.js';
import { createKeyAndCsr } from '../../src/security/index.js';
import { newCa } from '../../src/security/testing/helpers.js';

describe('Sentry with the Kubernetes validator', () => {
  const env = new TestEnv();
  let sentry: SentryProcess;
  let key: SigningKey;

  before(async () => {
    key = await signingKey('cluster-1');
    const jwksFile = join(env.home, 'jwks.json');
    writeFileSync(jwksFile, JSON.stringify(jwks(key)));
    const map = join(env.home, 'app-ids.yaml');
    writeFileSync(map, 'shop/storefront: [frontend, frontend-canary]\n');
    sentry = await startSentry(env, ['--kubernetes-jwks-file', jwksFile, '--kubernetes-issuer', TEST_ISSUER, '--kubernetes-app-id-map', map]);
    await sentry.waitFor(/accepting Kubernetes ServiceAccount tokens/);
  });
  after(() => env.close());

  /** A sidecar of `appId` in `namespace` that finds a projected token in `tokenFile` (and no join token). */
  function kubernetesSidecar(appId: string, namespace: string, tokenFile: string, onSpawn?: (s: SidecarProcess) => void): Promise<SidecarProcess> {
    return startSidecar(env, {
      appId,
      args: ['--enable-mtls', '--sentry-address', sentry.address],
      env: { DAPR_TRUST_ANCHORS: sentry.trustAnchors, NAMESPACE: namespace, COURIER_SENTRY_KUBERNETES_TOKEN_FILE: tokenFile },
      ...(onSpawn === undefined ? {} : { onSpawn }),
    });
  }

  function tokenFile(name: string, token: string): string {
    const file = join(env.home, `${name}.token`);
    writeFileSync(file, `${token}\n`);
    return file;
  }

  test('a sidecar presenting its ServiceAccount token gets spiffe://public/ns/<namespace>/<app-id>', async () => {
    const token = await serviceAccountToken(key, { namespace: 'shop', serviceAccount: 'checkout', pod: 'checkout-5f9c-abcde' });
    const sidecar = await kubernetesSidecar('checkout', 'shop', tokenFile('checkout', token));
    assert.match(sidecar.output, /workload certificate obtained.*spiffe:\/\/public\/ns\/shop\/checkout/);
    await sentry.waitFor(/issued a workload certificate.*spiffe:\/\/public\/ns\/shop\/checkout.*proof="?kubernetes"?.*pod="?shop\/checkout-5f9c-abcde/);
    assert.ok(!sentry.output.includes(token), 'the token is never logged');
  });

  test('the token file named by DAPR_SENTRY_TOKEN_FILE, as the injector sets it, is sent as a Kubernetes token', async () => {
    const token = await serviceAccountToken(key, { namespace: 'shop', serviceAccount: 'cart' });
    const sidecar = await startSidecar(env, {
      appId: 'cart',
      args: ['--enable-mtls', '--sentry-address', sentry.address],
      env: { DAPR_TRUST_ANCHORS: sentry.trustAnchors, NAMESPACE: 'shop', DAPR_SENTRY_TOKEN_FILE: tokenFile('cart', token) },
    });
    assert.match(sidecar.output, /workload certificate obtained.*spiffe:\/\/public\/ns\/shop\/cart/);
  });

  test('a mapped ServiceAccount gets the app ids its mapping names', async () => {
    const token = await serviceAccountToken(key, { namespace: 'shop', serviceAccount: 'storefront' });
    const sidecar = await kubernetesSidecar('frontend', 'shop', tokenFile('storefront', token));
    assert.match(sidecar.output, /workload certificate obtained.*spiffe:\/\/public\/ns\/shop\/frontend/);
  });

  test('a bad token is refused, and the sidecar says why', async () => {
    const cases = [
      { name: 'other-app', appId: 'payments', namespace: 'shop', token: await serviceAccountToken(key), why: /app_id_not_allowed.*may not ask for app id \\?"payments\\?"/ },
      { name: 'other-ns', appId: 'checkout', namespace: 'prod', token: await serviceAccountToken(key), why: /wrong_namespace.*namespace \\?"shop\\?", not \\?"prod\\?"/ },
      { name: 'expired', appId: 'checkout', namespace: 'shop', token: await serviceAccountToken(key, { expiresIn: -600 }), why: /\(expired\): the token expired at/ },
      { name: 'forged', appId: 'checkout', namespace: 'shop', token: await serviceAccountToken(await signingKey('cluster-1')), why: /bad_signature/ },
    ];
    await Promise.all(
      cases.map(async (c) => {
        let sidecar: SidecarProcess | undefined;
        const started = kubernetesSidecar(c.appId, c.namespace, tokenFile(c.name, c.token), (s) => (sidecar = s)).then(
          () => assert.fail(`${c.name}: the sidecar started`),
          () => undefined,
        );
        const deadline = Date.now() + 15_000;
        while (!/could not get a certificate from the Sentry/.test(sidecar?.output ?? '') && Date.now() < deadline) await sleep(50);
        const output = sidecar?.output ?? '';
        assert.match(output, /could not get a certificate from the Sentry.*Kubernetes ServiceAccount token was refused/, `${c.name}:\n${output}`);
        assert.match(output, c.why, c.name);
        await sidecar?.kill();
        await started;
        assert.ok(!sentry.output.includes(c.token), 'the token is never logged');
      }),
    );
    await sentry.waitFor(/refused a certificate request.*kubernetes_token_refused/);
  });

  test('join tokens still work alongside', async () => {
    const sidecar = await startSidecar(env, { appId: 'orders', ...sentry.sidecar('orders') });
    assert.match(sidecar.output, /workload certificate obtained.*spiffe:\/\/public\/ns\/default\/orders/);
  });

  test('incomplete Kubernetes flags stop the Sentry before it creates anything', () => {
    const dir = join(env.home, 'flag-certs');
    const run = (...args: string[]) => spawnSync(process.execPath, [courierBin, 'sentry', '--issuer-credentials', dir, '--port', '0', ...args], { encoding: 'utf8', timeout: 20_000 });
    const cases: Array<[string[], RegExp]> = [
      [['--kubernetes-jwks-file', join(env.home, 'jwks.json')], /--kubernetes-jwks-file needs --kubernetes-issuer/],
      [['--kubernetes-issuer', TEST_ISSUER], /--kubernetes-issuer needs --kubernetes-jwks-file or --kubernetes-jwks-url/],
      [['--kubernetes-jwks-url', 'http://example.com/jwks', '--kubernetes-issuer', TEST_ISSUER], /must use https/],
      [['--kubernetes-jwks-file', join(env.home, 'none.json'), '--kubernetes-issuer', TEST_ISSUER], /none\.json cannot be read/],
    ];
    for (const [args, message] of cases) {
      const r = run(...args);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, message);
    }
    assert.equal(existsSync(dir), false);
  });
});

describe("Sentry reading pods from the API server (Dapr's app id rule)", () => {
  const env = new TestEnv();
  let sentry: SentryProcess;
  let key: SigningKey;
  let api: FakeApiServer;
  const ORDERS_POD = 'orders-7d4b9c6f5-x2v9q';
  const ORDERS_UID = '5b1f6a8e-2c4d-4e9a-9f7b-3d2c1a0b9e8f';

  before(async () => {
    key = await signingKey('cluster-1');
    const jwksFile = join(env.home, 'jwks.json');
    writeFileSync(jwksFile, JSON.stringify(jwks(key)));
    // The API server over TLS with a certificate from a CA of its own, as a cluster's.
    const { material, ca } = await newCa();
    const id = { trustDomain: 'cluster.local', namespace: 'default', appId: 'kubernetes' };
    const { privateKeyPem, csrPem } = await createKeyAndCsr(id);
    const signed = await ca.signWorkload(csrPem, id, { ttlMs: 3_600_000, clockSkewMs: 60_000, dnsNames: ['localhost'] });
    api = await new FakeApiServer({ tls: { certPem: signed.certificateChainPem, keyPem: privateKeyPem }, token: 'sentry-sa-token' }).add(recorded('pod-orders.json')).listen();
    const caFile = join(env.home, 'cluster-ca.crt');
    writeFileSync(caFile, material.rootCertPem);
    const saToken = join(env.home, 'sentry-sa-token');
    writeFileSync(saToken, 'sentry-sa-token\n');
    sentry = await startSentry(env, [
      '--kubernetes-jwks-file', jwksFile, '--kubernetes-issuer', TEST_ISSUER,
      '--kubernetes-api-server', api.url, '--kubernetes-api-ca-file', caFile, '--kubernetes-api-token-file', saToken, '--kubernetes-app-id-from', 'pod',
    ]);
    await sentry.waitFor(/accepting Kubernetes ServiceAccount tokens.*dapr\.io\/app-id annotation/);
  });
  after(async () => {
    await env.close();
    await api.close();
  });

  function sidecarWith(token: string, onSpawn?: (s: SidecarProcess) => void): Promise<SidecarProcess> {
    const file = join(env.home, `token-${Math.random().toString(36).slice(2)}`);
    writeFileSync(file, token);
    return startSidecar(env, {
      appId: 'orders',
      args: ['--enable-mtls', '--sentry-address', sentry.address],
      env: { DAPR_TRUST_ANCHORS: sentry.trustAnchors, NAMESPACE: 'shop', DAPR_SENTRY_TOKEN_FILE: file },
      ...(onSpawn === undefined ? {} : { onSpawn }),
    });
  }

  test("a pod annotated dapr.io/app-id gets that identity, whatever its ServiceAccount's name; once the pod is gone its token gets nothing", async () => {
    const token = await serviceAccountToken(key, { namespace: 'shop', serviceAccount: 'orders', pod: ORDERS_POD, podUid: ORDERS_UID });
    const sidecar = await sidecarWith(token);
    assert.match(sidecar.output, /workload certificate obtained.*spiffe:\/\/public\/ns\/shop\/orders/);
    assert.ok(api.requests.some((r) => r.path === `/api/v1/namespaces/shop/pods/${ORDERS_POD}` && r.authorization === 'Bearer sentry-sa-token'));

    api.pods.clear();
    let refusedSidecar: SidecarProcess | undefined;
    const started = sidecarWith(token, (s) => (refusedSidecar = s)).then(
      () => assert.fail('a sidecar started with the token of a deleted pod'),
      () => undefined,
    );
    const deadline = Date.now() + 15_000;
    while (!/could not get a certificate from the Sentry/.test(refusedSidecar?.output ?? '') && Date.now() < deadline) await sleep(50);
    assert.match(refusedSidecar?.output ?? '', /pod_not_found.*does not exist/);
    await refusedSidecar?.kill();
    await started;
  });

  test('--kubernetes-app-id-from pod without an API server, or with a mapping, stops the Sentry', () => {
    const run = (...args: string[]) =>
      spawnSync(process.execPath, [courierBin, 'sentry', '--issuer-credentials', join(env.home, 'x'), '--port', '0', '--kubernetes-jwks-file', join(env.home, 'jwks.json'), '--kubernetes-issuer', TEST_ISSUER, ...args], {
        encoding: 'utf8',
        timeout: 20_000,
      });
    assert.match(run('--kubernetes-app-id-from', 'pod').stderr, /needs --kubernetes-api-server/);
    assert.match(run('--kubernetes-app-id-from', 'pod', '--kubernetes-api-server', api.url, '--kubernetes-app-id-map', 'm.yaml').stderr, /applies to --kubernetes-app-id-from serviceaccount only/);
    assert.match(run('--kubernetes-app-id-from', 'annotation').stderr, /is not serviceaccount or pod/);
    assert.match(run('--kubernetes-api-server', 'http://api.example.com').stderr, /must be reached over https/);
  });
});
