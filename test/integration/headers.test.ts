// Header rules across the hop: identity headers (S33), hop-by-hop stripping (S34), repeated values and
// forwarding headers (S35), the app token (S38), the API token (S14), redirects (S42) and response
// trace headers (S36).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import type { IncomingHttpHeaders } from 'node:http';
import { TestEnv } from '../framework/env.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { startApp, type TestApp } from '../framework/test-app.js';
import { headerValues, send } from '../framework/http-client.js';

const hopByHop = ['Keep-Alive', 'Proxy-Connection', 'Upgrade', 'HTTP2-Settings', 'TE', 'Trailer', 'Proxy-Authorization', 'Proxy-Authenticate'];

describe('headers', () => {
  const env = new TestEnv();
  let appA: TestApp;
  let appB: TestApp;
  let a: SidecarProcess;
  let b: SidecarProcess;
  let lastHeaders: IncomingHttpHeaders = {};
  let lastRaw: string[] = [];

  before(async () => {
    const setup = (app: TestApp): void => {
      app.route('/headers', (req, res) => {
        lastHeaders = req.headers;
        lastRaw = req.rawHeaders;
        res.writeHead(200, [
          'Content-Type', 'application/json',
          'Transfer-Encoding', 'chunked',
          'DaprTest-Response-1', 'DaprTest-Response-Value-1',
          'DaprTest-Response-Multi', 'DaprTest-Response-Multi-1',
          'DaprTest-Response-Multi', 'DaprTest-Response-Multi-2',
          'X-Custom-Response', 'kept',
          'Connection', 'X-Hop-Response',
          'X-Hop-Response', 'gone',
          'Proxy-Authenticate', 'Basic',
          'Trailer', 'X-Nothing',
          'traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
        ]);
        res.end('{}');
      });
      app.route('/redirect', (_req, res) => {
        res.writeHead(307, { Location: '/v1.0/invoke/b/method/headers', 'Content-Type': 'application/json' });
        res.end('{"message":"opRedirect is called"}');
      });
      app.route('/moved', (_req, res) => {
        res.writeHead(301, { Location: 'http://example.invalid/elsewhere' });
        res.end();
      });
    };
    appA = await startApp(env, setup);
    appB = await startApp(env, setup);
    a = await startSidecar(env, { appId: 'a', appPort: appA.port, waitForApp: true, env: { DAPR_API_TOKEN: 'caller-secret', APP_API_TOKEN: 'token-of-a' } });
    b = await startSidecar(env, { appId: 'b', appPort: appB.port, waitForApp: true, env: { APP_API_TOKEN: 'def' } });
  });
  after(() => env.close());

  const callB = (headers: Record<string, string | string[]> = {}, path = '/v1.0/invoke/b/method/headers') =>
    send(a.httpPort, { method: 'POST', path, headers: { 'dapr-api-token': 'caller-secret', ...headers }, body: '{}' });

  test('S33: the app sees caller and callee ids; values the caller sets are replaced', async () => {
    const res = await callB({ 'dapr-caller-app-id': 'evil', 'Dapr-Callee-App-Id': 'evil', 'dapr-caller-namespace': 'evil' });
    assert.equal(res.status, 200);
    assert.deepEqual(headerValues(lastRaw, 'dapr-caller-app-id'), ['a']);
    assert.deepEqual(headerValues(lastRaw, 'dapr-callee-app-id'), ['b']);
    assert.deepEqual(headerValues(lastRaw, 'dapr-caller-namespace'), ['default']);
  });

  test('S33: the same holds for self-invocation', async () => {
    const res = await send(a.httpPort, {
      method: 'POST',
      path: '/v1.0/invoke/a/method/headers',
      headers: { 'dapr-api-token': 'caller-secret', 'dapr-caller-app-id': 'evil' },
      body: '{}',
    });
    assert.equal(res.status, 200);
    assert.deepEqual(headerValues(lastRaw, 'dapr-caller-app-id'), ['a']);
    assert.deepEqual(headerValues(lastRaw, 'dapr-callee-app-id'), ['a']);
  });

  test('S34: hop-by-hop headers never cross, in either direction; custom ones do', async () => {
    // Chunked, so that node:http agrees to send a Trailer header.
    const headers: Record<string, string> = { 'X-Custom-Request': 'kept', Connection: 'keep-alive, X-Hop-Request', 'X-Hop-Request': 'gone', 'Transfer-Encoding': 'chunked' };
    for (const h of hopByHop) headers[h] = h === 'TE' ? 'trailers' : 'x';
    const res = await callB(headers);
    assert.equal(res.status, 200);
    for (const h of [...hopByHop, 'X-Hop-Request']) assert.equal(lastHeaders[h.toLowerCase()], undefined, `request ${h}`);
    assert.notEqual(lastHeaders.connection, 'keep-alive, X-Hop-Request');
    assert.equal(lastHeaders['x-custom-request'], 'kept');
    for (const h of ['proxy-authenticate', 'trailer', 'x-hop-response']) assert.equal(res.headers[h], undefined, `response ${h}`);
    assert.equal(res.headers['x-custom-response'], 'kept');
  });

  test('S35: repeated headers keep every value in order, both ways; forwarding headers are added', async () => {
    const res = await callB({ 'DaprTest-Multi': ["M'illumino", "d'immenso"], 'DaprTest-Request-1': 'DaprValue1' });
    assert.deepEqual(headerValues(lastRaw, 'daprtest-multi'), ["M'illumino", "d'immenso"]);
    assert.deepEqual(headerValues(lastRaw, 'daprtest-request-1'), ['DaprValue1']);
    assert.deepEqual(headerValues(res.rawHeaders, 'daprtest-response-multi'), ['DaprTest-Response-Multi-1', 'DaprTest-Response-Multi-2']);
    assert.deepEqual(headerValues(res.rawHeaders, 'daprtest-response-1'), ['DaprTest-Response-Value-1']);
    assert.equal(res.headers['content-type'], 'application/json');
    assert.deepEqual(headerValues(lastRaw, 'x-forwarded-for'), ['127.0.0.1']);
    assert.deepEqual(headerValues(lastRaw, 'x-forwarded-host'), [hostname()]);
    assert.deepEqual(headerValues(lastRaw, 'forwarded'), [`for=127.0.0.1;by=127.0.0.1;host=${hostname()}`]);
    assert.equal(lastHeaders.host, `127.0.0.1:${appB.port}`, 'the caller Host is not forwarded');
  });

  test('S36: a traceparent set by the app reaches the caller unchanged', async () => {
    const res = await callB();
    assert.equal(res.headers.traceparent, '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
  });

  test("S38: the callee's app token reaches its app, never the caller's; none is sent without one", async () => {
    await callB({ 'dapr-api-token': 'caller-secret' });
    assert.deepEqual(headerValues(lastRaw, 'dapr-api-token'), ['def']);
    // b has no DAPR_API_TOKEN; a caller's token sent to it goes nowhere, and b's app token replaces it.
    await send(b.httpPort, { method: 'POST', path: '/v1.0/invoke/b/method/headers', headers: { 'dapr-api-token': 'leaked' }, body: '{}' });
    assert.deepEqual(headerValues(lastRaw, 'dapr-api-token'), ['def']);
    // a's own app gets a's app token on self-invocation
    await send(a.httpPort, { method: 'POST', path: '/v1.0/invoke/a/method/headers', headers: { 'dapr-api-token': 'caller-secret' }, body: '{}' });
    assert.deepEqual(headerValues(lastRaw, 'dapr-api-token'), ['token-of-a']);
  });

  test('S14: DAPR_API_TOKEN guards the API; health checks stay open', async () => {
    const missing = await send(a.httpPort, { method: 'POST', path: '/v1.0/invoke/b/method/headers', body: '{}' });
    assert.equal(missing.status, 401);
    assert.equal(missing.text.trim(), 'invalid api token');
    const wrong = await send(a.httpPort, { method: 'GET', path: '/v1.0/metadata', headers: { 'dapr-api-token': 'nope' } });
    assert.equal(wrong.status, 401);
    const byHeader = await send(a.httpPort, { method: 'POST', path: '/headers', headers: { 'dapr-app-id': 'b' }, body: '{}' });
    assert.equal(byHeader.status, 401);
    assert.equal((await send(a.httpPort, { path: '/v1.0/healthz' })).status, 204);
    assert.equal((await send(a.httpPort, { path: '/v1.0/healthz/outbound' })).status, 204);
    const ok = await send(a.httpPort, { method: 'GET', path: '/v1.0/metadata', headers: { 'dapr-api-token': 'caller-secret' } });
    assert.equal(ok.status, 200);
  });

  test('S42: redirects pass through with their Location; a following client ends at the target', async () => {
    const res = await callB({}, '/v1.0/invoke/b/method/redirect');
    assert.equal(res.status, 307);
    assert.equal(res.headers.location, '/v1.0/invoke/b/method/headers');
    assert.equal(res.text, '{"message":"opRedirect is called"}');
    const moved = await callB({}, '/v1.0/invoke/b/method/moved');
    assert.equal(moved.status, 301);
    assert.equal(moved.headers.location, 'http://example.invalid/elsewhere');
    const followed = await fetch(a.url('/v1.0/invoke/b/method/redirect'), { method: 'POST', body: '{}', headers: { 'dapr-api-token': 'caller-secret' } });
    assert.equal(followed.status, 200);
    assert.equal(await followed.text(), '{}');
  });
});
