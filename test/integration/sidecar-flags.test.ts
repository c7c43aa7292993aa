// daprd's flags that Courier implements beyond the basics: --unix-domain-socket, --enable-api-logging
// (and Configuration spec.logging.apiLogging), and the deprecated size flags with their warnings.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestEnv } from '../framework/env.js';
import { freePort } from '../framework/ports.js';
import { startSidecar } from '../framework/sidecar-process.js';
import { startApp } from '../framework/test-app.js';
import { errorOf, send } from '../framework/http-client.js';
import { daprClient, md } from '../framework/grpc-apps.js';
import { appDirectory, CliProcess, runCli } from '../framework/cli-process.js';
import { apiSocketPaths } from '../../src/runtime/sidecar.js';

function tempDir(env: TestEnv): string {
  // Short: a Unix socket path may be at most 107 bytes.
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cv-uds-')));
  env.track({ close: () => Promise.resolve(rmSync(dir, { recursive: true, force: true })) });
  return dir;
}

function getMetadata(target: string): Promise<{ id: string }> {
  const client = daprClient(target);
  return new Promise((resolve, reject) =>
    client.GetMetadata({}, md({}), (err, res) => {
      client.close();
      if (err !== null || res === undefined) reject(err ?? new Error('no answer'));
      else resolve(res as unknown as { id: string });
    }),
  );
}

async function waitForLine(output: () => string, pattern: RegExp, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = output()
      .split('\n')
      .find((l) => pattern.test(l));
    if (line !== undefined) return line;
    if (Date.now() > deadline) throw new Error(`no line matching ${String(pattern)} in:\n${output()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('sidecar flags', () => {
  const env = new TestEnv();
  after(() => env.close());

  test('--unix-domain-socket: both APIs listen on dapr-<id>-http.socket and dapr-<id>-grpc.socket, not on TCP; courier invoke finds them; the sockets go at shutdown', async () => {
    const dir = tempDir(env);
    const app = await startApp(env, (a) => a.route('/hello', (req, res) => res.end(`hello from b to ${String(req.headers['dapr-caller-app-id'])}`)));
    const b = await startSidecar(env, { appId: 'uds-b', appPort: app.port, waitForApp: true });
    const a = await startSidecar(env, { appId: 'uds-a', args: ['--unix-domain-socket', dir] });
    const sockets = apiSocketPaths(dir, 'uds-a');
    assert.equal(sockets.http, join(dir, 'dapr-uds-a-http.socket'));
    assert.equal(a.httpPort, 0, 'no TCP port for the HTTP API');
    assert.equal(a.grpcPort, 0, 'no TCP port for the gRPC API');

    const res = await send(0, { socketPath: sockets.http, method: 'POST', path: '/v1.0/invoke/uds-b/method/hello' });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.text, 'hello from b to uds-a');
    assert.equal((await getMetadata(`unix://${sockets.grpc}`)).id, 'uds-a');

    // The app's own sidecar on a socket: courier invoke reaches it there.
    const c = await startSidecar(env, { appId: 'uds-c', appPort: app.port, waitForApp: false, args: ['--unix-domain-socket', dir] });
    const invoked = await runCli(env, ['invoke', '--app-id', 'uds-c', '--method', 'hello', '--verb', 'GET']);
    assert.equal(invoked.code, 0, invoked.stderr);
    assert.match(invoked.stdout, /hello from b to uds-c/);

    await c.stop();
    await a.stop();
    assert.equal(existsSync(sockets.http) || existsSync(sockets.grpc), false, 'the sockets are removed at shutdown');
    assert.ok(b.running);
  });

  test('--unix-domain-socket: a socket left by a killed sidecar is replaced; a live one or a non-socket file is refused', async () => {
    const dir = tempDir(env);
    const first = await startSidecar(env, { appId: 'uds-restart', args: ['--unix-domain-socket', dir] });
    await first.kill();
    const { http } = apiSocketPaths(dir, 'uds-restart');
    assert.equal(existsSync(http), true, 'SIGKILL leaves the socket file behind');
    const second = await startSidecar(env, { appId: 'uds-restart', args: ['--unix-domain-socket', dir] });
    assert.equal((await send(0, { socketPath: http, path: '/v1.0/healthz/outbound' })).status, 204);

    const clash = await runCli(env, ['sidecar', '--app-id', 'uds-restart', '--dapr-internal-grpc-port', '0', '--metrics-port', '0', '--unix-domain-socket', dir]);
    assert.notEqual(clash.code, 0);
    assert.match(clash.stdout + clash.stderr, /another process is listening on .*dapr-uds-restart-http\.socket/);
    await second.stop();

    writeFileSync(join(dir, 'dapr-uds-file-http.socket'), 'not a socket');
    const notSocket = await runCli(env, ['sidecar', '--app-id', 'uds-file', '--dapr-internal-grpc-port', '0', '--metrics-port', '0', '--unix-domain-socket', dir]);
    assert.notEqual(notSocket.code, 0);
    assert.match(notSocket.stdout + notSocket.stderr, /dapr-uds-file-http\.socket exists and is not a socket/);
    const missing = await runCli(env, ['sidecar', '--app-id', 'uds-x', '--metrics-port', '0', '--unix-domain-socket', join(dir, 'missing')]);
    assert.match(missing.stderr, /--unix-domain-socket .*missing: ENOENT/);
  });

  test('courier run -u: the app reaches its sidecar over the socket and gets no DAPR_HTTP_PORT', async () => {
    const dir = tempDir(env);
    const appDir = appDirectory(env, {
      'app.js': `
const http = require('node:http');
console.log('port=' + (process.env.DAPR_HTTP_PORT ?? 'none'));
const socketPath = require('node:path').join(${JSON.stringify(dir)}, 'dapr-' + process.env.APP_ID + '-http.socket');
http.get({ socketPath, path: '/v1.0/metadata' }, (res) => {
  let body = '';
  res.on('data', (d) => (body += d));
  res.on('end', () => { console.log('metadata ' + res.statusCode + ' ' + JSON.parse(body).id); });
});
`,
    });
    const cli = new CliProcess(env, ['run', '--app-id', 'uds-run', '-u', dir, '--', 'node', 'app.js'], { cwd: appDir });
    await cli.waitFor(/is up: HTTP socket .*dapr-uds-run-http\.socket, gRPC socket .*dapr-uds-run-grpc\.socket/);
    await cli.waitFor(/== APP == port=none/);
    await cli.waitFor(/== APP == metadata 200 uds-run/);
    await cli.close();
  });

  test('--enable-api-logging: one line per HTTP and gRPC API call, with method, status, duration and the caller\'s trace id', async () => {
    const app = await startApp(env, (a) => a.route('/hi', (_req, res) => res.end('hi')));
    const s = await startSidecar(env, { appId: 'apilog', appPort: app.port, waitForApp: true, args: ['--enable-api-logging'] });
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    assert.equal((await send(s.httpPort, { method: 'POST', path: '/v1.0/invoke/apilog/method/hi', headers: { 'user-agent': 'probe/1', traceparent } })).status, 200);
    assert.equal((await send(s.httpPort, { path: '/v1.0/invoke/apilog/method/absent-app-route', headers: { 'dapr-app-id': 'nobody-here' } })).status, 500);
    await getMetadata(`127.0.0.1:${s.grpcPort}`);
    const http = await waitForLine(() => s.output, /msg="HTTP API Called".*POST \/v1\.0\/invoke\/apilog\/method\/hi/);
    assert.match(http, /code=200/);
    assert.match(http, /duration=[\d.]+/);
    assert.match(http, /useragent=probe\/1/);
    assert.match(http, /trace_id=4bf92f3577b34da6a3ce929d0e0e4736/);
    assert.match(await waitForLine(() => s.output, /msg="HTTP API Called".*absent-app-route/), /code=500/);
    assert.match(await waitForLine(() => s.output, /msg="gRPC API Called".*\/dapr\.proto\.runtime\.v1\.Dapr\/GetMetadata/), /code=0/);
  });

  test('spec.logging.apiLogging: enabled, obfuscateURLs and omitHealthChecks as Dapr; --enable-api-logging=false overrides it', async () => {
    const dir = tempDir(env);
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      'apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: logs}\nspec:\n  logging:\n    apiLogging:\n      enabled: true\n      obfuscateURLs: true\n      omitHealthChecks: true\n',
    );
    const app = await startApp(env, (a) => a.route('/secret-order-42', (_req, res) => res.end('ok')));
    const s = await startSidecar(env, { appId: 'apilog-cfg', appPort: app.port, waitForApp: true, args: ['--config', config] });
    assert.equal((await send(s.httpPort, { method: 'POST', path: '/v1.0/invoke/apilog-cfg/method/secret-order-42' })).status, 200);
    const line = await waitForLine(() => s.output, /msg="HTTP API Called"/);
    assert.match(line, /method="POST \/v1\.0\/invoke\/\{id\}\/method\/\{method\}"/);
    assert.doesNotMatch(s.output, /secret-order-42"? code=/);
    assert.doesNotMatch(s.output, /HTTP API Called.*healthz/, 'health checks are not logged');

    const off = await startSidecar(env, { appId: 'apilog-off', appPort: app.port, waitForApp: true, args: ['--config', config, '--enable-api-logging=false'] });
    assert.equal((await send(off.httpPort, { method: 'POST', path: '/v1.0/invoke/apilog-off/method/secret-order-42' })).status, 200);
    assert.doesNotMatch(off.output, /API Called/);
  });

  test('--enable-profiling serves event-loop delay, GC pauses, CPU and allocation profiles on --profile-port, behind the API token', async () => {
    const app = await startApp(env, (a) => a.route('/hi', (_req, res) => res.end('hi')));
    const s = await startSidecar(env, {
      appId: 'profiled',
      appPort: app.port,
      waitForApp: false,
      args: ['--enable-profiling', '--profile-port', '0'],
      env: { DAPR_API_TOKEN: 'secret' },
    });
    const record = JSON.parse(readFileSync(join(env.home, 'run', `${s.pid}.json`), 'utf8')) as { profilePort?: number };
    const port = record.profilePort;
    assert.ok(port !== undefined && port > 0, 'the run record names the profile port');
    for (let i = 0; i < 20; i++) await send(s.httpPort, { method: 'POST', path: '/v1.0/invoke/profiled/method/hi', headers: { 'dapr-api-token': 'secret' } });
    assert.equal((await send(port, { path: '/debug/runtime' })).status, 401);
    const runtime = await send(port, { path: '/debug/runtime?reset=true', headers: { 'dapr-api-token': 'secret' } });
    assert.equal(runtime.status, 200);
    const report = JSON.parse(runtime.text) as { eventLoopDelayMs: { p99: number }; stalls: number; gc: Record<string, { count: number }>; otherStalls: number; memory: { rssMb: number } };
    assert.equal(typeof report.eventLoopDelayMs.p99, 'number');
    assert.ok(report.memory.rssMb > 10);
    assert.equal(typeof report.otherStalls, 'number');
    // A window ends with ?stop=true: the probes stop until the next ?reset=true.
    const stop = await send(port, { path: '/debug/runtime?stop=true', headers: { 'dapr-api-token': 'secret' } });
    assert.equal((JSON.parse(stop.text) as { running: boolean }).running, true, 'the report of the window that stop ends');
    const after = JSON.parse((await send(port, { path: '/debug/runtime', headers: { 'dapr-api-token': 'secret' } })).text) as { running: boolean; sinceMs: number };
    const later = JSON.parse((await send(port, { path: '/debug/runtime', headers: { 'dapr-api-token': 'secret' } })).text) as { running: boolean; sinceMs: number };
    assert.equal(after.running, false);
    assert.equal(later.sinceMs, after.sinceMs, 'a stopped window does not grow');
    await send(port, { path: '/debug/runtime?reset=true', headers: { 'dapr-api-token': 'secret' } });
    assert.equal((JSON.parse((await send(port, { path: '/debug/runtime', headers: { 'dapr-api-token': 'secret' } })).text) as { running: boolean }).running, true);
    const profile = await send(port, { path: '/debug/cpu-profile?seconds=1', headers: { 'dapr-api-token': 'secret' } });
    assert.equal(profile.status, 200);
    const parsed = JSON.parse(profile.text) as { nodes: unknown[]; samples: unknown[] };
    assert.ok(parsed.nodes.length > 0, 'a V8 CPU profile');

    // An allocation profile while calls go through: samples, with the sidecar's own code among the allocating frames.
    const allocs = send(port, { path: '/debug/alloc-profile?seconds=2', headers: { 'dapr-api-token': 'secret' } });
    for (let i = 0; i < 300; i++) await send(s.httpPort, { method: 'POST', path: '/v1.0/invoke/profiled/method/hi', headers: { 'dapr-api-token': 'secret' } });
    const heap = await allocs;
    assert.equal(heap.status, 200);
    interface HeapNode { callFrame: { url: string }; selfSize: number; children: HeapNode[] }
    const sampled = JSON.parse(heap.text) as { head: HeapNode; samples: { size: number }[] };
    assert.ok(sampled.samples.length > 0, 'allocations were sampled');
    const urls = new Set<string>();
    const walk = (node: HeapNode): void => {
      if (node.selfSize > 0) urls.add(node.callFrame.url);
      node.children.forEach(walk);
    };
    walk(sampled.head);
    assert.ok([...urls].some((url) => url.includes('/dist/') || url.includes('/src/')), `Courier's frames allocate: ${[...urls].join(' ')}`);
    assert.equal((await send(port, { path: '/debug/alloc-profile?seconds=1' })).status, 401);
  });

  test("--dapr-public-port serves the health endpoints alone, without the API token, and says why it is not ready while the app is not", async () => {
    const app = await startApp(env, (a) => a.route('/hi', (_req, res) => res.end('hi')));
    const publicPort = await freePort();
    const s = await startSidecar(env, {
      appId: 'probed',
      appPort: app.port,
      waitForApp: true,
      args: ['--dapr-public-port', String(publicPort), '--dapr-public-listen-address', '127.0.0.1'],
      env: { DAPR_API_TOKEN: 'secret' },
    });
    assert.equal((await send(publicPort, { path: '/v1.0/healthz' })).status, 204);
    assert.equal((await send(publicPort, { path: '/v1.0/healthz/outbound' })).status, 204);
    const other = await send(publicPort, { path: '/v1.0/healthz?appid=someone-else' });
    assert.equal(other.status, 500);
    assert.equal(errorOf(other).errorCode, 'ERR_HEALTH_APPID_NOT_MATCH');
    // Nothing else is served there: not the invoke API, not the metadata.
    assert.equal((await send(publicPort, { method: 'POST', path: '/v1.0/invoke/probed/method/hi' })).status, 404);
    assert.equal((await send(publicPort, { path: '/v1.0/metadata' })).status, 404);
    assert.equal((await send(publicPort, { method: 'POST', path: '/v1.0/healthz' })).status, 405);
    assert.equal((await send(s.httpPort, { path: '/v1.0/metadata' })).status, 401, 'the HTTP API still asks for the token');

    // An app that does not listen: the public port answers (the sidecar is alive) and says why it is not ready.
    const deadPort = await freePort();
    const publicPort2 = await freePort();
    await startSidecar(env, { appId: 'unready', appPort: deadPort, waitForApp: false, args: ['--dapr-public-port', String(publicPort2), '--dapr-public-listen-address', '127.0.0.1'] });
    const unready = await send(publicPort2, { path: '/v1.0/healthz' });
    assert.equal(unready.status, 500);
    assert.equal(errorOf(unready).errorCode, 'ERR_HEALTH_NOT_READY');
  });

  test('--dapr-http-max-request-size and --dapr-http-read-buffer-size work, with the deprecation warning daprd prints', async () => {
    const app = await startApp(env, (a) => a.route('/sink', (_req, res, body) => res.end(String(body.length))));
    const s = await startSidecar(env, { appId: 'legacy', appPort: app.port, waitForApp: true, args: ['--dapr-http-max-request-size', '1', '--dapr-http-read-buffer-size', '2'] });
    assert.match(s.output, /Flag --dapr-http-max-request-size has been deprecated, use --max-body-size instead/);
    assert.match(s.output, /Flag --dapr-http-read-buffer-size has been deprecated, use --read-buffer-size instead/);
    const small = await send(s.httpPort, { method: 'POST', path: '/v1.0/invoke/legacy/method/sink', body: Buffer.alloc(512 * 1024) });
    assert.equal(small.text, String(512 * 1024));
    const big = await send(s.httpPort, { method: 'POST', path: '/v1.0/invoke/legacy/method/sink', body: Buffer.alloc(1024 * 1024 + 1) });
    assert.equal(big.status, 413);
    assert.equal(errorOf(big).errorCode, 'ERR_BODY_TOO_LARGE');
    const head = await send(s.httpPort, { method: 'POST', path: '/v1.0/invoke/legacy/method/sink', headers: { 'x-big': 'y'.repeat(3000) } });
    assert.equal(head.status, 431, 'a 3000-byte header is over a 2 KB read buffer');
  });
});
