import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import type { CourierError } from '../errors/index.js';
import { silentLogger } from '../observability/logging/index.js';
import { freePort } from '../../test/framework/ports.js';
import { AppHealthMonitor, type HealthCheck } from './app-health.js';

function monitor(port: number, options: { readyTimeoutMs?: number; check?: HealthCheck; probe?: boolean } = {}): AppHealthMonitor {
  return new AppHealthMonitor({
    host: '127.0.0.1',
    port,
    probe: options.probe === true ? { path: '/healthz', intervalMs: 100, timeoutMs: 200, threshold: 3 } : undefined,
    check: options.check ?? (() => Promise.resolve(undefined)),
    logger: silentLogger(),
    onChange: () => {},
    readyTimeoutMs: options.readyTimeoutMs ?? 30_000,
  });
}

/** Resolves with 'ready' or the error a waiting call gets. The monitor's timers are unref'd, so the test holds the process. */
async function wait(health: AppHealthMonitor, signal: AbortSignal = new AbortController().signal): Promise<'ready' | CourierError> {
  const hold = setInterval(() => {}, 1000);
  try {
    return await new Promise((resolve) => health.whenReady(signal, () => resolve('ready'), resolve));
  } finally {
    clearInterval(hold);
  }
}

async function listen(port: number): Promise<Server> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return server;
}

test('a call that arrives before the app listens goes ahead as soon as it does', async () => {
  const port = await freePort();
  const health = monitor(port);
  health.start();
  const waiting = [wait(health), wait(health)];
  const server = await listen(port);
  try {
    assert.deepEqual(await Promise.all(waiting), ['ready', 'ready']);
    assert.equal(health.state.t, 'ready');
    // Once ready, a call goes ahead at once (synchronously).
    let now = false;
    health.whenReady(new AbortController().signal, () => (now = true), () => {});
    assert.equal(now, true);
  } finally {
    health.close();
    server.close();
  }
});

test('the wait is bounded and the error says what was waited for', async () => {
  const port = await freePort();
  const health = monitor(port, { readyTimeoutMs: 300 });
  health.start();
  try {
    const result = await wait(health);
    assert.notEqual(result, 'ready');
    const error = result as CourierError;
    assert.equal(error.code, 'ERR_DIRECT_INVOKE');
    assert.equal(error.message, `app is not in a healthy state: it did not start listening on 127.0.0.1:${port} within 300ms (--app-ready-timeout)`);
  } finally {
    health.close();
  }
});

test('with health checks, a waiting call goes ahead after the first successful probe, and the error names the probe', async () => {
  const port = await freePort();
  const server = await listen(port);
  let healthy = false;
  const health = monitor(port, { probe: true, readyTimeoutMs: 150, check: () => Promise.resolve(healthy ? undefined : 'health probe answered 503') });
  health.start();
  try {
    const failed = (await wait(health)) as CourierError;
    assert.match(failed.message, /its first health probe did not succeed within 150ms/);
    // A probe passes: calls waiting then go ahead.
    const waiting = wait(health);
    healthy = true;
    assert.equal(await waiting, 'ready');
  } finally {
    health.close();
    server.close();
  }
});

test('a waiting call ends when its caller gives up or the monitor closes', async () => {
  const port = await freePort();
  const health = monitor(port);
  health.start();
  const abort = new AbortController();
  const cancelled = wait(health, abort.signal);
  abort.abort();
  assert.equal(((await cancelled) as CourierError).message, 'the call was cancelled by the caller');
  const closing = wait(health);
  health.close();
  assert.match(((await closing) as CourierError).message, /^app is not in a healthy state$/);
  // After close, nothing waits.
  assert.notEqual(await wait(health), 'ready');
});
