// Calling non-Dapr HTTP services: HTTPEndpoint resources (headers from values, secret stores and the
// environment; client TLS against a real HTTPS server with its own CA that requires a client
// certificate) and http(s) URLs in place of an app id, through the HTTP API and gRPC InvokeService.
import { refusedPort as refusedPortOutsideEphemeralRange } from '../framework/ports.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { courierBin, TestEnv } from '../framework/env.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { startApp, TestApp } from '../framework/test-app.js';
import { errorOf, jsonOf, send } from '../framework/http-client.js';
import { writeBytes } from '../framework/streams.js';
import { TestCa } from '../framework/test-pki.js';
import { daprClient, invokeService, until, type DaprGrpcClient } from '../framework/grpc-apps.js';
import { HttpVerb } from '../../src/proto/index.js';

const MiB = 1024 * 1024;
const FILE_SECRET = 'file-secret-6f1d';
const ENV_SECRET = 'env-secret-93ab';
const ENV_REF_VALUE = 'env-ref-77c2';
const APP_TOKEN = 'app-token-must-stay-home';

/** What the echo routes answer: the request as the external service saw it. */
interface Echo {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  client?: string;
}

function echo(req: IncomingMessage, body: Buffer, client?: string): string {
  const seen: Echo = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: body.toString(), ...(client === undefined ? {} : { client }) };
  return JSON.stringify(seen);
}

function peerName(req: IncomingMessage): string | undefined {
  const cert = (req.socket as TLSSocket).getPeerCertificate();
  const cn = cert.subject?.CN;
  return typeof cn === 'string' ? cn : undefined;
}

/** A YAML stream of resources (JSON is YAML, so PEM values need no indentation care). */
function resources(...docs: object[]): string {
  return docs.map((d) => JSON.stringify(d, null, 1)).join('\n---\n');
}

function endpoint(name: string, spec: object, extra: object = {}): object {
  return { apiVersion: 'dapr.io/v1alpha1', kind: 'HTTPEndpoint', metadata: { name }, spec, ...extra };
}

describe('external endpoints', () => {
  const env = new TestEnv();
  let serverCa: TestCa;
  let secure: TestApp;
  let open: TestApp;
  let plain: TestApp;
  let caller: SidecarProcess;
  let grpcClient: DaprGrpcClient;
  let resourcesDir: string;
  let serverCaFile: string;
  let refusedPort: number;
  /** Bytes of the current upload seen by the secure server so far. */
  let uploadReceived = 0;
  /** Resolved by the test once the first part of a download has reached it. */
  let releaseDownload: () => void = () => {};
  let flakyBreaks = 0;
  let flakySeen = 0;

  before(async () => {
    serverCa = await TestCa.create('external service CA');
    const clientCa = await TestCa.create('client CA');
    const strangerCa = await TestCa.create('a CA nobody trusts');
    const serverCert = await serverCa.server();
    const client = await clientCa.client('courier-client');
    const stranger = await strangerCa.client('stranger');

    secure = await startApp(
      env,
      (app) => {
        app.fallback((req, res, body) => {
          res.writeHead(200, { 'Content-Type': 'application/json', 'X-Service': 'secure' });
          res.end(echo(req, body, peerName(req)));
        });
        app.route('/api/teapot', (_req, res) => {
          res.writeHead(418, { 'Content-Type': 'text/plain', 'X-Reason': 'short and stout' });
          res.end('I am a teapot');
        });
        app.stream('/api/upload', (req, res) => {
          uploadReceived = 0;
          const hash = createHash('sha256');
          req.on('data', (chunk: Buffer) => {
            uploadReceived += chunk.length;
            hash.update(chunk);
          });
          req.on('end', () => res.end(`${uploadReceived} ${hash.digest('hex')}`));
        });
        app.stream('/api/download', (req, res) => {
          req.resume();
          const total = Number(new URL(req.url ?? '', 'http://x').searchParams.get('bytes'));
          res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
          // The first MiB, then the rest only once the caller has seen bytes: a sidecar that held the
          // response back until it was complete would never let this finish.
          res.write(Buffer.alloc(MiB, 1));
          new Promise<void>((resolve) => (releaseDownload = resolve))
            .then(() => writeBytes(res, total - MiB, 256 * 1024, () => 2))
            .catch(() => res.destroy());
        });
        app.stream('/api/events', (req, res) => {
          req.resume();
          res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
          res.write('data: one\n\n');
          new Promise<void>((resolve) => (releaseDownload = resolve))
            .then(() => res.end('data: two\n\n'))
            .catch(() => res.destroy());
        });
      },
      0,
      { tls: { ...serverCert, ca: clientCa.certPem, requestCert: true, rejectUnauthorized: true } },
    );
    open = await startApp(env, (app) => app.fallback((req, res, body) => res.end(echo(req, body))), 0, { tls: serverCert });
    plain = await startApp(env, (app) => {
      app.fallback((req, res, body) => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(echo(req, body));
      });
      app.route('/flaky', (req, res) => {
        flakySeen++;
        if (flakyBreaks > 0) {
          flakyBreaks--;
          req.socket.destroy();
          return;
        }
        res.end(`answered after ${flakySeen} attempt(s)`);
      });
    });
    refusedPort = await refusedPortOutsideEphemeralRange();

    resourcesDir = join(env.home, 'resources');
    mkdirSync(resourcesDir);
    const secretsFile = join(env.home, 'secrets.json');
    writeFileSync(secretsFile, JSON.stringify({ api: { token: FILE_SECRET }, tls: { key: client.key } }));
    serverCaFile = join(env.home, 'server-ca.pem');
    writeFileSync(serverCaFile, serverCa.certPem);
    const secureUrl = `https://127.0.0.1:${secure.port}`;
    const trust = { rootCA: { value: serverCa.certPem } };
    writeFileSync(
      join(resourcesDir, 'stores.yaml'),
      resources(
        { apiVersion: 'dapr.io/v1alpha1', kind: 'Component', metadata: { name: 'filestore' }, spec: { type: 'secretstores.local.file', version: 'v1', metadata: [{ name: 'secretsFile', value: secretsFile }] } },
        { apiVersion: 'dapr.io/v1alpha1', kind: 'Component', metadata: { name: 'envstore' }, spec: { type: 'secretstores.local.env', version: 'v1', metadata: [{ name: 'prefix', value: 'COURIER_TEST_' }] } },
      ),
    );
    writeFileSync(
      join(resourcesDir, 'endpoints.yaml'),
      resources(
        endpoint(
          'secure-api',
          {
            baseUrl: `${secureUrl}/api`,
            headers: [
              { name: 'X-Static', value: 'configured' },
              { name: 'X-File-Secret', secretKeyRef: { name: 'api:token' } },
              { name: 'X-Env-Ref', envRef: 'TEST_ENV_HEADER' },
              { name: 'X-Number', value: 42 },
            ],
            clientTLS: { ...trust, certificate: { value: client.cert }, privateKey: { secretKeyRef: { name: 'tls:key', key: 'tls:key' } } },
          },
          { auth: { secretStore: 'filestore' } },
        ),
        endpoint(
          'env-api',
          { baseUrl: secureUrl, headers: [{ name: 'Authorization', secretKeyRef: { name: 'TOKEN' } }], clientTLS: { ...trust, certificate: { value: client.cert }, privateKey: { value: client.key } } },
          { auth: { secretStore: 'envstore' } },
        ),
        endpoint('nodeapp', { baseUrl: `http://127.0.0.1:${plain.port}/from-endpoint` }),
        endpoint('scoped-away', { baseUrl: `http://127.0.0.1:${plain.port}` }, { scopes: ['someone-else'] }),
        endpoint('stranger-cert', { baseUrl: secureUrl, clientTLS: { ...trust, certificate: { value: stranger.cert }, privateKey: { value: stranger.key } } }),
        endpoint('no-client-cert', { baseUrl: secureUrl, clientTLS: trust }),
        endpoint('untrusted', { baseUrl: `https://127.0.0.1:${open.port}` }),
        endpoint('refused', { baseUrl: `http://127.0.0.1:${refusedPort}` }),
      ),
    );
    caller = await startSidecar(env, {
      appId: 'caller',
      args: ['--resources-path', resourcesDir, '--max-body-size', '32Mi'],
      env: { COURIER_TEST_TOKEN: ENV_SECRET, TEST_ENV_HEADER: ENV_REF_VALUE, APP_API_TOKEN: APP_TOKEN },
    });
    grpcClient = daprClient(caller.grpcPort);
    env.track({ close: () => Promise.resolve(grpcClient.close()) });
  });
  after(() => env.close());

  test('an HTTPEndpoint with clientTLS (own CA, client certificate) and headers from a value, a file store and envRef', async () => {
    const res = await send(caller.httpPort, {
      method: 'POST',
      path: '/v1.0/invoke/secure-api/method/orders/7?expand=items',
      headers: { 'content-type': 'application/json', 'x-static': 'from the caller', 'x-custom': 'passed on', 'dapr-caller-app-id': 'spoofed' },
      body: '{"n":7}',
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['x-service'], 'secure');
    const seen = jsonOf<Echo>(res);
    assert.equal(seen.client, 'courier-client', 'the client certificate was presented');
    assert.equal(seen.method, 'POST');
    assert.equal(seen.url, '/api/orders/7?expand=items', 'baseUrl + "/" + method + "?" + query');
    assert.equal(seen.body, '{"n":7}');
    assert.equal(seen.headers['content-type'], 'application/json');
    assert.equal(seen.headers['x-static'], 'configured', 'a configured header replaces the caller\'s');
    assert.equal(seen.headers['x-file-secret'], FILE_SECRET);
    assert.equal(seen.headers['x-env-ref'], ENV_REF_VALUE);
    assert.equal(seen.headers['x-number'], '42');
    assert.equal(seen.headers['x-custom'], 'passed on');
    assert.equal(seen.headers.host, `127.0.0.1:${secure.port}`);
    for (const name of ['dapr-caller-app-id', 'dapr-caller-namespace', 'dapr-callee-app-id', 'dapr-api-token', 'dapr-app-id', 'x-forwarded-for', 'x-forwarded-host', 'forwarded']) {
      assert.equal(seen.headers[name], undefined, `${name} does not reach an external service`);
    }
  });

  test('an HTTPEndpoint with a header from a secretstores.local.env store, called with the dapr-app-id header', async () => {
    const res = await send(caller.httpPort, { method: 'GET', path: '/status', headers: { 'dapr-app-id': 'env-api' } });
    assert.equal(res.status, 200, res.text);
    const seen = jsonOf<Echo>(res);
    assert.equal(seen.url, '/status');
    assert.equal(seen.headers.authorization, ENV_SECRET);
    assert.equal(seen.client, 'courier-client');
  });

  test("the service's status, headers and body pass through unchanged", async () => {
    const res = await send(caller.httpPort, { path: '/v1.0/invoke/secure-api/method/teapot' });
    assert.equal(res.status, 418);
    assert.equal(res.headers['x-reason'], 'short and stout');
    assert.equal(res.text, 'I am a teapot');
  });

  test('gRPC InvokeService reaches an HTTPEndpoint and a URL target', async () => {
    const named = await invokeService(grpcClient, {
      id: 'secure-api',
      message: { method: 'grpc-call', contentType: 'text/plain', data: { value: Buffer.from('over gRPC') }, httpExtension: { verb: HttpVerb.PUT, querystring: 'q=1' } },
    });
    assert.equal(named.err, null, named.err?.message);
    assert.deepEqual(named.headers?.get('dapr-http-status'), ['200']);
    const seen = JSON.parse(Buffer.from(named.res?.data?.value ?? []).toString()) as Echo;
    assert.equal(seen.method, 'PUT');
    assert.equal(seen.url, '/api/grpc-call?q=1');
    assert.equal(seen.body, 'over gRPC');
    assert.equal(seen.headers['x-file-secret'], FILE_SECRET);
    assert.equal(seen.client, 'courier-client');

    const url = await invokeService(grpcClient, { id: `http://127.0.0.1:${plain.port}`, message: { method: 'via-grpc', httpExtension: { verb: HttpVerb.GET } } });
    assert.equal(url.err, null, url.err?.message);
    assert.equal((JSON.parse(Buffer.from(url.res?.data?.value ?? []).toString()) as Echo).url, '/via-grpc');

    const teapot = await invokeService(grpcClient, { id: 'secure-api', message: { method: 'teapot', httpExtension: { verb: HttpVerb.GET } } });
    assert.ok(teapot.err !== null);
    assert.deepEqual(teapot.headers?.get('dapr-http-status'), ['418']);
  });

  test('20 MiB streams up to and down from an HTTPEndpoint without being held whole', async () => {
    const total = 20 * MiB;
    // Up: the service must see the first bytes while the caller has sent only the first part.
    const sent = createHash('sha256');
    const answer = await new Promise<string>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port: caller.httpPort, method: 'POST', path: '/v1.0/invoke/secure-api/method/upload', headers: { 'content-length': String(total) }, agent: false },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve(Buffer.concat(chunks).toString()));
        },
      );
      req.on('error', reject);
      const first = Buffer.alloc(MiB, 3);
      sent.update(first);
      req.write(first);
      until(() => uploadReceived > 0, 'the first bytes of the upload at the service', 15_000).then(
        () => writeBytes(req, total - MiB, 256 * 1024, () => 4, (piece) => sent.update(piece)),
        reject,
      );
    });
    assert.equal(answer, `${total} ${sent.digest('hex')}`);

    // Down: the caller must get the first part before the service sends the rest.
    const download = await new Promise<{ status: number; bytes: number; sha: string }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: caller.httpPort, path: `/v1.0/invoke/secure-api/method/download?bytes=${total}`, agent: false }, (res) => {
        const hash = createHash('sha256');
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          if (bytes === 0) releaseDownload();
          bytes += c.length;
          hash.update(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, sha: hash.digest('hex') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    const want = createHash('sha256').update(Buffer.alloc(MiB, 1)).update(Buffer.alloc(total - MiB, 2)).digest('hex');
    assert.deepEqual(download, { status: 200, bytes: total, sha: want });
  });

  test('server-sent events reach the caller event by event', async () => {
    const events = await new Promise<string>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port: caller.httpPort, path: '/v1.0/invoke/secure-api/method/events', headers: { accept: 'text/event-stream' }, agent: false },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            text += c;
            if (text.includes('data: one')) releaseDownload();
          });
          res.on('end', () => resolve(text));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end();
    });
    assert.equal(events, 'data: one\n\ndata: two\n\n');
  });

  test('a raw http:// URL target: URL form (percent-encoded, any case of scheme) and header form', async () => {
    const base = `http://127.0.0.1:${plain.port}`;
    const encoded = encodeURIComponent(base);
    for (const path of [`/v1.0/invoke/${encoded}/method/things/1?x=y`, `/v1.0/invoke/${encodeURIComponent(`HTTP://127.0.0.1:${plain.port}`)}/method/things/1?x=y`]) {
      const res = await send(caller.httpPort, { method: 'DELETE', path, headers: { 'x-custom': 'yes' } });
      assert.equal(res.status, 200, `${path}: ${res.text}`);
      const seen = jsonOf<Echo>(res);
      assert.equal(seen.method, 'DELETE');
      assert.equal(seen.url, '/things/1?x=y');
      assert.equal(seen.headers['x-custom'], 'yes');
      assert.equal(seen.headers['dapr-api-token'], undefined, 'APP_API_TOKEN never goes to an external URL');
      assert.equal(seen.headers['dapr-caller-app-id'], undefined);
    }
    const byHeader = await send(caller.httpPort, { method: 'POST', path: '/api/v2/items', headers: { 'dapr-app-id': base }, body: 'b' });
    assert.equal(byHeader.status, 200, byHeader.text);
    const seen = jsonOf<Echo>(byHeader);
    assert.equal(seen.url, '/api/v2/items');
    assert.equal(seen.body, 'b');
    assert.equal(seen.headers['dapr-app-id'], undefined);

    const bad = await send(caller.httpPort, { path: `/v1.0/invoke/${encodeURIComponent('http://user:pw@127.0.0.1:1')}/method/x` });
    assert.equal(bad.status, 500);
    assert.match(errorOf(bad).message, /^failed to invoke, id: http:\/\/user:pw@127\.0\.0\.1:1, err: invalid external URL: .*user name or password/);
  });

  test('an https:// URL target uses the CAs Node trusts: refused as untrusted, accepted with NODE_EXTRA_CA_CERTS', async () => {
    const url = `https://127.0.0.1:${open.port}`;
    const refused = await send(caller.httpPort, { path: '/hello', headers: { 'dapr-app-id': url } });
    assert.equal(refused.status, 500);
    assert.equal(errorOf(refused).errorCode, 'ERR_DIRECT_INVOKE');
    assert.match(errorOf(refused).message, new RegExp(`^failed to invoke, id: ${url.replace(/[.]/g, '\\.')}, err: the TLS certificate of ${url.replace(/[.]/g, '\\.')} is not trusted: .*NODE_EXTRA_CA_CERTS`));
    assert.doesNotMatch(errorOf(refused).message, /retr(y|ies)/, 'an untrusted server is not retried');

    const trusting = await startSidecar(env, { appId: 'trusting', env: { NODE_EXTRA_CA_CERTS: serverCaFile } });
    const ok = await send(trusting.httpPort, { path: '/hello', headers: { 'dapr-app-id': url } });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(jsonOf<Echo>(ok).url, '/hello');
  });

  test('precedence: an HTTPEndpoint named like an app id wins over the app', async () => {
    const realApp = await startApp(env, (app) => app.fallback((_req, res) => res.end('the real nodeapp')));
    await startSidecar(env, { appId: 'nodeapp', appPort: realApp.port, waitForApp: true });
    const res = await send(caller.httpPort, { path: '/v1.0/invoke/nodeapp/method/who' });
    assert.equal(res.status, 200, res.text);
    assert.equal(jsonOf<Echo>(res).url, '/from-endpoint/who');
    assert.equal(realApp.seen.length, 0);
  });

  test('scopes: an endpoint scoped to other apps is not loaded; metadata lists the loaded ones over HTTP and gRPC', async () => {
    const expected = ['secure-api', 'env-api', 'nodeapp', 'stranger-cert', 'no-client-cert', 'untrusted', 'refused'];
    const metadata = jsonOf<{ httpEndpoints: Array<{ name: string }> }>(await send(caller.httpPort, { path: '/v1.0/metadata' }));
    assert.deepEqual(metadata.httpEndpoints.map((e) => e.name).sort(), [...expected].sort());
    const viaGrpc = await new Promise<string[]>((resolve, reject) =>
      grpcClient.GetMetadata({}, new grpc.Metadata(), (err, res) => (err === null ? resolve((res?.httpEndpoints ?? []).map((e) => e.name ?? '')) : reject(err))),
    );
    assert.deepEqual(viaGrpc.sort(), [...expected].sort());
    assert.match(caller.output, /HTTPEndpoint\/scoped-away is not loaded: its scopes \(someone-else\) do not include caller/);
    const res = await send(caller.httpPort, { path: '/v1.0/invoke/scoped-away/method/x' });
    assert.equal(res.status, 500);
    assert.match(errorOf(res).message, /no instance of app "scoped-away"/, 'the name is then an app id like any other');
  });

  test('TLS refusals are clear and not retried: a client certificate from another CA, none at all, an untrusted server', async () => {
    const cases: Array<[string, RegExp]> = [
      // A Node server refusing a certificate closes the connection without an alert after a TLS 1.3
      // handshake the client saw complete; servers that send an alert get "refused the client certificate".
      ['stranger-cert', /closed a new connection without answering \(it may not accept the client certificate of spec\.clientTLS\)/],
      // The server's alert may arrive after the request was written, and then be lost with the connection.
      ['no-client-cert', /(requires|may require) a client certificate.*spec\.clientTLS\.certificate and privateKey/],
      ['untrusted', /the TLS certificate of https:\/\/127\.0\.0\.1:\d+ is not trusted: .*set spec\.clientTLS\.rootCA/],
    ];
    for (const [name, pattern] of cases) {
      // POST: a request the server may have seen is never sent twice, whatever the failure.
      const res = await send(caller.httpPort, { method: 'POST', path: `/v1.0/invoke/${name}/method/x`, body: 'once' });
      assert.equal(res.status, 500, `${name}: ${res.text}`);
      const { errorCode, message } = errorOf(res);
      assert.equal(errorCode, 'ERR_DIRECT_INVOKE');
      assert.match(message, new RegExp(`^failed to invoke, id: ${name}, err: `), name);
      assert.match(message, pattern, name);
      assert.doesNotMatch(message, /retr(y|ies)/, `${name} is not retried`);
    }
  });

  test('retries: a refused connection is retried per the built-in rules, and the call succeeds once the service listens', async () => {
    const startedAt = Date.now();
    const failed = await send(caller.httpPort, { method: 'POST', path: '/v1.0/invoke/refused/method/x', body: 'payload' });
    assert.equal(failed.status, 500);
    assert.match(errorOf(failed).message, /^failed to invoke, id: refused, err: cannot connect to http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED.* \(after 3 retries\)$/);
    assert.ok(Date.now() - startedAt >= 2_500, 'three retries, 1 s apart');

    const port = await refusedPortOutsideEphemeralRange();
    const late = new TestApp().fallback((req, res, body) => res.end(echo(req, body)));
    const logBefore = caller.output.length;
    const pending = send(caller.httpPort, { method: 'POST', path: `/v1.0/invoke/${encodeURIComponent(`http://127.0.0.1:${port}`)}/method/late`, body: 'sent again' });
    await until(() => caller.output.slice(logBefore).includes('retrying invocation'), 'the first retry', 10_000);
    await late.listen(port);
    env.track(late);
    const res = await pending;
    assert.equal(res.status, 200, res.text);
    assert.equal(jsonOf<Echo>(res).body, 'sent again', 'the body is sent again on the retry');
  });

  test('retries: a connection broken before any answer is retried for GET, not for POST', async () => {
    const base = encodeURIComponent(`http://127.0.0.1:${plain.port}`);
    flakyBreaks = 1;
    flakySeen = 0;
    const get = await send(caller.httpPort, { method: 'GET', path: `/v1.0/invoke/${base}/method/flaky` });
    assert.equal(get.status, 200, get.text);
    assert.equal(get.text, 'answered after 2 attempt(s)');

    flakyBreaks = 1;
    flakySeen = 0;
    const post = await send(caller.httpPort, { method: 'POST', path: `/v1.0/invoke/${base}/method/flaky`, body: 'not twice' });
    assert.equal(post.status, 500);
    assert.match(errorOf(post).message, /closed the connection before answering/);
    assert.equal(flakySeen, 1, 'a POST that may have been processed is not sent again');
    flakyBreaks = 0;
  });

  test('secret values never appear in the logs', () => {
    for (const secret of [FILE_SECRET, ENV_SECRET, ENV_REF_VALUE, APP_TOKEN]) assert.ok(!caller.output.includes(secret), 'a secret value was logged');
  });
});

describe('invalid external-endpoint resources', () => {
  test('each mistake stops the sidecar at start with one line naming the file, the key and the reason', async (t) => {
    const env = new TestEnv();
    t.after(() => env.close());
    const ca = await TestCa.create('some CA');
    const client = await ca.client('x');
    const secretsFile = join(env.home, 'secrets.json');
    writeFileSync(secretsFile, JSON.stringify({ present: 'the-hidden-value' }));
    const store = { apiVersion: 'dapr.io/v1alpha1', kind: 'Component', metadata: { name: 'files' }, spec: { type: 'secretstores.local.file', version: 'v1', metadata: [{ name: 'secretsFile', value: secretsFile }] } };
    const cases: Array<[string, object[], RegExp]> = [
      ['no-base-url', [endpoint('e', { headers: [] })], /no-base-url\.yaml: spec\.baseUrl is required/],
      ['bad-scheme', [endpoint('e', { baseUrl: 'ftp://example.com' })], /bad-scheme\.yaml: HTTPEndpoint e: spec\.baseUrl must start with http:\/\/ or https:\/\//],
      ['unknown-key', [endpoint('e', { baseUrl: 'http://x', header: [] })], /unknown-key\.yaml: spec: unknown key "header"/],
      ['bad-header', [endpoint('e', { baseUrl: 'http://x', headers: [{ name: 'Bad Name', value: 'v' }] })], /bad-header\.yaml: HTTPEndpoint e: spec\.headers\.0 \(Bad Name\) is not a valid header name/],
      ['no-store', [endpoint('e', { baseUrl: 'http://x', headers: [{ name: 'A', secretKeyRef: { name: 's' } }] })], /no-store\.yaml: HTTPEndpoint e: spec\.headers\.0 \(A\)\.secretKeyRef needs auth\.secretStore/],
      ['unknown-store', [endpoint('e', { baseUrl: 'http://x', headers: [{ name: 'A', secretKeyRef: { name: 's' } }] }, { auth: { secretStore: 'vault' } })], /unknown-store\.yaml: HTTPEndpoint e: auth\.secretStore names vault, which is not a loaded secret store/],
      ['missing-secret', [store, endpoint('e', { baseUrl: 'http://x', headers: [{ name: 'A', secretKeyRef: { name: 'absent' } }] }, { auth: { secretStore: 'files' } })], /missing-secret\.yaml \(document 2\): HTTPEndpoint e: spec\.headers\.0 \(A\)\.secretKeyRef: secret store files .* has no secret "absent"/],
      ['missing-env', [endpoint('e', { baseUrl: 'http://x', headers: [{ name: 'A', envRef: 'COURIER_TEST_UNSET_VARIABLE' }] })], /missing-env\.yaml: HTTPEndpoint e: spec\.headers\.0 \(A\)\.envRef names COURIER_TEST_UNSET_VARIABLE, which is not set/],
      ['forbidden-env', [endpoint('e', { baseUrl: 'http://x', headers: [{ name: 'A', envRef: 'APP_API_TOKEN' }] })], /forbidden-env\.yaml: HTTPEndpoint e: spec\.headers\.0 \(A\)\.envRef may not read APP_API_TOKEN/],
      ['half-cert', [endpoint('e', { baseUrl: 'https://x', clientTLS: { certificate: { value: client.cert } } })], /half-cert\.yaml: HTTPEndpoint e: spec\.clientTLS needs both certificate and privateKey/],
      ['bad-pem', [endpoint('e', { baseUrl: 'https://x', clientTLS: { rootCA: { value: 'not a certificate' } } })], /bad-pem\.yaml: HTTPEndpoint e: spec\.clientTLS\.rootCA is not a PEM certificate/],
      ['bad-renegotiation', [endpoint('e', { baseUrl: 'https://x', clientTLS: { renegotiation: 'Always' } })], /bad-renegotiation\.yaml: spec\.clientTLS\.renegotiation must be Never, OnceAsClient or FreelyAsClient/],
      ['duplicate', [endpoint('e', { baseUrl: 'http://x' }), endpoint('e', { baseUrl: 'http://y' })], /duplicate\.yaml \(document 2\): HTTPEndpoint\/e is defined twice/],
      ['missing-file', [{ ...store, spec: { ...store.spec, metadata: [{ name: 'secretsFile', value: join(env.home, 'nope.json') }] } }], /missing-file\.yaml: secret store files: secretsFile .*nope\.json cannot be read/],
    ];
    for (const [name, docs, pattern] of cases) {
      const dir = join(env.home, name);
      mkdirSync(dir);
      writeFileSync(join(dir, `${name}.yaml`), resources(...docs));
      const r = spawnSync(process.execPath, [courierBin, 'sidecar', '--app-id', 'x', '--dapr-http-port', '0', '--dapr-grpc-port', '0', '--resources-path', dir], {
        env: { ...process.env, COURIER_HOME: env.home },
        encoding: 'utf8',
        timeout: 20_000,
      });
      const output = `${r.stdout}${r.stderr}`;
      assert.equal(r.status, 1, `${name}:\n${output}`);
      const errorLines = output.split('\n').filter((l) => l.startsWith('courier sidecar: '));
      assert.equal(errorLines.length, 1, `${name}: one error line:\n${output}`);
      assert.match(errorLines[0] ?? '', pattern, name);
      assert.doesNotMatch(output, /\n\s+at /, `${name}: no stack trace`);
      assert.ok(!output.includes('the-hidden-value'), `${name}: no secret value in the output`);
    }
  });
});
