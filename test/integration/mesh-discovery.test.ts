// The mesh views finding a sidecar by name resolution: b runs with a COURIER_HOME of its own (so
// the CLI finds no run record of it, as for a sidecar of another machine) but registers in the same
// SQLite database as a, which the CLI finds through its run record; a calls b. `courier stat`,
// `edges`, `tap` and `dashboard` run as processes with that database's Configuration, and read b
// on its host at --remote-metrics-port.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestEnv } from '../framework/env.js';
import { CliProcess, runCli } from '../framework/cli-process.js';
import { send } from '../framework/http-client.js';
import { freePort, refusedPort } from '../framework/ports.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { startApp } from '../framework/test-app.js';
import type { AppView, EdgeView, MeshView, TappedCall } from '../../src/cli/mesh/view-types.js';

interface StatJson {
  apps: AppView[];
}

/** `courier <args>` to its end; its stdout when it exits 0, else a failure with everything it said. */
async function cli(env: TestEnv, args: string[], extraEnv: Record<string, string> = {}): Promise<{ stdout: string; stderr: string }> {
  const res = await runCli(env, args, { env: extraEnv, timeoutMs: 60_000 });
  assert.equal(res.code, 0, `courier ${args.join(' ')} exited ${String(res.code)}\n${res.stdout}\n${res.stderr}`);
  return res;
}

/** Runs `courier <args>` until `check` accepts what it printed. */
async function until<T>(env: TestEnv, args: string[], parse: (stdout: string) => T, check: (value: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = parse((await cli(env, args)).stdout);
    if (check(value)) return value;
    if (Date.now() > deadline) throw new Error(`courier ${args.join(' ')} never showed what was expected; last:\n${JSON.stringify(value, null, 2)}`);
    await sleep(200);
  }
}

describe('the mesh views find sidecars by name resolution', () => {
  const env = new TestEnv();
  let a: SidecarProcess;
  let b: SidecarProcess;
  let config: string;
  let bMetricsPort: number;
  let loading = false;
  let load: Promise<void> = Promise.resolve();

  before(async () => {
    // Tracked first, so removed last: after b has stopped.
    const homeB = mkdtempSync(join(tmpdir(), 'courier-test-other-home-'));
    env.track({ close: () => Promise.resolve(rmSync(homeB, { recursive: true, force: true })) });
    config = join(env.home, 'shared-nameresolution.yaml');
    const database = join(env.home, 'shared-nameresolution.db');
    writeFileSync(
      config,
      ['apiVersion: dapr.io/v1alpha1', 'kind: Configuration', 'metadata:', '  name: shared', 'spec:', '  nameResolution:', '    component: sqlite', '    configuration:', `      connectionString: ${database}`, ''].join('\n'),
    );
    bMetricsPort = await freePort();
    const appB = await startApp(env, (app) => app.fallback((_req, res) => void res.writeHead(200).end('b')));
    b = await startSidecar(env, {
      appId: 'b',
      appPort: appB.port,
      waitForApp: true,
      args: ['--config', config, '--metrics-port', String(bMetricsPort), '--metrics-listen-address', '127.0.0.1'],
      env: { COURIER_HOME: homeB },
    });
    a = await startSidecar(env, { appId: 'a', args: ['--config', config] });
  });
  after(async () => {
    loading = false;
    await load;
    await env.close();
  });

  const named = (...extra: string[]): string[] => ['--config', config, '--remote-metrics-port', String(bMetricsPort), ...extra];

  test('--app b finds b before anything calls it; without it, only a is seen', async () => {
    const alone = JSON.parse((await cli(env, ['stat', '-o', 'json', '-t', '300ms', ...named()])).stdout) as StatJson;
    assert.deepEqual(
      alone.apps.map((x) => x.appId),
      ['a'],
      "b's run record is not the CLI's to see",
    );
    const { stdout, stderr } = await cli(env, ['stat', '-o', 'json', '-t', '300ms', ...named('--app', 'b')]);
    assert.equal(stderr, '');
    const stat = JSON.parse(stdout) as StatJson;
    assert.deepEqual(
      stat.apps.map((x) => [x.appId, x.instances.length, x.instances[0]?.health]),
      [
        ['a', 1, 'healthy'],
        ['b', 1, 'healthy'],
      ],
    );
    const instance = stat.apps[1]?.instances[0];
    assert.equal(instance?.pid, b.pid);
    assert.equal(instance?.metricsUrl, `http://127.0.0.1:${bMetricsPort}`);
    assert.equal(instance?.address, `127.0.0.1:${b.internalPort}`);
  });

  test('once a calls b: stat lists b with its instance and the calls it received, edges shows a → b', async () => {
    loading = true;
    load = (async () => {
      while (loading) {
        await send(a.httpPort, { method: 'POST', path: '/v1.0/invoke/b/method/orders', body: 'x' }).catch(() => undefined);
        await sleep(10);
      }
    })();
    const stat = await until(
      env,
      ['stat', '-o', 'json', '--window', '1s', ...named()],
      (out) => JSON.parse(out) as StatJson,
      (s) => (s.apps.find((x) => x.appId === 'b')?.inbound.calls ?? 0) > 0,
    );
    const appB = stat.apps.find((x) => x.appId === 'b');
    assert.deepEqual(
      appB?.instances.map((i) => [i.pid, i.health, i.metricsUrl]),
      [[b.pid, 'healthy', `http://127.0.0.1:${bMetricsPort}`]],
    );
    assert.ok((appB?.inbound.rps ?? 0) > 0);
    assert.equal(appB?.inbound.successRate, 1);

    const { edges } = await until(
      env,
      ['edges', '-o', 'json', '--window', '1s', ...named()],
      (out) => JSON.parse(out) as { edges: EdgeView[] },
      (v) => v.edges.some((e) => e.src === 'a' && e.dst === 'b' && e.stats.rps > 0),
    );
    assert.deepEqual(
      edges.map((e) => [e.src, e.dst]),
      [['a', 'b']],
    );
  });

  test('courier tap b finds b by name resolution by itself', async () => {
    const { stdout } = await cli(env, ['tap', 'b', '--max', '2', '-o', 'json', '--direction', 'inbound', ...named()]);
    const calls = stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as TappedCall);
    assert.deepEqual(
      calls.map((c) => [c.reportedBy, c.srcAppId, c.dstAppId, c.direction, c.path]),
      Array.from({ length: 2 }, () => ['b', 'a', 'b', 'inbound', '/orders']),
    );
  });

  test('courier dashboard reads b too, with one resolver for the whole run', async () => {
    const dashboard = new CliProcess(env, ['dashboard', '--port', '0', '--window', '500ms', ...named()]);
    const [, url] = await dashboard.waitFor(/Courier dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/);
    const deadline = Date.now() + 60_000;
    let view: MeshView | undefined;
    for (;;) {
      const res = await fetch(new URL('/api/view', url));
      view = res.status === 200 ? ((await res.json()) as MeshView) : (await res.arrayBuffer(), undefined);
      const pids = view?.apps.find((x) => x.appId === 'b')?.instances.map((i) => i.pid);
      if (pids?.includes(b.pid) === true) break;
      if (Date.now() > deadline) throw new Error(`the dashboard never showed b; last view:\n${JSON.stringify(view, null, 2)}\n${dashboard.output}`);
      await sleep(200);
    }
    assert.ok(view?.edges.some((e) => e.src === 'a' && e.dst === 'b'));
    await dashboard.close();
    assert.deepEqual(dashboard.exitStatus, { code: 0, signal: null }, dashboard.output);
  });

  test("a wrong --remote-metrics-port names b's instance on stderr; a resolver that cannot open its database is a warning; the views go on", async () => {
    const wrongPort = await refusedPort();
    const wrong = await runCli(env, ['stat', '-o', 'json', '-t', '300ms', '--config', config, '--remote-metrics-port', String(wrongPort)], { timeoutMs: 60_000 });
    assert.equal(wrong.code, 0, wrong.stderr);
    assert.match(
      wrong.stderr,
      new RegExp(`courier stat: cannot read the sidecar of b at http://127\\.0\\.0\\.1:${wrongPort} \\(found by name resolution at 127\\.0\\.0\\.1:${b.internalPort}\\): connection refused`),
    );
    const unreachable = (JSON.parse(wrong.stdout) as StatJson).apps.find((x) => x.appId === 'b')?.instances[0];
    assert.equal(unreachable?.health, 'unreachable');

    const broken = join(env.home, 'broken-nameresolution.yaml');
    writeFileSync(
      broken,
      ['apiVersion: dapr.io/v1alpha1', 'kind: Configuration', 'metadata:', '  name: broken', 'spec:', '  nameResolution:', '    component: sqlite', '    configuration:', `      connectionString: "file:${join(env.home, 'missing', 'x.db')}?mode=rw"`, ''].join('\n'),
    );
    const failing = await runCli(env, ['edges', '-o', 'json', '-t', '300ms', '--config', broken], { timeoutMs: 60_000 });
    assert.equal(failing.code, 0, failing.stderr);
    assert.match(failing.stderr, /^courier edges: cannot look up app b with the sqlite name resolver \(.*broken-nameresolution\.yaml, namespace default\): /);
    assert.ok((JSON.parse(failing.stdout) as { edges: EdgeView[] }).edges.some((e) => e.src === 'a' && e.dst === 'b'));
  });

  test('nothing found anywhere: the message names name resolution too', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'courier-empty-'));
    try {
      const res = await runCli(env, ['stat', '--app', 'nosuch', '--config', config], { env: { COURIER_HOME: empty } });
      assert.equal(res.code, 1, res.stdout + res.stderr);
      assert.equal(
        res.stderr,
        `courier: no Courier sidecars found: no running sidecar with metrics on in ${join(empty, 'run')} (COURIER_HOME=${empty}), none given with --sidecar <host:port of its metrics port>, and the sqlite name resolver (${config}, namespace default) found no instance of nosuch\n`,
      );
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
