import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CounterFamily, HistogramFamily, MAX_SERIES_PER_FAMILY, type LabelRules } from './family.js';
import { compilePathPattern, metricsSettings, SidecarMetrics } from './sidecar-metrics.js';

test('a histogram exposes cumulative buckets, +Inf, sum and count per series', async () => {
  const h = new HistogramFamily('lat_ms', 'latency', ['app_id'], [10, 1, 5], undefined, undefined);
  for (const v of [0.5, 1, 3, 7, 11, 500]) h.series('a').observe(v);
  h.series('b').observe(2);
  const { values } = await h.get();
  const of = (app: string) => values.filter((v) => v.labels.app_id === app).map((v) => `${v.metricName ?? ''}${v.labels.le === undefined ? '' : `{le=${v.labels.le}}`} ${v.value}`);
  assert.deepEqual(of('a'), ['lat_ms_bucket{le=1} 2', 'lat_ms_bucket{le=5} 3', 'lat_ms_bucket{le=10} 4', 'lat_ms_bucket{le=+Inf} 6', 'lat_ms_sum 522.5', 'lat_ms_count 6']);
  assert.deepEqual(of('b'), ['lat_ms_bucket{le=1} 0', 'lat_ms_bucket{le=5} 1', 'lat_ms_bucket{le=10} 1', 'lat_ms_bucket{le=+Inf} 1', 'lat_ms_sum 2', 'lat_ms_count 1']);
});

test('the same label values reach the same series; label rules fold values together', async () => {
  const rules: LabelRules = new Map([['path', [['/items/{id}', /^\/items\/\d+$/]] as const]]);
  const c = new CounterFamily('reqs', 'requests', ['app_id', 'path'], rules, undefined);
  assert.equal(c.series('a', '/items/1'), c.series('a', '/items/1'));
  c.series('a', '/items/1').inc();
  c.series('a', '/items/2').inc();
  c.series('a', '/other').inc(3);
  const { values } = await c.get();
  assert.deepEqual(
    values.map((v) => [v.labels.path, v.value]),
    [
      ['/items/{id}', 2],
      ['/other', 3],
    ],
  );
});

test('a family keeps at most MAX_SERIES_PER_FAMILY series; the rest are counted in one _overflow series', async () => {
  const warnings: string[] = [];
  const logger = { warn: (_o: unknown, msg: string) => warnings.push(msg) } as unknown as ConstructorParameters<typeof CounterFamily>[4];
  const c = new CounterFamily('reqs', 'requests', ['path'], undefined, logger);
  for (let i = 0; i < MAX_SERIES_PER_FAMILY + 1000; i++) c.series(`/p/${i}`).inc();
  const { values } = await c.get();
  assert.equal(values.length, MAX_SERIES_PER_FAMILY + 1);
  assert.equal(values.find((v) => v.labels.path === '_overflow')?.value, 1000);
  assert.equal(warnings.length, 1);
});

test('pathMatching patterns: {name} is one segment, {name...} the rest, the rest literal', () => {
  const one = compilePathPattern('/orders/{id}');
  assert.ok(one.regex.test('/orders/17'));
  assert.ok(one.regex.test('/orders/17/'));
  assert.ok(!one.regex.test('/orders/17/items'));
  assert.ok(!one.regex.test('/orders'));
  const rest = compilePathPattern('/files/{path...}');
  assert.ok(rest.regex.test('/files/a/b/c'));
  const literal = compilePathPattern('/a.b/{x}');
  assert.ok(!literal.regex.test('/aXb/1'));
});

test('the path label: a matching pattern, else the fallback, else (with increased cardinality) the path', () => {
  const low = new SidecarMetrics(metricsSettings('a', { http: { pathMatching: ['/orders/{id}'] } }));
  assert.equal(low.pathLabel('/orders/9', '_'), '/orders/{id}');
  assert.equal(low.pathLabel('/users/9', '_'), '_');
  const high = new SidecarMetrics(metricsSettings('a', { http: { increasedCardinality: true } }));
  assert.equal(high.pathLabel('/users/9', '_'), '/users/9');
});

test("Dapr's names, labels and default latency buckets", async () => {
  const m = new SidecarMetrics(metricsSettings('app', {}));
  const byName = new Map(m.families.map((f) => [f.name, f]));
  for (const name of [
    'dapr_runtime_service_invocation_req_sent_total',
    'dapr_runtime_service_invocation_req_recv_total',
    'dapr_runtime_service_invocation_res_sent_total',
    'dapr_runtime_service_invocation_res_recv_total',
    'dapr_runtime_service_invocation_res_recv_latency_ms',
    'dapr_http_server_request_count',
    'dapr_http_server_latency',
    'dapr_http_client_completed_count',
    'dapr_http_client_roundtrip_latency',
    'dapr_grpc_io_server_completed_rpcs',
    'dapr_grpc_io_client_completed_rpcs',
    'dapr_runtime_acl_app_policy_action_blocked_total',
  ]) {
    assert.ok(byName.has(name), name);
  }
  m.responseReceived('b', 200, 12);
  const latency = await (byName.get('dapr_runtime_service_invocation_res_recv_latency_ms') as HistogramFamily).get();
  const les = latency.values.filter((v) => v.labels.le !== undefined).map((v) => v.labels.le);
  assert.equal(les.length, 35);
  assert.deepEqual(les.slice(0, 4), ['1', '2', '3', '4']);
  assert.equal(les.at(-2), '100000');
  assert.deepEqual(latency.values.find((v) => v.labels.le === '13')?.labels, { app_id: 'app', src_app_id: 'b', status: '200', le: '13' });
  assert.equal(latency.values.find((v) => v.labels.le === '13')?.value, 1);
  assert.equal(latency.values.find((v) => v.labels.le === '10')?.value, 0);
});
