// What a sidecar serves for the mesh views (`courier stat`, `edges`, `top`, `tap` and `courier
// dashboard`), on its metrics port beside the Prometheus text. JSON shapes only: the sidecar writes
// them (src/observability/mesh/), the CLI and the dashboard read them (src/cli/mesh/). Both sides
// import these types, so a change here is a change of the wire format: the `v1` in the paths is kept
// as long as fields are only added.

/** The paths, on the metrics port (`--metrics-port`). GET only. */
export const MESH_PATHS = {
  /** {@link MeshInfo}. */
  info: '/courier/v1/info',
  /** {@link TrafficSnapshot}: cumulative counters since the sidecar started (the reader takes deltas). */
  traffic: '/courier/v1/traffic',
  /**
   * Server-sent events, one {@link TapEvent} per `data:` line (event name `call`), for as long as the
   * client stays. Query parameters, each optional and combined with AND: `path` (a prefix of the
   * called method's path, e.g. `/orders`), `method` (an HTTP verb, case-insensitive), `status` (an
   * exact status such as `503`, or a class such as `5xx`), `direction` (`inbound` or `outbound`),
   * `app` (the peer's app id). `headers=show` shows header values (only when the sidecar was started
   * with `--tap-header-values`; otherwise values are always redacted). A comment line (`: dropped N`)
   * says how many events a slow reader missed.
   */
  tap: '/courier/v1/tap',
} as const;

/** The header that carries the API token (`--dapr-api-token` / `DAPR_API_TOKEN`), as on the HTTP API. */
export const MESH_TOKEN_HEADER = 'dapr-api-token';

/** What a sidecar says of itself. */
export interface MeshInfo {
  readonly appId: string;
  readonly namespace: string;
  /** Courier's version. */
  readonly version: string;
  /** The sidecar's process id. */
  readonly pid: number;
  /** ISO time the sidecar started. */
  readonly startedAt: string;
  readonly uptimeSeconds: number;
  /** Where other sidecars reach it: `host:port` of the internal gRPC server (as name resolution registers it). */
  readonly address: string;
  /** `--app-protocol`: http, https, h2c, grpc, grpcs; empty when the sidecar has no app. */
  readonly appProtocol: string;
  /** `--app-port`; 0 when none. */
  readonly appPort: number;
  /** Whether the app answers (app health checks when on, otherwise whether its port accepts connections); null when there is no app. */
  readonly appHealthy: boolean | null;
  /** The mTLS identity: the SPIFFE id of the sidecar's certificate; null when mTLS is off. */
  readonly identity: string | null;
  readonly mtls: boolean;
  /** When the current certificate expires (ISO); null when mTLS is off. */
  readonly certificateExpiry: string | null;
  /** The name resolver in use: `mdns`, `sqlite`, `kubernetes`, ... */
  readonly resolver: string;
  /** The Configuration resource's name; empty when none was given. */
  readonly config: string;
  /** Access control: the default action (`allow` when no policy is set) and the app ids with a policy of their own. */
  readonly accessControl: { readonly defaultAction: 'allow' | 'deny'; readonly policies: readonly string[] };
  /** Resiliency resources loaded (names), and the app ids they target. */
  readonly resiliency: { readonly resources: readonly string[]; readonly targets: readonly string[] };
  /** Tracing's sampling rate (0 when off) and the exporter in use (`zipkin`, `otlp-http`, `otlp-grpc`, `stdout`, or empty). */
  readonly tracing: { readonly samplingRate: number; readonly exporter: string };
}

/**
 * Latency buckets of the traffic table, in ms (upper bounds; the last bucket is +Inf). Fixed, so that
 * snapshots of different sidecars add up.
 */
export const TRAFFIC_BUCKETS_MS: readonly number[] = [1, 2, 3, 5, 7.5, 10, 15, 25, 50, 75, 100, 150, 250, 500, 750, 1000, 2500, 5000, 10000];

/** Counters of one group of calls, cumulative since the sidecar started. */
export interface TrafficCounters {
  /** Calls ended. */
  readonly calls: number;
  /** Calls that failed: HTTP status ≥ 500, gRPC status other than OK, or no answer at all. */
  readonly failures: number;
  /** Calls per latency bucket: `buckets[i]` counts calls with latency ≤ TRAFFIC_BUCKETS_MS[i] and above the bucket before; the last entry is above the last bound. Length TRAFFIC_BUCKETS_MS.length + 1. */
  readonly buckets: readonly number[];
  /** Sum of latencies, ms. */
  readonly latencySumMs: number;
}

/** Calls this sidecar sent to another app (caller side), by destination. */
export interface OutboundTraffic extends TrafficCounters {
  readonly dstAppId: string;
}

/** Calls this sidecar's app received, by caller app, verb and route. */
export interface InboundTraffic extends TrafficCounters {
  /** The caller's app id (`dapr-caller-app-id`); empty when unknown. */
  readonly srcAppId: string;
  /** The caller's mTLS identity (SPIFFE id) when the call came over mTLS; empty otherwise. */
  readonly srcIdentity: string;
  /** HTTP verb, or `GRPC` for a gRPC app or a proxied gRPC call. */
  readonly verb: string;
  /**
   * The route: the Configuration's `pathMatching` pattern that matched, else the method's path
   * (`/orders/1`), up to 200 distinct routes per sidecar; later new ones are counted under `_other`.
   */
  readonly route: string;
}

export interface TrafficSnapshot {
  readonly appId: string;
  /** Milliseconds since the epoch when the snapshot was taken. */
  readonly at: number;
  readonly outbound: readonly OutboundTraffic[];
  readonly inbound: readonly InboundTraffic[];
}

/** One call, as `tap` shows it. Bodies are never included. */
export interface TapEvent {
  /** Milliseconds since the epoch when the call ended. */
  readonly at: number;
  /** `outbound`: this sidecar's app called another; `inbound`: another app called this one. */
  readonly direction: 'inbound' | 'outbound';
  readonly srcAppId: string;
  readonly dstAppId: string;
  /** HTTP verb, or `GRPC`. */
  readonly method: string;
  /** The called method's path, query excluded (`/orders/1`). */
  readonly path: string;
  /** HTTP status, or the gRPC status code for gRPC calls; 0 when there was no answer. */
  readonly status: number;
  readonly latencyMs: number;
  /** The W3C trace id (32 hex digits); empty when the call carried none. */
  readonly traceId: string;
  /** Request header names, each with its value, or `[redacted]` unless values are shown. */
  readonly headers: Readonly<Record<string, string>>;
  /** The error code when the call failed in Courier (ERR_*); empty otherwise. */
  readonly errorCode: string;
}
