// Courier's Sentry: whom it signs for, and what it refuses.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { courierBin, TestEnv } from '../framework/env.js';
import { SentryProcess, startSentry } from '../framework/sentry-process.js';
import { SentryClient } from '../../src/sentry/client.js';
import { ChannelPool, tlsClient } from '../../src/grpc/index.js';
import { GrpcStatus } from '../../src/errors/index.js';
import { certificateInfo, createKeyAndCsr, formatSpiffeId, generateCaMaterial } from '../../src/security/index.js';

describe('Sentry', () => {
  const env = new TestEnv();
  let sentry: SentryProcess;
  let insecure: SentryProcess;
  let client: SentryClient;

  before(async () => {
    sentry = await startSentry(env, ['--workload-cert-ttl', '1h', '--allowed-clock-skew', '1m']);
    client = new SentryClient(sentry.address, { trustDomain: 'localhost', namespace: 'default' }, () => sentry.trustAnchors);
  });
  after(async () => {
    await client.close();
    await env.close();
  });

  async function sign(appId: string, namespace: string, token: string | undefined, csrPem?: string) {
    const csr = csrPem ?? (await createKeyAndCsr()).csrPem;
    return client.sign({ appId, namespace, csrPem: csr, token });
  }

  test('signs a SPIFFE certificate for an app that proves its id with a join token', async () => {
    const before = Date.now();
    const signed = await sign('orders', 'default', sentry.token('orders'));
    const info = certificateInfo(signed.certificateChainPem);
    assert.equal(info.spiffeId === undefined ? '' : formatSpiffeId(info.spiffeId), 'spiffe://public/ns/default/orders');
    assert.ok(Math.abs(info.notAfter.getTime() - (before + 3_600_000)) < 10_000, 'TTL from --workload-cert-ttl');
    assert.ok(Math.abs(info.notBefore.getTime() - (before - 60_000)) < 10_000, 'backdated by --allowed-clock-skew');
    assert.equal(signed.trustAnchorsPem.trim(), sentry.trustAnchors.trim());
    assert.ok(Math.abs(signed.validUntil.getTime() - info.notAfter.getTime()) < 1000);
  });

  test('refuses a request without a token', async () => {
    await assert.rejects(sign('orders', 'default', undefined), /join token is required/);
  });

  test('refuses a token for another app id, or another namespace, or one that expired, or a forged one', async () => {
    await assert.rejects(sign('payments', 'default', sentry.token('orders')), /join token was refused/);
    await assert.rejects(sign('orders', 'prod', sentry.token('orders', 'default')), /join token was refused/);
    await assert.rejects(sign('orders', 'default', sentry.token('orders', 'default', Date.now() - 1000)), /join token was refused/);
    const forged = sentry.token('orders').replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'));
    await assert.rejects(sign('orders', 'default', forged), /join token was refused/);
  });

  test('refuses invalid app ids and namespaces, and a missing or malformed CSR', async () => {
    await assert.rejects(sign('has.dot', 'default', sentry.token('orders')), /must not contain dots/);
    await assert.rejects(sign('x'.repeat(65), 'default', sentry.token('orders')), /at most 64/);
    await assert.rejects(sign('orders', '', sentry.token('orders')), /no namespace/);
    await assert.rejects(sign('orders', 'default', sentry.token('orders'), '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n'), /did not sign/);
  });

  test('refuses a malformed request', async () => {
    const pool = new ChannelPool({
      ...tlsClient(() => ({ ca: sentry.trustAnchors, servername: 'localhost', checkServerIdentity: () => undefined })),
    });
    const result = await new Promise<{ code: number }>((resolve) => {
      const call = pool.get({ host: '127.0.0.1', port: sentry.port }).call('/dapr.proto.sentry.v1.CA/SignCertificate', {});
      call.setReader({ headers: () => {}, message: () => {}, end: resolve });
      call.sendMessage(Buffer.from([0xff, 0xff, 0xff, 0x01]));
      call.end();
    });
    await pool.close();
    assert.equal(result.code, GrpcStatus.INVALID_ARGUMENT);
  });

  test('a client that does not trust the Sentry refuses to talk to it', async () => {
    const foreign = await generateCaMaterial({ trustDomain: 'public' });
    const stranger = new SentryClient(sentry.address, { trustDomain: 'localhost', namespace: 'default' }, () => foreign.rootCertPem);
    await assert.rejects(stranger.sign({ appId: 'orders', namespace: 'default', csrPem: (await createKeyAndCsr()).csrPem, token: sentry.token('orders') }), /did not sign: .*certificate/);
    await stranger.close();
  });

  test('--insecure signs without a token (local development only, and says so)', async () => {
    insecure = env.track(new SentryProcess(env, ['--insecure'], join(env.home, 'insecure-certs')));
    await insecure.start();
    const open = new SentryClient(insecure.address, { trustDomain: 'localhost', namespace: 'default' }, () => insecure.trustAnchors);
    const signed = await open.sign({ appId: 'anyone', namespace: 'default', csrPem: (await createKeyAndCsr()).csrPem, token: undefined });
    assert.equal(formatSpiffeId(certificateInfo(signed.certificateChainPem).spiffeId ?? { trustDomain: '', namespace: '', appId: '' }), 'spiffe://public/ns/default/anyone');
    await open.close();
    assert.match(insecure.output, /--insecure/);
  });

  test('courier sentry token prints a token the Sentry accepts', async () => {
    const r = spawnSync(process.execPath, [courierBin, 'sentry', 'token', '--app-id', 'inventory', '--issuer-credentials', sentry.dir], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const token = r.stdout.trim();
    const signed = await sign('inventory', 'default', token);
    assert.match(signed.certificateChainPem, /BEGIN CERTIFICATE/);
  });
});
