// What the mesh views show, computed by the CLI from two samples of every sidecar's endpoints
// (src/observability/mesh/contract.ts): the terminal views (`courier stat`, `edges`, `top`) print it,
// `courier dashboard` sends it to the page. Plain JSON, so `-o json` prints it as it is.
import type { MeshInfo, TapEvent, TrafficSnapshot } from '../../observability/mesh/contract.js';

/** A sidecar the views read: from a run record on this machine, given by address, or found by name resolution. */
export interface SidecarRef {
  /** The app id when known before asking (run records, the app id looked up); otherwise the one `info` reports. */
  readonly appId: string;
  /** Base URL of its metrics port, e.g. `http://127.0.0.1:9090`. */
  readonly metricsUrl: string;
  /**
   * Where it was found: `run-record`, `address` (given with `--sidecar`) or `name-resolution` (an
   * instance of an app, read on its host at `--remote-metrics-port`).
   */
  readonly source: 'run-record' | 'address' | 'name-resolution';
  /** The internal address name resolution gave (`host:port`); only with `name-resolution`. */
  readonly address?: string;
}

/** One read of one sidecar. */
export interface SidecarSample {
  readonly ref: SidecarRef;
  readonly info: MeshInfo | null;
  readonly traffic: TrafficSnapshot | null;
  /** Why the sidecar could not be read (refused, timed out, metrics off, token refused); absent when it was. */
  readonly error?: string;
}

export interface MeshSample {
  /** Milliseconds since the epoch. */
  readonly at: number;
  readonly sidecars: readonly SidecarSample[];
}

/** Figures over the window between two samples. Latencies in ms; null when no call ended in the window. */
export interface WindowStats {
  readonly calls: number;
  readonly failures: number;
  /** Calls per second over the window. */
  readonly rps: number;
  /** Share of calls that did not fail, 0..1; null without calls. */
  readonly successRate: number | null;
  readonly p50: number | null;
  readonly p95: number | null;
  readonly p99: number | null;
}

export interface InstanceView {
  readonly appId: string;
  readonly address: string;
  readonly metricsUrl: string;
  readonly protocol: string;
  readonly identity: string | null;
  /** `healthy`, `unhealthy` (the app does not answer), `unreachable` (the sidecar could not be read). */
  readonly health: 'healthy' | 'unhealthy' | 'unreachable';
  readonly uptimeSeconds: number | null;
  readonly version: string;
  readonly pid: number | null;
  readonly info: MeshInfo | null;
  /** Why the sidecar could not be read (as in {@link SidecarSample}); absent when it was. */
  readonly error?: string;
}

export interface AppView {
  readonly appId: string;
  readonly instances: readonly InstanceView[];
  /** Calls the app received (summed over its instances). */
  readonly inbound: WindowStats;
  /** Calls the app made to other apps. */
  readonly outbound: WindowStats;
}

/** Calls from one app to another, as the caller's sidecars saw them. */
export interface EdgeView {
  readonly src: string;
  readonly dst: string;
  /** mTLS identities of the caller's and callee's instances (empty without mTLS). */
  readonly srcIdentities: readonly string[];
  readonly dstIdentities: readonly string[];
  readonly stats: WindowStats;
}

/** Calls one app received on one route. */
export interface RouteView {
  readonly appId: string;
  readonly verb: string;
  readonly route: string;
  readonly stats: WindowStats;
}

export interface MeshView {
  /** When the later sample was taken (ms since the epoch) and the window's length. */
  readonly at: number;
  readonly windowSeconds: number;
  readonly apps: readonly AppView[];
  readonly edges: readonly EdgeView[];
  /** Busiest first. */
  readonly routes: readonly RouteView[];
}

/** A tap event with the sidecar it came from. */
export interface TappedCall extends TapEvent {
  /** The app whose sidecar reported it. */
  readonly reportedBy: string;
}
