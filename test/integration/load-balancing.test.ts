// Several instances of one app id: round robin (S40, with --load-balancing round-robin), an instance
// killed in the middle of a steady load with no failed idempotent call, and the default balancer
// (power of two choices over peak-EWMA latency) and outlier ejection against chaos apps that are
// slow, fail or stall.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestEnv } from '../framework/env.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { startApp } from '../framework/test-app.js';
import { startChaosApp, type ChaosApp } from '../framework/chaos-app.js';
import { send } from '../framework/http-client.js';

interface Answer {
  status: number;
  text: string;
}

/** `count` calls to `menu` through the sidecar on `port`, `concurrency` at a time. */
async function load(port: number, count: number, concurrency: number, headers: Record<string, string> = {}): Promise<Answer[]> {
  const answers: Answer[] = [];
  let issued = 0;
  const worker = async (): Promise<void> => {
    while (issued < count) {
      issued++;
      const res = await send(port, { path: '/v1.0/invoke/menu/method/work', headers });
      answers.push({ status: res.status, text: res.text });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return answers;
}

/** Calls each instance got since `before` (a snapshot of `calls`). */
function callsSince(apps: readonly ChaosApp[], before: readonly number[]): number[] {
  return apps.map((a, i) => a.calls - (before[i] ?? 0));
}

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs: number, state?: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${state === undefined ? '' : ` (${state()})`}`);
    await sleep(20);
  }
}

describe('load balancing', () => {
  const env = new TestEnv();
  /** Round robin, ejection after 3 failures in a row. */
  let caller: SidecarProcess;
  /** The defaults: p2c, ejection after 5 failures in a row. */
  let shop: SidecarProcess;
  /** Round robin without ejection. */
  let ops: SidecarProcess;
  const carts: SidecarProcess[] = [];
  /** The three instances of `menu`: m1, m2, m3. */
  const menus: ChaosApp[] = [];

  before(async () => {
    caller = await startSidecar(env, { appId: 'frontend', args: ['--load-balancing', 'round-robin', '--outlier-ejection', '3'] });
    shop = await startSidecar(env, { appId: 'shop' });
    ops = await startSidecar(env, { appId: 'ops', args: ['--load-balancing', 'round-robin', '--outlier-ejection', '0'] });
    for (const id of ['one', 'two', 'three']) {
      const app = await startApp(env, (a) => a.route('/pid', (_req, res) => res.end(id)));
      app.checkConnectionsOnClose = false;
      carts.push(await startSidecar(env, { appId: 'cart', appPort: app.port, waitForApp: true }));
    }
    for (const name of ['m1', 'm2', 'm3']) {
      const app = await startChaosApp(env, { name });
      app.checkConnectionsOnClose = false;
      menus.push(app);
      await startSidecar(env, { appId: 'menu', appPort: app.port, waitForApp: true });
    }
  });
  after(() => env.close());

  test('S40: with --load-balancing round-robin, calls are spread round-robin over every instance', async () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 60; i++) {
      const res = await send(caller.httpPort, { path: '/v1.0/invoke/cart/method/pid' });
      assert.equal(res.status, 200);
      counts.set(res.text, (counts.get(res.text) ?? 0) + 1);
    }
    assert.deepEqual([...counts.keys()].sort(), ['one', 'three', 'two']);
    for (const [id, n] of counts) assert.equal(n, 20, `instance ${id}`);
  });

  // Round-robin would give it a third. Typically 3–6 %; on a busy machine the fast instances' queues grow
  // and p2c rightly sends more to the idle slow one (10.7 % seen with the suite and a build running at
  // once, 17.7 % in a CI run on Node 20), so the bound is a quarter: well under round-robin's third.
  test('p2c (the default): an instance ten times slower than the others gets under a quarter of the calls', async (t) => {
    const [m1, m2, m3] = menus as [ChaosApp, ChaosApp, ChaosApp];
    m1.set({ mode: 'slow', delayMs: 10 });
    m2.set({ mode: 'slow', delayMs: 100 });
    m3.set({ mode: 'slow', delayMs: 10 });
    try {
      const before = menus.map((m) => m.calls);
      const answers = await load(shop.httpPort, 300, 8);
      assert.deepEqual(
        answers.filter((a) => a.status !== 200),
        [],
      );
      const [c1, c2, c3] = callsSince(menus, before) as [number, number, number];
      const share = c2 / (c1 + c2 + c3);
      t.diagnostic(`the slow instance (100 ms) got ${c2} of ${c1 + c2 + c3} calls (${(share * 100).toFixed(1)} %); the fast ones (10 ms) ${c1} and ${c3}`);
      assert.ok(share < 0.25, `the slow instance got ${(share * 100).toFixed(1)} % of the calls`);
      assert.ok(c1 > 60 && c3 > 60, `both fast instances are used: ${c1}, ${c3}`);
    } finally {
      for (const m of menus) m.set({ mode: 'ok' });
    }
  });

  test('p2c: an instance whose app answers 503 to everything gets few calls; the others serve the rest', async (t) => {
    const m3 = menus[2] as ChaosApp;
    m3.set({ mode: 'fail', status: 503 });
    try {
      const before = menus.map((m) => m.calls);
      const answers = await load(shop.httpPort, 150, 4);
      const calls = callsSince(menus, before);
      const failed = answers.filter((a) => a.status !== 200);
      t.diagnostic(`calls per instance ${calls.join(', ')}: ${failed.length} answered 503 (from m3)`);
      assert.ok(failed.every((a) => a.status === 503));
      assert.equal(failed.length, calls[2]);
      assert.ok((calls[2] ?? 0) <= 8, `the failing instance got ${calls[2]} calls`);
      assert.ok(answers.filter((a) => a.status === 200).every((a) => a.text === 'm1' || a.text === 'm2'));
    } finally {
      m3.set({ mode: 'ok' });
    }
  });

  test('p2c: an instance that stalls (holds calls without answering) stops getting calls before any of them ends', async (t) => {
    const m1 = menus[0] as ChaosApp;
    // Through the control call this time.
    const control = await send(m1.port, { method: 'POST', path: '/chaos', body: JSON.stringify({ mode: 'stall' }), headers: { 'content-type': 'application/json' } });
    assert.equal(control.status, 204);
    const before = menus.map((m) => m.calls);
    const answers: Answer[] = [];
    const total = 120;
    // Calls keep arriving (one every 5 ms) whether or not earlier ones were answered, as from many clients.
    const sent: Array<Promise<void>> = [];
    const sending = (async () => {
      for (let i = 0; i < total; i++) {
        sent.push(send(shop.httpPort, { path: '/v1.0/invoke/menu/method/work' }).then((res) => void answers.push({ status: res.status, text: res.text })));
        await sleep(5);
      }
    })();
    try {
      await sending;
      // Every call is answered but those m1 holds.
      await waitFor(
        'every call not held by the stalled instance to be answered',
        () => answers.length + m1.stalled === total,
        60_000,
        () => `${answers.length} answered, ${m1.stalled} held; calls per instance ${callsSince(menus, before).join(', ')}`,
      );
      const calls = callsSince(menus, before);
      t.diagnostic(`calls per instance ${calls.join(', ')}; held by the stalled one: ${m1.stalled}`);
      assert.ok((calls[0] ?? 0) <= 20, `the stalled instance got ${calls[0]} of ${total} calls (round robin would send it 40)`);
      assert.equal(m1.stalled, calls[0]);
      assert.deepEqual(
        answers.filter((a) => a.status !== 200),
        [],
      );
    } finally {
      await sending;
      const released = await send(m1.port, { method: 'POST', path: '/chaos', body: JSON.stringify({ mode: 'ok' }) });
      assert.equal(released.status, 204);
      await Promise.all(sent);
    }
    assert.equal(answers.length, total);
    assert.ok(answers.every((a) => a.status === 200), 'the held calls are answered once the instance recovers');
    const stats = JSON.parse((await send(m1.port, { path: '/chaos/stats' })).text) as { calls: number; mode: string };
    assert.equal(stats.calls, m1.calls);
    assert.equal(stats.mode, 'ok');
  });

  test('outlier ejection (--outlier-ejection 3): after 3 failures in a row an instance gets no calls for about 10 s', async (t) => {
    const m2 = menus[1] as ChaosApp;
    m2.set({ mode: 'fail', status: 503 });
    let ejectedAt = 0;
    try {
      const before = menus.map((m) => m.calls);
      for (let i = 0; i < 30; i++) {
        const res = await send(caller.httpPort, { path: '/v1.0/invoke/menu/method/work' });
        if (res.status === 503 && m2.calls - (before[1] ?? 0) === 3) ejectedAt = Date.now();
      }
      const calls = callsSince(menus, before);
      t.diagnostic(`round robin over 30 calls: ${calls.join(', ')}`);
      assert.equal(calls[1], 3, 'the failing instance got exactly 3 calls, then was ejected');
      assert.ok((calls[0] ?? 0) >= 13 && (calls[2] ?? 0) >= 13, 'the others took turns with the rest');
    } finally {
      m2.set({ mode: 'ok' });
    }
    // Back once its penalty (10 s ± 15 %) is over, not before.
    const before = m2.calls;
    await waitFor(
      'the ejected instance to get calls again',
      async () => {
        const res = await send(caller.httpPort, { path: '/v1.0/invoke/menu/method/work' });
        assert.equal(res.status, 200);
        return m2.calls > before;
      },
      45_000,
    );
    const away = Date.now() - ejectedAt;
    t.diagnostic(`the ejected instance got calls again ${away} ms after its 3rd failure`);
    assert.ok(away >= 8000, `back after ${away} ms`);
  });

  test('--outlier-ejection 0: a failing instance keeps its turn', async () => {
    const m2 = menus[1] as ChaosApp;
    m2.set({ mode: 'fail', status: 503 });
    try {
      const before = menus.map((m) => m.calls);
      for (let i = 0; i < 30; i++) await send(ops.httpPort, { path: '/v1.0/invoke/menu/method/work' });
      assert.deepEqual(callsSince(menus, before), [10, 10, 10]);
    } finally {
      m2.set({ mode: 'ok' });
    }
  });

  test('ejection never leaves an app without instances: when every one has failed, they are all still called', async () => {
    const before = menus.map((m) => m.calls);
    // Each instance fails its 3 calls in a row (the x-chaos header fails the call wherever it lands).
    const failed = await load(caller.httpPort, 12, 1, { 'x-chaos': 'fail=500' });
    assert.ok(failed.every((a) => a.status === 500));
    assert.ok(callsSince(menus, before).every((n) => n >= 3));
    const answers = await load(caller.httpPort, 30, 1);
    assert.deepEqual(
      answers.filter((a) => a.status !== 200),
      [],
    );
    assert.deepEqual([...new Set(answers.map((a) => a.text))].sort(), ['m1', 'm2', 'm3']);
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
