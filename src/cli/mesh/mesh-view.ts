// The mesh views' arithmetic: from two samples of every sidecar's cumulative counters to the figures of
// the window between them. Pure (no I/O, no clock), so the terminal views and the dashboard compute the
// same numbers and unit tests can feed it synthetic samples.
import { TRAFFIC_BUCKETS_MS, type TrafficCounters, type TrafficSnapshot } from '../../observability/mesh/contract.js';
import type { AppView, EdgeView, InstanceView, MeshSample, MeshView, RouteView, SidecarSample, WindowStats } from './view-types.js';

/** Counters being summed over sidecars and rows; `buckets` has one entry per bucket, +Inf last. */
export interface Sum {
  calls: number;
  failures: number;
  readonly buckets: number[];
}

const newSum = (): Sum => ({ calls: 0, failures: 0, buckets: new Array<number>(TRAFFIC_BUCKETS_MS.length + 1).fill(0) });

function add(into: Sum, delta: Sum): void {
  into.calls += delta.calls;
  into.failures += delta.failures;
  for (let i = 0; i < into.buckets.length; i++) into.buckets[i] = (into.buckets[i] ?? 0) + (delta.buckets[i] ?? 0);
}

/**
 * `after - before` of one row; undefined if a counter went down (the sidecar restarted and its
 * counters began again). A row with no earlier counterpart is counted whole.
 */
function delta(after: TrafficCounters, before: TrafficCounters | undefined): Sum | undefined {
  const out = newSum();
  out.calls = after.calls - (before?.calls ?? 0);
  out.failures = after.failures - (before?.failures ?? 0);
  if (out.calls < 0 || out.failures < 0) return undefined;
  for (let i = 0; i < out.buckets.length; i++) {
    const d = (after.buckets[i] ?? 0) - (before?.buckets[i] ?? 0);
    if (d < 0) return undefined;
    out.buckets[i] = d;
  }
  return out;
}

/**
 * The φ-quantile of the calls counted in `buckets`, as Prometheus' `histogram_quantile` estimates it:
 * the bucket holding the rank, then a linear interpolation between its bounds (0 below the first). A
 * rank in the +Inf bucket gives the last finite bound, since nothing says how far above it lies. Null
 * without calls.
 */
export function quantile(q: number, buckets: readonly number[], bounds: readonly number[] = TRAFFIC_BUCKETS_MS): number | null {
  let total = 0;
  for (const n of buckets) total += n;
  if (total <= 0) return null;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < buckets.length; i++) {
    const count = buckets[i] ?? 0;
    if (below + count >= rank && count > 0) {
      const upper = bounds[i];
      if (upper === undefined) return bounds[bounds.length - 1] ?? null;
      const lower = i === 0 ? 0 : (bounds[i - 1] ?? 0);
      return lower + ((upper - lower) * (rank - below)) / count;
    }
    below += count;
  }
  return bounds[bounds.length - 1] ?? null;
}

/** The window's figures of summed counters. */
export function windowStats(sum: Sum | undefined, windowSeconds: number): WindowStats {
  const calls = sum?.calls ?? 0;
  const failures = Math.min(calls, sum?.failures ?? 0);
  const buckets = sum?.buckets ?? [];
  return {
    calls,
    failures,
    rps: windowSeconds > 0 ? calls / windowSeconds : 0,
    successRate: calls > 0 ? (calls - failures) / calls : null,
    p50: quantile(0.5, buckets),
    p95: quantile(0.95, buckets),
    p99: quantile(0.99, buckets),
  };
}

const outboundKey = (dstAppId: string): string => dstAppId;
const inboundKey = (row: { srcAppId: string; srcIdentity: string; verb: string; route: string }): string =>
  JSON.stringify([row.srcAppId, row.srcIdentity, row.verb, row.route]);

/** One sidecar's counters over the window, row by row; undefined when the window cannot be measured. */
export interface SidecarDelta {
  readonly outbound: ReadonlyArray<{ readonly dstAppId: string; readonly sum: Sum }>;
  readonly inbound: ReadonlyArray<{ readonly srcAppId: string; readonly srcIdentity: string; readonly verb: string; readonly route: string; readonly sum: Sum }>;
}

function fromZero(traffic: TrafficSnapshot): SidecarDelta {
  const zero = (row: TrafficCounters): Sum => delta(row, undefined) ?? newSum();
  return {
    outbound: traffic.outbound.map((r) => ({ dstAppId: r.dstAppId, sum: zero(r) })),
    inbound: traffic.inbound.map((r) => ({ srcAppId: r.srcAppId, srcIdentity: r.srcIdentity, verb: r.verb, route: r.route, sum: zero(r) })),
  };
}

/** Row-by-row deltas, or undefined if any counter went down or a row vanished (a restart). */
function between(before: TrafficSnapshot, after: TrafficSnapshot): SidecarDelta | undefined {
  const earlierOut = new Map(before.outbound.map((r) => [outboundKey(r.dstAppId), r]));
  const earlierIn = new Map(before.inbound.map((r) => [inboundKey(r), r]));
  const outbound: Array<SidecarDelta['outbound'][number]> = [];
  for (const row of after.outbound) {
    const key = outboundKey(row.dstAppId);
    const sum = delta(row, earlierOut.get(key));
    if (sum === undefined) return undefined;
    earlierOut.delete(key);
    outbound.push({ dstAppId: row.dstAppId, sum });
  }
  const inbound: Array<SidecarDelta['inbound'][number]> = [];
  for (const row of after.inbound) {
    const key = inboundKey(row);
    const sum = delta(row, earlierIn.get(key));
    if (sum === undefined) return undefined;
    earlierIn.delete(key);
    inbound.push({ srcAppId: row.srcAppId, srcIdentity: row.srcIdentity, verb: row.verb, route: row.route, sum });
  }
  // Rows are never dropped by a running sidecar: one that did not come back means counting began anew.
  if ([...earlierOut.values(), ...earlierIn.values()].some((r) => r.calls > 0)) return undefined;
  return { outbound, inbound };
}

/**
 * What one sidecar did in the window: the difference of its two snapshots; counted from zero when it
 * restarted in between (another pid or start time, or counters that went down), or when it is new and
 * started after the first sample. A sidecar that was running but could not be read the first time is
 * left out (undefined): its totals cover more than the window.
 */
export function sidecarDelta(before: SidecarSample | undefined, after: SidecarSample, beforeAt: number): SidecarDelta | undefined {
  const now = after.traffic;
  if (now === null) return undefined;
  const then = before?.traffic ?? null;
  if (then === null) {
    const started = Date.parse(after.info?.startedAt ?? '');
    return Number.isFinite(started) && started > beforeAt ? fromZero(now) : undefined;
  }
  const a = before?.info ?? null;
  const b = after.info;
  if (a !== null && b !== null && (a.pid !== b.pid || a.startedAt !== b.startedAt)) return fromZero(now);
  return between(then, now) ?? fromZero(now);
}

/** The app id a sample belongs to: what the sidecar says, else what its reference knew. */
export function sampleAppId(sample: SidecarSample): string {
  return sample.info?.appId ?? sample.traffic?.appId ?? sample.ref.appId;
}

function instanceView(sample: SidecarSample): InstanceView {
  const info = sample.info;
  const view: InstanceView = {
    appId: sampleAppId(sample),
    address: info?.address ?? '',
    metricsUrl: sample.ref.metricsUrl,
    protocol: info?.appProtocol ?? '',
    identity: info?.identity ?? null,
    health: info === null ? 'unreachable' : info.appHealthy === false ? 'unhealthy' : 'healthy',
    uptimeSeconds: info?.uptimeSeconds ?? null,
    version: info?.version ?? '',
    pid: info?.pid ?? null,
    info,
  };
  return sample.error === undefined ? view : { ...view, error: sample.error };
}

function getOrAdd<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let value = map.get(key);
  if (value === undefined) {
    value = make();
    map.set(key, value);
  }
  return value;
}

/**
 * The mesh over the window between two samples: apps with their instances (every sidecar of the later
 * sample, unreachable ones included) and the calls they received (callees' inbound tables) and made
 * (callers' outbound tables), the edges between apps as the callers saw them, and the routes each app
 * served, busiest first.
 */
export function meshView(before: MeshSample, after: MeshSample): MeshView {
  const windowSeconds = Math.max(0, (after.at - before.at) / 1000);
  const earlier = new Map(before.sidecars.map((s) => [s.ref.metricsUrl, s]));
  const instances = new Map<string, InstanceView[]>();
  const identities = new Map<string, Set<string>>();
  const inbound = new Map<string, Sum>();
  const outbound = new Map<string, Sum>();
  const edges = new Map<string, { src: string; dst: string; sum: Sum }>();
  /** Callers' identities as the callees saw them on the connection: known even for a caller not sampled. */
  const seenCallers = new Map<string, Set<string>>();
  const routes = new Map<string, { appId: string; verb: string; route: string; sum: Sum }>();

  for (const sample of after.sidecars) {
    const appId = sampleAppId(sample);
    const instance = instanceView(sample);
    getOrAdd(instances, appId, () => []).push(instance);
    const ids = getOrAdd(identities, appId, () => new Set<string>());
    if (instance.identity !== null && instance.identity !== '') ids.add(instance.identity);
    const d = sidecarDelta(earlier.get(sample.ref.metricsUrl), sample, before.at);
    if (d === undefined) continue;
    const appIn = getOrAdd(inbound, appId, newSum);
    const appOut = getOrAdd(outbound, appId, newSum);
    for (const row of d.outbound) {
      add(appOut, row.sum);
      add(getOrAdd(edges, JSON.stringify([appId, row.dstAppId]), () => ({ src: appId, dst: row.dstAppId, sum: newSum() })).sum, row.sum);
    }
    for (const row of d.inbound) {
      add(appIn, row.sum);
      add(getOrAdd(routes, JSON.stringify([appId, row.verb, row.route]), () => ({ appId, verb: row.verb, route: row.route, sum: newSum() })).sum, row.sum);
      if (row.srcIdentity !== '' && row.sum.calls > 0) getOrAdd(seenCallers, JSON.stringify([row.srcAppId, appId]), () => new Set<string>()).add(row.srcIdentity);
    }
  }

  const apps: AppView[] = [...instances.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([appId, list]) => ({
      appId,
      instances: list.sort((a, b) => a.metricsUrl.localeCompare(b.metricsUrl)),
      inbound: windowStats(inbound.get(appId), windowSeconds),
      outbound: windowStats(outbound.get(appId), windowSeconds),
    }));
  const sorted = (set: ReadonlySet<string> | undefined): string[] => [...(set ?? [])].sort();
  const edgeViews: EdgeView[] = [...edges.values()]
    .sort((a, b) => a.src.localeCompare(b.src) || a.dst.localeCompare(b.dst))
    .map((e) => ({
      src: e.src,
      dst: e.dst,
      srcIdentities: sorted(new Set([...(identities.get(e.src) ?? []), ...(seenCallers.get(JSON.stringify([e.src, e.dst])) ?? [])])),
      dstIdentities: sorted(identities.get(e.dst)),
      stats: windowStats(e.sum, windowSeconds),
    }));
  const routeViews: RouteView[] = [...routes.values()]
    .sort((a, b) => b.sum.calls - a.sum.calls || a.appId.localeCompare(b.appId) || a.route.localeCompare(b.route) || a.verb.localeCompare(b.verb))
    .map((r) => ({ appId: r.appId, verb: r.verb, route: r.route, stats: windowStats(r.sum, windowSeconds) }));
  return { at: after.at, windowSeconds, apps, edges: edgeViews, routes: routeViews };
}
