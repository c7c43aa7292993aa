// Courier's Sentry: whom it signs for, and what it refuses.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { courierBin, TestEnv } from '../framework/env.js';
import { SentryCaller, SentryProcess, startSentry } from '../framework/sentry-process.js';
import { startSidecar } from '../framework/sidecar-process.js';
import { SentryClient } from '../../src/sentry/client.js';
import { ChannelPool, tlsClient } from '../../src/grpc/index.js';
import { GrpcStatus } from '../../src/errors/index.js';
import { TokenValidator, type SignCertificateRequest } from '../../src/proto/index.js';
import { CertificateAuthority, certificateInfo, createKeyAndCsr, formatSpiffeId, generateCaMaterial } from '../../src/security/index.js';

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

/** A well-formed request for `appId` in `default` with a fresh CSR; the token as given. */
async function request(appId: string, token: string | undefined): Promise<SignCertificateRequest> {
  const { csrPem } = await createKeyAndCsr();
  return { id: appId, namespace: 'default', certificateSigningRequest: Buffer.from(csrPem), token: token ?? '', tokenValidator: TokenValidator.JWKS };
}

/** A token for `appId` whose signature was tampered with. */
function forged(sentry: SentryProcess, appId: string): string {
  return sentry.token(appId).replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'));
}

/** Polls `condition` every 100 ms until true; fails after `timeoutMs` with `what`. */
async function eventually(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(100);
  }
}

describe('Sentry abuse resistance', () => {
  const env = new TestEnv();
  after(() => env.close());

  async function sentryWith(name: string, args: string[]): Promise<SentryProcess> {
    return env.track(new SentryProcess(env, args, join(env.home, name))).start();
  }

  function caller(sentry: SentryProcess, localAddress: string, credentials: { key?: string; cert?: string } = {}): SentryCaller {
    return env.track(new SentryCaller(sentry, { localAddress, ...credentials }));
  }

  test('over its burst, a client address is refused RESOURCE_EXHAUSTED before its request is read; other addresses are not', async () => {
    // One request every 5 s after a burst of 3: wide enough that a slow machine does not refill it mid-test.
    const sentry = await sentryWith('address-limit', ['--address-rate-limit', '0.2', '--address-burst', '3']);
    const requests = await Promise.all([1, 2, 3, 4, 5].map(() => request('orders', sentry.token('orders'))));
    const limited = caller(sentry, '127.0.0.3');
    const answers = [];
    for (const r of requests.slice(0, 4)) answers.push(await limited.call(r));
    assert.deepEqual(
      answers.map((a) => a.code),
      [GrpcStatus.OK, GrpcStatus.OK, GrpcStatus.OK, GrpcStatus.RESOURCE_EXHAUSTED],
    );
    assert.equal(answers[3]?.message, 'too many certificate requests from this address (at most 3 at once, then 0.2 a second); retry later');
    // Not even read: garbage is refused for the rate, not for being garbage.
    const garbage = await limited.call(Buffer.from([0xff, 0xff, 0xff, 0x01]));
    assert.equal(garbage.code, GrpcStatus.RESOURCE_EXHAUSTED);
    const other = caller(sentry, '127.0.0.4');
    assert.equal((await other.call(requests[4] as SignCertificateRequest)).code, GrpcStatus.OK, 'another address has its own allowance');
    // One request every 5 s comes back.
    const again = await request('orders', sentry.token('orders'));
    await eventually('the limited address is allowed again', async () => (await limited.call(again)).code === GrpcStatus.OK, 15_000);
  });

  test('the per-identity limit is spent only by requests that prove the identity: naming an app does not lock it out', async () => {
    // After a burst of 2, one request every 100 s: nothing refills during the test.
    const sentry = await sentryWith('identity-limit', ['--identity-rate-limit', '0.01', '--identity-burst', '2']);
    const attacker = caller(sentry, '127.0.0.5');
    for (let i = 0; i < 40; i++) {
      const r = await attacker.call(await request('payments', forged(sentry, 'payments')));
      assert.equal(r.code, GrpcStatus.PERMISSION_DENIED, `forged request ${i + 1}: ${r.message}`);
    }
    const first = caller(sentry, '127.0.0.6');
    const second = caller(sentry, '127.0.0.7');
    assert.equal((await first.call(await request('payments', sentry.token('payments')))).code, GrpcStatus.OK);
    assert.equal((await second.call(await request('payments', sentry.token('payments')))).code, GrpcStatus.OK);
    // The identity's burst is spent, from whichever address it is asked.
    const over = await first.call(await request('payments', sentry.token('payments')));
    assert.equal(over.code, GrpcStatus.RESOURCE_EXHAUSTED);
    assert.match(over.message, /^too many certificate requests for this app id \(at most 2 at once, then 0\.01 a second\); retry later$/);
    // Refused before the CSR is looked at: an invalid one gets the same answer.
    const badCsr = await second.call({ ...(await request('payments', sentry.token('payments'))), certificateSigningRequest: Buffer.from('not a CSR') });
    assert.equal(badCsr.code, GrpcStatus.RESOURCE_EXHAUSTED);
    assert.equal((await first.call(await request('orders', sentry.token('orders')))).code, GrpcStatus.OK, 'other identities are not affected');
  });

  test('a flood of bad requests from one address: the log stays a few lines, summarised; another identity still gets certificates', async () => {
    const sentry = await sentryWith('flood', ['--refusal-log-interval', '1s']);
    const logBefore = sentry.output.length;
    const bad = await request('orders', forged(sentry, 'orders'));
    const attackers = [caller(sentry, '127.0.0.2'), caller(sentry, '127.0.0.2')];
    const codes = new Map<number, number>();
    let sent = 0;
    const stopAt = Date.now() + 4000;
    const flood = async (c: SentryCaller): Promise<void> => {
      while (Date.now() < stopAt && sent < 20_000) {
        sent++;
        const r = await c.call(bad);
        codes.set(r.code, (codes.get(r.code) ?? 0) + 1);
      }
    };
    const legit = caller(sentry, '127.0.0.1');
    let certificates = 0;
    const failures: string[] = [];
    const meanwhile = (async () => {
      while (Date.now() < stopAt) {
        const r = await legit.call(await request('payments', sentry.token('payments')));
        if (r.code === GrpcStatus.OK) certificates++;
        else failures.push(r.message);
        await sleep(200);
      }
    })();
    await Promise.all([...attackers.flatMap((c) => Array.from({ length: 16 }, () => flood(c))), meanwhile]);
    const refused = [...codes.values()].reduce((a, b) => a + b, 0);
    assert.ok(refused >= 1000, `only ${refused} requests were sent`);
    assert.equal(codes.get(GrpcStatus.OK), undefined);
    assert.ok((codes.get(GrpcStatus.RESOURCE_EXHAUSTED) ?? 0) > refused / 2, 'most are rate limited');
    assert.deepEqual(failures, []);
    assert.ok(certificates >= 2, `${certificates} certificates for the legitimate client during the flood`);

    // Every refusal is accounted for in the summaries, and nothing else about it was logged.
    const summaries = (): number =>
      [...sentry.output.slice(logBefore).matchAll(/msg="refused (\d+) certificate requests? in the last 1s/g)].reduce((n, m) => n + Number(m[1]), 0);
    await eventually(`summaries count all ${refused} refusals`, () => summaries() === refused, 10_000);
    const log = sentry.output.slice(logBefore);
    const refusalLines = log.split('\n').filter((l) => /refused/.test(l));
    const firstLines = refusalLines.filter((l) => /msg="refused a certificate request/.test(l));
    assert.deepEqual(
      firstLines.map((l) => /kind=(\w+)/.exec(l)?.[1]).sort(),
      ['rate_limited_address', 'token_refused'],
      'one line for the first refusal of each kind',
    );
    assert.ok(refusalLines.length <= 2 + 12, `${refusalLines.length} lines about refusals:\n${refusalLines.join('\n')}`);
    const bytes = Buffer.byteLength(refusalLines.join('\n'));
    assert.ok(bytes < 8 * 1024, `${bytes} bytes of log about ${refused} refusals`);
    assert.match(log, /top_clients="127\.0\.0\.2 \d+ \(rate_limited_address=\d+ token_refused=\d+\)"/);
  });

  test('connections beyond --max-connections-per-address are closed before the TLS handshake; other addresses are not', async () => {
    const sentry = await sentryWith('connection-cap', ['--max-connections-per-address', '2']);
    const open = (localAddress: string): Promise<TLSSocket | undefined> =>
      new Promise((resolve) => {
        // tls.connect passes the socket options (localAddress) on to net.connect.
        const options: ConnectionOptions & { localAddress: string } = {
          host: '127.0.0.1',
          port: sentry.port,
          localAddress,
          ca: sentry.trustAnchors,
          servername: 'localhost',
          ALPNProtocols: ['h2'],
          checkServerIdentity: () => undefined,
        };
        const socket = tlsConnect(options);
        socket.once('secureConnect', () => resolve(socket));
        socket.once('error', () => resolve(undefined));
        socket.once('close', () => resolve(undefined));
      });
    const held = [await open('127.0.0.8'), await open('127.0.0.8')];
    try {
      assert.ok(held.every((s) => s !== undefined), 'two connections are allowed');
      assert.equal(await open('127.0.0.8'), undefined, 'the third is closed');
      const elsewhere = await open('127.0.0.9');
      assert.ok(elsewhere !== undefined);
      elsewhere.destroy();
      held[0]?.destroy();
      await eventually('a connection is allowed again once one closed', async () => {
        const s = await open('127.0.0.8');
        s?.destroy();
        return s !== undefined;
      });
    } finally {
      for (const s of held) s?.destroy();
    }
    await sentry.waitFor(/kind=too_many_connections/);
  });

  test('a renewing sidecar proves its identity with its current certificate: an expired or missing token no longer matters', async () => {
    const sentry = await sentryWith('renewal', []);
    const { privateKeyPem, csrPem } = await createKeyAndCsr();
    const joined = await caller(sentry, '127.0.0.10').call({ id: 'orders', namespace: 'default', certificateSigningRequest: Buffer.from(csrPem), token: sentry.token('orders') });
    assert.equal(joined.code, GrpcStatus.OK);
    const cert = Buffer.from(joined.response?.workloadCertificate ?? []).toString();
    const renewing = caller(sentry, '127.0.0.10', { key: privateKeyPem, cert });
    const renewed = await renewing.call(await request('orders', sentry.token('orders', 'default', Date.now() - 1000)));
    assert.equal(renewed.code, GrpcStatus.OK, renewed.message);
    const info = certificateInfo(Buffer.from(renewed.response?.workloadCertificate ?? []).toString());
    assert.equal(info.spiffeId === undefined ? '' : formatSpiffeId(info.spiffeId), 'spiffe://public/ns/default/orders');
    assert.equal((await renewing.call(await request('orders', undefined))).code, GrpcStatus.OK, 'no token at all');
    await sentry.waitFor(/issued a workload certificate.* proof=certificate/);

    const other = await renewing.call(await request('payments', undefined));
    assert.equal(other.code, GrpcStatus.PERMISSION_DENIED);
    assert.match(other.message, /^the client certificate is for spiffe:\/\/public\/ns\/default\/orders, not spiffe:\/\/public\/ns\/default\/payments; a join token is required/);
    // A certificate from another CA proves nothing.
    const foreign = await generateCaMaterial({ trustDomain: 'public' });
    const foreignCa = await CertificateAuthority.fromMaterial(foreign);
    const stranger = await createKeyAndCsr();
    const strangerCert = await foreignCa.signWorkload(stranger.csrPem, { trustDomain: 'public', namespace: 'default', appId: 'orders' }, { ttlMs: 3_600_000, clockSkewMs: 0 });
    const impostor = caller(sentry, '127.0.0.11', { key: stranger.privateKeyPem, cert: strangerCert.certificateChainPem });
    const refused = await impostor.call(await request('orders', undefined));
    assert.equal(refused.code, GrpcStatus.PERMISSION_DENIED);
    assert.match(refused.message, /^a join token is required/);
  });

  test('a sidecar keeps renewing after its join token expired', async () => {
    const sentry = await sentryWith('sidecar-renewal', ['--workload-cert-ttl', '4s', '--allowed-clock-skew', '1s']);
    // Long enough for the sidecar to start on a busy machine: the first certificate needs the token.
    const expiresAt = Date.now() + 10_000;
    const settings = sentry.sidecar('a');
    const sidecar = await startSidecar(env, { appId: 'a', args: settings.args, env: { ...settings.env, COURIER_SENTRY_TOKEN: sentry.token('a', 'default', expiresAt) } });
    assert.ok(Date.now() < expiresAt, 'the sidecar started before its token expired');
    // Certificates live 4 s and are renewed every 2 s: wait for three renewals after the token expired.
    const obtained = (): number => sidecar.output.match(/workload certificate obtained/g)?.length ?? 0;
    while (Date.now() < expiresAt + 100) await sleep(100);
    const atExpiry = obtained();
    await eventually('three renewals after the token expired', () => obtained() >= atExpiry + 3, 30_000);
    assert.doesNotMatch(sidecar.output, /renewing the workload certificate failed/);
    assert.match(sentry.output, /spiffe_id=spiffe:\/\/public\/ns\/default\/a .*proof=certificate/);
  });
});

describe('courier sentry token', () => {
  const env = new TestEnv();
  const dir = join(env.home, 'certs');
  after(() => env.close());

  function token(args: string[]): { status: number | null; stdout: string; stderr: string } {
    return spawnSync(process.execPath, [courierBin, 'sentry', 'token', '--app-id', 'inventory', '--issuer-credentials', dir, ...args], { encoding: 'utf8' });
  }

  function expiry(printed: string): number | undefined {
    const payload = printed.trim().split('.')[1] ?? '';
    return (JSON.parse(Buffer.from(payload, 'base64url').toString()) as { expiresAtMs?: number }).expiresAtMs;
  }

  test('a token expires after 24 h unless told otherwise, and says until when on standard error', () => {
    const before = Date.now();
    const r = token([]);
    assert.equal(r.status, 0, r.stderr);
    const at = expiry(r.stdout);
    assert.ok(at !== undefined && Math.abs(at - (before + 24 * 3_600_000)) < 60_000, `expires at ${String(at)}`);
    assert.match(r.stderr, new RegExp(`usable to start sidecars until ${new Date(at).toISOString().slice(0, 16)}`));
    const month = token(['--ttl', '720h']);
    assert.ok(Math.abs((expiry(month.stdout) ?? 0) - (before + 720 * 3_600_000)) < 60_000);
  });

  test('--ttl never (or 0) makes a token without expiry, with a warning', () => {
    for (const ttl of ['never', '0']) {
      const r = token(['--ttl', ttl]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(expiry(r.stdout), undefined);
      assert.match(r.stderr, /^courier sentry token: warning: this token never expires: whoever copies it can get certificates for inventory in default until .*token\.key is replaced\n$/);
    }
    const bad = token(['--ttl', 'soon']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /--ttl: "soon" is not a duration/);
  });
});

describe('Sentry key files', { skip: process.platform === 'win32' && 'POSIX file modes' }, () => {
  const env = new TestEnv();
  after(() => env.close());

  function runSentry(dir: string): { status: number | null; stderr: string } {
    return spawnSync(process.execPath, [courierBin, 'sentry', '--issuer-credentials', dir, '--port', '0'], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, COURIER_HOME: env.home } });
  }

  test('the Sentry refuses to start with an issuer.key or token.key its group or others can read or write, in one line naming file, mode and fix', async () => {
    const sentry = await env.track(new SentryProcess(env, [], join(env.home, 'loose'))).start();
    await sentry.stop();
    const issuerKey = join(sentry.dir, 'issuer.key');
    const tokenKey = join(sentry.dir, 'token.key');
    chmodSync(issuerKey, 0o644);
    const issuer = runSentry(sentry.dir);
    assert.equal(issuer.status, 1);
    assert.equal(issuer.stderr, `courier: CA issuer key ${issuerKey} has mode 0644: its group and others can read it; a private key must be readable by its owner only: chmod 600 ${issuerKey}\n`);
    chmodSync(issuerKey, 0o600);
    chmodSync(tokenKey, 0o660);
    const token = runSentry(sentry.dir);
    assert.equal(token.status, 1);
    assert.equal(token.stderr, `courier: join-token key ${tokenKey} has mode 0660: its group can read and write it; a private key must be readable by its owner only: chmod 600 ${tokenKey}\n`);
    const minting = spawnSync(process.execPath, [courierBin, 'sentry', 'token', '--app-id', 'a', '--issuer-credentials', sentry.dir], { encoding: 'utf8' });
    assert.equal(minting.status, 1);
    assert.match(minting.stderr, /join-token key .* has mode 0660/);
    chmodSync(tokenKey, 0o600);
    await sentry.start();
  });

  test('--issuer-credentials-from copies a CA mounted with loose modes (a Kubernetes Secret volume) owner-only, and signs with it', async () => {
    const original = await env.track(new SentryProcess(env, [], join(env.home, 'original'))).start();
    await original.stop();
    // As a Secret volume with an fsGroup presents them: group-readable, not the Sentry's to chmod.
    const mounted = join(env.home, 'mounted');
    mkdirSync(mounted);
    for (const name of ['ca.crt', 'issuer.crt', 'issuer.key', 'token.key']) {
      copyFileSync(join(original.dir, name), join(mounted, name));
      chmodSync(join(mounted, name), 0o440);
    }
    assert.equal(runSentry(mounted).status, 1, 'used in place, the loose key is refused');
    const copied = await env.track(new SentryProcess(env, ['--issuer-credentials-from', mounted], join(env.home, 'in-memory', 'credentials'))).start();
    assert.equal(statSync(join(copied.dir, 'issuer.key')).mode & 0o777, 0o600);
    assert.equal(statSync(join(copied.dir, 'token.key')).mode & 0o777, 0o600);
    assert.equal(statSync(join(env.home, 'in-memory', 'credentials')).mode & 0o777, 0o700);
    // The same CA: a token minted with the original's key is accepted and the chain ends at its root.
    const copiedClient = new SentryClient(copied.address, { trustDomain: 'localhost', namespace: 'default' }, () => original.trustAnchors);
    try {
      const signed = await copiedClient.sign({ appId: 'orders', namespace: 'default', csrPem: (await createKeyAndCsr()).csrPem, token: original.token('orders') });
      assert.equal(signed.trustAnchorsPem.trim(), original.trustAnchors.trim());
    } finally {
      await copiedClient.close();
      await copied.stop();
    }
    // An incomplete set is refused, naming what is missing.
    rmSync(join(mounted, 'issuer.crt'));
    const incomplete = spawnSync(process.execPath, [courierBin, 'sentry', '--issuer-credentials', join(env.home, 'other'), '--issuer-credentials-from', mounted, '--port', '0'], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, COURIER_HOME: env.home } });
    assert.equal(incomplete.status, 1);
    assert.match(incomplete.stderr, /mounted lacks issuer\.crt/);
  });

  test('courier init creates its directories 0700 and its keys 0600 whatever the umask', () => {
    const home = join(env.home, 'init-umask');
    const r = spawnSync('/bin/sh', ['-c', 'umask 277 && exec "$@"', 'sh', process.execPath, courierBin, 'init'], { encoding: 'utf8', env: { ...process.env, COURIER_HOME: home } });
    assert.equal(r.status, 0, r.stderr);
    const mode = (path: string): string => (statSync(path).mode & 0o777).toString(8);
    assert.equal(mode(home), '700');
    assert.equal(mode(join(home, 'certs')), '700');
    assert.equal(mode(join(home, 'certs', 'issuer.key')), '600');
    assert.equal(mode(join(home, 'certs', 'token.key')), '600');
  });
});

test('courier sentry --help documents the limits and their defaults', () => {
  const r = spawnSync(process.execPath, [courierBin, 'sentry', '--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0);
  for (const line of [
    /--address-rate-limit <n> .*\(default 10\)/,
    /--address-burst <n> .*\(default 100\)/,
    /--identity-rate-limit <n> .*\(default 20\)/,
    /--identity-burst <n> .*\(default 500\)/,
    /--max-connections-per-address <n> .*\(default 64\)/,
    /--max-tracked-clients <n> .*\(default 10000\)/,
    /--refusal-log-interval <duration> .*\(default 10s\)/,
  ]) {
    assert.match(r.stdout, line);
  }
});
