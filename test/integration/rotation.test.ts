// Certificate rotation: short-lived certificates renewed under a steady load without a failed call,
// and a Sentry that is down during a renewal.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestEnv } from '../framework/env.js';
import { startSidecar } from '../framework/sidecar-process.js';
import { startSentry } from '../framework/sentry-process.js';
import { startApp } from '../framework/test-app.js';
import { until } from '../framework/grpc-apps.js';
import { send } from '../framework/http-client.js';

function testEnv(t: TestContext): TestEnv {
  const env = new TestEnv();
  t.after(() => env.close());
  return env;
}

/** Calls `b` through `a` every `everyMs` until `stop()`, alternating GET and POST; collects failures. */
function steadyLoad(port: number, everyMs: number): { stop: () => Promise<{ calls: number; failures: string[] }> } {
  let stopped = false;
  let calls = 0;
  const failures: string[] = [];
  const pending: Array<Promise<void>> = [];
  const loop = (async () => {
    for (let i = 0; !stopped; i++) {
      const post = i % 2 === 1;
      pending.push(
        send(port, { method: post ? 'POST' : 'GET', path: '/v1.0/invoke/b/method/echo', ...(post ? { body: `n=${i}` } : {}) }).then(
          (res) => {
            calls++;
            const want = post ? `n=${i}` : '';
            if (res.status !== 200 || res.text !== want) failures.push(`${res.status} ${res.text}`);
          },
          (err: unknown) => void failures.push(String(err)),
        ),
      );
      await sleep(everyMs);
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      await Promise.all(pending);
      return { calls, failures };
    },
  };
}

test('with a 10 s certificate lifetime, 60 s of steady calls see rotations and no failure', async (t) => {
  const env = testEnv(t);
  const sentry = await startSentry(env, ['--workload-cert-ttl', '10s', '--allowed-clock-skew', '1s']);
  const app = await startApp(env, (a) => a.route('/echo', (_req, res, body) => res.end(body)));
  const a = await startSidecar(env, { appId: 'a', ...sentry.sidecar('a') });
  const b = await startSidecar(env, { appId: 'b', appPort: app.port, waitForApp: true, ...sentry.sidecar('b') });
  const load = steadyLoad(a.httpPort, 50);
  await sleep(60_000);
  const { calls, failures } = await load.stop();
  assert.deepEqual(failures, []);
  assert.ok(calls > 800, `${calls} calls`);
  for (const sidecar of [a, b]) {
    const renewals = sidecar.output.match(/workload certificate obtained/g)?.length ?? 0;
    assert.ok(renewals >= 8, `${sidecar.appId} renewed ${renewals} times in 60 s`);
  }
});

test('the Sentry down during a renewal: the current certificate keeps serving, and renewal succeeds when it is back', async (t) => {
  const env = testEnv(t);
  const sentry = await startSentry(env, ['--workload-cert-ttl', '30s', '--allowed-clock-skew', '1s']);
  const app = await startApp(env, (a) => a.route('/echo', (_req, res, body) => res.end(body)));
  const a = await startSidecar(env, { appId: 'a', ...sentry.sidecar('a') });
  const b = await startSidecar(env, { appId: 'b', appPort: app.port, waitForApp: true, ...sentry.sidecar('b') });
  const load = steadyLoad(a.httpPort, 100);
  // Renewals are due about 15 s after start; the Sentry goes away at 5 s and comes back once both
  // sidecars have failed to renew (they retry every 10 s).
  await sleep(5_000);
  await sentry.stop();
  const failed = /renewing the workload certificate failed; the current one keeps serving/;
  await until(() => failed.test(a.output) && failed.test(b.output), 'both sidecars to fail a renewal while the Sentry is away', 60_000);
  await sentry.start();
  const renewals = (sidecar: { output: string }): number => sidecar.output.match(/workload certificate obtained/g)?.length ?? 0;
  // The next retry, at most 10 s away (twice that if it came while the Sentry was still starting).
  await until(() => renewals(a) >= 2 && renewals(b) >= 2, 'both sidecars to renew once the Sentry is back', 60_000);
  const { calls, failures } = await load.stop();
  assert.deepEqual(failures, [], 'no call failed while the Sentry was away');
  assert.ok(calls > 200);
});
