// What a sidecar serves for the mesh views, read as `courier stat/edges/top/tap` and the dashboard
// read it: real sidecars (with mTLS from a real Sentry) and a real app, a known sequence of calls,
// then `GET /courier/v1/info` of both sides, the traffic counters of the caller (by destination) and
// of the callee (by caller, identity, verb and route), live `tap` streams with filters, and the API
// token. Then the same for proxied gRPC calls.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request, type ClientRequest } from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { TestEnv } from '../framework/env.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { startSentry, type SentryProcess } from '../framework/sentry-process.js';
import { startApp } from '../framework/test-app.js';
import { send } from '../framework/http-client.js';
import { echoClient, echoUnary, md, startGrpcApp, type EchoClient } from '../framework/grpc-apps.js';
import { MESH_PATHS, TRAFFIC_BUCKETS_MS, type InboundTraffic, type MeshInfo, type TapEvent, type TrafficSnapshot } from '../../src/observability/mesh/contract.js';
import { version } from '../../src/version.js';

const TOKEN = 'mesh-test-token';
const REDACTED = '[redacted]';

const configFile = (env: TestEnv, name: string, spec: string): string => {
  const file = join(env.home, `${name}.yaml`);
  writeFileSync(file, `apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: ${name}\nspec:\n${spec}`);
  return file;
};

const resiliency = (name: string, apps: readonly string[]): string => `apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: ${name}
spec:
  policies:
    timeouts:
      generous: 30s
  targets:
    apps:
${apps.map((app) => `      ${app}: { timeout: generous }`).join('\n')}
`;

/** GET on a sidecar's metrics port. */
function mesh(sidecar: SidecarProcess, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`http://127.0.0.1:${sidecar.metricsPort}${path}`, init);
}

async function meshJson<T>(sidecar: SidecarProcess, path: string, token?: string): Promise<T> {
  const res = await mesh(sidecar, path, token === undefined ? {} : { headers: { 'dapr-api-token': token } });
  assert.equal(res.status, 200, `${sidecar.appId} ${path}: ${res.status}`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  return (await res.json()) as T;
}

/** Polls until `check` passes (it throws while it does not), for at most 20 s. */
async function eventually(check: () => Promise<void> | void, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

const sum = (buckets: readonly number[]): number => buckets.reduce((a, b) => a + b, 0);

/** A tap stream as a client reads it: the `call` events and the comment lines, parsed as they arrive. */
class TapReader {
  readonly events: TapEvent[] = [];
  readonly comments: string[] = [];
  /** Every `data:` line as received, to check what is never sent. */
  raw = '';
  /** Resolves when the sidecar ends the stream (or it breaks). */
  readonly ended: Promise<void>;
  readonly #req: ClientRequest;
  #buffer = '';
  #end: () => void = () => {};

  private constructor(req: ClientRequest) {
    this.#req = req;
    this.ended = new Promise((resolve) => (this.#end = resolve));
  }

  /** Opens the stream and resolves once its head arrived (the sidecar counts the client by then). */
  static open(env: TestEnv, sidecar: SidecarProcess, query: string, headers: Record<string, string> = {}): Promise<TapReader> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: sidecar.metricsPort, path: `${MESH_PATHS.tap}${query}`, headers, agent: false }, (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`tap on ${sidecar.appId}: ${res.statusCode}`));
          res.resume();
          return;
        }
        assert.match(res.headers['content-type'] ?? '', /^text\/event-stream/);
        const reader = env.track(new TapReader(req));
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => reader.#take(chunk));
        res.on('error', () => {});
        res.on('close', () => reader.#end());
        resolve(reader);
      });
      req.on('error', reject);
      req.end();
    });
  }

  #take(chunk: string): void {
    this.raw += chunk;
    this.#buffer += chunk;
    let end: number;
    while ((end = this.#buffer.indexOf('\n\n')) >= 0) {
      const block = this.#buffer.slice(0, end);
      this.#buffer = this.#buffer.slice(end + 2);
      let name = '';
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) this.comments.push(line.slice(1).trim());
        else if (line.startsWith('event: ')) name = line.slice('event: '.length);
        else if (line.startsWith('data: ') && name === 'call') this.events.push(JSON.parse(line.slice('data: '.length)) as TapEvent);
      }
    }
  }

  close(): Promise<void> {
    this.#req.destroy();
    return Promise.resolve();
  }
}

describe('mesh endpoints of two sidecars with mTLS and an HTTP app', () => {
  const env = new TestEnv();
  let sentry: SentryProcess;
  let a: SidecarProcess;
  let b: SidecarProcess;
  let appPort: number;
  let resources: string;

  /** A call from the test (as app A) through sidecar A to app B. */
  const call = (method: string, verb = 'POST', headers: Record<string, string> = {}) =>
    send(a.httpPort, { method: verb, path: `/v1.0/invoke/b/method/${method}`, headers: { 'dapr-api-token': TOKEN, ...headers }, ...(verb === 'GET' ? {} : { body: 'secret-body' }) });

  before(async () => {
    sentry = await startSentry(env);
    const app = await startApp(env, (x) =>
      x.fallback((req, res) => {
        res.statusCode = (req.url ?? '').startsWith('/fail') ? 500 : 200;
        res.end('answer');
      }),
    );
    appPort = app.port;
    const bConfig = configFile(
      env,
      'b-config',
      `  metrics:
    http:
      pathMatching: ["/orders/{id}"]
  accessControl:
    defaultAction: allow
    trustDomain: public
    policies:
    - appId: a
      defaultAction: allow
      trustDomain: public
      namespace: default
`,
    );
    const bMtls = sentry.sidecar('b');
    b = await startSidecar(env, { appId: 'b', appPort, waitForApp: true, args: [...bMtls.args, '--config', bConfig], env: bMtls.env });

    resources = join(env.home, 'resources');
    mkdirSync(resources);
    writeFileSync(join(resources, 'resiliency.yaml'), resiliency('a-resiliency', ['b']));
    const aConfig = configFile(env, 'a-config', '  tracing:\n    samplingRate: "1"\n');
    const aMtls = sentry.sidecar('a');
    a = await startSidecar(env, {
      appId: 'a',
      args: [...aMtls.args, '--config', aConfig, '--resources-path', resources, '--tap-header-values'],
      env: { ...aMtls.env, DAPR_API_TOKEN: TOKEN },
    });

    for (let i = 0; i < 7; i++) assert.equal((await call(`orders/${i}?page=2`)).status, 200);
    for (let i = 0; i < 3; i++) assert.equal((await call('fail')).status, 500);
  });
  after(() => env.close());

  test('info: each sidecar describes itself, its identity, policies and settings', async () => {
    const infoA = await meshJson<MeshInfo>(a, MESH_PATHS.info, TOKEN);
    assert.equal(infoA.appId, 'a');
    assert.equal(infoA.namespace, 'default');
    assert.equal(infoA.version, version);
    assert.equal(infoA.pid, a.pid);
    assert.ok(Date.parse(infoA.startedAt) <= Date.now());
    assert.ok(infoA.uptimeSeconds >= 0);
    assert.equal(infoA.address, `127.0.0.1:${a.internalPort}`);
    assert.equal(infoA.appProtocol, '');
    assert.equal(infoA.appPort, 0);
    assert.equal(infoA.appHealthy, null);
    assert.equal(infoA.identity, 'spiffe://public/ns/default/a');
    assert.equal(infoA.mtls, true);
    assert.ok(Date.parse(infoA.certificateExpiry ?? '') > Date.now());
    assert.equal(infoA.resolver, 'sqlite');
    assert.equal(infoA.config, 'a-config');
    assert.deepEqual(infoA.accessControl, { defaultAction: 'allow', policies: [] });
    assert.deepEqual(infoA.resiliency, { resources: ['a-resiliency'], targets: ['b'] });
    assert.deepEqual(infoA.tracing, { samplingRate: 1, exporter: '' });

    const infoB = await meshJson<MeshInfo>(b, MESH_PATHS.info);
    assert.equal(infoB.appId, 'b');
    assert.equal(infoB.pid, b.pid);
    assert.equal(infoB.address, `127.0.0.1:${b.internalPort}`);
    assert.equal(infoB.appProtocol, 'http');
    assert.equal(infoB.appPort, appPort);
    assert.equal(infoB.appHealthy, true);
    assert.equal(infoB.identity, 'spiffe://public/ns/default/b');
    assert.equal(infoB.config, 'b-config');
    assert.deepEqual(infoB.accessControl, { defaultAction: 'allow', policies: ['a'] });
    assert.deepEqual(infoB.resiliency, { resources: [], targets: [] });
    assert.deepEqual(infoB.tracing, { samplingRate: 0.0001, exporter: '' });
  });

  test('traffic: the caller counts its calls by destination, the callee by caller, identity, verb and route', async () => {
    await eventually(async () => {
      const traffic = await meshJson<TrafficSnapshot>(a, MESH_PATHS.traffic, TOKEN);
      assert.equal(traffic.appId, 'a');
      assert.deepEqual(traffic.inbound, []);
      const toB = traffic.outbound.find((o) => o.dstAppId === 'b');
      assert.equal(toB?.calls, 10);
      assert.equal(toB.failures, 3);
      assert.equal(toB.buckets.length, TRAFFIC_BUCKETS_MS.length + 1);
      assert.equal(sum(toB.buckets), 10);
      assert.ok(toB.latencySumMs > 0);
    });
    await eventually(async () => {
      const traffic = await meshJson<TrafficSnapshot>(b, MESH_PATHS.traffic);
      assert.equal(traffic.appId, 'b');
      assert.deepEqual(traffic.outbound, []);
      const row = (i: InboundTraffic) => [i.srcAppId, i.srcIdentity, i.verb, i.route, i.calls, i.failures, sum(i.buckets)];
      assert.deepEqual(traffic.inbound.map(row), [
        ['a', 'spiffe://public/ns/default/a', 'POST', '/orders/{id}', 7, 0, 7],
        ['a', 'spiffe://public/ns/default/a', 'POST', '/fail', 3, 3, 3],
      ]);
    });
  });

  test('tap on the callee: only the calls its filter matches, with trace ids, header names and redacted values, never bodies', async () => {
    // headers=show is ignored: b was started without --tap-header-values.
    const failures = await TapReader.open(env, b, '?direction=inbound&path=/fail&status=5xx&method=post&app=a&headers=show');
    const everything = await TapReader.open(env, b, '');
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    assert.equal((await call('orders/100', 'POST', { 'x-user': 'alice' })).status, 200);
    assert.equal((await call('fail/now', 'POST', { 'x-user': 'alice', traceparent: `00-${traceId}-00f067aa0ba902b7-01` })).status, 500);
    assert.equal((await call('fail', 'GET', { 'x-user': 'alice' })).status, 500);
    await eventually(() => assert.equal(everything.events.length, 3));
    assert.deepEqual(
      everything.events.map((e) => [e.method, e.path, e.status]),
      [
        ['POST', '/orders/100', 200],
        ['POST', '/fail/now', 500],
        ['GET', '/fail', 500],
      ],
    );
    await eventually(() => assert.equal(failures.events.length, 1));
    const [event] = failures.events;
    assert.ok(event !== undefined);
    assert.equal(event.direction, 'inbound');
    assert.equal(event.srcAppId, 'a');
    assert.equal(event.dstAppId, 'b');
    assert.equal(event.path, '/fail/now');
    assert.equal(event.status, 500);
    assert.equal(event.traceId, traceId);
    assert.equal(event.errorCode, '');
    assert.ok(event.latencyMs >= 0);
    assert.ok(Math.abs(event.at - Date.now()) < 60_000);
    assert.equal(event.headers['x-user'], REDACTED);
    assert.equal(event.headers['dapr-caller-app-id'], REDACTED);
    assert.ok(Object.values(event.headers).every((v) => v === REDACTED));
    // Every call has a trace id (a's sidecar starts a trace when the caller sent none).
    assert.ok(everything.events.every((e) => /^[0-9a-f]{32}$/.test(e.traceId)));
    assert.ok(!everything.raw.includes('secret-body') && !everything.raw.includes('answer'), 'no body is ever sent');
    assert.ok(!everything.raw.includes('alice'));
  });

  test('tap on the caller with --tap-header-values: values for a client that asks, credentials still redacted; no answer is status 0', async () => {
    const auth = { 'dapr-api-token': TOKEN };
    const shown = await TapReader.open(env, a, '?direction=outbound&app=b&headers=show', auth);
    const redacted = await TapReader.open(env, a, '?direction=outbound&app=b', auth);
    const ghost = await TapReader.open(env, a, '?app=ghost', auth);
    assert.equal((await call('orders/5', 'PUT', { 'x-user': 'bob', authorization: 'Bearer hunter2' })).status, 200);
    const res = await send(a.httpPort, { method: 'POST', path: '/v1.0/invoke/ghost/method/anything', headers: { 'dapr-api-token': TOKEN } });
    assert.equal(res.status, 500);

    await eventually(() => assert.equal(shown.events.length, 1));
    const [visible] = shown.events;
    assert.equal(visible?.direction, 'outbound');
    assert.equal(visible.srcAppId, 'a');
    assert.equal(visible.dstAppId, 'b');
    assert.equal(visible.method, 'PUT');
    assert.equal(visible.path, '/orders/5');
    assert.equal(visible.status, 200);
    assert.equal(visible.headers['x-user'], 'bob');
    assert.equal(visible.headers.authorization, REDACTED);
    assert.equal(visible.headers['dapr-api-token'], undefined, 'the API token is not forwarded, so not shown');
    assert.match(visible.traceId, /^[0-9a-f]{32}$/);

    await eventually(() => assert.equal(redacted.events.length, 1));
    assert.equal(redacted.events[0]?.headers['x-user'], REDACTED);
    assert.ok(!redacted.raw.includes('bob') && !shown.raw.includes('hunter2'));

    await eventually(() => assert.equal(ghost.events.length, 1));
    assert.equal(ghost.events[0]?.status, 0);
    assert.equal(ghost.events[0]?.errorCode, 'ERR_DIRECT_INVOKE');
    const traffic = await meshJson<TrafficSnapshot>(a, MESH_PATHS.traffic, TOKEN);
    assert.deepEqual(
      traffic.outbound.filter((o) => o.dstAppId === 'ghost').map((o) => [o.calls, o.failures]),
      [[1, 1]],
    );
  });

  test('the API token guards every mesh endpoint (when set), not the Prometheus text; GET and HEAD only', async () => {
    for (const path of Object.values(MESH_PATHS)) {
      for (const headers of [{}, { 'dapr-api-token': 'wrong' }]) {
        const res = await mesh(a, path, { headers });
        assert.equal(res.status, 401, path);
        assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
        assert.equal(((await res.json()) as { errorCode: string }).errorCode, 'ERR_API_TOKEN');
      }
    }
    const head = await mesh(a, MESH_PATHS.info, { method: 'HEAD', headers: { 'dapr-api-token': TOKEN } });
    assert.equal(head.status, 200);
    await head.arrayBuffer();
    const post = await mesh(a, MESH_PATHS.traffic, { method: 'POST', headers: { 'dapr-api-token': TOKEN } });
    assert.equal(post.status, 405);
    await post.arrayBuffer();
    const unknown = await mesh(a, '/courier/v1/unknown', { headers: { 'dapr-api-token': TOKEN } });
    assert.equal(unknown.status, 404);
    assert.equal(await unknown.text(), 'not found: metrics are served at / and /metrics\n');
    for (const path of ['/', '/metrics']) {
      const res = await mesh(a, path);
      assert.equal(res.status, 200);
      assert.match(await res.text(), /dapr_runtime_service_invocation_req_sent_total\{app_id="a",dst_app_id="b",type="streaming"\}/);
    }
    // b has no token: its endpoints are open.
    const open = await mesh(b, MESH_PATHS.traffic);
    assert.equal(open.status, 200);
    await open.arrayBuffer();
  });

  test('info follows a hot reload of the Resiliency resources', async () => {
    writeFileSync(join(resources, 'resiliency.yaml'), resiliency('renamed', ['b', 'c']));
    await eventually(async () => {
      const info = await meshJson<MeshInfo>(a, MESH_PATHS.info, TOKEN);
      assert.deepEqual(info.resiliency, { resources: ['renamed'], targets: ['b', 'c'] });
    });
  });
});

describe('mesh endpoints of proxied gRPC calls', () => {
  const env = new TestEnv();
  let front: SidecarProcess;
  let echo: SidecarProcess;
  let client: EchoClient;

  before(async () => {
    const app = await startGrpcApp(env);
    app.echo.Unary = (call, cb) => {
      if (call.request.toString() === 'fail') cb({ code: grpc.status.FAILED_PRECONDITION, details: 'no' });
      else cb(null, call.request);
    };
    echo = await startSidecar(env, { appId: 'echo', appPort: app.port, waitForApp: true, args: ['--app-protocol', 'grpc'] });
    front = await startSidecar(env, { appId: 'front' });
    client = echoClient(front.grpcPort);
  });
  after(async () => {
    client?.close();
    await env.close();
  });

  test('proxied calls are counted on both sides (verb GRPC, the method as route) and shown by tap with their gRPC status', async () => {
    const tap = await TapReader.open(env, echo, '?method=grpc&status=9');
    const to = md({ 'dapr-app-id': 'echo', 'x-tenant': 'blue' });
    for (let i = 0; i < 4; i++) assert.equal((await echoUnary(client, Buffer.from(`hi ${i}`), to)).toString(), `hi ${i}`);
    for (let i = 0; i < 2; i++) {
      await assert.rejects(echoUnary(client, Buffer.from('fail'), to), (err: grpc.ServiceError) => err.code === grpc.status.FAILED_PRECONDITION);
    }
    await eventually(async () => {
      const traffic = await meshJson<TrafficSnapshot>(front, MESH_PATHS.traffic);
      assert.deepEqual(
        traffic.outbound.map((o) => [o.dstAppId, o.calls, o.failures, sum(o.buckets)]),
        [['echo', 6, 2, 6]],
      );
    });
    await eventually(async () => {
      const traffic = await meshJson<TrafficSnapshot>(echo, MESH_PATHS.traffic);
      assert.deepEqual(
        traffic.inbound.map((i) => [i.srcAppId, i.srcIdentity, i.verb, i.route, i.calls, i.failures]),
        [['front', '', 'GRPC', '/courier.test.Echo/Unary', 6, 2]],
      );
    });
    await eventually(() => assert.equal(tap.events.length, 2));
    for (const event of tap.events) {
      assert.equal(event.direction, 'inbound');
      assert.equal(event.srcAppId, 'front');
      assert.equal(event.dstAppId, 'echo');
      assert.equal(event.method, 'GRPC');
      assert.equal(event.path, '/courier.test.Echo/Unary');
      assert.equal(event.status, grpc.status.FAILED_PRECONDITION);
      assert.equal(event.headers['x-tenant'], REDACTED);
      assert.match(event.traceId, /^[0-9a-f]{32}$/);
    }
  });

  test('a sidecar that stops ends its tap streams and exits cleanly', async () => {
    const streams = await Promise.all([TapReader.open(env, front, ''), TapReader.open(env, front, '?status=5xx')]);
    await front.stop();
    assert.equal(front.exitCode, 0);
    await Promise.all(streams.map((s) => s.ended));
  });
});
