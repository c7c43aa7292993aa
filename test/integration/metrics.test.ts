// Prometheus metrics under Dapr's names, read the way an operator reads them: a real Prometheus server
// scrapes the sidecars after a known sequence of calls (successes, app errors, access-control denials,
// retries) and its query API must give the exact counts. Then what bounds the series (path labels),
// what Configuration spec.metrics changes, and that metrics can be turned off.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestEnv } from '../framework/env.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { startApp } from '../framework/test-app.js';
import { errorOf, send } from '../framework/http-client.js';
import { startPrometheus, type PrometheusProcess, type Sample } from '../framework/prometheus.js';
import * as grpc from '@grpc/grpc-js';
import { daprClient, echoClient, echoUnary, invokeService, md, startGrpcApp } from '../framework/grpc-apps.js';

const invoke = (from: SidecarProcess, target: string, method: string) =>
  send(from.httpPort, { method: 'POST', path: `/v1.0/invoke/${target}/method/${method}`, body: 'hello' });

/** The sidecar's exposition text, as Prometheus scrapes it. */
async function scrape(sidecar: SidecarProcess, path = '/'): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${sidecar.metricsPort}${path}`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return res.text();
}

/** The series of `name` in an exposition text, by their label sets. */
function seriesOf(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(name.length, at), Number(line.slice(at + 1)));
  }
  return out;
}

const configFile = (env: TestEnv, name: string, spec: string): string => {
  const file = join(env.home, `${name}.yaml`);
  writeFileSync(file, `apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: ${name}\nspec:\n${spec}`);
  return file;
};

const total = (samples: Sample[]): number => samples.reduce((sum, s) => sum + s.value, 0);

describe('metrics scraped by Prometheus', () => {
  const env = new TestEnv();
  let caller: SidecarProcess;
  let orders: SidecarProcess;
  let vault: SidecarProcess;
  let prometheus: PrometheusProcess;
  let retried = 0;

  before(async () => {
    const app = await startApp(env, (a) =>
      a.fallback((req, res) => {
        res.statusCode = (req.url ?? '').startsWith('/fail') ? 500 : 200;
        res.end('answer');
      }),
    );
    orders = await startSidecar(env, { appId: 'orders', appPort: app.port, waitForApp: true });
    // A second instance that dies without leaving name resolution: calls sent to it are retried on the first.
    const dead = await startSidecar(env, { appId: 'orders', appPort: app.port, waitForApp: true });
    await dead.kill();
    const denyAll = configFile(env, 'vault', '  accessControl:\n    defaultAction: deny\n    trustDomain: public\n');
    vault = await startSidecar(env, { appId: 'vault', appPort: app.port, waitForApp: true, args: ['--config', denyAll] });
    caller = await startSidecar(env, { appId: 'caller' });
    prometheus = await startPrometheus(env, [caller, orders, vault].map((s) => `127.0.0.1:${s.metricsPort}`), { scrapeIntervalMs: 250 });

    for (let i = 0; i < 8; i++) assert.equal((await invoke(caller, 'orders', `orders/${i}`)).status, 200);
    for (let i = 0; i < 2; i++) assert.equal((await invoke(caller, 'orders', 'fail')).status, 500);
    for (let i = 0; i < 3; i++) assert.equal((await invoke(caller, 'vault', 'secret')).status, 403);
    const text = await scrape(caller);
    retried = [...seriesOf(text, 'courier_service_invocation_retries_total').values()].reduce((a, b) => a + b, 0);
  });
  after(() => env.close());

  const exactly =
    (n: number) =>
    (samples: Sample[]): boolean =>
      total(samples) === n;

  test("the caller's service-invocation metrics count every call and its answer", async () => {
    await prometheus.waitFor('dapr_runtime_service_invocation_req_sent_total{app_id="caller",dst_app_id="orders",type="streaming"}', exactly(10));
    await prometheus.waitFor('dapr_runtime_service_invocation_req_sent_total{app_id="caller",dst_app_id="vault"}', exactly(3));
    await prometheus.waitFor('dapr_runtime_service_invocation_res_recv_total{app_id="caller",src_app_id="orders",status="200"}', exactly(8));
    await prometheus.waitFor('dapr_runtime_service_invocation_res_recv_total{app_id="caller",src_app_id="orders",status="500"}', exactly(2));
    await prometheus.waitFor('dapr_runtime_service_invocation_res_recv_total{app_id="caller",src_app_id="vault",status="403"}', exactly(3));
    await prometheus.waitFor('dapr_runtime_service_invocation_res_recv_latency_ms_count{app_id="caller",src_app_id="orders"}', exactly(10));
    // Every observation is in a bucket: the +Inf bucket holds them all, and the latency is positive.
    await prometheus.waitFor('dapr_runtime_service_invocation_res_recv_latency_ms_bucket{app_id="caller",src_app_id="orders",status="200",le="+Inf"}', exactly(8));
    const [sum] = await prometheus.query('sum(dapr_runtime_service_invocation_res_recv_latency_ms_sum{app_id="caller",src_app_id="orders"})');
    assert.ok((sum?.value ?? 0) > 0);
  });

  test("the callee's side: requests received and answers sent, by caller and status", async () => {
    await prometheus.waitFor('dapr_runtime_service_invocation_req_recv_total{app_id="orders",src_app_id="caller"}', exactly(10));
    await prometheus.waitFor('dapr_runtime_service_invocation_res_sent_total{app_id="orders",dst_app_id="caller",status="200"}', exactly(8));
    await prometheus.waitFor('dapr_runtime_service_invocation_res_sent_total{app_id="orders",dst_app_id="caller",status="500"}', exactly(2));
    await prometheus.waitFor('dapr_runtime_service_invocation_res_sent_total{app_id="vault",dst_app_id="caller",status="403"}', exactly(3));
    // The HTTP client metrics of the calls to the app: the denied ones never reached it.
    await prometheus.waitFor('dapr_http_client_completed_count{app_id="orders",method="POST",path="_",status="200"}', exactly(8));
    await prometheus.waitFor('dapr_http_client_completed_count{app_id="orders",method="POST",path="_",status="500"}', exactly(2));
    await prometheus.waitFor('dapr_http_client_sent_bytes_sum{app_id="orders"}', exactly(10 * 'hello'.length));
    await prometheus.waitFor('dapr_http_client_received_bytes_sum{app_id="orders"}', exactly(10 * 'answer'.length));
    const vaultToApp = await prometheus.query('dapr_http_client_completed_count{app_id="vault"}');
    assert.deepEqual(vaultToApp, []);
    await prometheus.waitFor('dapr_grpc_io_server_completed_rpcs{app_id="orders",grpc_server_method="/dapr.proto.internals.v1.ServiceInvocation/CallLocalStream",grpc_server_status="OK"}', exactly(10));
  });

  test('access-control decisions are counted with the caller named', async () => {
    await prometheus.waitFor('dapr_runtime_acl_global_policy_action_blocked_total{app_id="caller",namespace="default"}', exactly(3));
    assert.deepEqual(await prometheus.query('dapr_runtime_acl_global_policy_action_allowed_total'), []);
  });

  test('the HTTP API counts its requests by route, not by raw path', async () => {
    await prometheus.waitFor('dapr_http_server_request_count{app_id="caller",method="POST",path="/v1.0/invoke/{id}/method/{method}",status="200"}', exactly(8));
    await prometheus.waitFor('dapr_http_server_request_count{app_id="caller",path="/v1.0/invoke/{id}/method/{method}",status="403"}', exactly(3));
    await prometheus.waitFor('dapr_http_server_request_bytes_sum{app_id="caller"}', exactly(13 * 'hello'.length));
    await prometheus.waitFor('dapr_http_server_response_bytes_sum{app_id="caller"}', (s) => total(s) >= 10 * 'answer'.length);
  });

  test('a call sent to an instance that is gone is retried on another, and the retry is counted', async () => {
    assert.ok(retried >= 1, `expected at least one retry after an instance died, saw ${retried}`);
    await prometheus.waitFor('courier_service_invocation_retries_total{app_id="caller",dst_app_id="orders"}', exactly(retried));
  });

  test('name-resolution lookups are counted by resolver and result', async () => {
    await prometheus.waitFor('courier_nameresolution_lookups_total{app_id="caller",resolver="sqlite",result="found"}', (s) => total(s) >= 2);
  });

  test('process figures are exported, and every target is healthy', async () => {
    await prometheus.waitFor('process_resident_memory_bytes', (s) => s.length === 3 && s.every((x) => x.value > 10e6));
    await prometheus.waitFor('process_cpu_seconds_total', (s) => s.length === 3 && s.every((x) => x.value > 0));
    for (const target of await prometheus.targets()) assert.equal(target.health, 'up', `${target.scrapeUrl}: ${target.lastError}`);
  });
});

describe('metrics settings', () => {
  const env = new TestEnv();
  let app: Awaited<ReturnType<typeof startApp>>;
  before(async () => {
    app = await startApp(env, (a) => a.fallback((_req, res) => res.end('ok')));
  });
  after(() => env.close());

  test('10 000 distinct paths make no new series, and the series stay the same on the next 10 000', async () => {
    const callee = await startSidecar(env, { appId: 'paths', appPort: app.port, waitForApp: true });
    const seriesCount = (text: string) => text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
    const sendMany = async (from: number) => {
      const work = Array.from({ length: 8 }, async (_, w) => {
        for (let i = from + w; i < from + 10_000; i += 8) assert.equal((await invoke(callee, 'paths', `items/${i}`)).status, 200);
      });
      await Promise.all(work);
    };
    await sendMany(0);
    const first = await scrape(callee);
    await sendMany(10_000);
    const second = await scrape(callee);
    assert.equal(seriesCount(second), seriesCount(first));
    assert.doesNotMatch(second, /items\/\d/);
    assert.equal(seriesOf(second, 'dapr_http_client_completed_count').get('{app_id="paths",method="POST",path="_",status="200"}'), 20_000);
  });

  test('pathMatching, excludeVerbs, latency buckets and label rules from spec.metrics', async () => {
    const config = configFile(
      env,
      'labels',
      `  metrics:
    latencyDistributionBuckets: [5, 50, 500]
    http:
      excludeVerbs: true
      pathMatching:
      - /orders/{id}
      - /v1.0/invoke/{app}/method/orders/{id}
    rules:
    - name: dapr_runtime_service_invocation_req_recv_total
      labels:
      - name: src_app_id
        regex:
          someone: "^(un)?known$"
`,
    );
    const callee = await startSidecar(env, { appId: 'shop', appPort: app.port, waitForApp: true, args: ['--config', config] });
    for (const id of ['1', '2', '3']) assert.equal((await invoke(callee, 'shop', `orders/${id}`)).status, 200);
    assert.equal((await invoke(callee, 'shop', 'other/9')).status, 200);
    const text = await scrape(callee, '/metrics');
    const client = seriesOf(text, 'dapr_http_client_completed_count');
    assert.equal(client.get('{app_id="shop",method="",path="/orders/{id}",status="200"}'), 3);
    assert.equal(client.get('{app_id="shop",method="",path="_",status="200"}'), 1);
    const server = seriesOf(text, 'dapr_http_server_request_count');
    assert.equal(server.get('{app_id="shop",method="",path="/v1.0/invoke/{app}/method/orders/{id}",status="200"}'), 3);
    const buckets = [...seriesOf(text, 'dapr_http_server_latency_bucket').keys()].filter((k) => k.includes('orders/{id}')).map((k) => /le="([^"]+)"/.exec(k)?.[1]);
    assert.deepEqual(buckets, ['5', '50', '500', '+Inf']);
    // A call to itself never leaves the sidecar; a call from another sidecar is received under the rewritten caller.
    const other = await startSidecar(env, { appId: 'unknown' });
    assert.equal((await invoke(other, 'shop', 'orders/4')).status, 200);
    const after = seriesOf(await scrape(callee), 'dapr_runtime_service_invocation_req_recv_total');
    assert.deepEqual([...after.entries()], [['{app_id="shop",src_app_id="someone"}', 1]]);
  });

  test("recordErrorCodes counts the error codes answered to the app, under Dapr's categories; without it there is no such metric", async () => {
    const config = configFile(env, 'errors', '  metrics:\n    recordErrorCodes: true\n');
    const sidecar = await startSidecar(env, { appId: 'counted', appPort: app.port, waitForApp: true, args: ['--config', config] });
    // Over HTTP: two calls to an app with no instance, one call that names no app, one API Courier lacks.
    for (let i = 0; i < 2; i++) assert.equal(errorOf(await invoke(sidecar, 'nobody', 'x')).errorCode, 'ERR_DIRECT_INVOKE');
    assert.equal((await send(sidecar.httpPort, { method: 'POST', path: '/v1.0/invoke/method/x', body: '' })).status, 404);
    assert.equal(errorOf(await send(sidecar.httpPort, { method: 'POST', path: '/v1.0/state/store', body: '[]' })).errorCode, 'ERR_API_UNIMPLEMENTED');
    // An app's own error is not Courier's.
    const appError = await startApp(env, (a) => a.fallback((_req, res) => res.writeHead(500).end('no')));
    const failing = await startSidecar(env, { appId: 'failing', appPort: appError.port, waitForApp: true });
    assert.equal((await invoke(sidecar, 'failing', 'x')).status, 500);
    // Over gRPC: InvokeService to an app with no instance, and a Dapr API Courier lacks.
    const client = daprClient(sidecar.grpcPort);
    try {
      const missing = await invokeService(client, { id: 'nobody', message: { method: 'x', data: { typeUrl: '', value: Buffer.alloc(0) }, contentType: '' } });
      assert.notEqual(missing.err, null);
      const unimplemented = await new Promise<grpc.ServiceError | null>((resolve) =>
        client.makeUnaryRequest('/dapr.proto.runtime.v1.Dapr/GetState', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), (err) => resolve(err)),
      );
      assert.equal(unimplemented?.code, grpc.status.UNIMPLEMENTED);
    } finally {
      client.close();
    }
    const counted = seriesOf(await scrape(sidecar), 'dapr_error_code_total');
    assert.deepEqual(Object.fromEntries(counted), {
      '{app_id="counted",category="service-invocation",error_code="ERR_DIRECT_INVOKE"}': 4,
      '{app_id="counted",category="common",error_code="ERR_API_UNIMPLEMENTED"}': 2,
    });
    assert.doesNotMatch(await scrape(failing), /dapr_error_code_total/);
  });

  test('proxied gRPC calls (dapr-app-id) are counted on both sides, with the gRPC app status', async () => {
    const grpcApp = await startGrpcApp(env);
    const callee = await startSidecar(env, { appId: 'echo', appPort: grpcApp.port, waitForApp: true, args: ['--app-protocol', 'grpc'] });
    const front = await startSidecar(env, { appId: 'front' });
    const client = echoClient(front.grpcPort);
    try {
      for (let i = 0; i < 4; i++) assert.equal((await echoUnary(client, Buffer.from('hi'), md({ 'dapr-app-id': 'echo' }))).toString(), 'hi');
      await assert.rejects(echoUnary(client, Buffer.from('hi'), md({ 'dapr-app-id': 'nobody' })));
    } finally {
      client.close();
    }
    const caller = await scrape(front);
    assert.equal(seriesOf(caller, 'dapr_runtime_service_invocation_req_sent_total').get('{app_id="front",dst_app_id="echo",type="streaming"}'), 4);
    assert.equal(seriesOf(caller, 'dapr_runtime_service_invocation_res_recv_total').get('{app_id="front",src_app_id="echo",status="0",type="streaming"}'), 4);
    const failed = [...seriesOf(caller, 'dapr_runtime_service_invocation_res_recv_total').entries()].filter(([k]) => k.includes('src_app_id="nobody"'));
    assert.equal(failed.length, 1, 'the call to an app with no instance is counted with its failure status');
    assert.equal(seriesOf(caller, 'dapr_grpc_io_server_completed_rpcs').get('{app_id="front",grpc_server_method="/courier.test.Echo/Unary",grpc_server_status="OK"}'), 4);
    const served = await scrape(callee);
    assert.equal(seriesOf(served, 'dapr_runtime_service_invocation_req_recv_total').get('{app_id="echo",src_app_id="front"}'), 4);
    assert.equal(seriesOf(served, 'dapr_runtime_service_invocation_res_sent_total').get('{app_id="echo",dst_app_id="front",status="0"}'), 4);
    assert.equal(seriesOf(served, 'dapr_grpc_io_client_completed_rpcs').get('{app_id="echo",grpc_client_method="/courier.test.Echo/Unary",grpc_client_status="OK"}'), 4);

    // An HTTP invocation of the gRPC app goes to its AppCallback/OnInvoke, a gRPC client call of the callee.
    assert.equal((await invoke(front, 'echo', 'anything')).status, 200);
    const after = await scrape(callee);
    assert.equal(seriesOf(after, 'dapr_grpc_io_client_completed_rpcs').get('{app_id="echo",grpc_client_method="/dapr.proto.runtime.v1.AppCallback/OnInvoke",grpc_client_status="OK"}'), 1);
    assert.equal(seriesOf(after, 'dapr_runtime_service_invocation_res_sent_total').get('{app_id="echo",dst_app_id="front",status="0"}'), 5);
  });

  test('--enable-metrics=false and spec.metrics.enabled: false serve no metrics', async () => {
    const off = await startSidecar(env, { appId: 'quiet', args: ['--enable-metrics=false'] });
    assert.equal(off.metricsPort, 0);
    const config = configFile(env, 'off', '  metrics:\n    enabled: false\n');
    const offByConfig = await startSidecar(env, { appId: 'quiet2', args: ['--config', config, '--metrics-port', '0'] });
    assert.equal(offByConfig.metricsPort, 0);
    assert.match(offByConfig.output, /metrics are off/);
  });

  test('a metrics port that is taken stops the sidecar with a clear error', async () => {
    const first = await startSidecar(env, { appId: 'first' });
    const clash = startSidecar(env, { appId: 'second', args: ['--metrics-port', String(first.metricsPort), '--metrics-listen-address', '127.0.0.1'] });
    await assert.rejects(clash, /port \d+ \(--metrics-port\) is already in use/);
  });
});
