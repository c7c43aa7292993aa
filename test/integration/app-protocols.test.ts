// The app channel's protocols (`--app-protocol https`, `h2c`, `grpcs`, and the deprecated `--app-ssl`):
// real apps serving TLS with a certificate made here, HTTP/2 without TLS, and gRPC over TLS, called
// through real sidecars; and apps that speak another protocol than the sidecar was told.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { TestEnv } from '../framework/env.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { startApp, TestApp, type Handler } from '../framework/test-app.js';
import { errorOf, jsonOf, send } from '../framework/http-client.js';
import { writeBytes } from '../framework/streams.js';
import { appCertificate, type KeyPairPem } from '../framework/test-pki.js';
import { echoClient, echoUnary, md, startGrpcApp, type GrpcTestApp } from '../framework/grpc-apps.js';
import { appDirectory, CliProcess, freePort, trackPids, waitForHealthz } from '../framework/cli-process.js';

const MiB = 1024 * 1024;

/** The app's view of a request: what it got and over what. */
const describeRequest: Handler = (req, res, body) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(
    JSON.stringify({
      method: req.method,
      url: req.url,
      httpVersion: req.httpVersion,
      encrypted: (req.socket as Partial<TLSSocket>).encrypted === true,
      body: body.toString(),
    }),
  );
};

const sha256: Handler = (_req, res, body) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`${body.length} ${createHash('sha256').update(body).digest('hex')}`);
};

/** Streams `bytes` (a query parameter) of a pattern to the caller, writing only as fast as it is taken. */
const streamOut: Handler = (req, res) => {
  const total = Number(new URL(req.url ?? '', 'http://x').searchParams.get('bytes'));
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  writeBytes(res, total, 64 * 1024, (offset) => offset % 251);
};

/** Routes shared by the HTTP test apps of every protocol. */
function httpRoutes(app: TestApp): void {
  app.route('/describe', describeRequest).route('/sha256', sha256).route('/stream-out', streamOut).route('/healthz', (_req, res) => res.end('ok'));
  // Echoes the request body as it arrives (no buffering): a streaming round trip.
  app.stream('/echo-stream', (req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    req.pipe(res);
  });
}

interface RoundTrip {
  status: number;
  /** SHA-256 of what was sent and of what came back. */
  sent: string;
  received: string;
  receivedBytes: number;
  /** The answer's first bytes, as text. */
  text: string;
}

/** POSTs `total` bytes (a pattern) in chunks to `path` and reads the whole answer. */
function roundTrip(port: number, path: string, total: number): Promise<RoundTrip> {
  const sentHash = createHash('sha256');
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path, headers: { 'content-type': 'application/octet-stream' } }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      let text = '';
      res.on('data', (d: Buffer) => {
        bytes += d.length;
        hash.update(d);
        if (text.length < 200) text += d.toString('latin1').slice(0, 200);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, sent: sentHash.digest('hex'), received: hash.digest('hex'), receivedBytes: bytes, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    writeBytes(req, total, 256 * 1024, (offset) => offset % 251, (piece) => sentHash.update(piece));
  });
}

/** The SHA-256 of the pattern `streamOut` and `roundTrip` write. */
function patternHash(total: number): string {
  const hash = createHash('sha256');
  for (let offset = 0; offset < total; offset += 64 * 1024) hash.update(Buffer.alloc(Math.min(64 * 1024, total - offset), offset % 251));
  return hash.digest('hex');
}

async function fetchAll(url: string): Promise<{ status: number; bytes: number; hash: string }> {
  const res = await fetch(url);
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    bytes += chunk.length;
    hash.update(chunk);
  }
  return { status: res.status, bytes, hash: hash.digest('hex') };
}

async function appConnection(sidecar: SidecarProcess): Promise<Record<string, unknown>> {
  const res = await send(sidecar.httpPort, { path: '/v1.0/metadata' });
  return jsonOf(res).appConnectionProperties as Record<string, unknown>;
}

function occurrences(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

describe('--app-protocol https', () => {
  const env = new TestEnv();
  let cert: KeyPairPem;
  let app: TestApp;
  let caller: SidecarProcess;
  let callee: SidecarProcess;

  before(async () => {
    cert = await appCertificate();
    app = await startApp(env, httpRoutes, 0, { tls: cert });
    callee = await startSidecar(env, {
      appId: 'secure',
      appPort: app.port,
      waitForApp: true,
      args: ['--app-protocol', 'https', '--enable-app-health-check', '--app-health-probe-interval', '1', '--max-body-size', '64Mi'],
    });
    caller = await startSidecar(env, { appId: 'caller', args: ['--max-body-size', '64Mi'] });
  });
  after(() => env.close());

  test('calls reach the app over TLS (self-signed certificate), on kept-alive connections, with health probes over TLS', async () => {
    for (let i = 0; i < 5; i++) {
      const res = await send(caller.httpPort, { method: 'POST', path: `/v1.0/invoke/secure/method/describe?i=${i}`, body: `call ${i}` });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(jsonOf(res), { method: 'POST', url: `/describe?i=${i}`, httpVersion: '1.1', encrypted: true, body: `call ${i}` });
    }
    // Five calls one after another, and the probes (every second): kept-alive connections, one more
    // only when a probe happened to run while a call was on the first.
    assert.ok(app.sockets.size <= 2, `${app.sockets.size} connections for five calls and the probes`);
    // --enable-app-health-check: the sidecar is ready only after a probe succeeded, so GET /healthz was answered over TLS.
    assert.ok(app.seen.some((r) => r.url === '/healthz' && r.headers['user-agent'] === 'courier-health-probe'));
    assert.deepEqual(await appConnection(callee), {
      port: app.port,
      protocol: 'https',
      channelAddress: '127.0.0.1',
      health: { healthCheckPath: '/healthz', healthProbeInterval: '1s', healthProbeTimeout: '500ms', healthThreshold: 3 },
    });
  });

  test('bodies stream over TLS: 20 MiB up and 20 MiB down, intact', async () => {
    const up = await roundTrip(caller.httpPort, '/v1.0/invoke/secure/method/sha256', 20 * MiB);
    assert.equal(up.status, 200);
    assert.equal(up.text, `${20 * MiB} ${up.sent}`);
    const down = await fetchAll(caller.url(`/v1.0/invoke/secure/method/stream-out?bytes=${20 * MiB}`));
    assert.deepEqual(down, { status: 200, bytes: 20 * MiB, hash: patternHash(20 * MiB) });
    const both = await roundTrip(caller.httpPort, '/v1.0/invoke/secure/method/echo-stream', 20 * MiB);
    assert.equal(both.status, 200);
    assert.equal(both.receivedBytes, 20 * MiB);
    assert.equal(both.received, both.sent);
  });
});

/** Waits until `count()` has not changed for `quietMs` (the writer is held back), failing after `timeoutMs`. */
async function stalled(count: () => number, what: string, quietMs = 500, timeoutMs = 20_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = -1;
  let since = Date.now();
  for (;;) {
    const now = count();
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs && now > 0) return now;
    if (Date.now() > deadline) throw new Error(`${what} never stopped (at ${now} bytes)`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Waits until `check()` holds, failing after `timeoutMs`. */
async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The header pairs a test compares: lower-case names, without pseudo-headers and what each transport sets itself. */
function comparable(raw: readonly string[]): Array<[string, string]> {
  const transport = new Set(['host', 'connection', 'keep-alive', 'transfer-encoding', 'content-length', 'date']);
  const out: Array<[string, string]> = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] ?? '').toLowerCase();
    // Every call is its own trace (none was sent): the traceparent's shape is compared, not its ids.
    if (name === 'traceparent') out.push([name, (raw[i + 1] ?? '').replace(/^00-[0-9a-f]{32}-[0-9a-f]{16}-/, '00-<trace>-<span>-')]);
    else if (!name.startsWith(':') && !transport.has(name)) out.push([name, raw[i + 1] ?? '']);
  }
  // Stable: the values of one name keep their order.
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

describe('--app-protocol h2c', () => {
  const env = new TestEnv();
  let app: TestApp;
  let http1App: TestApp;
  let caller: SidecarProcess;
  let callee: SidecarProcess;
  /** Requests of /gather wait here until `gatherCount` of them are in flight. */
  const gathered: Array<() => void> = [];
  let gatherCount = 0;
  let releaseRequest: () => void = () => {};
  let responseWritten = 0;
  let cancelledAtApp = 0;

  const headerRoutes = (a: TestApp): void => {
    httpRoutes(a);
    a.route('/headers', (req, res) => {
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      res.setHeader('x-multi-out', ['one', 'two']);
      res.setHeader('cache-control', 'no-store');
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify(req.rawHeaders));
    });
  };

  before(async () => {
    app = await startApp(
      env,
      (a) => {
        headerRoutes(a);
        a.route('/gather', describeRequest);
        a.stream('/gather', (req, res) => {
          gathered.push(() => describeRequest(req, res, Buffer.alloc(0)));
          if (gathered.length === gatherCount) for (const release of gathered.splice(0)) release();
        });
        // Reads nothing until released, then counts what it gets.
        a.stream('/hold-request', (req, res) => {
          req.pause();
          releaseRequest = () => {
            let bytes = 0;
            req.on('data', (d: Buffer) => (bytes += d.length));
            req.on('end', () => res.end(String(bytes)));
            req.resume();
          };
        });
        // Writes 32 MiB as fast as the caller takes it, counting what it managed to write.
        a.stream('/hold-response', (_req, res) => {
          responseWritten = 0;
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          writeBytes(res, 32 * MiB, 64 * 1024, () => 1, (piece) => (responseWritten += piece.length));
        });
        a.stream('/never', (req) => {
          req.once('close', () => cancelledAtApp++);
        });
      },
      0,
      { h2c: true },
    );
    http1App = await startApp(env, headerRoutes);
    callee = await startSidecar(env, {
      appId: 'h2capp',
      appPort: app.port,
      waitForApp: true,
      args: ['--app-protocol', 'h2c', '--enable-app-health-check', '--app-health-probe-interval', '1', '--max-body-size', '64Mi'],
    });
    // The same routes as an HTTP/1.1 app, to compare with.
    await startSidecar(env, { appId: 'h1app', appPort: http1App.port, waitForApp: true });
    caller = await startSidecar(env, { appId: 'caller', args: ['--max-body-size', '64Mi'] });
  });
  after(() => env.close());

  test('calls reach the app over HTTP/2 without TLS, 20 at once on one session, with the health probes on it', async () => {
    gatherCount = 20;
    const calls = Array.from({ length: 20 }, (_, i) => send(caller.httpPort, { method: 'POST', path: `/v1.0/invoke/h2capp/method/gather?i=${i}`, body: `call ${i}` }));
    const answers = await Promise.all(calls);
    answers.forEach((res, i) => {
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(jsonOf(res), { method: 'POST', url: `/gather?i=${i}`, httpVersion: '2.0', encrypted: false, body: '' });
    });
    assert.equal(app.sessionsUsed, 1, 'every call and probe on one HTTP/2 session');
    assert.ok(app.seen.some((r) => r.url === '/healthz' && r.headers['user-agent'] === 'courier-health-probe'));
    assert.equal((await appConnection(callee)).protocol, 'h2c');
  });

  test('request and response headers are translated exactly as for an HTTP/1.1 app', async () => {
    const headers = {
      'x-multi': ['a', 'b'],
      connection: 'x-hop',
      'x-hop': 'named in Connection: dropped',
      'keep-alive': 'timeout=5',
      'proxy-authorization': 'Basic eA==',
      authorization: 'Bearer t',
      'user-agent': 'tester',
      cookie: 'k=v',
      'grpc-timeout': '1S',
      'x-empty': '',
    };
    const viaH2c = await send(caller.httpPort, { method: 'PUT', path: '/v1.0/invoke/h2capp/method/headers?q=1', headers, body: '{"a":1}' });
    const viaHttp1 = await send(caller.httpPort, { method: 'PUT', path: '/v1.0/invoke/h1app/method/headers?q=1', headers, body: '{"a":1}' });
    assert.equal(viaH2c.status, 201, viaH2c.text);
    assert.equal(viaHttp1.status, 201, viaHttp1.text);
    // The same, but for the id of the app called.
    const seenH2c = comparable(JSON.parse(viaH2c.text) as string[]);
    const seenHttp1 = comparable(JSON.parse(viaHttp1.text) as string[]).map(([n, v]): [string, string] => [n, n === 'dapr-callee-app-id' ? 'h2capp' : v]);
    assert.deepEqual(seenH2c, seenHttp1);
    // What the app got, beyond being the same: the custom values in order, hop-by-hop headers gone.
    assert.deepEqual(seenH2c.filter(([n]) => n === 'x-multi'), [['x-multi', 'a'], ['x-multi', 'b']]);
    for (const hop of ['x-hop', 'proxy-authorization', 'te', 'upgrade']) assert.ok(!seenH2c.some(([n]) => n === hop), hop);
    assert.deepEqual(comparable(viaH2c.rawHeaders), comparable(viaHttp1.rawHeaders));
    assert.deepEqual(viaH2c.headers['set-cookie'], ['a=1', 'b=2']);
  });

  test('bodies stream both ways: 20 MiB up, 20 MiB down, and 20 MiB echoed as it arrives, intact', async () => {
    const up = await roundTrip(caller.httpPort, '/v1.0/invoke/h2capp/method/sha256', 20 * MiB);
    assert.equal(up.status, 200);
    assert.equal(up.text, `${20 * MiB} ${up.sent}`);
    const down = await fetchAll(caller.url(`/v1.0/invoke/h2capp/method/stream-out?bytes=${20 * MiB}`));
    assert.deepEqual(down, { status: 200, bytes: 20 * MiB, hash: patternHash(20 * MiB) });
    const both = await roundTrip(caller.httpPort, '/v1.0/invoke/h2capp/method/echo-stream', 20 * MiB);
    assert.equal(both.status, 200);
    assert.equal(both.receivedBytes, 20 * MiB);
    assert.equal(both.received, both.sent);
  });

  test('flow control: an app that does not read holds the caller back, and a caller that does not read holds the app back', async () => {
    const total = 32 * MiB;
    // Upload to an app that reads nothing yet: the caller's writes stop well before the end.
    let sent = 0;
    const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: caller.httpPort, method: 'POST', path: '/v1.0/invoke/h2capp/method/hold-request' }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', reject);
      writeBytes(req, total, 64 * 1024, () => 2, (piece) => (sent += piece.length));
    });
    const held = await stalled(() => sent, 'the upload');
    assert.ok(held < total, `the caller wrote ${held} of ${total} bytes before being held back`);
    releaseRequest();
    assert.deepEqual(await answer, { status: 200, text: String(total) });

    // Download by a caller that reads nothing yet: the app's writes stop well before the end.
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: caller.httpPort, path: '/v1.0/invoke/h2capp/method/hold-response' }, resolve);
      req.on('error', reject);
      req.end();
    });
    response.pause();
    const written = await stalled(() => responseWritten, 'the app');
    assert.ok(written < total, `the app wrote ${written} of ${total} bytes before being held back`);
    let received = 0;
    const ended = new Promise<void>((resolve) => response.once('end', resolve));
    response.on('data', (d: Buffer) => (received += d.length));
    response.resume();
    await ended;
    assert.equal(received, total);
  });

  test('a caller that gives up cancels the stream at the app', async () => {
    const abort = new AbortController();
    const seen = app.seen.length;
    const call = send(caller.httpPort, { method: 'POST', path: '/v1.0/invoke/h2capp/method/never', body: 'x', signal: abort.signal });
    await until(() => app.seen.slice(seen).some((r) => r.url === '/never'), 'the call to reach the app');
    abort.abort();
    await assert.rejects(call);
    await until(() => cancelledAtApp === 1, 'the app to see its stream closed');
    // The session is still the only one, and still serves.
    const res = await send(caller.httpPort, { path: '/v1.0/invoke/h2capp/method/describe' });
    assert.equal(res.status, 200);
    assert.equal(app.sessionsUsed, 1);
  });

  test('the app restarting on the same port is called again on a new session, without restarting the sidecar', async () => {
    const port = await freePort();
    let restarting = new TestApp({ h2c: true }).route('/v', (_req, res) => res.end('one'));
    await restarting.listen(port);
    const s = await startSidecar(env, { appId: 'h2c-restarter', appPort: port, waitForApp: true, args: ['--app-protocol', 'h2c'] });
    assert.equal((await send(s.httpPort, { path: '/v1.0/invoke/h2c-restarter/method/v' })).text, 'one');
    restarting.checkConnectionsOnClose = false;
    await restarting.close();
    const down = await send(s.httpPort, { path: '/v1.0/invoke/h2c-restarter/method/v' });
    assert.equal(down.status, 500);
    assert.equal(errorOf(down).errorCode, 'ERR_DIRECT_INVOKE');
    restarting = new TestApp({ h2c: true }).route('/v', (_req, res) => res.end('two'));
    await restarting.listen(port);
    env.track(restarting);
    assert.equal((await send(s.httpPort, { path: '/v1.0/invoke/h2c-restarter/method/v' })).text, 'two');
    assert.equal((await send(s.httpPort, { path: '/v1.0/invoke/h2c-restarter/method/v' })).text, 'two');
    assert.equal(restarting.sessionsUsed, 1);
    await s.stop();
  });
});

describe('--app-protocol grpcs', () => {
  const env = new TestEnv();
  let app: GrpcTestApp;
  let caller: SidecarProcess;
  let grpcs: SidecarProcess;
  let appSsl: SidecarProcess;
  /** The calls the app answered. It serves TLS only (grpc-js with `createSsl`), so every one came over TLS. */
  const answered: string[] = [];

  before(async () => {
    const cert = await appCertificate();
    app = await startGrpcApp(env, {}, 0, grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(cert.key), cert_chain: Buffer.from(cert.cert) }], false));
    app.onInvoke = (request, call, callback) => {
      answered.push(`OnInvoke ${call.getPath()}`);
      callback(null, { contentType: 'text/plain', data: { value: Buffer.from(`${request.method}: ${Buffer.from(request.data?.value ?? []).toString()}`) } });
    };
    app.echo.Unary = (call, callback) => {
      answered.push(`Unary ${call.getPath()}`);
      callback(null, call.request);
    };
    const health = ['--enable-app-health-check', '--app-health-probe-interval', '1'];
    [grpcs, appSsl, caller] = await Promise.all([
      startSidecar(env, { appId: 'grpcs', appPort: app.port, waitForApp: true, args: ['--app-protocol', 'grpcs', ...health] }),
      startSidecar(env, { appId: 'legacy', appPort: app.port, waitForApp: true, args: ['--app-protocol', 'grpc', '--app-ssl', ...health] }),
      startSidecar(env, { appId: 'caller' }),
    ]);
  });
  after(() => env.close());

  test('OnInvoke, health checks and proxied calls reach the app over TLS (self-signed certificate)', async () => {
    // Healthy (waitForApp) with --enable-app-health-check: HealthCheck answered over TLS.
    const res = await send(caller.httpPort, { method: 'POST', path: '/v1.0/invoke/grpcs/method/hello', body: 'world' });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.text, 'hello: world');
    const client = echoClient(caller.grpcPort);
    try {
      assert.equal((await echoUnary(client, Buffer.from('proxied'), md({ 'dapr-app-id': 'grpcs' }))).toString(), 'proxied');
    } finally {
      client.close();
    }
    assert.deepEqual(answered, ['OnInvoke /dapr.proto.runtime.v1.AppCallback/OnInvoke', 'Unary /courier.test.Echo/Unary']);
    assert.equal((await appConnection(grpcs)).protocol, 'grpcs');
  });

  test('--app-ssl turns grpc into grpcs, with a deprecation warning', async () => {
    answered.length = 0;
    const res = await send(caller.httpPort, { method: 'POST', path: '/v1.0/invoke/legacy/method/old', body: 'flag' });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.text, 'old: flag');
    assert.deepEqual(answered, ['OnInvoke /dapr.proto.runtime.v1.AppCallback/OnInvoke']);
    assert.equal((await appConnection(appSsl)).protocol, 'grpcs');
    assert.match(appSsl.output, /--app-ssl is deprecated: use --app-protocol https or grpcs instead/);
  });
});

describe('an app that speaks another protocol than --app-protocol says', () => {
  const env = new TestEnv();
  const sidecars = new Map<string, SidecarProcess>();
  const cases: Array<{ id: string; protocol: string; app: 'http' | 'https' | 'h2c' | 'grpc' | 'grpcs'; cause: RegExp }> = [
    { id: 'https-to-http', protocol: 'https', app: 'http', cause: /the app at 127\.0\.0\.1:\d+ does not speak TLS \(it answered in plain text\)/ },
    { id: 'http-to-https', protocol: 'http', app: 'https', cause: /the app at 127\.0\.0\.1:\d+ speaks TLS: use --app-protocol https/ },
    { id: 'h2c-to-http', protocol: 'h2c', app: 'http', cause: /did not answer in HTTP\/2: use --app-protocol http for an HTTP\/1\.1 app/ },
    { id: 'http-to-h2c', protocol: 'http', app: 'h2c', cause: /answered in HTTP\/2: use --app-protocol h2c/ },
    { id: 'grpcs-to-grpc', protocol: 'grpcs', app: 'grpc', cause: /does not speak TLS \(it answered in plain text\).*--app-protocol grpc/ },
    { id: 'grpc-to-grpcs', protocol: 'grpc', app: 'grpcs', cause: /speaks TLS: use --app-protocol grpcs/ },
  ];

  before(async () => {
    const cert = await appCertificate();
    const ports = {
      http: (await startApp(env, httpRoutes)).port,
      https: (await startApp(env, httpRoutes, 0, { tls: cert })).port,
      h2c: (await startApp(env, httpRoutes, 0, { h2c: true })).port,
      grpc: (await startGrpcApp(env)).port,
      grpcs: (await startGrpcApp(env, {}, 0, grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(cert.key), cert_chain: Buffer.from(cert.cert) }], false))).port,
    };
    const started = await Promise.all(
      cases.map((c) => startSidecar(env, { appId: c.id, appPort: ports[c.app], waitForApp: true, args: ['--app-protocol', c.protocol] })),
    );
    cases.forEach((c, i) => sidecars.set(c.id, started[i] as SidecarProcess));
  });
  after(() => env.close());

  for (const c of cases) {
    test(`--app-protocol ${c.protocol} to a ${c.app} app: calls fail at once with ERR_DIRECT_INVOKE naming the likely cause, logged once`, async () => {
      const sidecar = sidecars.get(c.id) as SidecarProcess;
      for (let i = 0; i < 3; i++) {
        const startedAt = Date.now();
        const res = await send(sidecar.httpPort, { method: 'POST', path: `/v1.0/invoke/${c.id}/method/describe`, body: 'x' });
        assert.ok(Date.now() - startedAt < 10_000, 'the call failed without hanging');
        assert.equal(res.status, 500, res.text);
        const error = errorOf(res);
        assert.equal(error.errorCode, 'ERR_DIRECT_INVOKE');
        assert.match(error.message, /error invoking app channel: /);
        assert.match(error.message, c.cause);
      }
      assert.equal(occurrences(sidecar.output, 'calls to the app fail:'), 1, sidecar.output);
      assert.match(sidecar.output, c.cause);
    });
  }
});

describe('--app-ssl', () => {
  const env = new TestEnv();
  after(() => env.close());

  test('courier sidecar --app-ssl calls an HTTPS app, and warns that the flag is deprecated', async () => {
    const app = await startApp(env, httpRoutes, 0, { tls: await appCertificate() });
    const sidecar = await startSidecar(env, { appId: 'legacy', appPort: app.port, waitForApp: true, args: ['--app-ssl'] });
    const res = await send(sidecar.httpPort, { method: 'POST', path: '/v1.0/invoke/legacy/method/describe', body: 'hi' });
    assert.equal(res.status, 200, res.text);
    assert.equal(jsonOf<{ encrypted: boolean }>(res).encrypted, true);
    assert.equal((await appConnection(sidecar)).protocol, 'https');
    assert.match(sidecar.output, /--app-ssl is deprecated: use --app-protocol https or grpcs instead/);
  });

  test('courier run --app-ssl: the app gets APP_PROTOCOL=https and is called over TLS', async () => {
    const cert = await appCertificate();
    const dir = appDirectory(env, {
      'key.pem': cert.key,
      'cert.pem': cert.cert,
      'app.js': `
const https = require('node:https');
const fs = require('node:fs');
console.log('env APP_PROTOCOL=' + process.env.APP_PROTOCOL + ' DAPR_HTTP_PORT=' + process.env.DAPR_HTTP_PORT);
const server = https.createServer({ key: fs.readFileSync('key.pem'), cert: fs.readFileSync('cert.pem') }, (req, res) => res.end('secure ' + req.url));
server.listen(Number(process.env.APP_PORT), '127.0.0.1', () => console.log('ready'));
process.on('SIGTERM', () => { server.close(); process.exit(0); });
`,
    });
    const appPort = await freePort();
    const cli = new CliProcess(env, ['run', '--app-id', 'tlsapp', '--app-port', String(appPort), '--app-ssl', '--', 'node', 'app.js'], { cwd: dir });
    const up = await cli.waitFor(/Courier sidecar for app "tlsapp" is up: .*\(pid (\d+)\)/);
    trackPids(env, () => [Number(up[1])]);
    const line = await cli.waitFor(/== APP == env APP_PROTOCOL=(\S+) DAPR_HTTP_PORT=(\d+)/);
    assert.equal(line[1], 'https');
    const httpPort = Number(line[2]);
    await waitForHealthz(httpPort);
    const res = await send(httpPort, { path: '/v1.0/invoke/tlsapp/method/hello' });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.text, 'secure /hello');
    assert.match(cli.output, /--app-ssl is deprecated: use --app-protocol https or grpcs instead/);
    await cli.close();
    assert.deepEqual(cli.exitStatus, { code: 0, signal: null });
  });
});
