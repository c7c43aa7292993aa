import { methodToPath } from '../../invoke/method.js';
import type { SpiffeId } from '../../security/spiffe.js';
import type { PathPattern } from '../metrics/sidecar-metrics.js';
import { TRAFFIC_BUCKETS_MS, type InboundTraffic, type OutboundTraffic, type TrafficSnapshot } from './contract.js';

/** The most distinct routes a sidecar counts inbound calls under; later new ones go under {@link OTHER}. */
export const MAX_ROUTES = 200;
/**
 * The most groups each direction keeps (destinations outbound; caller, identity, verb and route
 * inbound). App ids come from callers, so without a bound a caller naming ever new ones would grow
 * the table forever; past it new groups are counted together under {@link OTHER}.
 */
export const MAX_GROUPS = 2000;
/** The route, app id or verb of what is counted past a bound. */
export const OTHER = '_other';
/** The inbound lookup cache is dropped and rebuilt past this many keys (raw methods are unbounded). */
const LOOKUP_LIMIT = 10_000;

const BOUNDS = Float64Array.from(TRAFFIC_BUCKETS_MS);

/**
 * The counters of one group of calls, updated in place by the call that ends: a counter, a sum and
 * one slot of a typed array (a binary search over the 19 bounds). Made once per group.
 */
export class TrafficGroup {
  calls = 0;
  failures = 0;
  latencySumMs = 0;
  /** Calls per latency bucket (not cumulative), the last slot above the last bound. */
  readonly buckets = new Float64Array(BOUNDS.length + 1);

  record(ms: number, failed: boolean): void {
    let lo = 0;
    let hi = BOUNDS.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((BOUNDS[mid] as number) < ms) lo = mid + 1;
      else hi = mid;
    }
    this.buckets[lo] = (this.buckets[lo] as number) + 1;
    this.calls++;
    if (failed) this.failures++;
    this.latencySumMs += ms;
  }
}

class OutboundGroup extends TrafficGroup {
  constructor(readonly dstAppId: string) {
    super();
  }
}

class InboundGroup extends TrafficGroup {
  constructor(
    readonly srcAppId: string,
    readonly srcIdentity: string,
    readonly verb: string,
    readonly route: string,
  ) {
    super();
  }
}

/**
 * Whether an answer relayed by another sidecar (or a proxied call's status) is a failure: an HTTP status
 * (≥ 100) from 500 on, or a gRPC status (< 100) other than OK. Errors of Courier's own arrive as the
 * HTTP status the app is answered (502, 503, 504, …).
 */
export function answerFailed(status: number): boolean {
  return status >= 100 ? status >= 500 : status !== 0;
}

/** Whether a call to the local app failed: no answer (HTTP status 0) or a 5xx; for a gRPC app, any status but OK. */
export function appCallFailed(status: number, grpc: boolean): boolean {
  return grpc ? status !== 0 : status === 0 || status >= 500;
}

/** SPIFFE ids as text, by the parsed id (which is cached per peer certificate), so a call formats nothing. */
const identities = new WeakMap<SpiffeId, string>();

/** The `spiffe://` URI of a caller's verified identity; empty without one. */
export function identityOf(spiffe: SpiffeId | undefined): string {
  if (spiffe === undefined) return '';
  let text = identities.get(spiffe);
  if (text === undefined) {
    text = `spiffe://${spiffe.trustDomain}/ns/${spiffe.namespace}/${spiffe.appId}`;
    identities.set(spiffe, text);
  }
  return text;
}

type Lookup = Map<string, Map<string, Map<string, Map<string, TrafficGroup>>>>;

/**
 * The mesh views' traffic table (`GET /courier/v1/traffic`): calls counted since start, outbound by
 * destination app and inbound by caller, its mTLS identity, verb and route. Kept only with metrics on
 * (it is served on the metrics port), and updated by the same objects that record the metrics, at the
 * same moment: an outbound group hangs off the series group `SidecarMetrics.responseReceived` already
 * looks up, so it costs no lookup of its own; an inbound one is found in nested Maps keyed by strings
 * the call already holds (caller, identity, verb, raw method), as the metrics' SeriesCache does.
 */
export class TrafficTable {
  readonly appId: string;
  readonly #patterns: readonly PathPattern[];
  readonly #outbound = new Map<string, OutboundGroup>();
  /** The inbound groups by their labels joined (looked at only when the lookup cache misses). */
  readonly #inbound = new Map<string, InboundGroup>();
  readonly #routes = new Set<string>();
  #lookup: Lookup = new Map();
  #lookupSize = 0;

  /** `patterns`: Configuration `spec.metrics.http.pathMatching`, compiled; the first that matches a path is its route. */
  constructor(appId: string, patterns: readonly PathPattern[]) {
    this.appId = appId;
    this.#patterns = patterns;
  }

  /** The counters of calls to `dstAppId`, made on first use. The caller keeps it (see SidecarMetrics). */
  outbound(dstAppId: string): TrafficGroup {
    let group = this.#outbound.get(dstAppId);
    if (group === undefined) {
      const id = this.#outbound.size < MAX_GROUPS ? dstAppId : OTHER;
      group = this.#outbound.get(id);
      if (group === undefined) this.#outbound.set(id, (group = new OutboundGroup(id)));
    }
    return group;
  }

  /**
   * The counters of calls from `srcAppId` (verified as `srcSpiffe` with mTLS) with `verb` to `method`
   * (an invocation's method without its leading `/`, or a proxied call's full gRPC path).
   */
  inbound(srcAppId: string, srcSpiffe: SpiffeId | undefined, verb: string, method: string): TrafficGroup {
    const identity = srcSpiffe === undefined ? '' : identityOf(srcSpiffe);
    const found = this.#lookup.get(srcAppId)?.get(identity)?.get(verb)?.get(method);
    return found === undefined ? this.#addInbound(srcAppId, identity, verb, method) : found;
  }

  #addInbound(srcAppId: string, identity: string, verb: string, method: string): TrafficGroup {
    const route = this.route(method.charCodeAt(0) === 0x2f ? method : methodToPath(method));
    const key = `${srcAppId}\u0000${identity}\u0000${verb}\u0000${route}`;
    let group = this.#inbound.get(key);
    if (group === undefined) {
      if (this.#inbound.size < MAX_GROUPS) this.#inbound.set(key, (group = new InboundGroup(srcAppId, identity, verb, route)));
      else {
        const other = `${OTHER}\u0000\u0000${OTHER}\u0000${OTHER}`;
        group = this.#inbound.get(other);
        if (group === undefined) this.#inbound.set(other, (group = new InboundGroup(OTHER, '', OTHER, OTHER)));
      }
    }
    if (++this.#lookupSize > LOOKUP_LIMIT) {
      this.#lookup = new Map();
      this.#lookupSize = 1;
    }
    let byIdentity = this.#lookup.get(srcAppId);
    if (byIdentity === undefined) this.#lookup.set(srcAppId, (byIdentity = new Map<string, Map<string, Map<string, TrafficGroup>>>()));
    let byVerb = byIdentity.get(identity);
    if (byVerb === undefined) byIdentity.set(identity, (byVerb = new Map<string, Map<string, TrafficGroup>>()));
    let byMethod = byVerb.get(verb);
    if (byMethod === undefined) byVerb.set(verb, (byMethod = new Map<string, TrafficGroup>()));
    byMethod.set(method, group);
    return group;
  }

  /** The route of a path: the first `pathMatching` pattern it matches, else the path; {@link OTHER} past {@link MAX_ROUTES}. */
  route(path: string): string {
    let route = path;
    for (const p of this.#patterns) {
      if (p.regex.test(path)) {
        route = p.pattern;
        break;
      }
    }
    if (this.#routes.has(route)) return route;
    if (this.#routes.size >= MAX_ROUTES) return OTHER;
    this.#routes.add(route);
    return route;
  }

  snapshot(at = Date.now()): TrafficSnapshot {
    const outbound: OutboundTraffic[] = [];
    for (const g of this.#outbound.values()) {
      outbound.push({ dstAppId: g.dstAppId, calls: g.calls, failures: g.failures, buckets: Array.from(g.buckets), latencySumMs: g.latencySumMs });
    }
    const inbound: InboundTraffic[] = [];
    for (const g of this.#inbound.values()) {
      inbound.push({
        srcAppId: g.srcAppId,
        srcIdentity: g.srcIdentity,
        verb: g.verb,
        route: g.route,
        calls: g.calls,
        failures: g.failures,
        buckets: Array.from(g.buckets),
        latencySumMs: g.latencySumMs,
      });
    }
    return { appId: this.appId, at, outbound, inbound };
  }
}
