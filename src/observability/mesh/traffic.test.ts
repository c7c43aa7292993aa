import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compilePathPattern, metricsSettings, SidecarMetrics } from '../metrics/sidecar-metrics.js';
import { TRAFFIC_BUCKETS_MS } from './contract.js';
import { answerFailed, appCallFailed, identityOf, MAX_GROUPS, MAX_ROUTES, OTHER, TrafficGroup, TrafficTable } from './traffic.js';

/** The index of the only non-zero bucket after one observation of `ms`. */
function bucketOf(ms: number): number {
  const g = new TrafficGroup();
  g.record(ms, false);
  return Array.from(g.buckets).findIndex((n) => n === 1);
}

test('a latency lands in the first bucket whose bound is at least it; above the last bound, in the +Inf slot', () => {
  assert.equal(bucketOf(0), 0);
  assert.equal(bucketOf(1), 0, 'a bound is inclusive');
  assert.equal(bucketOf(1.0001), 1);
  assert.equal(bucketOf(7.5), TRAFFIC_BUCKETS_MS.indexOf(7.5));
  assert.equal(bucketOf(8), TRAFFIC_BUCKETS_MS.indexOf(10));
  assert.equal(bucketOf(10000), TRAFFIC_BUCKETS_MS.length - 1);
  assert.equal(bucketOf(10000.5), TRAFFIC_BUCKETS_MS.length);
  const g = new TrafficGroup();
  for (const ms of [0.5, 2, 2, 40, 20000]) g.record(ms, ms > 100);
  assert.equal(g.calls, 5);
  assert.equal(g.failures, 1);
  assert.equal(g.latencySumMs, 20044.5);
  assert.equal(g.buckets.length, TRAFFIC_BUCKETS_MS.length + 1);
  assert.equal(
    Array.from(g.buckets).reduce((a, b) => a + b, 0),
    5,
  );
});

test('failures: HTTP 5xx, gRPC statuses other than OK, and no answer from the app', () => {
  // Answers relayed by another sidecar (or a proxied call's gRPC status).
  assert.equal(answerFailed(200), false);
  assert.equal(answerFailed(404), false);
  assert.equal(answerFailed(403), false);
  assert.equal(answerFailed(499), false);
  assert.equal(answerFailed(500), true);
  assert.equal(answerFailed(503), true);
  assert.equal(answerFailed(0), false, 'gRPC OK');
  assert.equal(answerFailed(14), true, 'gRPC UNAVAILABLE');
  // Calls to the local app.
  assert.equal(appCallFailed(0, false), true, 'an HTTP app that did not answer');
  assert.equal(appCallFailed(200, false), false);
  assert.equal(appCallFailed(500, false), true);
  assert.equal(appCallFailed(0, true), false, 'a gRPC app that answered OK');
  assert.equal(appCallFailed(2, true), true);
});

test('outbound groups by destination; the metrics record fills them, with one lookup', () => {
  const metrics = new SidecarMetrics(metricsSettings('a', {}));
  metrics.responseReceived('b', 200, 3);
  metrics.responseReceived('b', 500, 30);
  metrics.responseReceived('b', 0, 1);
  metrics.responseReceived('c', 14, 2);
  const snap = metrics.traffic.snapshot(1234);
  assert.equal(snap.appId, 'a');
  assert.equal(snap.at, 1234);
  assert.deepEqual(
    snap.outbound.map((o) => [o.dstAppId, o.calls, o.failures, o.latencySumMs]),
    [
      ['b', 3, 1, 34],
      ['c', 1, 1, 2],
    ],
  );
  assert.deepEqual(snap.inbound, []);
});

test('inbound groups by caller, identity, verb and route: the pathMatching pattern, else the path', () => {
  const metrics = new SidecarMetrics(metricsSettings('b', { http: { pathMatching: ['/orders/{id}'] } }));
  const spiffe = { trustDomain: 'public', namespace: 'default', appId: 'a' };
  metrics.appCallEnded('a', spiffe, 'GET', 'orders/1', false, 2);
  metrics.appCallEnded('a', spiffe, 'GET', 'orders/2', true, 4);
  metrics.appCallEnded('a', spiffe, 'POST', 'orders/2', false, 4);
  metrics.appCallEnded('a', undefined, 'GET', 'health', false, 1);
  metrics.appCallEnded('x', undefined, 'GRPC', '/greet.Greeter/Hello', false, 1);
  const rows = metrics.traffic.snapshot().inbound.map((i) => [i.srcAppId, i.srcIdentity, i.verb, i.route, i.calls, i.failures]);
  assert.deepEqual(rows, [
    ['a', 'spiffe://public/ns/default/a', 'GET', '/orders/{id}', 2, 1],
    ['a', 'spiffe://public/ns/default/a', 'POST', '/orders/{id}', 1, 0],
    ['a', '', 'GET', '/health', 1, 0],
    ['x', '', 'GRPC', '/greet.Greeter/Hello', 1, 0],
  ]);
});

test('the same call reaches the same counters without building anything: the identity text is made once per id', () => {
  const table = new TrafficTable('b', []);
  const spiffe = { trustDomain: 'td', namespace: 'ns', appId: 'a' };
  assert.equal(identityOf(spiffe), identityOf(spiffe));
  assert.equal(identityOf(undefined), '');
  const first = table.inbound('a', spiffe, 'GET', 'x/1');
  assert.equal(table.inbound('a', spiffe, 'GET', 'x/1'), first);
  assert.equal(table.inbound('a', { ...spiffe }, 'GET', 'x/1'), first, 'another parse of the same id (another connection) finds the same group');
  assert.notEqual(table.inbound('a', undefined, 'GET', 'x/1'), first);
});

test(`at most ${MAX_ROUTES} routes are kept; later new ones are counted under ${OTHER}`, () => {
  const table = new TrafficTable('b', [compilePathPattern('/kept/{id}')]);
  for (let i = 0; i < MAX_ROUTES + 50; i++) table.inbound('a', undefined, 'GET', `items/${i}`).record(1, false);
  table.inbound('a', undefined, 'GET', 'items/0').record(1, false);
  // A pattern that was seen before the cap stays itself; one first seen after it does not.
  const rows = table.snapshot().inbound;
  assert.equal(rows.length, MAX_ROUTES + 1);
  assert.equal(rows.find((r) => r.route === '/items/0')?.calls, 2);
  assert.equal(rows.find((r) => r.route === OTHER)?.calls, 50);
  table.inbound('a', undefined, 'GET', 'kept/1').record(1, false);
  assert.equal(table.snapshot().inbound.find((r) => r.route === OTHER)?.calls, 51);
  // Distinct routes are counted per sidecar, not per caller.
  table.inbound('z', undefined, 'GET', 'items/250').record(1, false);
  assert.equal(table.snapshot().inbound.find((r) => r.srcAppId === 'z')?.route, OTHER);
});

test(`groups are bounded too: past ${MAX_GROUPS} destinations or inbound groups, new ones go under ${OTHER}`, () => {
  const table = new TrafficTable('a', []);
  for (let i = 0; i < MAX_GROUPS + 10; i++) table.outbound(`app-${i}`).record(1, false);
  const out = table.snapshot().outbound;
  assert.equal(out.length, MAX_GROUPS + 1);
  assert.equal(out.find((o) => o.dstAppId === OTHER)?.calls, 10);
  assert.equal(table.outbound('app-0').calls, 1, 'known destinations keep their own group');

  for (let i = 0; i < MAX_GROUPS + 10; i++) table.inbound(`caller-${i}`, undefined, 'GET', 'same').record(1, false);
  const inbound = table.snapshot().inbound;
  assert.equal(inbound.length, MAX_GROUPS + 1);
  assert.deepEqual(
    inbound.filter((r) => r.srcAppId === OTHER).map((r) => [r.verb, r.route, r.calls]),
    [[OTHER, OTHER, 10]],
  );
});

test('the lookup cache is rebuilt when raw methods pile up, without losing counts', () => {
  const table = new TrafficTable('b', [compilePathPattern('/orders/{id}')]);
  for (let i = 0; i < 25_000; i++) table.inbound('a', undefined, 'GET', `orders/${i}`).record(1, false);
  const rows = table.snapshot().inbound;
  assert.deepEqual(
    rows.map((r) => [r.route, r.calls]),
    [['/orders/{id}', 25_000]],
  );
});

test('the snapshot is plain JSON of the contract', () => {
  const table = new TrafficTable('a', []);
  table.outbound('b').record(12, true);
  const parsed = JSON.parse(JSON.stringify(table.snapshot(5))) as unknown;
  const buckets = new Array<number>(TRAFFIC_BUCKETS_MS.length + 1).fill(0);
  buckets[TRAFFIC_BUCKETS_MS.indexOf(15)] = 1;
  assert.deepEqual(parsed, { appId: 'a', at: 5, outbound: [{ dstAppId: 'b', calls: 1, failures: 1, buckets, latencySumMs: 12 }], inbound: [] });
});
