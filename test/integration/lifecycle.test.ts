// Start-up, readiness, health checks and shutdown: S03, S13, S41, and graceful shutdown with calls in flight.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestEnv } from '../framework/env.js';
import { startSidecar, waitForHealthy } from '../framework/sidecar-process.js';
import { startApp, TestApp } from '../framework/test-app.js';
import { send, errorOf } from '../framework/http-client.js';
import { freePort } from '../framework/ports.js';

describe('lifecycle', () => {
  const env = new TestEnv();
  after(() => env.close());

  test('S03/S41: before the app listens, healthz is 500 and outbound is 204; a call made then waits for the app, bounded by --app-ready-timeout', async () => {
    const port = await freePort();
    const b = await startSidecar(env, { appId: 'slow', appPort: port, args: ['--app-ready-timeout', '2s'] });
    const health = await send(b.httpPort, { path: '/v1.0/healthz' });
    assert.equal(health.status, 500);
    assert.equal(errorOf(health).errorCode, 'ERR_HEALTH_NOT_READY');
    assert.match(errorOf(health).message, /^dapr is not ready: \[.*app-channel.*\]$/);
    assert.equal((await send(b.httpPort, { path: '/v1.0/healthz/outbound' })).status, 204);

    // Nobody listens: the call waits for the bound, then says why it failed.
    const started = Date.now();
    const early = await send(b.httpPort, { method: 'POST', path: '/v1.0/invoke/slow/method/hi' });
    assert.equal(early.status, 500);
    assert.equal(errorOf(early).errorCode, 'ERR_DIRECT_INVOKE');
    assert.match(errorOf(early).message, new RegExp(`app is not in a healthy state: it did not start listening on 127\\.0\\.0\\.1:${port} within 2s`));
    assert.ok(Date.now() - started >= 1900, `the call failed after ${Date.now() - started} ms, before the 2 s bound`);

    // A call made before the app listens is answered once it does.
    const waiting = send(b.httpPort, { method: 'POST', path: '/v1.0/invoke/slow/method/hi' });
    const app = new TestApp().route('/hi', (_req, res) => res.end('hi'));
    await sleep(300);
    await app.listen(port);
    env.track(app);
    const answered = await waiting;
    assert.equal(answered.status, 200);
    assert.equal(answered.text, 'hi');
    await waitForHealthy(b);
    const later = await send(b.httpPort, { method: 'POST', path: '/v1.0/invoke/slow/method/hi' });
    assert.equal(later.status, 200);
    assert.equal(later.text, 'hi');
  });

  test('healthz?appid checks the app id', async () => {
    const s = await startSidecar(env, { appId: 'checker' });
    assert.equal((await send(s.httpPort, { path: '/v1.0/healthz?appid=checker' })).status, 204);
    const other = await send(s.httpPort, { path: '/v1.0/healthz?appid=someone-else' });
    assert.equal(other.status, 500);
    assert.equal(errorOf(other).errorCode, 'ERR_HEALTH_APPID_NOT_MATCH');
  });

  test('S13: the HTTP API answers on 127.0.0.1 and on ::1', async () => {
    const s = await startSidecar(env, { appId: 'dual' });
    assert.equal((await send(s.httpPort, { path: '/v1.0/healthz', host: '127.0.0.1' })).status, 204);
    assert.equal((await send(s.httpPort, { path: '/v1.0/healthz', host: '::1' })).status, 204);
  });

  test('app health checks: calls are refused while the app is unhealthy and resume when it recovers', async () => {
    let healthy = true;
    const app = await startApp(env, (a) => {
      a.route('/healthz', (_req, res) => {
        res.writeHead(healthy ? 200 : 503);
        res.end();
      });
      a.route('/work', (_req, res) => res.end('done'));
    });
    const s = await startSidecar(env, {
      appId: 'probed',
      appPort: app.port,
      waitForApp: true,
      args: ['--enable-app-health-check', '--app-health-probe-interval', '100ms', '--app-health-threshold', '2', '--app-health-probe-timeout', '200'],
    });
    assert.equal((await send(s.httpPort, { method: 'POST', path: '/v1.0/invoke/probed/method/work' })).text, 'done');
    healthy = false;
    await waitUntil(async () => (await send(s.httpPort, { path: '/v1.0/healthz' })).status === 500);
    const refused = await send(s.httpPort, { method: 'POST', path: '/v1.0/invoke/probed/method/work' });
    assert.equal(refused.status, 500);
    assert.match(errorOf(refused).message, /app is not in a healthy state/);
    healthy = true;
    await waitForHealthy(s);
    assert.equal((await send(s.httpPort, { method: 'POST', path: '/v1.0/invoke/probed/method/work' })).text, 'done');
  });

  test('the app restarting on the same port is used again without restarting the sidecar', async () => {
    const port = await freePort();
    let app = new TestApp().route('/v', (_req, res) => res.end('one'));
    await app.listen(port);
    const s = await startSidecar(env, { appId: 'restarter', appPort: port, waitForApp: true });
    assert.equal((await send(s.httpPort, { path: '/v1.0/invoke/restarter/method/v' })).text, 'one');
    app.checkConnectionsOnClose = false;
    await app.close();
    const down = await send(s.httpPort, { path: '/v1.0/invoke/restarter/method/v' });
    assert.equal(down.status, 500);
    assert.match(errorOf(down).message, /error invoking app channel/);
    app = new TestApp().route('/v', (_req, res) => res.end('two'));
    await app.listen(port);
    env.track(app);
    assert.equal((await send(s.httpPort, { path: '/v1.0/invoke/restarter/method/v' })).text, 'two');
  });

  test('--app-max-concurrency holds calls beyond the limit until a slot frees', async () => {
    let active = 0;
    let peak = 0;
    const app = await startApp(env, (a) =>
      a.route('/busy', async (_req, res) => {
        active++;
        peak = Math.max(peak, active);
        await sleep(100);
        active--;
        res.end('ok');
      }),
    );
    const s = await startSidecar(env, { appId: 'limited', appPort: app.port, waitForApp: true, args: ['--app-max-concurrency', '2'] });
    const results = await Promise.all(Array.from({ length: 8 }, () => send(s.httpPort, { path: '/v1.0/invoke/limited/method/busy' })));
    assert.ok(results.every((r) => r.status === 200 && r.text === 'ok'));
    assert.equal(peak, 2);
  });

  test('SIGTERM: a call in flight finishes, the registration is withdrawn, the exit status is 0', async () => {
    const app = await startApp(env, (a) =>
      a.route('/long', async (_req, res) => {
        await sleep(1000);
        res.end('finished');
      }),
    );
    const caller = await startSidecar(env, { appId: 'caller' });
    const s = await startSidecar(env, { appId: 'draining', appPort: app.port, waitForApp: true });
    const inFlight = send(caller.httpPort, { path: '/v1.0/invoke/draining/method/long' });
    await sleep(300);
    const stopping = s.stop();
    const res = await inFlight;
    assert.equal(res.status, 200);
    assert.equal(res.text, 'finished');
    await stopping;
    assert.equal(existsSync(join(env.home, 'run', `${s.pid}.json`)), false, 'run record removed');
    const after = await send(caller.httpPort, { path: '/v1.0/invoke/draining/method/long' });
    assert.equal(after.status, 500);
    assert.match(errorOf(after).message, /no instance of app "draining"/, 'deregistered: not found, not a timeout');
  });

  test('--dapr-block-shutdown-duration: after SIGTERM the sidecar keeps serving calls in and out until the duration has passed, then exits 0', async () => {
    const app = await startApp(env, (a) => a.route('/work', (_req, res) => res.end('done')));
    const caller = await startSidecar(env, { appId: 'block-caller' });
    const s = await startSidecar(env, { appId: 'blocking', appPort: app.port, waitForApp: true, args: ['--dapr-block-shutdown-duration', '3s'] });
    const signalled = Date.now();
    s.child.kill('SIGTERM');
    await waitUntil(() => Promise.resolve(/blocking shutdown/.test(s.output)));
    // Inbound (through the caller) and outbound (its app calling another app) both still work.
    const inbound = await send(caller.httpPort, { method: 'POST', path: '/v1.0/invoke/blocking/method/work' });
    assert.equal(inbound.text, 'done');
    const outbound = await send(s.httpPort, { method: 'POST', path: '/v1.0/invoke/blocking/method/work' });
    assert.equal(outbound.text, 'done');
    assert.equal(s.running, true, 'still running while blocked');
    assert.equal(await s.exited(), 0);
    assert.ok(Date.now() - signalled >= 3000, `exited ${Date.now() - signalled} ms after SIGTERM, before the block ended`);
  });

  test('--dapr-block-shutdown-duration ends early when the app turns unhealthy', async () => {
    let healthy = true;
    const app = await startApp(env, (a) => {
      a.route('/healthz', (_req, res) => {
        res.writeHead(healthy ? 200 : 503);
        res.end();
      });
    });
    const s = await startSidecar(env, {
      appId: 'block-unhealthy',
      appPort: app.port,
      waitForApp: true,
      args: ['--dapr-block-shutdown-duration', '10m', '--enable-app-health-check', '--app-health-probe-interval', '100ms', '--app-health-threshold', '1'],
    });
    s.child.kill('SIGTERM');
    await waitUntil(() => Promise.resolve(/blocking shutdown/.test(s.output)));
    healthy = false;
    // Far less than the 10 minutes of the block: the app's failing probe ends it.
    const code = await Promise.race([s.exited(), sleep(60_000, undefined, { ref: false }).then(() => 'still running' as const)]);
    assert.equal(code, 0, s.output);
    assert.match(s.output, /the app is unhealthy: ending the shutdown block/);
  });

  test('POST /v1.0/shutdown stops the sidecar with exit status 0', async () => {
    const s = await startSidecar(env, { appId: 'shut' });
    const res = await send(s.httpPort, { method: 'POST', path: '/v1.0/shutdown' });
    assert.equal(res.status, 204);
    assert.equal(await s.exited(), 0);
  });

  test('metadata: never empty, and values PUT there come back', async () => {
    const s = await startSidecar(env, { appId: 'meta', appPort: 1 });
    const put = await send(s.httpPort, { method: 'PUT', path: '/v1.0/metadata/testKey', headers: { 'content-type': 'text/plain' }, body: 'Hello World' });
    assert.equal(put.status, 204);
    const res = await send(s.httpPort, { path: '/v1.0/metadata' });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'application/json');
    const body = JSON.parse(res.text) as { id: string; extended: Record<string, string>; appConnectionProperties: { port: number } };
    assert.equal(body.id, 'meta');
    assert.equal(body.extended.testKey, 'Hello World');
    assert.equal(body.appConnectionProperties.port, 1);
  });

  test('Dapr APIs other than invocation are answered 501', async () => {
    const s = await startSidecar(env, { appId: 'nostate' });
    const res = await send(s.httpPort, { method: 'POST', path: '/v1.0/state/statestore', body: '[]' });
    assert.equal(res.status, 501);
    assert.equal(errorOf(res).errorCode, 'ERR_API_UNIMPLEMENTED');
  });
});

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(50);
  }
}
