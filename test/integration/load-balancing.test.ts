// Several instances of one app id: round robin (S40), and an instance killed in the middle of a steady
// load with no failed idempotent call.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestEnv } from '../framework/env.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { startApp } from '../framework/test-app.js';
import { send } from '../framework/http-client.js';

describe('load balancing', () => {
  const env = new TestEnv();
  let caller: SidecarProcess;
  const carts: SidecarProcess[] = [];

  before(async () => {
    caller = await startSidecar(env, { appId: 'frontend' });
    for (const id of ['one', 'two', 'three']) {
      const app = await startApp(env, (a) => a.route('/pid', (_req, res) => res.end(id)));
      app.checkConnectionsOnClose = false;
      carts.push(await startSidecar(env, { appId: 'cart', appPort: app.port, waitForApp: true }));
    }
  });
  after(() => env.close());

  test('S40: calls are spread round-robin over every instance', async () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 60; i++) {
      const res = await send(caller.httpPort, { path: '/v1.0/invoke/cart/method/pid' });
      assert.equal(res.status, 200);
      counts.set(res.text, (counts.get(res.text) ?? 0) + 1);
    }
    assert.deepEqual([...counts.keys()].sort(), ['one', 'three', 'two']);
    for (const [id, n] of counts) assert.equal(n, 20, `instance ${id}`);
  });

  test('an instance killed under steady load: no idempotent call fails, and it leaves the rotation', async () => {
    const results: Array<{ status: number; text: string; at: number }> = [];
    const start = Date.now();
    let stop = false;
    const load = (async () => {
      const inFlight: Array<Promise<void>> = [];
      while (!stop) {
        inFlight.push(
          send(caller.httpPort, { path: '/v1.0/invoke/cart/method/pid' }).then(
            (r) => void results.push({ status: r.status, text: r.text, at: Date.now() - start }),
            (err: unknown) => void results.push({ status: -1, text: String(err), at: Date.now() - start }),
          ),
        );
        await sleep(20);
      }
      await Promise.all(inFlight);
    })();
    await sleep(1000);
    const victim = carts[1] as SidecarProcess;
    await victim.kill();
    const killedAt = Date.now() - start;
    // The SQLite resolver's liveness window is 5 s: after it, the dead instance is not even tried.
    await sleep(6500);
    const marker = caller.output.length;
    await sleep(1500);
    stop = true;
    await load;
    const failures = results.filter((r) => r.status !== 200);
    assert.deepEqual(failures, [], 'every GET succeeded');
    const afterKill = results.filter((r) => r.at > killedAt + 100);
    assert.ok(afterKill.length > 100);
    assert.ok(!afterKill.some((r) => r.text === 'two'), 'nothing answered from the dead instance');
    assert.ok(afterKill.some((r) => r.text === 'one') && afterKill.some((r) => r.text === 'three'));
    assert.doesNotMatch(caller.output.slice(marker), /retrying invocation/, 'after the liveness window the dead instance is no longer tried');
  });
});
