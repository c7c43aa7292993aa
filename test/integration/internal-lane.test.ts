// The hop between sidecars: two Courier sidecars talk over the Courier lane; a sidecar started with
// --internal-lane=false (standing in for a peer that speaks only gRPC, such as daprd) is called over
// gRPC and calls the others over gRPC, and every call works either way with bodies larger than the
// lane's flow-control window.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestEnv } from '../framework/env.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { startApp } from '../framework/test-app.js';
import { send } from '../framework/http-client.js';

const NOT_LANE = 'does not speak the Courier lane';

describe('the hop between sidecars: lane and gRPC', () => {
  const env = new TestEnv();
  let a: SidecarProcess;
  let b: SidecarProcess;
  let c: SidecarProcess;

  before(async () => {
    const sidecars: SidecarProcess[] = [];
    for (const [id, args] of [
      ['a', []],
      ['b', []],
      ['c', ['--internal-lane=false']],
    ] as const) {
      const app = await startApp(env, (routes) => {
        routes.route('/who', (_req, res) => res.end(id));
        routes.route('/echo', (req, res, body) => {
          res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/octet-stream' });
          res.end(body);
        });
      });
      sidecars.push(await startSidecar(env, { appId: id, appPort: app.port, waitForApp: true, args: ['--max-body-size', '8Mi', ...args] }));
    }
    [a, b, c] = sidecars as [SidecarProcess, SidecarProcess, SidecarProcess];
  });
  after(() => env.close());

  test('every pair of sidecars calls each other, whichever transport the pair uses', async () => {
    for (const from of [a, b, c]) {
      for (const to of ['a', 'b', 'c']) {
        if (to === from.appId) continue;
        const res = await send(from.httpPort, { method: 'GET', path: `/v1.0/invoke/${to}/method/who` });
        assert.equal(res.status, 200, `${from.appId} → ${to}: ${res.text}`);
        assert.equal(res.text, to);
      }
    }
  });

  test('a Courier peer is called over the lane; a peer without it is recognised once and called over gRPC', async () => {
    for (const [from, to] of [
      [a, 'b'],
      [a, 'c'],
      [b, 'a'],
      [b, 'c'],
      [a, 'c'],
    ] as const) {
      const res = await send(from.httpPort, { method: 'GET', path: `/v1.0/invoke/${to}/method/who` });
      assert.equal(res.status, 200);
    }
    // Each sidecar logs the peers it found not to speak the lane (by their internal address).
    const recognised = (sidecar: SidecarProcess): string[] =>
      sidecar.output
        .split('\n')
        .filter((line) => line.includes(NOT_LANE))
        .map((line) => /target=\S*:(\d+)/.exec(line)?.[1] ?? line);
    const cPort = String(c.internalPort);
    assert.deepEqual(recognised(a), [cPort], 'a called b over the lane and recognised c once');
    assert.deepEqual(recognised(b), [cPort], 'b called a over the lane and recognised c once');
    assert.deepEqual(recognised(c), [], 'c does not try the lane at all');
  });

  test('8 MiB-limit bodies of 5 MiB pass both ways over the lane and over gRPC', async () => {
    const body = Buffer.alloc(5 * 1024 * 1024);
    for (let i = 0; i < body.length; i += 4096) body.writeUInt32BE(i, i);
    for (const [from, to] of [
      [a, 'b'],
      [b, 'a'],
      [a, 'c'],
      [c, 'b'],
    ] as const) {
      const res = await send(from.httpPort, { method: 'POST', path: `/v1.0/invoke/${to}/method/echo`, headers: { 'content-type': 'application/octet-stream' }, body });
      assert.equal(res.status, 200, `${from.appId} → ${to}`);
      assert.ok(res.body.equals(body), `${from.appId} → ${to}: the body came back unchanged`);
    }
  });
});
