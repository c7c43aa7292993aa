// Path normalization and rejection exactly as Dapr's path-correctness table (S37).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestEnv } from '../framework/env.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { startApp } from '../framework/test-app.js';
import { send, errorOf } from '../framework/http-client.js';

describe('S37: path correctness', () => {
  const env = new TestEnv();
  let a: SidecarProcess;

  before(async () => {
    const app = await startApp(env, (app) =>
      app.fallback((req, res) => {
        const url = req.url ?? '';
        const q = url.indexOf('?');
        const path = decodeURIComponent(q < 0 ? url : url.slice(0, q));
        res.end(`${path}|${q < 0 ? '' : url.slice(q + 1)}`);
      }),
    );
    a = await startSidecar(env, { appId: 'a' });
    await startSidecar(env, { appId: 'b', appPort: app.port, waitForApp: true });
  });
  after(() => env.close());

  const table: Array<[string, number, string?]> = [
    ['test%23stream', 500],
    ['test%3Fstream', 500],
    ['test%25stream', 500],
    ['test%00stream', 500],
    ['test%0Dstream', 500],
    ['test%22stream', 200, '/test"stream|'],
    ['test%2Astream', 200, '/test*stream|'],
    ['test%5Cstream', 200, '/test\\stream|'],
    ['admin%2F..%2Fpublic', 200, '/public|'],
    ['test?stream', 200, '/test|stream'],
  ];

  for (const [suffix, status, seen] of table) {
    test(`/v1.0/invoke/b/method/${suffix} → ${seen ?? status}`, async () => {
      const res = await send(a.httpPort, { method: 'GET', path: `/v1.0/invoke/b/method/${suffix}` });
      assert.equal(res.status, status, res.text);
      if (seen !== undefined) assert.equal(res.text, seen);
      else assert.equal(errorOf(res).errorCode, 'ERR_DIRECT_INVOKE');
    });
  }

  test('a fragment is cut by the client: test#stream → /test|', async () => {
    const res = await fetch(a.url('/v1.0/invoke/b/method/test#stream'));
    assert.equal(await res.text(), '/test|');
  });

  test('the same rules apply with the dapr-app-id header', async () => {
    const cases: Array<[string, number, string?]> = [
      ['/mymethod', 200, '/mymethod|'],
      ['/admin/../public', 200, '/public|'],
      ['/test%23stream', 500],
    ];
    for (const [path, status, seen] of cases) {
      const res = await send(a.httpPort, { method: 'GET', path, headers: { 'dapr-app-id': 'b' } });
      assert.equal(res.status, status, path);
      if (seen !== undefined) assert.equal(res.text, seen, path);
    }
  });

  test('a malformed percent-encoding is a 400', async () => {
    const res = await send(a.httpPort, { method: 'GET', path: '/v1.0/invoke/b/method/bad%zz' });
    assert.equal(res.status, 400);
    assert.equal(errorOf(res).errorCode, 'ERR_MALFORMED_REQUEST');
  });

  test('a trailing slash and dot segments are cleaned like Go path.Clean', async () => {
    const res = await send(a.httpPort, { method: 'GET', path: '/v1.0/invoke/b/method/a/./b/../c/' });
    assert.equal(res.text, '/a/c|');
  });
});
