import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SENTRY_TOKEN_AUDIENCE } from '../constants.js';
import { createKeyAndCsr } from '../../security/index.js';
import { newCa } from '../../security/testing/helpers.js';
import { AppIdPolicy } from './app-ids.js';
import { openKeySet } from './key-set.js';
import { PodDirectory } from './pod-directory.js';
import { FakeApiServer, recorded } from './testing/api-server.js';
import { jwks, serviceAccountToken, signingKey, TEST_ISSUER, type SigningKey } from './testing/cluster.js';
import { KubernetesTokenValidator, type KubernetesTokenFailure, type KubernetesTokenVerdict } from './token-validator.js';

const ask = (appId = 'checkout', namespace = 'shop'): { appId: string; namespace: string } => ({ appId, namespace });

function refused(verdict: KubernetesTokenVerdict, failure: KubernetesTokenFailure, reason: RegExp): void {
  assert.equal(verdict.ok, false, 'the token was accepted');
  if (verdict.ok) return;
  assert.equal(verdict.failure, failure, verdict.reason);
  assert.match(verdict.reason, reason);
}

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

describe('KubernetesTokenValidator', () => {
  let key: SigningKey;
  let other: SigningKey;
  let ec: SigningKey;
  let dir: string;
  let validator: KubernetesTokenValidator;

  before(async () => {
    [key, other, ec] = await Promise.all([signingKey('k1'), signingKey('k2'), signingKey('e1', 'ES256')]);
    dir = mkdtempSync(join(tmpdir(), 'courier-k8s-'));
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwks(key, ec)));
    validator = new KubernetesTokenValidator({ keys: openKeySet({ file: join(dir, 'jwks.json') }), issuer: TEST_ISSUER, audience: SENTRY_TOKEN_AUDIENCE });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('accepts a projected token (RS256 or ES256) for the ServiceAccount name as app id, in its namespace', async () => {
    const verdict = await validator.validate(await serviceAccountToken(key, { pod: 'checkout-1' }), ask());
    assert.deepEqual(verdict, { ok: true, identity: { namespace: 'shop', serviceAccount: 'checkout', pod: 'checkout-1' } });
    assert.equal((await validator.validate(await serviceAccountToken(ec), ask())).ok, true);
    // Several audiences, one of them the Sentry's; a token read from a file with a trailing newline.
    assert.equal((await validator.validate(`${await serviceAccountToken(key, { audience: ['api', SENTRY_TOKEN_AUDIENCE] })}\n`, ask())).ok, true);
  });

  test('refuses expired and not-yet-valid tokens, beyond a minute of clock skew', async () => {
    refused(await validator.validate(await serviceAccountToken(key, { expiresIn: -120 }), ask()), 'expired', /expired at \d{4}-/);
    assert.equal((await validator.validate(await serviceAccountToken(key, { expiresIn: -20 }), ask())).ok, true, 'within the tolerance');
    refused(await validator.validate(await serviceAccountToken(key, { notBefore: 300 }), ask()), 'not_yet_valid', /not valid yet/);
  });

  test('refuses a token for another audience or from another issuer', async () => {
    refused(await validator.validate(await serviceAccountToken(key, { audience: ['https://kubernetes.default.svc'] }), ask()), 'wrong_audience', /audience does not include "courier-sentry"/);
    refused(await validator.validate(await serviceAccountToken(key, { issuer: 'https://other.example' }), ask()), 'wrong_issuer', /not issued by https:\/\/kubernetes/);
  });

  test('refuses a forged signature and an unknown key id', async () => {
    refused(await validator.validate(await serviceAccountToken(other, { kid: 'k1' }), ask()), 'bad_signature', /signature does not verify/);
    refused(await validator.validate(await serviceAccountToken(other), ask()), 'unknown_key', /no key .*jwks\.json/);
    const good = await serviceAccountToken(key);
    const [h, p] = good.split('.');
    const tampered = `${h}.${b64({ ...JSON.parse(Buffer.from(p ?? '', 'base64url').toString()), sub: 'system:serviceaccount:shop:admin' })}.${good.split('.')[2]}`;
    refused(await validator.validate(tampered, ask()), 'bad_signature', /signature/);
  });

  test('refuses a request for another namespace than the pod', async () => {
    refused(await validator.validate(await serviceAccountToken(key), ask('checkout', 'prod')), 'wrong_namespace', /namespace "shop", not "prod"/);
  });

  test('refuses an app id the ServiceAccount may not use; a mapping allows others', async () => {
    refused(await validator.validate(await serviceAccountToken(key), ask('payments')), 'app_id_not_allowed', /ServiceAccount shop\/checkout may not ask for app id "payments" \(it may ask for: checkout/);
    const mapped = new KubernetesTokenValidator({
      keys: openKeySet({ file: join(dir, 'jwks.json') }),
      issuer: TEST_ISSUER,
      audience: SENTRY_TOKEN_AUDIENCE,
      appIds: AppIdPolicy.fromObject({ 'shop/checkout': ['payments', 'cart'], 'shop/tools': '*' }),
    });
    assert.equal((await mapped.validate(await serviceAccountToken(key), ask('payments'))).ok, true);
    refused(await mapped.validate(await serviceAccountToken(key), ask('checkout')), 'app_id_not_allowed', /may ask for: payments, cart/);
    assert.equal((await mapped.validate(await serviceAccountToken(key, { serviceAccount: 'tools' }), ask('anything'))).ok, true);
    assert.equal((await mapped.validate(await serviceAccountToken(key, { serviceAccount: 'tools', namespace: 'prod' }), ask('anything', 'prod'))).ok, false);
  });

  test('refuses malformed tokens', async () => {
    for (const bad of ['', 'abc', 'a.b.c', `${b64({ alg: 'RS256', kid: 'k1' })}.!!!.x`, 'x'.repeat(20_000)]) {
      refused(await validator.validate(bad, ask()), 'malformed', /not (a|a well-formed) JWT/);
    }
  });

  test('refuses tokens that are not pod-bound ServiceAccount tokens', async () => {
    refused(await validator.validate(await serviceAccountToken(key, { claims: { 'kubernetes.io': undefined } }), ask()), 'missing_claims', /lacks kubernetes\.io\.namespace/);
    const noPod = { namespace: 'shop', serviceaccount: { name: 'checkout', uid: 'u' } };
    refused(await validator.validate(await serviceAccountToken(key, { claims: { 'kubernetes.io': noPod } }), ask()), 'missing_claims', /lacks kubernetes\.io\.pod\.name, kubernetes\.io\.pod\.uid/);
    refused(await validator.validate(await serviceAccountToken(key, { claims: { exp: undefined } }), ask()), 'missing_claims', /no "exp" claim/);
    refused(await validator.validate(await serviceAccountToken(key, { claims: { sub: 'system:serviceaccount:shop:admin' } }), ask()), 'subject_mismatch', /subject/);
  });

  test('refuses unsigned (none) and HMAC-signed tokens before looking up a key', async () => {
    const claims = JSON.parse(Buffer.from((await serviceAccountToken(key)).split('.')[1] ?? '', 'base64url').toString()) as unknown;
    refused(await validator.validate(`${b64({ alg: 'none' })}.${b64(claims)}.`, ask()), 'algorithm_not_allowed', /not one Kubernetes uses/);
    // The classic confusion attack: the public key's bytes used as an HMAC secret.
    const head = `${b64({ alg: 'HS256', kid: 'k1' })}.${b64(claims)}`;
    const mac = createHmac('sha256', JSON.stringify(key.jwk)).update(head).digest('base64url');
    refused(await validator.validate(`${head}.${mac}`, ask()), 'algorithm_not_allowed', /RS256/);
  });
});

describe('JWKS sources', () => {
  test('a JWKS file is read again when it changes: a rotated key is picked up', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'courier-k8s-'));
    try {
      const [k1, k2] = await Promise.all([signingKey('old'), signingKey('new')]);
      const file = join(dir, 'jwks.json');
      writeFileSync(file, JSON.stringify(jwks(k1)));
      const errors: string[] = [];
      const v = new KubernetesTokenValidator({ keys: openKeySet({ file }, (m) => errors.push(m)), issuer: TEST_ISSUER, audience: SENTRY_TOKEN_AUDIENCE });
      assert.equal((await v.validate(await serviceAccountToken(k1), ask())).ok, true);
      refused(await v.validate(await serviceAccountToken(k2), ask()), 'unknown_key', /no key/);
      writeFileSync(file, JSON.stringify(jwks(k2)));
      assert.equal((await v.validate(await serviceAccountToken(k2), ask())).ok, true);
      refused(await v.validate(await serviceAccountToken(k1), ask()), 'unknown_key', /no key/);
      writeFileSync(file, '{not json');
      assert.equal((await v.validate(await serviceAccountToken(k2), ask())).ok, true, 'a broken file keeps the keys read before');
      assert.match(errors.join('\n'), /not valid JSON.*keys read before stay in use/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a missing or empty JWKS file, or an http URL off loopback, stops the Sentry from starting', () => {
    assert.throws(() => openKeySet({ file: '/nonexistent/jwks.json' }), /cannot be read/);
    const dir = mkdtempSync(join(tmpdir(), 'courier-k8s-'));
    try {
      writeFileSync(join(dir, 'empty.json'), '{"keys":[]}');
      assert.throws(() => openKeySet({ file: join(dir, 'empty.json') }), /holds no keys/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.throws(() => openKeySet({ url: 'http://kubernetes.default.svc/openid/v1/jwks' }), /must use https/);
    assert.throws(() => openKeySet({ url: 'not a url' }), /is not a URL/);
  });

  describe('a JWKS URL', () => {
    let server: Server;
    let body = '';
    let status = 200;
    let fetches = 0;
    let url = '';

    before(async () => {
      server = createServer((_req, res) => {
        fetches++;
        res.writeHead(status, { 'content-type': 'application/json' }).end(body);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/openid/v1/jwks`;
    });
    after(() => new Promise<void>((resolve) => server.close(() => resolve())));

    test('is fetched once and cached; a new kid after the cooldown fetches again (key rotation)', async () => {
      const [k1, k2] = await Promise.all([signingKey('r1'), signingKey('r2')]);
      body = JSON.stringify(jwks(k1));
      const v = new KubernetesTokenValidator({ keys: openKeySet({ url, cooldownMs: 200 }), issuer: TEST_ISSUER, audience: SENTRY_TOKEN_AUDIENCE });
      fetches = 0;
      assert.equal((await v.validate(await serviceAccountToken(k1), ask())).ok, true);
      assert.equal((await v.validate(await serviceAccountToken(k1), ask())).ok, true);
      assert.equal(fetches, 1, 'cached');
      body = JSON.stringify(jwks(k1, k2));
      refused(await v.validate(await serviceAccountToken(k2), ask()), 'unknown_key', /no key .*127\.0\.0\.1/);
      assert.equal(fetches, 1, 'an unknown kid within the cooldown does not fetch');
      await new Promise((resolve) => setTimeout(resolve, 250));
      assert.equal((await v.validate(await serviceAccountToken(k2), ask())).ok, true);
      assert.equal(fetches, 2);
    });

    test('an unreachable or failing key set is reported as unavailable, not as a bad token', async () => {
      const k = await signingKey('u1');
      status = 500;
      const v = new KubernetesTokenValidator({ keys: openKeySet({ url }), issuer: TEST_ISSUER, audience: SENTRY_TOKEN_AUDIENCE });
      refused(await v.validate(await serviceAccountToken(k), ask()), 'key_set_unavailable', /could not be used/);
      status = 200;
    });
  });
});

test("the API server's JWKS: TLS checked against the cluster CA, the Sentry's own token (re-read) as bearer", async () => {
  const { material, ca } = await newCa();
  const id = { trustDomain: 'public', namespace: 'default', appId: 'kubernetes' };
  const { privateKeyPem, csrPem } = await createKeyAndCsr(id);
  const signed = await ca.signWorkload(csrPem, id, { ttlMs: 3_600_000, clockSkewMs: 60_000, dnsNames: ['localhost'] });
  const key = await signingKey('api');
  const seen: string[] = [];
  const server = createHttpsServer({ key: privateKeyPem, cert: signed.certificateChainPem }, (req, res) => {
    seen.push(req.headers.authorization ?? '');
    if (req.headers.authorization === undefined) res.writeHead(401).end();
    else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks(key)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const dir = mkdtempSync(join(tmpdir(), 'courier-k8s-'));
  try {
    const url = `https://localhost:${(server.address() as AddressInfo).port}/openid/v1/jwks`;
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'sentry-sa-token-1\n');
    const options = { issuer: TEST_ISSUER, audience: SENTRY_TOKEN_AUDIENCE };
    const untrusted = new KubernetesTokenValidator({ keys: openKeySet({ url, bearerTokenFile: tokenFile }), ...options });
    refused(await untrusted.validate(await serviceAccountToken(key), ask()), 'key_set_unavailable', /could not be used/);
    const v = new KubernetesTokenValidator({ keys: openKeySet({ url, caPem: material.rootCertPem, bearerTokenFile: tokenFile, cooldownMs: 0 }), ...options });
    assert.equal((await v.validate(await serviceAccountToken(key), ask())).ok, true);
    writeFileSync(tokenFile, 'sentry-sa-token-2');
    refused(await v.validate(await serviceAccountToken(await signingKey('unknown')), ask()), 'unknown_key', /no key/);
    assert.deepEqual(seen, ['Bearer sentry-sa-token-1', 'Bearer sentry-sa-token-2']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

describe('AppIdPolicy', () => {
  test('defaults to the ServiceAccount name; a mapping entry replaces it', () => {
    const policy = AppIdPolicy.fromObject({ 'shop/checkout': ['payments'] });
    assert.equal(policy.allows('shop', 'cart', 'cart'), true);
    assert.equal(policy.allows('shop', 'checkout', 'checkout'), false);
    assert.equal(policy.allows('shop', 'checkout', 'payments'), true);
    assert.equal(AppIdPolicy.fromObject(null).size, 0);
  });

  test('refuses bad entries, naming them', () => {
    assert.throws(() => AppIdPolicy.fromObject(['x']), /map of/);
    assert.throws(() => AppIdPolicy.fromObject({ checkout: ['a'] }), /"checkout" is not "<namespace>\/<serviceaccount>"/);
    assert.throws(() => AppIdPolicy.fromObject({ 'Shop/a': ['a'] }), /is not/);
    assert.throws(() => AppIdPolicy.fromObject({ 'shop/a': [] }), /list of app ids/);
    assert.throws(() => AppIdPolicy.fromObject({ 'shop/a': ['has.dot'] }), /must not contain dots/);
  });
});

describe('the pod a token names, read from the API server (recorded responses)', () => {
  const ORDERS_UID = '5b1f6a8e-2c4d-4e9a-9f7b-3d2c1a0b9e8f';
  const ORDERS_POD = 'orders-7d4b9c6f5-x2v9q';
  let key: SigningKey;
  let dir: string;
  let api: FakeApiServer;
  let pods: PodDirectory;
  let byPod: KubernetesTokenValidator;
  let bySa: KubernetesTokenValidator;

  before(async () => {
    key = await signingKey('k1');
    dir = mkdtempSync(join(tmpdir(), 'courier-k8s-pods-'));
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwks(key)));
    writeFileSync(join(dir, 'token'), 'sentry-token\n');
    api = await new FakeApiServer({ token: 'sentry-token' }).add(recorded('pod-orders.json')).add(recorded('pod-unannotated.json')).listen();
    pods = new PodDirectory({ apiServer: api.url, tokenFile: join(dir, 'token'), timeoutMs: 1000 });
    const keys = openKeySet({ file: join(dir, 'jwks.json') });
    byPod = new KubernetesTokenValidator({ keys, issuer: TEST_ISSUER, audience: SENTRY_TOKEN_AUDIENCE, pods, appIdFrom: 'pod' });
    bySa = new KubernetesTokenValidator({ keys, issuer: TEST_ISSUER, audience: SENTRY_TOKEN_AUDIENCE, pods });
  });
  after(async () => {
    await pods.close();
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const ordersToken = (spec: { podUid?: string; serviceAccount?: string; pod?: string } = {}): Promise<string> =>
    serviceAccountToken(key, { namespace: 'shop', serviceAccount: spec.serviceAccount ?? 'orders', pod: spec.pod ?? ORDERS_POD, podUid: spec.podUid ?? ORDERS_UID });

  test("with app ids from pods, the pod's dapr.io/app-id decides, as Dapr's Sentry; the Sentry's own token is the bearer", async () => {
    assert.deepEqual(await byPod.validate(await ordersToken(), ask('orders')), { ok: true, identity: { namespace: 'shop', serviceAccount: 'orders', pod: ORDERS_POD } });
    refused(await byPod.validate(await ordersToken(), ask('payments')), 'app_id_not_allowed', /has app id "orders" \(its dapr\.io\/app-id annotation\), not "payments"/);
    assert.equal(api.requests.at(-1)?.path, `/api/v1/namespaces/shop/pods/${ORDERS_POD}`);
    assert.equal(api.requests.at(-1)?.authorization, 'Bearer sentry-token');
    // Without the annotation: the app id the injector defaulted it to (the pod's name here, a StatefulSet's).
    const ledger = await serviceAccountToken(key, { namespace: 'shop', serviceAccount: 'default', pod: 'ledger-0', podUid: '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d' });
    assert.equal((await byPod.validate(ledger, ask('ledger-0'))).ok, true);
    refused(await byPod.validate(ledger, ask('default')), 'app_id_not_allowed', /has app id "ledger-0"/);
  });

  test("a token whose pod is gone, or was replaced by another of the same name, is refused", async () => {
    refused(await byPod.validate(await ordersToken({ pod: 'orders-7d4b9c6f5-gone1' }), ask('orders')), 'pod_not_found', /pod shop\/orders-7d4b9c6f5-gone1, which the token was issued for, does not exist/);
    refused(await byPod.validate(await ordersToken({ podUid: '00000000-0000-4000-8000-000000000000' }), ask('orders')), 'pod_mismatch', /another uid/);
    refused(await bySa.validate(await ordersToken({ serviceAccount: 'intruder' }), ask('intruder')), 'pod_mismatch', /runs as ServiceAccount orders, not intruder/);
  });

  test('with app ids from ServiceAccounts, the pod must still exist', async () => {
    assert.equal((await bySa.validate(await ordersToken(), ask('orders'))).ok, true);
    refused(await bySa.validate(await ordersToken({ pod: 'orders-7d4b9c6f5-gone2' }), ask('orders')), 'pod_not_found', /does not exist/);
  });

  test('an API server that refuses, fails or does not answer makes the token retryable (api_unavailable), naming why', async () => {
    try {
      api.failure = { status: 403, body: recorded('status-forbidden.json') };
      refused(await byPod.validate(await ordersToken(), ask('orders')), 'api_unavailable', /answered 403 \(the Sentry needs get on pods\): pods "orders-7d4b9c6f5-x2v9q" is forbidden/);
      api.failure = { status: 500, body: { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'etcdserver: request timed out', code: 500 } };
      refused(await byPod.validate(await ordersToken(), ask('orders')), 'api_unavailable', /answered 500: etcdserver: request timed out/);
      api.failure = 'hang';
      refused(await byPod.validate(await ordersToken(), ask('orders')), 'api_unavailable', /could not tell whether pod shop\/orders-7d4b9c6f5-x2v9q exists/);
    } finally {
      api.failure = undefined;
    }
    const noToken = new PodDirectory({ apiServer: api.url });
    try {
      await assert.rejects(noToken.get('shop', ORDERS_POD), /answered 401/);
    } finally {
      await noToken.close();
    }
  });

  test('the API server must be https, or http on loopback; app ids from pods need it', () => {
    assert.throws(() => new PodDirectory({ apiServer: 'http://api.example.com' }), /must be reached over https/);
    assert.throws(() => new PodDirectory({ apiServer: 'not a url' }), /is not a URL/);
    assert.throws(() => new KubernetesTokenValidator({ keys: openKeySet({ file: join(dir, 'jwks.json') }), issuer: TEST_ISSUER, audience: SENTRY_TOKEN_AUDIENCE, appIdFrom: 'pod' }), /need the API server/);
  });
});
