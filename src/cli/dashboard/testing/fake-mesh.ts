// A made-up mesh behind the dashboard's MeshSource: apps, instances and edges a test sets, views
// computed from them, and taps it can push calls into. For the server's tests and the page's.
import type { MeshInfo } from '../../../observability/mesh/contract.js';
import type { AppView, EdgeView, InstanceView, MeshSample, MeshView, RouteView, SidecarRef, TappedCall, WindowStats } from '../../mesh/view-types.js';
import type { MeshSource, MeshSourceOptions, TapFilters, TapHandle, TapSourceOptions } from '../source.js';

export interface FakeInstance {
  readonly appId: string;
  readonly port: number;
  health: 'healthy' | 'unhealthy' | 'unreachable';
}

export interface FakeEdge {
  readonly src: string;
  readonly dst: string;
  rps: number;
  successRate: number;
}

export interface OpenTap {
  readonly refs: readonly SidecarRef[];
  readonly filters: TapFilters;
  readonly options: TapSourceOptions;
  readonly onEvent: (call: TappedCall) => void;
  closed: boolean;
}

export class FakeMesh implements MeshSource {
  readonly instances: FakeInstance[] = [];
  readonly edges: FakeEdge[] = [];
  readonly taps: OpenTap[] = [];
  /** Every options object sampleMesh was called with (to check the token reaches the sidecars). */
  readonly sampleOptions: MeshSourceOptions[] = [];
  /** Addresses discovery was asked for. */
  lastAddresses: readonly string[] = [];
  #nextPort = 19_000;
  readonly #started = Date.now();

  addInstance(appId: string, health: FakeInstance['health'] = 'healthy'): FakeInstance {
    const instance = { appId, port: this.#nextPort++, health };
    this.instances.push(instance);
    return instance;
  }

  removeInstance(instance: FakeInstance): void {
    const i = this.instances.indexOf(instance);
    if (i >= 0) this.instances.splice(i, 1);
  }

  addEdge(src: string, dst: string, rps: number, successRate = 1): FakeEdge {
    const edge = { src, dst, rps, successRate };
    this.edges.push(edge);
    return edge;
  }

  /** Open taps (not closed yet). */
  get openTaps(): OpenTap[] {
    return this.taps.filter((t) => !t.closed);
  }

  /** Sends a call to every open tap whose sidecar is the reporter's. */
  emit(call: TappedCall): void {
    for (const tap of this.openTaps) {
      if (tap.refs.some((ref) => ref.appId === call.reportedBy)) tap.onEvent(call);
    }
  }

  /** The sidecar behind an open tap fails its stream, as a restarting sidecar does. */
  failTap(tap: OpenTap): void {
    for (const ref of tap.refs) tap.options.onError?.(ref, 'the sidecar ended the stream');
  }

  discoverSidecars(_env: NodeJS.ProcessEnv, addresses: readonly string[]): SidecarRef[] {
    this.lastAddresses = addresses;
    return this.instances.map((i) => ({ appId: i.appId, metricsUrl: `http://127.0.0.1:${i.port}`, source: 'run-record' as const }));
  }

  sampleMesh(refs: readonly SidecarRef[], options: MeshSourceOptions): Promise<MeshSample> {
    this.sampleOptions.push(options);
    return Promise.resolve({
      at: Date.now(),
      sidecars: refs.map((ref) => {
        const instance = this.instances.find((i) => `http://127.0.0.1:${i.port}` === ref.metricsUrl);
        if (instance === undefined || instance.health === 'unreachable') return { ref, info: null, traffic: null, error: 'connection refused' };
        return { ref, info: this.#info(instance), traffic: null };
      }),
    });
  }

  meshView(before: MeshSample, after: MeshSample): MeshView {
    const windowSeconds = Math.max(0.001, (after.at - before.at) / 1000);
    const byApp = new Map<string, InstanceView[]>();
    for (const sample of after.sidecars) {
      const instance = this.instances.find((i) => `http://127.0.0.1:${i.port}` === sample.ref.metricsUrl);
      const view: InstanceView = {
        appId: sample.ref.appId,
        address: `127.0.0.1:${(instance?.port ?? 0) + 1000}`,
        metricsUrl: sample.ref.metricsUrl,
        protocol: 'http',
        identity: sample.info?.identity ?? null,
        health: sample.info === null ? 'unreachable' : (instance?.health ?? 'unreachable'),
        uptimeSeconds: sample.info?.uptimeSeconds ?? null,
        version: sample.info?.version ?? '',
        pid: sample.info?.pid ?? null,
        info: sample.info,
      };
      byApp.set(view.appId, [...(byApp.get(view.appId) ?? []), view]);
    }
    const edges: EdgeView[] = this.edges
      .filter((e) => byApp.has(e.src))
      .map((e) => ({ src: e.src, dst: e.dst, srcIdentities: [], dstIdentities: [], stats: stats(e.rps, e.successRate, windowSeconds) }));
    const apps: AppView[] = [...byApp].map(([appId, instances]) => {
      const inbound = this.edges.filter((e) => e.dst === appId);
      const outbound = this.edges.filter((e) => e.src === appId);
      return { appId, instances, inbound: sum(inbound, windowSeconds), outbound: sum(outbound, windowSeconds) };
    });
    const routes: RouteView[] = apps
      .filter((a) => a.inbound.calls > 0)
      .flatMap((a) => [
        { appId: a.appId, verb: 'POST', route: '/orders', stats: stats((a.inbound.rps * 2) / 3, a.inbound.successRate ?? 1, windowSeconds) },
        { appId: a.appId, verb: 'GET', route: '/orders/{id}', stats: stats(a.inbound.rps / 3, 1, windowSeconds) },
      ]);
    return { at: after.at, windowSeconds, apps, edges, routes };
  }

  tapMesh(refs: readonly SidecarRef[], filters: TapFilters, options: TapSourceOptions, onEvent: (call: TappedCall) => void): TapHandle {
    const tap: OpenTap = { refs, filters, options, onEvent, closed: false };
    this.taps.push(tap);
    return {
      close: () => {
        tap.closed = true;
        return Promise.resolve();
      },
    };
  }

  #info(instance: FakeInstance): MeshInfo {
    return {
      appId: instance.appId,
      namespace: 'default',
      version: '0.1.0',
      pid: instance.port,
      startedAt: new Date(this.#started).toISOString(),
      uptimeSeconds: (Date.now() - this.#started) / 1000,
      address: `127.0.0.1:${instance.port + 1000}`,
      appProtocol: 'http',
      appPort: instance.port + 2000,
      appHealthy: instance.health === 'healthy',
      identity: `spiffe://public/ns/default/${instance.appId}`,
      mtls: true,
      certificateExpiry: new Date(this.#started + 24 * 3600_000).toISOString(),
      resolver: 'sqlite',
      config: 'appconfig',
      accessControl: { defaultAction: 'allow', policies: [] },
      resiliency: { resources: [], targets: [] },
      tracing: { samplingRate: 1, exporter: 'zipkin' },
    };
  }
}

/** Window figures for a steady rate: latencies grow a little with the rate, failures follow the success rate. */
function stats(rps: number, successRate: number, windowSeconds: number): WindowStats {
  const calls = Math.round(rps * windowSeconds);
  if (calls === 0) return { calls: 0, failures: 0, rps: 0, successRate: null, p50: null, p95: null, p99: null };
  const failures = Math.round(calls * (1 - successRate));
  const base = 2 + Math.log10(1 + rps);
  return { calls, failures, rps: calls / windowSeconds, successRate: (calls - failures) / calls, p50: base, p95: base * 2.5, p99: base * 4 };
}

function sum(edges: readonly FakeEdge[], windowSeconds: number): WindowStats {
  const rps = edges.reduce((s, e) => s + e.rps, 0);
  const failing = edges.reduce((s, e) => s + e.rps * (1 - e.successRate), 0);
  return stats(rps, rps === 0 ? 1 : 1 - failing / rps, windowSeconds);
}

/**
 * Thirty apps in five tiers (web front ends, APIs, services, stores, shared platform services), each
 * calling two or three apps of the next tiers, some with failures: a mesh of the size the call
 * graph must stay readable at.
 */
export function thirtyAppMesh(): FakeMesh {
  const mesh = new FakeMesh();
  const tiers = [
    ['web', 'mobile-gw', 'partner-api'],
    ['catalog-api', 'cart-api', 'checkout-api', 'account-api', 'search-api', 'admin-api'],
    ['pricing', 'inventory', 'orders', 'payments', 'shipping', 'users', 'reviews', 'recommend', 'promotions', 'tax'],
    ['orders-store', 'users-store', 'catalog-store', 'ledger', 'search-index', 'media', 'fraud', 'email'],
    ['auth', 'audit', 'config'],
  ];
  for (const tier of tiers) for (const app of tier) mesh.addInstance(app);
  for (const app of ['checkout-api', 'orders', 'payments']) mesh.addInstance(app);
  mesh.addInstance('fraud', 'unhealthy');
  let seed = 7;
  const random = (): number => {
    seed = (seed * 16807) % 2147483647;
    return seed / 2147483647;
  };
  for (let t = 0; t < tiers.length - 1; t++) {
    for (const src of tiers[t] ?? []) {
      const next = tiers[t + 1] ?? [];
      const picks = new Set<string>();
      const count = t === tiers.length - 2 ? 1 : 2 + Math.floor(random() * 2);
      while (picks.size < Math.min(count, next.length)) picks.add(next[Math.floor(random() * next.length)] ?? '');
      for (const dst of picks) mesh.addEdge(src, dst, Math.round(5 + random() * 200), random() < 0.12 ? 0.9 + random() * 0.09 : 1);
    }
  }
  return mesh;
}
