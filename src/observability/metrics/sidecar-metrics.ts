import { CounterFamily, GaugeFamily, HistogramFamily, MAX_SERIES_PER_FAMILY, type CounterSeries, type ExpositionValue, type HistogramSeries, type LabelRules, type RegistryMetric } from './family.js';
import type { Logger } from '../logging/index.js';
import type { MetricsSpec } from '../../config/configuration.js';
import { errorCatalogue, type ErrorCode } from '../../errors/codes.js';
import type { SpiffeId } from '../../security/spiffe.js';
import { TapHub } from '../mesh/tap.js';
import { answerFailed, TrafficTable, type TrafficGroup } from '../mesh/traffic.js';

/**
 * The series (or group of series) one record updates, by the raw values it is given: two strings and a
 * status code, looked up in nested Maps, so no label string is built per call. The families behind
 * them bound the series; this cache is dropped and rebuilt if it ever holds more keys than they allow.
 */
class SeriesCache<T> {
  #root = new Map<string, Map<string, Map<number, T>>>();
  #size = 0;
  readonly #make: (a: string, b: string, status: number) => T;

  constructor(make: (a: string, b: string, status: number) => T) {
    this.#make = make;
  }

  get(a: string, b: string, status: number): T {
    const found = this.#root.get(a)?.get(b)?.get(status);
    return found === undefined ? this.#add(a, b, status) : found;
  }

  #add(a: string, b: string, status: number): T {
    if (++this.#size > 4 * MAX_SERIES_PER_FAMILY) {
      this.#root = new Map();
      this.#size = 1;
    }
    let byB = this.#root.get(a);
    if (byB === undefined) this.#root.set(a, (byB = new Map<string, Map<number, T>>()));
    let byStatus = byB.get(b);
    if (byStatus === undefined) byB.set(b, (byStatus = new Map<number, T>()));
    const made = this.#make(a, b, status);
    byStatus.set(status, made);
    return made;
  }
}

/** Dapr's default latency buckets in milliseconds (`spec.metrics.latencyDistributionBuckets` replaces them). */
export const DEFAULT_LATENCY_BUCKETS_MS: readonly number[] = [
  1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 25, 30, 40, 50, 65, 80, 100, 130, 160, 200, 250, 300, 400, 500, 650, 800, 1000, 2000, 5000, 10000, 20000, 50000, 100000,
];
/** Byte-size buckets of the request and response size histograms (OpenCensus' size distribution, as Dapr's). */
export const SIZE_BUCKETS_BYTES: readonly number[] = [0, 1024, 2048, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864, 268435456, 1073741824, 4294967296];

/** How the metrics are labelled (Configuration `spec.metrics`). */
export interface MetricsSettings {
  readonly appId: string;
  readonly latencyBucketsMs: readonly number[];
  /** `http.increasedCardinality`: the path label holds the request's path (Courier's default: false). */
  readonly increasedCardinality: boolean;
  /** `http.pathMatching`, compiled: the first pattern a path matches is its label. */
  readonly pathPatterns: readonly PathPattern[];
  /** `http.excludeVerbs`: the method label is left empty. */
  readonly excludeVerbs: boolean;
  /** `rules`, by metric name. */
  readonly rules: ReadonlyMap<string, LabelRules>;
  /** `recordErrorCodes`: count the error codes answered to the app (`dapr_error_code_total`; off by default, as in Dapr). */
  readonly recordErrorCodes: boolean;
}

export interface PathPattern {
  readonly pattern: string;
  readonly regex: RegExp;
}

/**
 * A `pathMatching` pattern: `{name}` stands for one path segment, `{name...}` for the rest of the path,
 * anything else must match as written.
 */
export function compilePathPattern(pattern: string): PathPattern {
  let source = '';
  let at = 0;
  for (const m of pattern.matchAll(/\{[A-Za-z_][A-Za-z0-9_]*(\.\.\.)?\}/g)) {
    source += escapeRegex(pattern.slice(at, m.index)) + (m[1] === undefined ? '[^/]+' : '.+');
    at = m.index + m[0].length;
  }
  source += escapeRegex(pattern.slice(at));
  return { pattern, regex: new RegExp(`^${source}/?$`) };
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The settings of Configuration `spec.metrics` (validated by the loader), with Courier's defaults. */
export function metricsSettings(appId: string, spec: MetricsSpec): MetricsSettings {
  const rules = new Map<string, LabelRules>();
  for (const rule of spec.rules ?? []) {
    const labels = new Map<string, Array<readonly [string, RegExp]>>();
    for (const label of rule.labels ?? []) labels.set(label.name, Object.entries(label.regex).map(([replacement, pattern]) => [replacement, new RegExp(pattern)] as const));
    rules.set(rule.name, labels);
  }
  return {
    appId,
    latencyBucketsMs: spec.latencyDistributionBuckets ?? DEFAULT_LATENCY_BUCKETS_MS,
    increasedCardinality: spec.http?.increasedCardinality ?? false,
    pathPatterns: (spec.http?.pathMatching ?? []).map(compilePathPattern),
    excludeVerbs: spec.http?.excludeVerbs ?? false,
    rules,
    recordErrorCodes: spec.recordErrorCodes ?? false,
  };
}

/** The `policy` label of the resiliency metrics. */
export type ResiliencyPolicyKind = 'timeout' | 'retry' | 'circuitbreaker';
const BREAKER_STATES = ['closed', 'half-open', 'open'] as const;

/** What a path is labelled when no pattern matches it and cardinality is not increased. */
export const OTHER_PATH = '_';

const statusText: string[] = Array.from({ length: 600 }, (_, i) => String(i));
/** A status code as a label value (the common ones made once). */
export function statusLabel(status: number): string {
  return statusText[status] ?? String(status);
}

/**
 * Every metric a sidecar records, under Dapr's names and labels (docs/observability.md lists them),
 * and Courier's own. One instance per sidecar; the request path calls its `record…` methods once per
 * call, each an update of a series found by a Map lookup. Absent (undefined) when metrics are off:
 * then nothing at all is done per call.
 */
export class SidecarMetrics {
  readonly settings: MetricsSettings;
  readonly families: RegistryMetric[] = [];
  /** The mesh views' traffic table, updated by the same records as the metrics (src/observability/mesh/). */
  readonly traffic: TrafficTable;
  /** The mesh views' tap clients; the request path builds an event only while `tap.active`. */
  readonly tap = new TapHub();
  // Service invocation (caller side, then callee side).
  readonly #reqSent: CounterFamily;
  readonly #resRecv: CounterFamily;
  readonly #resRecvLatency: HistogramFamily;
  readonly #reqRecv: CounterFamily;
  readonly #resSent: CounterFamily;
  // HTTP API (server) and sidecar → app (client).
  readonly #httpServerCount: CounterFamily;
  readonly #httpServerLatency: HistogramFamily;
  readonly #httpServerRequestBytes: HistogramFamily;
  readonly #httpServerResponseBytes: HistogramFamily;
  readonly #httpClientCount: CounterFamily;
  readonly #httpClientLatency: HistogramFamily;
  readonly #httpClientSentBytes: HistogramFamily;
  readonly #httpClientReceivedBytes: HistogramFamily;
  // gRPC (server: the internal server and the gRPC API; client: calls to other sidecars and to a gRPC app).
  readonly #grpcServerCompleted: CounterFamily;
  readonly #grpcServerLatency: HistogramFamily;
  readonly #grpcClientCompleted: CounterFamily;
  readonly #grpcClientLatency: HistogramFamily;
  // Access control.
  readonly #aclAllowed: Record<'app' | 'global', CounterFamily>;
  readonly #aclBlocked: Record<'app' | 'global', CounterFamily>;
  // Courier's own.
  readonly #retries: CounterFamily;
  readonly #resolutions: CounterFamily;
  readonly #errorCodes: CounterFamily | undefined;
  // Resiliency (Dapr's names and labels).
  readonly #resiliencyLoaded: CounterFamily;
  readonly #resiliencyCount: CounterFamily;
  readonly #resiliencyActivations: CounterFamily;
  /** The circuit breakers' states for `dapr_resiliency_cb_state`, by their labels joined. */
  readonly #breakerStates = new Map<string, { labels: Record<string, string>; state: string }>();
  readonly #serverBytes: HistogramSeries[];
  /** The series each record updates, by the values it is given (see SeriesCache). */
  readonly #cache: {
    readonly reqSent: SeriesCache<CounterSeries>;
    readonly resRecv: SeriesCache<{ readonly count: CounterSeries; readonly latency: HistogramSeries; readonly traffic: TrafficGroup; readonly failed: boolean }>;
    readonly reqRecv: SeriesCache<CounterSeries>;
    readonly resSent: SeriesCache<CounterSeries>;
    readonly httpServer: SeriesCache<{ readonly count: CounterSeries; readonly latency: HistogramSeries }>;
    readonly httpClient: SeriesCache<{ readonly count: CounterSeries; readonly latency: HistogramSeries; readonly sent: HistogramSeries; readonly received: HistogramSeries }>;
    readonly grpcServer: SeriesCache<{ readonly count: CounterSeries; readonly latency: HistogramSeries }>;
    readonly grpcClient: SeriesCache<{ readonly count: CounterSeries; readonly latency: HistogramSeries }>;
  };

  constructor(settings: MetricsSettings, logger?: Logger) {
    this.settings = settings;
    this.traffic = new TrafficTable(settings.appId, settings.pathPatterns);
    const latency = settings.latencyBucketsMs;
    const counter = (name: string, help: string, labels: readonly string[]): CounterFamily => this.#add(new CounterFamily(name, help, labels, settings.rules.get(name), logger));
    const histogram = (name: string, help: string, labels: readonly string[], bounds: readonly number[]): HistogramFamily =>
      this.#add(new HistogramFamily(name, help, labels, bounds, settings.rules.get(name), logger));

    this.#reqSent = counter('dapr_runtime_service_invocation_req_sent_total', 'Number of requests sent to the remote sidecar.', ['app_id', 'dst_app_id', 'type']);
    this.#resRecv = counter('dapr_runtime_service_invocation_res_recv_total', 'Number of responses received from the remote sidecar.', ['app_id', 'src_app_id', 'status', 'type']);
    this.#resRecvLatency = histogram(
      'dapr_runtime_service_invocation_res_recv_latency_ms',
      'Round trip of a service invocation, from sending the request to receiving the response, in ms.',
      ['app_id', 'src_app_id', 'status'],
      latency,
    );
    this.#reqRecv = counter('dapr_runtime_service_invocation_req_recv_total', 'Number of requests received from a remote sidecar.', ['app_id', 'src_app_id']);
    this.#resSent = counter('dapr_runtime_service_invocation_res_sent_total', 'Number of responses sent to a remote sidecar.', ['app_id', 'dst_app_id', 'status']);

    const httpLabels = ['app_id', 'method', 'path', 'status'];
    this.#httpServerCount = counter('dapr_http_server_request_count', 'Number of HTTP requests started in the server.', httpLabels);
    this.#httpServerLatency = histogram('dapr_http_server_latency', 'HTTP request end-to-end latency in the server, in ms.', httpLabels, latency);
    this.#httpServerRequestBytes = histogram('dapr_http_server_request_bytes', 'HTTP request body size in the server, in bytes.', ['app_id'], SIZE_BUCKETS_BYTES);
    this.#httpServerResponseBytes = histogram('dapr_http_server_response_bytes', 'HTTP response body size in the server, in bytes.', ['app_id'], SIZE_BUCKETS_BYTES);
    this.#serverBytes = [this.#httpServerRequestBytes.series(settings.appId), this.#httpServerResponseBytes.series(settings.appId)];
    this.#httpClientCount = counter('dapr_http_client_completed_count', 'Number of completed HTTP requests to the app.', httpLabels);
    this.#httpClientLatency = histogram('dapr_http_client_roundtrip_latency', 'Time from sending a request to the app to receiving its response head, in ms.', httpLabels, latency);
    this.#httpClientSentBytes = histogram('dapr_http_client_sent_bytes', 'Request body bytes sent to the app.', httpLabels, SIZE_BUCKETS_BYTES);
    this.#httpClientReceivedBytes = histogram('dapr_http_client_received_bytes', 'Response body bytes received from the app.', httpLabels, SIZE_BUCKETS_BYTES);

    this.#grpcServerCompleted = counter('dapr_grpc_io_server_completed_rpcs', 'Number of completed gRPC calls in the server.', ['app_id', 'grpc_server_method', 'grpc_server_status']);
    this.#grpcServerLatency = histogram('dapr_grpc_io_server_server_latency', 'gRPC server latency, from the call to its end, in ms.', ['app_id', 'grpc_server_method', 'grpc_server_status'], latency);
    this.#grpcClientCompleted = counter('dapr_grpc_io_client_completed_rpcs', 'Number of completed gRPC calls made by the sidecar.', ['app_id', 'grpc_client_method', 'grpc_client_status']);
    this.#grpcClientLatency = histogram(
      'dapr_grpc_io_client_roundtrip_latency',
      'gRPC client round trip, from the call to its end, in ms.',
      ['app_id', 'grpc_client_method', 'grpc_client_status'],
      latency,
    );

    const aclLabels = ['app_id', 'trust_domain', 'namespace'];
    this.#aclAllowed = {
      app: counter('dapr_runtime_acl_app_policy_action_allowed_total', 'Calls allowed by an app-specific access-control policy.', aclLabels),
      global: counter('dapr_runtime_acl_global_policy_action_allowed_total', 'Calls allowed by the access-control default action.', aclLabels),
    };
    this.#aclBlocked = {
      app: counter('dapr_runtime_acl_app_policy_action_blocked_total', 'Calls denied by an app-specific access-control policy.', aclLabels),
      global: counter('dapr_runtime_acl_global_policy_action_blocked_total', 'Calls denied by the access-control default action.', aclLabels),
    };

    this.#retries = counter('courier_service_invocation_retries_total', 'Attempts of a call made after its first one failed.', ['app_id', 'dst_app_id']);
    this.#resolutions = counter('courier_nameresolution_lookups_total', 'Name-resolution lookups (cache misses) by result.', ['app_id', 'resolver', 'result']);
    // Registered only when asked for, as Dapr registers its view.
    this.#errorCodes = settings.recordErrorCodes
      ? counter('dapr_error_code_total', 'Total number of times an error with a specific error code was encountered.', ['app_id', 'category', 'error_code'])
      : undefined;

    const resiliencyLabels = ['app_id', 'name', 'policy', 'namespace', 'flow_direction', 'target', 'status'];
    this.#resiliencyLoaded = counter('dapr_resiliency_loaded', 'Number of resiliency policies loaded.', ['app_id', 'name', 'namespace']);
    this.#resiliencyCount = counter('dapr_resiliency_count', 'Number of times a resiliency policy has been applied to a call.', resiliencyLabels);
    this.#resiliencyActivations = counter(
      'dapr_resiliency_activations_total',
      'Number of times a resiliency policy has been activated after a failure (a retry, a timeout) or a state change (a circuit breaker).',
      resiliencyLabels,
    );
    this.addGauge("dapr_resiliency_cb_state", "A circuit breaker's current state: 1 for the state it is in, 0 for the others.", () => {
      const values: ExpositionValue[] = [];
      for (const { labels, state } of this.#breakerStates.values()) {
        for (const status of BREAKER_STATES) values.push({ value: status === state ? 1 : 0, labels: { ...labels, status } });
      }
      return values;
    });

    const appId = settings.appId;
    const verbOf = (verb: string): string => (settings.excludeVerbs ? '' : verb);
    const grpcCode = (code: number): string => grpcCodeName(code, statusLabel(code));
    this.#cache = {
      reqSent: new SeriesCache((dst) => this.#reqSent.series(appId, dst, 'streaming')),
      // The mesh views' outbound counters of the destination ride along: the same lookup finds both.
      resRecv: new SeriesCache((src, _, status) => ({
        count: this.#resRecv.series(appId, src, statusLabel(status), 'streaming'),
        latency: this.#resRecvLatency.series(appId, src, statusLabel(status)),
        traffic: this.traffic.outbound(src),
        failed: answerFailed(status),
      })),
      reqRecv: new SeriesCache((caller) => this.#reqRecv.series(appId, caller)),
      resSent: new SeriesCache((caller, _, status) => this.#resSent.series(appId, caller, statusLabel(status))),
      httpServer: new SeriesCache((path, verb, status) => ({
        count: this.#httpServerCount.series(appId, verbOf(verb), path, statusLabel(status)),
        latency: this.#httpServerLatency.series(appId, verbOf(verb), path, statusLabel(status)),
      })),
      httpClient: new SeriesCache((path, verb, status) => {
        const labels = [appId, verbOf(verb), path, statusLabel(status)] as const;
        return {
          count: this.#httpClientCount.series(...labels),
          latency: this.#httpClientLatency.series(...labels),
          sent: this.#httpClientSentBytes.series(...labels),
          received: this.#httpClientReceivedBytes.series(...labels),
        };
      }),
      grpcServer: new SeriesCache((method, _, code) => ({
        count: this.#grpcServerCompleted.series(appId, method, grpcCode(code)),
        latency: this.#grpcServerLatency.series(appId, method, grpcCode(code)),
      })),
      grpcClient: new SeriesCache((method, _, code) => ({
        count: this.#grpcClientCompleted.series(appId, method, grpcCode(code)),
        latency: this.#grpcClientLatency.series(appId, method, grpcCode(code)),
      })),
    };
  }

  #add<M extends RegistryMetric>(family: M): M {
    this.families.push(family);
    return family;
  }

  /** Adds a gauge read when scraped (connections, certificate expiry, process figures). */
  addGauge(name: string, help: string, read: () => readonly ExpositionValue[], type: 'gauge' | 'counter' = 'gauge'): void {
    this.#add(new GaugeFamily(name, help, read, type));
  }

  // --- service invocation -------------------------------------------------------------------------

  /** The caller sends a call to another app's sidecar. */
  requestSent(dstAppId: string): void {
    this.#cache.reqSent.get(dstAppId, '', 0).value++;
  }

  /**
   * The caller has the answer (or the failure) of a call to `srcAppId`, `ms` after sending it: an HTTP
   * status, or a gRPC code (< 100). Counted in the mesh views' traffic table too.
   */
  responseReceived(srcAppId: string, status: number, ms: number): void {
    const group = this.#cache.resRecv.get(srcAppId, '', status);
    group.count.value++;
    group.latency.observe(ms);
    group.traffic.record(ms, group.failed);
  }

  /**
   * A call to the local app from `callerAppId` (verified as `callerSpiffe` with mTLS) has ended, `ms`
   * after it was sent to the app: the mesh views' inbound counters, by caller, verb and the route of
   * `method` (an invocation's method, or a proxied call's gRPC path).
   */
  appCallEnded(callerAppId: string, callerSpiffe: SpiffeId | undefined, verb: string, method: string, failed: boolean, ms: number): void {
    this.traffic.inbound(callerAppId, callerSpiffe, verb, method).record(ms, failed);
  }

  /** The callee took a call from `callerAppId`. */
  requestReceived(callerAppId: string): void {
    this.#cache.reqRecv.get(callerAppId, '', 0).value++;
  }

  /** The callee answered a call from `callerAppId`. */
  responseSent(callerAppId: string, status: number): void {
    this.#cache.resSent.get(callerAppId, '', status).value++;
  }

  retried(dstAppId: string): void {
    this.#retries.series(this.settings.appId, dstAppId).value++;
  }

  resolved(resolver: string, result: 'found' | 'not-found' | 'error'): void {
    this.#resolutions.series(this.settings.appId, resolver, result).value++;
  }

  // --- resiliency ---------------------------------------------------------------------------------

  /** A Resiliency resource was loaded (at start or on reload). */
  resiliencyLoaded(name: string, namespace: string): void {
    this.#resiliencyLoaded.series(this.settings.appId, name, namespace).value++;
  }

  /** A call to `target` (`app_<id>`) runs under a policy of `name`; for a circuit breaker `status` is its state. */
  resiliencyApplied(name: string, namespace: string, policy: ResiliencyPolicyKind, target: string, status = ''): void {
    this.#resiliencyCount.series(this.settings.appId, name, policy, namespace, 'outbound', target, status).value++;
  }

  /** A policy acted: a retry was made, a timeout fired, or a circuit breaker changed to `status`. */
  resiliencyActivated(name: string, namespace: string, policy: ResiliencyPolicyKind, target: string, status = ''): void {
    this.#resiliencyActivations.series(this.settings.appId, name, policy, namespace, 'outbound', target, status).value++;
  }

  /** A circuit breaker is now in `state`; a breaker not yet seen starts being reported. */
  breakerState(name: string, namespace: string, target: string, state: string): void {
    const key = `${name}\u0000${namespace}\u0000${target}`;
    const known = this.#breakerStates.get(key);
    if (known !== undefined) known.state = state;
    else {
      const labels = { app_id: this.settings.appId, name, policy: 'circuitbreaker', namespace, flow_direction: 'outbound', target };
      this.#breakerStates.set(key, { labels, state });
    }
  }

  /** Forgets the circuit breakers' states (their policies were replaced). */
  clearBreakerStates(): void {
    this.#breakerStates.clear();
  }

  /** The sidecar answered its app with an error of `code` (counted with `recordErrorCodes` only). */
  errorAnswered(code: ErrorCode): void {
    const family = this.#errorCodes;
    if (family !== undefined) family.series(this.settings.appId, errorCatalogue[code].category, code).value++;
  }

  // --- HTTP ---------------------------------------------------------------------------------------

  /** Whether path labels depend on the path at all (pathMatching patterns, or increased cardinality). */
  get pathsLabelled(): boolean {
    return this.settings.pathPatterns.length > 0 || this.settings.increasedCardinality;
  }

  /** The path label of `path`: its pathMatching pattern, else `fallback` (the path itself with increased cardinality). */
  pathLabel(path: string, fallback: string): string {
    for (const p of this.settings.pathPatterns) if (p.regex.test(path)) return p.pattern;
    return this.settings.increasedCardinality ? path : fallback;
  }

  /** An HTTP API request is over. */
  httpServerRequest(verb: string, path: string, status: number, requestBytes: number, responseBytes: number, ms: number): void {
    const group = this.#cache.httpServer.get(path, verb, status);
    group.count.value++;
    group.latency.observe(ms);
    (this.#serverBytes[0] as HistogramSeries).observe(requestBytes);
    (this.#serverBytes[1] as HistogramSeries).observe(responseBytes);
  }

  /** A request to the app is over: its status (0: it failed without one), body bytes each way, and `ms` to the response head. */
  httpClientRequest(verb: string, path: string, status: number, sentBytes: number, receivedBytes: number, ms: number): void {
    const group = this.#cache.httpClient.get(path, verb, status);
    group.count.value++;
    group.latency.observe(ms);
    group.sent.observe(sentBytes);
    group.received.observe(receivedBytes);
  }

  // --- gRPC ---------------------------------------------------------------------------------------

  grpcServerCall(method: string, code: number, ms: number): void {
    const group = this.#cache.grpcServer.get(method, '', code);
    group.count.value++;
    group.latency.observe(ms);
  }

  grpcClientCall(method: string, code: number, ms: number): void {
    const group = this.#cache.grpcClient.get(method, '', code);
    group.count.value++;
    group.latency.observe(ms);
  }

  // --- access control -------------------------------------------------------------------

  /** The access-control policy decided on a call from this caller (its verified identity with mTLS). */
  accessControl(allowed: boolean, scope: 'app' | 'global', callerAppId: string, trustDomain: string, namespace: string): void {
    (allowed ? this.#aclAllowed : this.#aclBlocked)[scope].series(callerAppId, trustDomain, namespace).value++;
  }
}

const grpcCodeNames = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

/** gRPC status labels are code names, as OpenCensus' gRPC views write them. */
function grpcCodeName(code: number, fallback: string): string {
  return grpcCodeNames[code] ?? fallback;
}

/** What a gRPC server tells its observer (src/grpc/server.ts `CallObserver`), in the terms the metrics need. */
interface ObservedCall {
  readonly path: string;
  readonly statusCode?: number | undefined;
  readonly startedAt: number;
}

/** The gRPC server metrics of every call a server ran (`dapr_grpc_io_server_*`), combined with any other observer (the API log). */
export function grpcServerObserver<C extends ObservedCall>(metrics: SidecarMetrics | undefined, other: { ended(call: C): void } | undefined): { ended(call: C): void } | undefined {
  if (metrics === undefined) return other;
  return {
    ended(call) {
      metrics.grpcServerCall(call.path, call.statusCode ?? GRPC_UNKNOWN, performance.now() - call.startedAt);
      other?.ended(call);
    },
  };
}

const GRPC_UNKNOWN = 2;
