// Mutual TLS between sidecars with certificates from Courier's Sentry, and the attacks it must stop.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { PeerCertificate } from 'node:tls';
import { TestEnv } from '../framework/env.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { startSentry, type SentryProcess } from '../framework/sentry-process.js';
import { startApp, type TestApp } from '../framework/test-app.js';
import { send } from '../framework/http-client.js';
import { ChannelPool, tlsClient, type CallResult, type ChannelTarget } from '../../src/grpc/index.js';
import { GrpcStatus } from '../../src/errors/index.js';
import { HttpVerb, internalInvokeRequestStreamCodec, internalInvokeResponseStreamCodec } from '../../src/proto/index.js';
import {
  CertificateAuthority,
  createKeyAndCsr,
  generateCaMaterial,
  loadCaMaterial,
  spiffeIdFromPeerCertificate,
  type SpiffeId,
} from '../../src/security/index.js';

const STREAM = '/dapr.proto.internals.v1.ServiceInvocation/CallLocalStream';

/** A certificate for `id` from `ca`, as a stolen or forged credential would be. */
async function credentialsFrom(ca: CertificateAuthority, id: SpiffeId, options: { ttlMs?: number; now?: Date } = {}) {
  const { privateKeyPem, csrPem } = await createKeyAndCsr(id);
  const signed = await ca.signWorkload(csrPem, id, { ttlMs: options.ttlMs ?? 3_600_000, clockSkewMs: 0, ...(options.now === undefined ? {} : { now: options.now }) });
  return { key: privateKeyPem, cert: signed.certificateChainPem };
}

/** One CallLocalStream call to a sidecar's internal port with the given TLS settings (or none). */
function rawCall(
  port: number,
  tls: { key: string; cert: string; ca: string; expectPath?: string } | undefined,
  metadata: Record<string, { values: string[] }> = {},
): Promise<{ result: CallResult; status?: number; headers?: Record<string, { values?: string[] }> }> {
  const pool = new ChannelPool({
    connectTimeoutMs: 3000,
    ...(tls === undefined
      ? {}
      : {
          ...tlsClient((_t: ChannelTarget) => ({
            key: tls.key,
            cert: tls.cert,
            ca: tls.ca,
            checkServerIdentity: (_h: string, cert: PeerCertificate) => {
              const id = spiffeIdFromPeerCertificate(cert);
              return tls.expectPath === undefined || (id !== undefined && `/ns/${id.namespace}/${id.appId}` === tls.expectPath)
                ? undefined
                : new Error(`unexpected server identity ${JSON.stringify(id)}`);
            },
          })),
        }),
  });
  return new Promise((resolve) => {
    const call = pool.get({ host: '127.0.0.1', port, identity: tls?.expectPath ?? 'any' }).call(STREAM, {});
    let first: ReturnType<typeof internalInvokeResponseStreamCodec.decode> | undefined;
    call.setReader({
      headers: () => {},
      message: (m) => (first ??= internalInvokeResponseStreamCodec.decode(m)),
      end: (result) => {
        void pool.close();
        resolve({ result, ...(first?.response?.status?.code === undefined ? {} : { status: first.response.status.code }), ...(first?.response?.headers === undefined ? {} : { headers: first.response.headers }) });
      },
    });
    call.sendMessage(
      internalInvokeRequestStreamCodec.encode({
        request: { ver: 1, metadata, message: { method: 'whoami', httpExtension: { verb: HttpVerb.GET } } },
      }),
    );
    call.end();
  });
}

describe('mutual TLS', () => {
  const env = new TestEnv();
  let sentry: SentryProcess;
  let realCa: CertificateAuthority;
  let appB: TestApp;
  let a: SidecarProcess;
  let b: SidecarProcess;

  before(async () => {
    sentry = await startSentry(env);
    realCa = await CertificateAuthority.fromMaterial(loadCaMaterial(sentry.dir));
    appB = await startApp(env, (app) =>
      app.route('/whoami', (req, res) => {
        res.writeHead(200, { 'x-caller': String(req.headers['dapr-caller-app-id']), 'x-caller-ns': String(req.headers['dapr-caller-namespace']) });
        res.end(`caller=${String(req.headers['dapr-caller-app-id'])}`);
      }),
    );
    a = await startSidecar(env, { appId: 'a', ...sentry.sidecar('a') });
    b = await startSidecar(env, { appId: 'b', appPort: appB.port, waitForApp: true, ...sentry.sidecar('b') });
  });
  after(() => env.close());

  test('calls between sidecars work over mTLS, and the callee learns the caller from its certificate', async () => {
    const res = await send(a.httpPort, { path: '/v1.0/invoke/b/method/whoami', headers: { 'dapr-caller-app-id': 'spoofed' } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.text, 'caller=a');
    assert.match(b.output, /workload certificate obtained.*spiffe:\/\/public\/ns\/default\/b/);
  });

  test('attack: a plaintext client is refused by the internal port', async () => {
    const before = appB.seen.length;
    const { result } = await rawCall(b.internalPort, undefined);
    assert.equal(result.transport, 'connect-failed', JSON.stringify(result));
    assert.equal(appB.seen.length, before, 'nothing reached the app');
  });

  test('attack: a client certificate from another CA is refused', async () => {
    const foreign = await CertificateAuthority.fromMaterial(await generateCaMaterial({ trustDomain: 'public' }));
    const creds = await credentialsFrom(foreign, { trustDomain: 'public', namespace: 'default', appId: 'a' });
    const { result } = await rawCall(b.internalPort, { ...creds, ca: sentry.trustAnchors, expectPath: '/ns/default/b' });
    assert.notEqual(result.code, GrpcStatus.OK);
    assert.ok(result.transport === 'connect-failed' || result.transport === 'reset', JSON.stringify(result));
  });

  test('attack: an expired certificate is refused', async () => {
    const expired = await credentialsFrom(realCa, { trustDomain: 'public', namespace: 'default', appId: 'a' }, { ttlMs: 60_000, now: new Date(Date.now() - 3_600_000) });
    const { result } = await rawCall(b.internalPort, { ...expired, ca: sentry.trustAnchors, expectPath: '/ns/default/b' });
    assert.notEqual(result.code, GrpcStatus.OK, JSON.stringify(result));
  });

  test("attack: a sidecar holding X's certificate cannot pass as Y: the callee uses the certificate's identity", async () => {
    const mallory = await credentialsFrom(realCa, { trustDomain: 'public', namespace: 'default', appId: 'mallory' });
    const { result, status, headers } = await rawCall(
      b.internalPort,
      { ...mallory, ca: sentry.trustAnchors, expectPath: '/ns/default/b' },
      { 'dapr-caller-app-id': { values: ['a'] }, 'dapr-caller-namespace': { values: ['prod'] } },
    );
    assert.equal(result.code, GrpcStatus.OK, result.message);
    assert.equal(status, 200);
    assert.deepEqual(headers?.['X-Caller']?.values, ['mallory']);
    assert.deepEqual(headers?.['X-Caller-Ns']?.values, ['default']);
  });

  test("attack: a sidecar holding X's certificate cannot be reached as Y", async () => {
    // The caller expects app "c" at b's address (as if name resolution pointed there): b cannot prove it is c.
    const aCreds = await credentialsFrom(realCa, { trustDomain: 'public', namespace: 'default', appId: 'a' });
    const { result } = await rawCall(b.internalPort, { ...aCreds, ca: sentry.trustAnchors, expectPath: '/ns/default/c' });
    assert.equal(result.transport, 'connect-failed', JSON.stringify(result));
    assert.match(result.message, /unexpected server identity/);
  });

  test('attack: the same app id in another namespace is not accepted as the target', async () => {
    const aCreds = await credentialsFrom(realCa, { trustDomain: 'public', namespace: 'default', appId: 'a' });
    const { result } = await rawCall(b.internalPort, { ...aCreds, ca: sentry.trustAnchors, expectPath: '/ns/prod/b' });
    assert.equal(result.transport, 'connect-failed', JSON.stringify(result));
  });
});
