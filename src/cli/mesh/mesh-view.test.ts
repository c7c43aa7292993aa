import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TRAFFIC_BUCKETS_MS, type InboundTraffic, type MeshInfo, type OutboundTraffic, type TrafficSnapshot } from '../../observability/mesh/contract.js';
import { meshView, quantile } from './mesh-view.js';
import type { MeshSample, SidecarSample } from './view-types.js';

const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);

/** Bucket counts from `{ upper bound (or 'inf'): calls }`. */
function buckets(counts: Record<string, number>): number[] {
  const out = new Array<number>(TRAFFIC_BUCKETS_MS.length + 1).fill(0);
  for (const [bound, n] of Object.entries(counts)) {
    const i = bound === 'inf' ? TRAFFIC_BUCKETS_MS.length : TRAFFIC_BUCKETS_MS.indexOf(Number(bound));
    assert.ok(i >= 0, `no bucket ${bound}`);
    out[i] = n;
  }
  return out;
}

const out = (dstAppId: string, calls: number, failures: number, b: Record<string, number> = { 10: calls }): OutboundTraffic => ({ dstAppId, calls, failures, buckets: buckets(b), latencySumMs: calls * 8 });

const inb = (srcAppId: string, route: string, calls: number, failures: number, extra: Partial<InboundTraffic> = {}): InboundTraffic => ({
  srcAppId,
  srcIdentity: '',
  verb: 'POST',
  route,
  calls,
  failures,
  buckets: buckets({ 10: calls }),
  latencySumMs: calls * 8,
  ...extra,
});

function info(appId: string, pid: number, extra: Partial<MeshInfo> = {}): MeshInfo {
  return {
    appId,
    namespace: 'default',
    version: '0.1.0',
    pid,
    startedAt: new Date(T0 - 60_000).toISOString(),
    uptimeSeconds: 60,
    address: `127.0.0.1:${40000 + pid}`,
    appProtocol: 'http',
    appPort: 3000 + pid,
    appHealthy: true,
    identity: null,
    mtls: false,
    certificateExpiry: null,
    resolver: 'sqlite',
    config: '',
    accessControl: { defaultAction: 'allow', policies: [] },
    resiliency: { resources: [], targets: [] },
    tracing: { samplingRate: 0, exporter: '' },
    ...extra,
  };
}

function sidecar(port: number, inf: MeshInfo | null, traffic: Omit<TrafficSnapshot, 'appId' | 'at'> | null, at: number, error?: string): SidecarSample {
  const ref = { appId: inf?.appId ?? '', metricsUrl: `http://127.0.0.1:${port}`, source: 'run-record' as const };
  const sample: SidecarSample = { ref, info: inf, traffic: traffic === null ? null : { appId: inf?.appId ?? '', at, ...traffic } };
  return error === undefined ? sample : { ...sample, error };
}

const sample = (at: number, ...sidecars: SidecarSample[]): MeshSample => ({ at, sidecars });

describe('meshView', () => {
  test('deltas of the cumulative counters over the window: rate, success rate, both ends of an edge', () => {
    const before = sample(
      T0,
      sidecar(9001, info('a', 1), { outbound: [out('b', 10, 1)], inbound: [] }, T0),
      sidecar(9002, info('b', 2), { outbound: [], inbound: [inb('a', '/orders', 10, 1)] }, T0),
    );
    const after = sample(
      T0 + 2000,
      sidecar(9001, info('a', 1), { outbound: [out('b', 30, 5)], inbound: [] }, T0 + 2000),
      sidecar(9002, info('b', 2), { outbound: [], inbound: [inb('a', '/orders', 30, 5)] }, T0 + 2000),
    );
    const view = meshView(before, after);
    assert.equal(view.windowSeconds, 2);
    assert.equal(view.at, T0 + 2000);
    assert.equal(view.edges.length, 1);
    const [edge] = view.edges;
    assert.equal(edge?.src, 'a');
    assert.equal(edge?.dst, 'b');
    assert.deepEqual(edge?.srcIdentities, []);
    assert.equal(edge?.stats.calls, 20);
    assert.equal(edge?.stats.failures, 4);
    assert.equal(edge?.stats.rps, 10);
    assert.equal(edge?.stats.successRate, 0.8);
    const [a, b] = view.apps;
    assert.equal(a?.appId, 'a');
    assert.equal(a?.outbound.calls, 20);
    assert.equal(a?.inbound.calls, 0);
    assert.equal(a?.inbound.successRate, null);
    assert.equal(a?.inbound.p50, null);
    assert.equal(a?.inbound.rps, 0);
    assert.equal(b?.appId, 'b');
    assert.equal(b?.inbound.calls, 20);
    assert.equal(b?.inbound.successRate, 0.8);
    assert.equal(b?.outbound.calls, 0);
    assert.deepEqual(
      view.routes.map((r) => [r.appId, r.verb, r.route, r.stats.calls]),
      [['b', 'POST', '/orders', 20]],
    );
  });

  test('latency quantiles from the bucket deltas, interpolated inside the bucket', () => {
    const before = sample(T0, sidecar(9001, info('a', 1), { outbound: [out('b', 10, 0, { 1: 10 })], inbound: [] }, T0));
    // In the window: 50 calls ≤ 1 ms and 50 in (1, 2] ms; the 10 from before are not in the window.
    const after = sample(T0 + 1000, sidecar(9001, info('a', 1), { outbound: [out('b', 110, 0, { 1: 60, 2: 50 })], inbound: [] }, T0 + 1000));
    const stats = meshView(before, after).edges[0]?.stats;
    assert.equal(stats?.calls, 100);
    assert.equal(stats?.p50, 1);
    assert.ok(Math.abs((stats?.p95 ?? 0) - 1.9) < 1e-9, String(stats?.p95));
    assert.ok(Math.abs((stats?.p99 ?? 0) - 1.98) < 1e-9, String(stats?.p99));
  });

  test('a sidecar restarted in the window (other pid, or counters down) counts from zero', () => {
    const before = sample(
      T0,
      sidecar(9001, info('a', 1), { outbound: [out('b', 500, 50)], inbound: [] }, T0),
      sidecar(9003, info('c', 3), { outbound: [out('b', 500, 50)], inbound: [] }, T0),
    );
    const after = sample(
      T0 + 1000,
      sidecar(9001, info('a', 11, { startedAt: new Date(T0 + 500).toISOString() }), { outbound: [out('b', 7, 1)], inbound: [] }, T0 + 1000),
      // Same pid, but the counters went down: counting began again.
      sidecar(9003, info('c', 3), { outbound: [out('b', 4, 0)], inbound: [] }, T0 + 1000),
    );
    const view = meshView(before, after);
    assert.deepEqual(
      view.edges.map((e) => [e.src, e.dst, e.stats.calls, e.stats.failures]),
      [
        ['a', 'b', 7, 1],
        ['c', 'b', 4, 0],
      ],
    );
  });

  test('a sidecar only in the later sample counts from zero if it started in the window, else it is left out of the rates', () => {
    const before = sample(T0, sidecar(9002, info('b', 2), { outbound: [], inbound: [] }, T0), sidecar(9005, null, null, T0, 'no answer within 1500 ms'));
    const after = sample(
      T0 + 1000,
      sidecar(9002, info('b', 2), { outbound: [], inbound: [] }, T0 + 1000),
      // Started after the first sample: all of its calls are in the window.
      sidecar(9004, info('d', 4, { startedAt: new Date(T0 + 200).toISOString() }), { outbound: [out('b', 6, 0)], inbound: [] }, T0 + 1000),
      // Running long before (it could not be read the first time): its totals would overstate the window.
      sidecar(9005, info('e', 5), { outbound: [out('b', 1000, 0)], inbound: [] }, T0 + 1000),
    );
    const view = meshView(before, after);
    assert.deepEqual(
      view.edges.map((e) => [e.src, e.dst, e.stats.calls]),
      [['d', 'b', 6]],
    );
    // Still listed as an instance, with no figures.
    const e = view.apps.find((x) => x.appId === 'e');
    assert.equal(e?.instances.length, 1);
    assert.equal(e?.outbound.calls, 0);
  });

  test('apps group their instances; unreachable and unhealthy ones are listed as such', () => {
    const ids = { b1: 'spiffe://public/ns/default/b', a: 'spiffe://public/ns/default/a' };
    const before = sample(
      T0,
      sidecar(9001, info('a', 1, { identity: ids.a, mtls: true }), { outbound: [out('b', 0, 0)], inbound: [] }, T0),
      sidecar(9002, info('b', 2, { identity: ids.b1, mtls: true }), { outbound: [], inbound: [] }, T0),
      sidecar(9012, info('b', 12, { identity: ids.b1, mtls: true, appHealthy: false }), { outbound: [], inbound: [] }, T0),
    );
    const unreachable = { ref: { appId: 'b', metricsUrl: 'http://127.0.0.1:9022', source: 'run-record' as const }, info: null, traffic: null, error: 'connection refused' };
    const after = sample(
      T0 + 1000,
      sidecar(9001, info('a', 1, { identity: ids.a, mtls: true }), { outbound: [out('b', 9, 0)], inbound: [] }, T0 + 1000),
      sidecar(9002, info('b', 2, { identity: ids.b1, mtls: true }), { outbound: [], inbound: [inb('a', '/x', 5, 0, { srcIdentity: ids.a })] }, T0 + 1000),
      sidecar(9012, info('b', 12, { identity: ids.b1, mtls: true, appHealthy: false }), { outbound: [], inbound: [inb('a', '/x', 4, 0, { srcIdentity: ids.a })] }, T0 + 1000),
      unreachable,
    );
    const view = meshView(before, after);
    assert.deepEqual(
      view.apps.map((a) => [a.appId, a.instances.map((i) => i.health)]),
      [
        ['a', ['healthy']],
        ['b', ['healthy', 'unhealthy', 'unreachable']],
      ],
    );
    const b = view.apps[1];
    assert.equal(b?.inbound.calls, 9);
    const gone = b?.instances[2];
    assert.equal(gone?.error, 'connection refused');
    assert.equal(gone?.pid, null);
    assert.equal(gone?.info, null);
    assert.equal(b?.instances[0]?.address, '127.0.0.1:40002');
    assert.equal(b?.instances[0]?.protocol, 'http');
    assert.equal(b?.instances[0]?.pid, 2);
    assert.deepEqual(view.edges[0]?.srcIdentities, [ids.a]);
    assert.deepEqual(view.edges[0]?.dstIdentities, [ids.b1]);
  });

  test('routes are summed over callers and instances, busiest first', () => {
    const before = sample(T0, sidecar(9002, info('b', 2), { outbound: [], inbound: [] }, T0), sidecar(9003, info('c', 3), { outbound: [], inbound: [] }, T0));
    const after = sample(
      T0 + 4000,
      sidecar(9002, info('b', 2), { outbound: [], inbound: [inb('a', '/orders', 3, 0), inb('x', '/orders', 2, 1), inb('a', '/health', 1, 0, { verb: 'GET' })] }, T0 + 4000),
      sidecar(9003, info('c', 3), { outbound: [], inbound: [inb('b', '/stock', 8, 0)] }, T0 + 4000),
    );
    const view = meshView(before, after);
    assert.deepEqual(
      view.routes.map((r) => [r.appId, r.verb, r.route, r.stats.calls, r.stats.failures, r.stats.rps]),
      [
        ['c', 'POST', '/stock', 8, 0, 2],
        ['b', 'POST', '/orders', 5, 1, 1.25],
        ['b', 'GET', '/health', 1, 0, 0.25],
      ],
    );
    // Inbound tables say nothing of the callers' outbound side: no edges without a caller's sidecar.
    assert.deepEqual(view.edges, []);
  });
});

describe('quantile', () => {
  test("estimates as Prometheus' histogram_quantile does", () => {
    const b = buckets({ 7.5: 100 });
    assert.equal(quantile(0.5, b), 6.25);
    assert.ok(Math.abs((quantile(0.99, b) ?? 0) - 7.475) < 1e-9);
    // The first bucket starts at 0.
    assert.equal(quantile(0.5, buckets({ 1: 4 })), 0.5);
    // Empty buckets between do not shift the estimate.
    assert.equal(quantile(0.75, buckets({ 1: 50, 100: 50 })), 75 + 25 * 0.5);
  });

  test('a rank in the +Inf bucket gives the last finite bound', () => {
    assert.equal(quantile(0.5, buckets({ inf: 10 })), 10000);
    const mixed = buckets({ 1: 98, inf: 2 });
    assert.equal(quantile(0.99, mixed), 10000);
    assert.ok(Math.abs((quantile(0.95, mixed) ?? 0) - 95 / 98) < 1e-9);
  });

  test('no calls, no estimate', () => {
    assert.equal(quantile(0.5, buckets({})), null);
    assert.equal(quantile(0.5, []), null);
  });
});
