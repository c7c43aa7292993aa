// Service invocation between two sidecars, as users and Dapr's own suites exercise it:
// scenarios S10, S15, S16, S18, S19, S20, S22, S23, S24, S25 and S44.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { TestEnv } from '../framework/env.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { startApp, type TestApp } from '../framework/test-app.js';
import { headerValues, send, errorOf } from '../framework/http-client.js';

const statusByVerb: Record<string, number> = { GET: 200, POST: 201, PUT: 202, DELETE: 409, PATCH: 502 };

describe('invocation between two sidecars', () => {
  const env = new TestEnv();
  let appA: TestApp;
  let appB: TestApp;
  let appC: TestApp;
  let a: SidecarProcess;
  let b: SidecarProcess;

  before(async () => {
    const common = (app: TestApp, name: string): void => {
      app.route('/foo', (req, res) => {
        res.writeHead(statusByVerb[req.method ?? ''] ?? 200, { 'Content-Type': 'text/plain' });
        res.end(`${req.method} from ${name}`);
      });
      app.route('/with-headers-and-body', (req, res, body) => {
        const ok = req.headers.foo === 'bar' && body.toString() === 'hello';
        res.writeHead(ok ? 200 : 400);
        res.end(ok ? 'ok' : `foo=${String(req.headers.foo)} body=${body.toString()}`);
      });
      app.route('/multiple/segments', (_req, res) => res.end('ok'));
      app.route('/echo', (req, res, body) => {
        res.writeHead(200, { 'x-method': req.method ?? '' });
        res.end(body);
      });
      app.route('/url', (req, res) => res.end(req.url));
      app.route('/parseerror', (_req, res, body) => {
        try {
          const parsed = JSON.parse(body.toString()) as { data?: unknown };
          if (typeof parsed.data !== 'number') throw new Error(`json: cannot unmarshal ${typeof parsed.data} into Go value of type int`);
          res.end('{}');
        } catch (err) {
          res.writeHead(500, { 'Content-Type': 'application/json' });
          res.end(JSON.stringify({ message: `serialization failed with ${(err as Error).message}` }));
        }
      });
      app.route('/orders', (req, res, body) => {
        res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
        res.end((JSON.parse(body.toString()) as { orderId?: number }).orderId === 1 ? 'OK' : 'bad');
      });
      for (const verb of ['get', 'head', 'post', 'put', 'delete', 'options', 'trace', 'patch']) {
        app.route(`/${verb}handler`, (req, res, body) => {
          const message = verb === 'get' || verb === 'head' ? 'ok' : (JSON.parse(body.toString()) as string);
          res.writeHead(200, { 'x-dapr-tests-request-method': req.method ?? '', 'Content-Type': 'application/json' });
          res.end(JSON.stringify({ message }));
        });
      }
    };
    appA = await startApp(env, (app) => common(app, 'a'));
    appB = await startApp(env, (app) => common(app, 'b'));
    appC = await startApp(env, (app) => {
      common(app, 'c');
      app.route('/singlehop', (_req, res) => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ message: 'singlehop is called' }));
      });
    });
    a = await startSidecar(env, { appId: 'a', appPort: appA.port, waitForApp: true });
    b = await startSidecar(env, { appId: 'b', appPort: appB.port, waitForApp: true });
    await startSidecar(env, { appId: 'c', appPort: appC.port, waitForApp: true });
    // b's app calls c through b's own sidecar (multihop, S24).
    appB.route('/multihop', async (_req, res) => {
      const r = await fetch(b.url('/v1.0/invoke/c/method/singlehop'), { method: 'POST' });
      res.writeHead(r.status, { 'Content-Type': 'application/json' });
      res.end(await r.text());
    });
  });
  after(() => env.close());

  test('S15: verbs and statuses pass through by URL and by dapr-app-id header, both directions', async () => {
    for (const [from, to] of [[a, 'b'], [b, 'a']] as const) {
      for (const [verb, status] of Object.entries(statusByVerb)) {
        for (const path of [`/v1.0/invoke/${to}/method/foo`, '/foo']) {
          const headers: Record<string, string> = path === '/foo' ? { 'dapr-app-id': to } : {};
          const res = await send(from.httpPort, { method: verb, path, headers });
          assert.equal(res.status, status, `${verb} ${path} from ${from.appId}`);
          assert.equal(res.text, `${verb} from ${to}`);
          assert.equal(res.headers['dapr-app-id'], undefined, 'dapr-app-id never comes back');
        }
      }
    }
  });

  test('S15: repeated slashes in the invoke URL are tolerated', async () => {
    for (const path of ['/v1.0////invoke/b/method/foo', '/v1.0//invoke//b/method//foo']) {
      const res = await send(a.httpPort, { method: 'PUT', path });
      assert.equal(res.status, 202, path);
      assert.equal(res.text, 'PUT from b');
    }
    const res = await send(a.httpPort, { method: 'GET', path: '///foo', headers: { 'dapr-app-id': 'b' } });
    assert.equal(res.status, 200);
  });

  test('S10: dapr-app-id routing reaches the app without the header, and the reply comes back as sent', async () => {
    const before = appB.seen.length;
    const res = await send(a.httpPort, {
      method: 'POST',
      path: '/orders',
      headers: { 'dapr-app-id': 'b', 'content-type': 'application/json' },
      body: '{"orderId":1}',
    });
    assert.equal(res.status, 200);
    assert.equal(res.text, 'OK');
    assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(res.headers['dapr-app-id'], undefined);
    const seen = appB.seen.slice(before).find((r) => r.url === '/orders');
    assert.ok(seen);
    assert.equal(seen.method, 'POST');
    assert.equal(seen.body.toString(), '{"orderId":1}');
    assert.equal(seen.headers['dapr-app-id'], undefined);
  });

  test('S16: a body and a custom header reach the app', async () => {
    const res = await send(a.httpPort, { method: 'POST', path: '/v1.0/invoke/b/method/with-headers-and-body', headers: { foo: 'bar' }, body: 'hello' });
    assert.equal(res.status, 200, res.text);
  });

  test('S17: an unknown method gets the app 404 and its body', async () => {
    const res = await send(a.httpPort, { method: 'POST', path: '/v1.0/invoke/b/method/doesntexist' });
    assert.equal(res.status, 404);
    assert.equal(res.text, '404 page not found\n');
  });

  test("S32: the app's own error status and body reach the caller unchanged, remotely and locally", async () => {
    for (const sidecar of [a, b]) {
      const res = await send(sidecar.httpPort, { method: 'POST', path: '/v1.0/invoke/b/method/parseerror', body: '{"data":"not a number"}' });
      assert.equal(res.status, 500);
      assert.equal(res.headers['content-type'], 'application/json');
      assert.equal(res.text, '{"message":"serialization failed with json: cannot unmarshal string into Go value of type int"}');
    }
  });

  test('S18: no method or no app id is a 404 ERR_DIRECT_INVOKE', async () => {
    const res = await send(a.httpPort, { method: 'POST', path: '/v1.0/invoke/b' });
    assert.equal(res.status, 404);
    assert.equal(res.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(res.text), {
      errorCode: 'ERR_DIRECT_INVOKE',
      message: 'failed getting app id either from the URL path or the header dapr-app-id',
    });
    const root = await send(a.httpPort, { method: 'POST', path: '/', headers: { 'dapr-app-id': 'b' } });
    assert.equal(root.status, 404, 'the app has no handler for /');
    assert.equal(root.text, '404 page not found\n');
  });

  test('S19: multi-segment methods keep their path', async () => {
    const res = await send(a.httpPort, { method: 'GET', path: '/v1.0/invoke/b/method/multiple/segments' });
    assert.equal(res.status, 200);
    assert.equal(res.text, 'ok');
  });

  test('S20: the query string reaches the app verbatim', async () => {
    const res = await send(a.httpPort, { method: 'GET', path: '/v1.0/invoke/b/method/url?x=1&y=2&z=a%20b' });
    assert.equal(res.text, '/url?x=1&y=2&z=a%20b');
  });

  test('S22: 100 concurrent calls each get their own answer', async () => {
    const ids = Array.from({ length: 100 }, () => randomUUID());
    const results = await Promise.all(ids.map((id) => send(a.httpPort, { method: 'POST', path: '/v1.0/invoke/b/method/echo', body: id })));
    results.forEach((res, i) => {
      assert.equal(res.status, 200);
      assert.equal(res.text, ids[i]);
      assert.equal(res.headers['x-method'], 'POST');
    });
  });

  test('S23: an unknown app id is a 500 ERR_DIRECT_INVOKE naming the id', async () => {
    const res = await send(a.httpPort, { method: 'POST', path: '/v1.0/invoke/missing-service-0/method/foo' });
    assert.equal(res.status, 500);
    const body = JSON.parse(res.text) as { errorCode: string; message: string };
    assert.equal(body.errorCode, 'ERR_DIRECT_INVOKE');
    assert.match(body.message, /^failed to invoke, id: missing-service-0, err: .*missing-service-0.*sqlite/);
  });

  test('an app id with more than one dot is refused', async () => {
    const res = await send(a.httpPort, { method: 'POST', path: '/v1.0/invoke/b.ns.extra/method/foo' });
    assert.equal(res.status, 500);
    assert.match(errorOf(res).message, /invalid app id b\.ns\.extra/);
  });

  test('an app id in this namespace may be written with the namespace', async () => {
    const res = await send(a.httpPort, { method: 'GET', path: '/v1.0/invoke/b.default/method/foo' });
    assert.equal(res.status, 200);
    assert.equal(res.text, 'GET from b');
  });

  test('S24: multihop a → b → c', async () => {
    const res = await send(a.httpPort, { method: 'POST', path: '/v1.0/invoke/b/method/multihop' });
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.text), { message: 'singlehop is called' });
  });

  test('S25: every HTTP verb reaches the app as sent', async () => {
    for (const verb of ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'TRACE', 'PATCH']) {
      const payload = randomUUID();
      const hasBody = verb !== 'GET' && verb !== 'HEAD';
      const res = await send(a.httpPort, {
        method: verb,
        path: `/v1.0/invoke/b/method/${verb.toLowerCase()}handler`,
        ...(hasBody ? { body: JSON.stringify(payload), headers: { 'content-type': 'application/json' } } : {}),
      });
      assert.equal(res.status, 200, verb);
      assert.equal(res.headers['x-dapr-tests-request-method'], verb);
      if (verb === 'HEAD') assert.equal(res.text, '');
      else assert.deepEqual(JSON.parse(res.text), { message: hasBody ? payload : 'ok' });
    }
  });

  test('S44: Basic auth dapr-app-id routes the call', async () => {
    const res = await send(a.httpPort, {
      method: 'GET',
      path: '/foo',
      headers: { authorization: `Basic ${Buffer.from('dapr-app-id:b').toString('base64')}` },
    });
    assert.equal(res.status, 200);
    assert.equal(res.text, 'GET from b');
  });

  test('self-invocation goes straight to the local app', async () => {
    const res = await send(a.httpPort, { method: 'GET', path: '/v1.0/invoke/a/method/foo' });
    assert.equal(res.status, 200);
    assert.equal(res.text, 'GET from a');
    assert.deepEqual(headerValues(res.rawHeaders, 'content-type'), ['text/plain']);
  });
});
