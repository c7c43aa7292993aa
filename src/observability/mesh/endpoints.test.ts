import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { MetricsServer } from '../metrics/server.js';
import { metricsSettings, SidecarMetrics } from '../metrics/sidecar-metrics.js';
import type { Logger } from '../logging/index.js';
import { MESH_PATHS, type MeshInfo, type TapEvent, type TrafficSnapshot } from './contract.js';
import { meshInfo } from './info.js';
import { MAX_TAP_CLIENTS } from './tap.js';

const silent = { error() {}, warn() {}, info() {}, debug() {} } as unknown as Logger;

const facts = {
  appId: 'a',
  namespace: 'default',
  startedAt: new Date(Date.now() - 5000),
  address: '127.0.0.1:50002',
  app: { protocol: 'http', port: 3000, healthy: true },
  certificate: undefined,
  resolver: 'sqlite',
  config: '',
  accessControl: undefined,
  resiliency: undefined,
  tracing: { samplingRate: 0, exporter: '' },
};

async function serve(token?: string): Promise<{ metrics: SidecarMetrics; server: MetricsServer; port: number }> {
  const metrics = new SidecarMetrics(metricsSettings('a', {}));
  const server = new MetricsServer(metrics, silent, { apiToken: token, tapHeaderValues: false, info: () => meshInfo(facts) });
  const port = await server.listen('127.0.0.1', 0);
  return { metrics, server, port };
}

async function get(port: number, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}${path}`, init);
}

interface TapStream {
  readonly status: number;
  body(): string;
  readonly ended: Promise<void>;
  close(): void;
}

/** Opens a tap stream with node:http (so it can be watched ending) and resolves once its head arrived. */
function openTap(port: number, query = ''): Promise<TapStream> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: `${MESH_PATHS.tap}${query}`, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      const ended = new Promise<void>((done) => {
        res.on('end', done);
        res.on('close', done);
        res.on('error', () => done());
      });
      resolve({ status: res.statusCode ?? 0, body: () => body, ended, close: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('info and traffic are JSON; unknown paths keep the 404 text; only GET and HEAD', async (t) => {
  const { metrics, server, port } = await serve();
  t.after(() => server.close());
  metrics.responseReceived('b', 200, 4);

  const info = await get(port, MESH_PATHS.info);
  assert.equal(info.status, 200);
  assert.match(info.headers.get('content-type') ?? '', /^application\/json/);
  const body = (await info.json()) as MeshInfo;
  assert.equal(body.appId, 'a');
  assert.equal(body.pid, process.pid);
  assert.ok(body.uptimeSeconds >= 4);
  assert.deepEqual(body.accessControl, { defaultAction: 'allow', policies: [] });

  const traffic = (await (await get(port, MESH_PATHS.traffic)).json()) as TrafficSnapshot;
  assert.deepEqual(
    traffic.outbound.map((o) => [o.dstAppId, o.calls]),
    [['b', 1]],
  );

  const head = await get(port, MESH_PATHS.traffic, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), '');

  const post = await get(port, MESH_PATHS.info, { method: 'POST' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
  await post.arrayBuffer();

  const unknown = await get(port, '/courier/v1/nothing');
  assert.equal(unknown.status, 404);
  assert.equal(await unknown.text(), 'not found: metrics are served at / and /metrics\n');

  const prometheus = await get(port, '/metrics');
  assert.equal(prometheus.status, 200);
  assert.match(await prometheus.text(), /dapr_runtime_service_invocation_res_recv_total\{app_id="a",src_app_id="b",status="200",type="streaming"\} 1/);
});

test('with an API token every mesh endpoint asks for it; the Prometheus text does not', async (t) => {
  const { server, port } = await serve('s3cret');
  t.after(() => server.close());
  for (const path of Object.values(MESH_PATHS)) {
    for (const headers of [{}, { 'dapr-api-token': 'wrong' }, { 'dapr-api-token': 's3cret-but-longer' }]) {
      const res = await get(port, path, { headers });
      assert.equal(res.status, 401, `${path} ${JSON.stringify(headers)}`);
      assert.equal(((await res.json()) as { errorCode: string }).errorCode, 'ERR_API_TOKEN');
    }
  }
  const ok = await get(port, MESH_PATHS.info, { headers: { 'dapr-api-token': 's3cret' } });
  assert.equal(ok.status, 200);
  await ok.arrayBuffer();
  const prometheus = await get(port, '/');
  assert.equal(prometheus.status, 200);
  await prometheus.arrayBuffer();
});

test('tap: a bad filter is 400; the 17th client gets 503; closing the server ends every stream', async (t) => {
  const { metrics, server, port } = await serve();
  let closed = false;
  t.after(() => (closed ? undefined : server.close()));

  const bad = await get(port, `${MESH_PATHS.tap}?status=9xx`);
  assert.equal(bad.status, 400);
  assert.match(await bad.text(), /status "9xx"/);

  const streams: TapStream[] = [];
  for (let i = 0; i < MAX_TAP_CLIENTS; i++) streams.push(await openTap(port, i === 0 ? '?status=5xx' : ''));
  assert.ok(streams.every((s) => s.status === 200));
  await until(() => metrics.tap.clients === MAX_TAP_CLIENTS, 'every client to be counted');
  const refused = await get(port, MESH_PATHS.tap);
  assert.equal(refused.status, 503);
  assert.match(await refused.text(), /too many tap clients: at most 16/);

  // One leaves: its place is free again.
  streams.pop()?.close();
  await until(() => metrics.tap.clients === MAX_TAP_CLIENTS - 1, 'the client that left to be forgotten');

  const event: TapEvent = { at: 1, direction: 'inbound', srcAppId: 'x', dstAppId: 'a', method: 'GET', path: '/p', status: 502, latencyMs: 1, traceId: '', headers: {}, errorCode: '' };
  metrics.tap.publish(event);
  metrics.tap.publish({ ...event, status: 200 });
  await until(() => (streams[1]?.body().match(/event: call/g) ?? []).length === 2, 'both events on an unfiltered stream');
  await until(() => (streams[0]?.body() ?? '').includes('"status":502'), 'the 5xx event on the filtered stream');
  assert.ok(!(streams[0]?.body() ?? '').includes('"status":200'));

  closed = true;
  await server.close();
  await Promise.all(streams.map((s) => s.ended));
  assert.equal(metrics.tap.clients, 0);
  assert.equal(metrics.tap.active, false);
});
