// Dapr's Resiliency resource on service invocation: retries with status matching, timeouts, circuit
// breakers, the built-in retries' interplay, the retry budget, hot reload and the resiliency metrics,
// through two real sidecars and a real app.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestEnv } from '../framework/env.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { startApp, type TestApp } from '../framework/test-app.js';
import { errorOf, send } from '../framework/http-client.js';

const RESILIENCY = `apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: myresiliency
scopes: [caller]
spec:
  policies:
    timeouts:
      short: 400ms
    retries:
      threeFast:
        policy: constant
        duration: 50ms
        maxRetries: 3
        matching:
          httpStatusCodes: "429,500-599"
      none:
        maxRetries: 0
    circuitBreakers:
      tripAt3:
        maxRequests: 1
        timeout: 1500ms
        trip: consecutiveFailures >= 3
  targets:
    apps:
      flaky:
        retry: threeFast
      slow:
        timeout: short
        retry: threeFast
      fragile:
        retry: none
        circuitBreaker: tripAt3
`;

/** Waits until `check` passes (it throws until then), for at most `ms`. */
async function eventually(check: () => Promise<void> | void, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > end) throw err;
      await sleep(100);
    }
  }
}

async function scrape(sidecar: SidecarProcess): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${sidecar.metricsPort}/metrics`);
  return res.text();
}

describe('Resiliency policies', () => {
  const env = new TestEnv();
  const resources = mkdtempSync(join(tmpdir(), 'courier-resiliency-'));
  let caller: SidecarProcess;
  let flakyApp: TestApp;
  let slowApp: TestApp;
  let fragileApp: TestApp;
  const calls = new Map<string, number>();
  let fragileHealthy = false;
  const deadlineSeen = new Map<string, string>();
  const cancelledAt = new Map<string, number>();
  const count = (key: string): number => {
    const n = (calls.get(key) ?? 0) + 1;
    calls.set(key, n);
    return n;
  };

  before(async () => {
    writeFileSync(join(resources, 'resiliency.yaml'), RESILIENCY);
    flakyApp = await startApp(env, (a) => {
      a.fallback((req, res, body) => {
        const path = (req.url ?? '').split('?')[0] ?? '';
        const n = count(path);
        const m = /^\/fail-(\d+)-then-ok\//.exec(path);
        if (m !== null && n <= Number(m[1])) {
          res.writeHead(n === 1 ? 503 : 500, { 'content-type': 'text/plain' }).end(`failure ${n}`);
          return;
        }
        if (path.startsWith('/not-found/')) {
          res.writeHead(404).end('no such thing');
          return;
        }
        res.writeHead(200, { 'content-type': 'text/plain' }).end(`ok after ${n} calls; body ${body.length} bytes: ${body.toString().slice(0, 20)}`);
      });
    });
    slowApp = await startApp(env, (a) => {
      a.fallback((req, res) => {
        const path = (req.url ?? '').split('?')[0] ?? '';
        const n = count(path);
        const delay = path.startsWith('/slow-once/') && n > 1 ? 0 : path.startsWith('/fast/') ? 0 : 2000;
        deadlineSeen.set(path, String(req.headers['courier-timeout'] ?? ''));
        const timer = setTimeout(() => res.writeHead(200).end(`answered call ${n}`), delay);
        res.on('close', () => {
          clearTimeout(timer);
          if (!res.writableEnded) cancelledAt.set(path, Date.now());
        });
      });
    });
    fragileApp = await startApp(env, (a) => {
      a.fallback((req, res) => {
        count('fragile');
        if (fragileHealthy) res.writeHead(200).end('fine');
        else res.writeHead(500).end('broken');
      });
    });
    for (const app of [flakyApp, slowApp, fragileApp]) app.checkConnectionsOnClose = false;
    await startSidecar(env, { appId: 'flaky', appPort: flakyApp.port, waitForApp: true });
    await startSidecar(env, { appId: 'slow', appPort: slowApp.port, waitForApp: true });
    await startSidecar(env, { appId: 'fragile', appPort: fragileApp.port, waitForApp: true });
    caller = await startSidecar(env, { appId: 'caller', args: ['--resources-path', resources] });
  });
  after(async () => {
    await env.close();
    rmSync(resources, { recursive: true, force: true });
  });

  test('the policies are loaded and logged at start', () => {
    assert.match(caller.output, /resiliency policies loaded/);
    assert.match(caller.output, /threeFast: at most 3, 50ms apart/);
    assert.match(caller.output, /tripAt3: consecutiveFailures >= 3/);
  });

  test('a matching failure status is retried until the app answers; the caller sees only the last answer', async () => {
    const res = await send(caller.httpPort, { path: '/v1.0/invoke/flaky/method/fail-2-then-ok/a' });
    assert.equal(res.status, 200);
    assert.match(res.text, /^ok after 3 calls/);
    assert.equal(calls.get('/fail-2-then-ok/a'), 3);
  });

  test('a POST body of known length is sent again whole with each retry', async () => {
    const body = 'x'.repeat(100_000);
    const res = await send(caller.httpPort, { method: 'POST', path: '/v1.0/invoke/flaky/method/fail-1-then-ok/post', body, headers: { 'content-type': 'text/plain' } });
    assert.equal(res.status, 200);
    assert.match(res.text, /^ok after 2 calls; body 100000 bytes/);
  });

  test('when the retries run out the last failure reaches the caller verbatim', async () => {
    const res = await send(caller.httpPort, { path: '/v1.0/invoke/flaky/method/fail-9-then-ok/b' });
    assert.equal(res.status, 500);
    assert.equal(res.text, 'failure 4', 'the 4th attempt (3 retries) answered, as the app wrote it');
    assert.equal(calls.get('/fail-9-then-ok/b'), 4);
  });

  test('a status outside matching.httpStatusCodes is not retried', async () => {
    const res = await send(caller.httpPort, { path: '/v1.0/invoke/flaky/method/not-found/c' });
    assert.equal(res.status, 404);
    assert.equal(calls.get('/not-found/c'), 1);
  });

  test('the timeout bounds each attempt, and a timed-out attempt is retried', async () => {
    const started = Date.now();
    const res = await send(caller.httpPort, { path: '/v1.0/invoke/slow/method/slow-once/d' });
    const ms = Date.now() - started;
    assert.equal(res.status, 200);
    assert.equal(res.text, 'answered call 2');
    assert.ok(ms < 1900, `the first attempt was cut at 400 ms, not waited for (took ${ms} ms)`);

    const failed = await send(caller.httpPort, { path: '/v1.0/invoke/slow/method/always-slow/e' });
    assert.equal(failed.status, 500);
    const err = errorOf(failed);
    assert.equal(err.errorCode, 'ERR_DIRECT_INVOKE');
    assert.match(err.message, /timeout after 400ms \(after 3 retries\)/);
    await eventually(() => assert.equal(calls.get('/always-slow/e'), 4));
  });

  test('a circuit breaker opens as its trip says, refuses without calling the app, half-opens after its timeout and closes on success', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await send(caller.httpPort, { path: '/v1.0/invoke/fragile/method/op' });
      assert.equal(res.status, 500);
    }
    assert.equal(calls.get('fragile'), 3);
    const refused = await send(caller.httpPort, { path: '/v1.0/invoke/fragile/method/op' });
    assert.equal(refused.status, 500);
    assert.match(errorOf(refused).message, /circuit breaker is open/);
    assert.equal(calls.get('fragile'), 3, 'an open breaker does not call the app');
    // Another method of the same app has its own breaker (Dapr keys them <appid>:<method>).
    const other = await send(caller.httpPort, { path: '/v1.0/invoke/fragile/method/other' });
    assert.equal(other.status, 500);
    assert.equal(calls.get('fragile'), 4);

    fragileHealthy = true;
    // After the breaker's timeout (1.5 s) one trial call passes and, succeeding, closes it.
    await eventually(async () => {
      const res = await send(caller.httpPort, { path: '/v1.0/invoke/fragile/method/op' });
      assert.equal(res.status, 200, res.text);
    });
    for (let i = 0; i < 5; i++) assert.equal((await send(caller.httpPort, { path: '/v1.0/invoke/fragile/method/op' })).status, 200);

    const text = await scrape(caller);
    assert.match(text, /dapr_resiliency_activations_total\{[^}]*policy="circuitbreaker"[^}]*target="app_fragile"[^}]*status="open"[^}]*\} 1/);
    assert.match(text, /dapr_resiliency_activations_total\{[^}]*status="half-open"[^}]*\} 1/);
    assert.match(text, /dapr_resiliency_activations_total\{[^}]*status="closed"[^}]*\} 1/);
    assert.match(text, /dapr_resiliency_cb_state\{[^}]*target="app_fragile"[^}]*status="closed"[^}]*\} 1/);
  });

  test("a caller's deadline (Courier-Timeout) bounds the call, travels to the target, and cancels the app's work there", async () => {
    const plain = await startSidecar(env, { appId: 'deadline-caller' });
    const started = Date.now();
    const res = await send(plain.httpPort, { path: '/v1.0/invoke/slow/method/deadline/i', headers: { 'courier-timeout': '600ms' } });
    const ms = Date.now() - started;
    assert.equal(res.status, 500);
    assert.equal(errorOf(res).errorCode, 'ERR_DIRECT_INVOKE');
    assert.match(errorOf(res).message, /deadline \(Courier-Timeout\) passed/);
    assert.ok(ms >= 550 && ms < 1800, `answered at the deadline, not when the app would have (${ms} ms)`);
    const seen = /^(\d+)ms$/.exec(deadlineSeen.get('/deadline/i') ?? '');
    assert.ok(seen !== null && Number(seen[1]) <= 600 && Number(seen[1]) > 300, `the app saw the time left: ${deadlineSeen.get('/deadline/i')}`);
    await eventually(() => assert.ok(cancelledAt.has('/deadline/i'), "the target's sidecar cancelled the app's call"));
    assert.ok((cancelledAt.get('/deadline/i') ?? 0) - started < 1800, 'cancelled at the deadline, not after the app answered');

    const bad = await send(plain.httpPort, { path: '/v1.0/invoke/slow/method/fast/j', headers: { 'courier-timeout': 'soon' } });
    assert.equal(bad.status, 400);
    assert.match(errorOf(bad).message, /Courier-Timeout header "soon" is not a duration/);
    await plain.stop();

    // Under a policy (400 ms timeout, 3 retries 50 ms apart), the deadline ends the retries.
    const t0 = Date.now();
    const limited = await send(caller.httpPort, { path: '/v1.0/invoke/slow/method/always-slow/k', headers: { 'courier-timeout': '1s' } });
    const total = Date.now() - t0;
    assert.equal(limited.status, 500);
    assert.match(errorOf(limited).message, /deadline|not retried/);
    assert.ok(total < 1700, `the whole call, retries included, ended by the 1 s deadline (${total} ms)`);
  });

  test('the resiliency metrics count policies loaded, applied and activated', async () => {
    const text = await scrape(caller);
    assert.match(text, /dapr_resiliency_loaded\{app_id="caller",name="myresiliency",namespace="default"\} 1/);
    assert.match(text, /dapr_resiliency_count\{[^}]*name="myresiliency",policy="retry"[^}]*flow_direction="outbound",target="app_flaky"[^}]*\} [1-9]/);
    assert.match(text, /dapr_resiliency_activations_total\{[^}]*policy="retry"[^}]*target="app_flaky"[^}]*\} [1-9]/);
    assert.match(text, /dapr_resiliency_activations_total\{[^}]*policy="timeout"[^}]*target="app_slow"[^}]*\} [1-9]/);
  });

  test('an app with no policy keeps the built-in retries only: a failure status is passed on at once', async () => {
    const plain = await startSidecar(env, { appId: 'plain-caller' });
    const res = await send(plain.httpPort, { path: '/v1.0/invoke/flaky/method/fail-1-then-ok/f' });
    assert.equal(res.status, 503);
    assert.equal(calls.get('/fail-1-then-ok/f'), 1);
    await plain.stop();
  });

  test('a changed file replaces the policies while running; a broken one keeps them', async () => {
    const file = join(resources, 'resiliency.yaml');
    const replace = (text: string): void => {
      writeFileSync(`${file}.tmp`, text);
      renameSync(`${file}.tmp`, file);
    };
    replace(RESILIENCY.replace('maxRetries: 3', 'maxRetries: 1'));
    await eventually(() => assert.match(caller.output, /resiliency policies reloaded/));
    const one = await send(caller.httpPort, { path: '/v1.0/invoke/flaky/method/fail-9-then-ok/g' });
    assert.equal(one.text, 'failure 2', 'one retry now');

    const marker = caller.output.length;
    replace(RESILIENCY.replace('trip: consecutiveFailures >= 3', 'trip: consecutiveFailures >='));
    await eventually(() => assert.match(caller.output.slice(marker), /the changed resources were refused; the resiliency policies in force stay/));
    assert.match(caller.output.slice(marker), /circuitBreakers\.tripAt3\.trip/);
    const still = await send(caller.httpPort, { path: '/v1.0/invoke/flaky/method/fail-9-then-ok/h' });
    assert.equal(still.text, 'failure 2', 'the policies in force before the broken file stay');
    replace(RESILIENCY);
    await eventually(() => assert.match(caller.output.slice(marker), /resiliency policies reloaded/));
  });
});

describe('the retry budget', () => {
  const env = new TestEnv();
  const resources = mkdtempSync(join(tmpdir(), 'courier-budget-'));
  after(async () => {
    await env.close();
    rmSync(resources, { recursive: true, force: true });
  });

  test('with every instance failing and a policy retrying without limit, retries stay within 20 % of the calls plus the floor', async () => {
    writeFileSync(
      join(resources, 'resiliency.yaml'),
      `apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: { name: storm }
spec:
  policies:
    retries:
      forever: { policy: constant, duration: 1ms, maxRetries: -1 }
  targets:
    apps:
      doomed: { retry: forever }
`,
    );
    let received = 0;
    const apps = [];
    for (let i = 0; i < 2; i++) {
      const app = await startApp(env, (a) => a.fallback((_req, res) => void (received++, res.writeHead(503).end('down'))));
      app.checkConnectionsOnClose = false;
      apps.push(app);
      await startSidecar(env, { appId: 'doomed', appPort: app.port, waitForApp: true, args: ['--outlier-ejection', '0'] });
    }
    // A small floor so the ratio shows: at most 0.2 × calls + 1 × 10 retries in the 10 s window.
    const caller = await startSidecar(env, { appId: 'caller', args: ['--resources-path', resources, '--retry-budget-min', '1'] });
    const calls = 300;
    const started = Date.now();
    let next = 0;
    const statuses: number[] = [];
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < calls) {
          next++;
          statuses.push((await send(caller.httpPort, { path: '/v1.0/invoke/doomed/method/x' })).status);
        }
      }),
    );
    const ms = Date.now() - started;
    assert.equal(statuses.length, calls);
    assert.ok(statuses.every((s) => s === 503), 'every call ends with the failed answer, unchanged');
    const retries = received - calls;
    console.log(`# retry budget: ${calls} calls in ${ms} ms reached the apps ${received} times (${retries} retries, ${((100 * retries) / calls).toFixed(1)} % of calls) under maxRetries -1`);
    assert.ok(retries <= 0.2 * calls + 10 + 1, `retries ${retries} within 0.2 × ${calls} + 10`);
    assert.ok(retries >= 0.1 * calls, `the budget is used (${retries} retries)`);
  });
});
