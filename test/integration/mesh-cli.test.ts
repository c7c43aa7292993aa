// The mesh views as a user runs them: three real apps in a chain (a calls b, b forwards to c through
// its own sidecar; one call in four fails at b), real sidecars, and `courier stat`, `edges`, `top` and
// `tap` run as processes that find the sidecars through their run records in COURIER_HOME.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestEnv } from '../framework/env.js';
import { CliProcess, runCli } from '../framework/cli-process.js';
import { send } from '../framework/http-client.js';
import { startSentry } from '../framework/sentry-process.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { startApp } from '../framework/test-app.js';
import type { TapEvent } from '../../src/observability/mesh/contract.js';
import type { AppView, EdgeView, RouteView, TappedCall } from '../../src/cli/mesh/view-types.js';

interface StatJson {
  at: number;
  windowSeconds: number;
  apps: AppView[];
  routes: RouteView[];
}

/** `courier <args>` to its end; its stdout when it exits 0, else a failure with everything it said. */
async function cli(env: TestEnv, args: string[], extraEnv: Record<string, string> = {}): Promise<string> {
  const res = await runCli(env, args, { env: extraEnv, timeoutMs: 60_000 });
  assert.equal(res.code, 0, `courier ${args.join(' ')} exited ${String(res.code)}\n${res.stdout}\n${res.stderr}`);
  return res.stdout;
}

/** Runs `courier <args>` until `check` accepts what it printed (the load may not have reached every sidecar yet). */
async function until<T>(env: TestEnv, args: string[], parse: (stdout: string) => T, check: (value: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = parse(await cli(env, args));
    if (check(value)) return value;
    if (Date.now() > deadline) throw new Error(`courier ${args.join(' ')} never showed what was expected; last:\n${JSON.stringify(value, null, 2)}`);
    await sleep(200);
  }
}

/** One call in four fails: in any run of consecutive calls the failures are a quarter, give or take one. */
function aboutAQuarterFailed(calls: number, failures: number): boolean {
  return Math.abs(failures - calls / 4) <= 1;
}

describe('courier stat, edges, top and tap', () => {
  const env = new TestEnv();
  let a: SidecarProcess;
  let b: SidecarProcess;
  let c: SidecarProcess;
  let loading = true;
  let load: Promise<void> = Promise.resolve();
  let sent = 0;

  before(async () => {
    const appC = await startApp(env, (app) => app.fallback((_req, res) => void res.writeHead(200).end('c')));
    c = await startSidecar(env, { appId: 'c', appPort: appC.port, waitForApp: true });
    let bHttpPort = 0;
    const appB = await startApp(env, (app) =>
      app
        .route('/fail', (_req, res) => void res.writeHead(500).end('failed'))
        .route('/orders', async (_req, res) => {
          // b's own work: ask c, through b's sidecar.
          const answer = await send(bHttpPort, { method: 'POST', path: '/v1.0/invoke/c/method/stock', body: 'item' });
          res.writeHead(answer.status).end('ordered');
        }),
    );
    b = await startSidecar(env, { appId: 'b', appPort: appB.port, waitForApp: true });
    bHttpPort = b.httpPort;
    a = await startSidecar(env, { appId: 'a' });
    // One caller, one call at a time: calls end in the order they were sent, every fourth one fails.
    load = (async () => {
      while (loading) {
        const method = sent % 4 === 3 ? 'fail' : 'orders';
        sent++;
        try {
          await send(a.httpPort, { method: 'POST', path: `/v1.0/invoke/b/method/${method}`, body: 'x' });
        } catch {
          // a sidecar stopping at the end of the test
        }
        await sleep(5);
      }
    })();
  });
  after(async () => {
    loading = false;
    await load;
    await env.close();
  });

  test('courier stat -o json: every app, its instances, its success rate, rate and latency', async () => {
    const stat = await until(
      env,
      ['stat', '-o', 'json', '--window', '1s'],
      (out) => JSON.parse(out) as StatJson,
      (s) => ['a', 'b', 'c'].every((id) => s.apps.some((x) => x.appId === id)) && (s.apps.find((x) => x.appId === 'c')?.inbound.calls ?? 0) > 4,
    );
    assert.ok(Math.abs(stat.windowSeconds - 1) < 0.5, `window ${stat.windowSeconds}`);
    assert.deepEqual(
      stat.apps.map((x) => [x.appId, x.instances.length, x.instances[0]?.health]),
      [
        ['a', 1, 'healthy'],
        ['b', 1, 'healthy'],
        ['c', 1, 'healthy'],
      ],
    );
    const [appA, appB, appC] = stat.apps as [AppView, AppView, AppView];
    assert.equal(appB.instances[0]?.pid, b.pid);
    assert.equal(appB.instances[0]?.protocol, 'http');
    assert.equal(appA.inbound.calls, 0);
    assert.ok(appA.outbound.rps > 0);
    assert.ok(appB.inbound.rps > 0);
    assert.ok(aboutAQuarterFailed(appB.inbound.calls, appB.inbound.failures), JSON.stringify(appB.inbound));
    assert.ok(appB.inbound.successRate !== null && appB.inbound.successRate > 0.5 && appB.inbound.successRate < 0.9);
    assert.ok(appB.inbound.p50 !== null && appB.inbound.p50 > 0 && (appB.inbound.p99 ?? 0) >= appB.inbound.p50);
    assert.equal(appC.instances[0]?.pid, c.pid);
    assert.equal(appC.inbound.failures, 0);
    assert.equal(appC.inbound.successRate, 1);
    const routes = stat.routes.map((r) => `${r.appId} ${r.verb} ${r.route}`);
    for (const route of ['b POST /orders', 'b POST /fail', 'c POST /stock']) assert.ok(routes.includes(route), `${route} in ${routes.join(', ')}`);
    assert.equal(stat.routes.find((r) => r.route === '/fail')?.stats.successRate, 0);
  });

  test('courier stat as a table, and for one app with its routes', async () => {
    const table = await cli(env, ['stat', '-t', '500ms']);
    const lines = table.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^NAME +INSTANCES +SUCCESS +RPS +LATENCY_P50 +LATENCY_P95 +LATENCY_P99$/);
    assert.deepEqual(
      lines.slice(1).map((l) => l.split(/ +/).slice(0, 2)),
      [
        ['a', '1/1'],
        ['b', '1/1'],
        ['c', '1/1'],
      ],
    );
    const one = await until(
      env,
      ['stat', 'b', '--window', '500ms'],
      (out) => out,
      (out) => /\nb +POST +\/fail +0\.00%/.test(out),
    );
    assert.match(one, /^NAME .*\nb +1\/1 +\d+\.\d\d% +\d+\.\drps/);
    assert.match(one, /\n\nAPP +VERB +ROUTE +SUCCESS +RPS/);
    assert.doesNotMatch(one, /\nc +POST/);
  });

  test('courier edges -o json: a → b with its failures, b → c all successful, no mTLS identities', async () => {
    const { edges } = await until(
      env,
      ['edges', '-o', 'json', '--window', '1s'],
      (out) => JSON.parse(out) as { edges: EdgeView[] },
      (v) => v.edges.length === 2 && v.edges.every((e) => e.stats.calls > 4),
    );
    assert.deepEqual(
      edges.map((e) => [e.src, e.dst, e.srcIdentities, e.dstIdentities]),
      [
        ['a', 'b', [], []],
        ['b', 'c', [], []],
      ],
    );
    const [ab, bc] = edges as [EdgeView, EdgeView];
    assert.ok(ab.stats.rps > 0 && bc.stats.rps > 0);
    assert.ok(aboutAQuarterFailed(ab.stats.calls, ab.stats.failures), JSON.stringify(ab.stats));
    assert.equal(bc.stats.successRate, 1);
    // b calls c for three calls in four it receives.
    assert.ok(Math.abs(bc.stats.calls - (ab.stats.calls * 3) / 4) <= 4, `${bc.stats.calls} vs ${ab.stats.calls}`);
    const table = await cli(env, ['edges', '-t', '500ms']);
    assert.match(table, /^SRC +DST +SRC_IDENTITY +DST_IDENTITY +SUCCESS +RPS +P50 +P99\na +b +- +- +\d/);
  });

  test('courier top --once -o json: the routes that received calls, busiest first', async () => {
    const top = await until(
      env,
      ['top', '--once', '-o', 'json', '--window', '1s'],
      (out) => JSON.parse(out) as { routes: RouteView[] },
      (v) => ['/orders', '/fail', '/stock'].every((r) => v.routes.some((x) => x.route === r)),
    );
    assert.ok(top.routes.every((r) => r.stats.calls > 0));
    const calls = top.routes.map((r) => r.stats.calls);
    assert.deepEqual(calls, [...calls].sort((x, y) => y - x));
    // /orders gets three calls in four, /fail one.
    const orders = top.routes.find((r) => r.appId === 'b' && r.route === '/orders')?.stats.calls ?? 0;
    const fails = top.routes.find((r) => r.appId === 'b' && r.route === '/fail')?.stats.calls ?? 0;
    assert.ok(orders > fails, `${orders} /orders, ${fails} /fail`);
  });

  test('courier top -o json refreshes every window, one document per line, until SIGTERM', async () => {
    const top = new CliProcess(env, ['top', '-o', 'json', '-t', '300ms']);
    await top.waitFor(/^(\{.*\}\n){2}/);
    await top.close();
    assert.deepEqual(top.exitStatus, { code: 0, signal: null });
    for (const line of top.stdout.trimEnd().split('\n')) assert.ok(Array.isArray((JSON.parse(line) as { routes: unknown }).routes));
  });

  test('courier tap b --max 3 -o json: the calls b received that failed, as filtered', async () => {
    const out = await cli(env, ['tap', 'b', '--max', '3', '-o', 'json', '--direction', 'inbound', '--status', '5xx']);
    const calls = out.trimEnd().split('\n').map((l) => JSON.parse(l) as TappedCall);
    assert.equal(calls.length, 3);
    for (const call of calls) {
      assert.equal(call.direction, 'inbound');
      assert.equal(call.srcAppId, 'a');
      assert.equal(call.dstAppId, 'b');
      assert.equal(call.method, 'POST');
      assert.equal(call.path, '/fail');
      assert.equal(call.status, 500);
      assert.equal(call.reportedBy, 'b');
      assert.match(call.traceId, /^[0-9a-f]{32}$/);
      assert.ok(call.latencyMs > 0);
    }
  });

  test('courier tap b --direction outbound: the calls b makes to c; lines as a table; SIGTERM ends it cleanly', async () => {
    const json = await cli(env, ['tap', 'b', '--max', '3', '-o', 'json', '--direction', 'outbound']);
    const calls = json.trimEnd().split('\n').map((l) => JSON.parse(l) as TapEvent);
    assert.deepEqual(
      calls.map((x) => [x.direction, x.srcAppId, x.dstAppId, x.path, x.status]),
      Array.from({ length: 3 }, () => ['outbound', 'b', 'c', '/stock', 200]),
    );
    const tap = new CliProcess(env, ['tap', 'b', '--path', '/orders']);
    await tap.waitFor(/\d\d:\d\d:\d\d\.\d{3} +inbound +a → b +POST +\/orders +200 +[\d.]+ms +trace=[0-9a-f]{32}\n/);
    await tap.close();
    assert.deepEqual(tap.exitStatus, { code: 0, signal: null });
    assert.doesNotMatch(tap.stdout, /\/fail|\/stock/);
  });

  test('a sidecar given with --sidecar is read too; an unreachable one is named on stderr', async () => {
    const res = await runCli(env, ['edges', '-o', 'json', '-t', '300ms', '--sidecar', `127.0.0.1:${b.metricsPort}`, '--sidecar', '127.0.0.1:1']);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stderr, /courier edges: cannot read the sidecar of http:\/\/127\.0\.0\.1:1: connection refused/);
    assert.equal((JSON.parse(res.stdout) as { edges: EdgeView[] }).edges.length, 2);
  });

  test('no sidecars: the views say where they looked and exit 1', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'courier-empty-'));
    try {
      for (const args of [['stat'], ['edges'], ['top', '--once'], ['tap', 'b']]) {
        const res = await runCli(env, args, { env: { COURIER_HOME: empty } });
        assert.equal(res.code, 1, `${args.join(' ')}: ${res.stdout}${res.stderr}`);
        assert.equal(res.stdout, '');
        const where = `no running sidecar with metrics on in ${join(empty, 'run')} (COURIER_HOME=${empty})`;
        // tap looks its app up by name resolution too (the embedded default: SQLite in COURIER_HOME).
        const expected =
          args[0] === 'tap'
            ? `${where}, none given with --sidecar <host:port of its metrics port>, and the sqlite name resolver (the default configuration, namespace default) found no instance of b`
            : `${where}, and none given with --sidecar <host:port of its metrics port>`;
        assert.equal(res.stderr, `courier: no Courier sidecars found: ${expected}\n`);
      }
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
    const unknown = await runCli(env, ['tap', 'nosuch']);
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stderr, 'courier: no sidecar of app "nosuch" found (apps: a, b, c)\n');
  });
});

describe('mesh views of sidecars that want an API token', () => {
  const env = new TestEnv();
  after(() => env.close());

  test('without DAPR_API_TOKEN the views say the token was refused; with it they read the sidecar', async () => {
    const d = await startSidecar(env, { appId: 'd', env: { DAPR_API_TOKEN: 'mesh-s3cret' } });
    const refused = await runCli(env, ['stat', '-t', '200ms']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^courier: no sidecar could be read: d at http:\/\/127\.0\.0\.1:\d+: HTTP 401 on \/courier\/v1\/info: the API token was refused \(set DAPR_API_TOKEN/);
    const read = await runCli(env, ['stat', '-t', '200ms', '-o', 'json'], { env: { DAPR_API_TOKEN: 'mesh-s3cret' } });
    assert.equal(read.code, 0, read.stderr);
    const stat = JSON.parse(read.stdout) as StatJson;
    assert.deepEqual(
      stat.apps.map((x) => [x.appId, x.instances[0]?.pid, x.instances[0]?.health]),
      [['d', d.pid, 'healthy']],
    );
  });
});

describe('mesh views with mTLS', () => {
  const env = new TestEnv();
  let loading = true;
  let load: Promise<void> = Promise.resolve();
  after(async () => {
    loading = false;
    await load;
    await env.close();
  });

  test('courier edges shows the SPIFFE identities of both ends: whole in json, shortened in the table', async () => {
    const sentry = await startSentry(env);
    const app = await startApp(env, (a) => a.fallback((_req, res) => void res.writeHead(200).end('ok')));
    await startSidecar(env, { appId: 'orders', appPort: app.port, waitForApp: true, ...sentry.sidecar('orders') });
    const checkout = await startSidecar(env, { appId: 'checkout', ...sentry.sidecar('checkout') });
    load = (async () => {
      while (loading) {
        await send(checkout.httpPort, { method: 'POST', path: '/v1.0/invoke/orders/method/neworder', body: 'x' }).catch(() => undefined);
        await sleep(10);
      }
    })();
    const { edges } = await until(
      env,
      ['edges', '-o', 'json', '-t', '500ms'],
      (out) => JSON.parse(out) as { edges: EdgeView[] },
      (v) => v.edges.length === 1 && (v.edges[0]?.stats.calls ?? 0) > 0,
    );
    assert.deepEqual(edges[0]?.srcIdentities, ['spiffe://public/ns/default/checkout']);
    assert.deepEqual(edges[0]?.dstIdentities, ['spiffe://public/ns/default/orders']);
    assert.equal(edges[0]?.stats.successRate, 1);
    const table = await cli(env, ['edges', '-t', '500ms']);
    assert.match(table, /\ncheckout +orders +public\/default\/checkout +public\/default\/orders +100\.00% +\d+\.\drps/);
  });
});
