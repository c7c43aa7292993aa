import type { Logger } from '../observability/logging/index.js';
import type { SidecarMetrics } from '../observability/metrics/sidecar-metrics.js';
import { BreakerCache, CircuitBreaker } from './circuit-breaker.js';
import { appPolicies, type AppPolicies, type ResiliencySpec, type RetrySpec } from './resource.js';

/** What applies to one call: its timeout, retries and circuit breaker, and the names the metrics use. */
export interface CallPolicy {
  readonly policies: AppPolicies;
  /** The circuit breaker of this app and method, when the app has one. */
  readonly breaker: CircuitBreaker | undefined;
  /** `app_<appid>`: the `target` label of the resiliency metrics. */
  readonly metricsTarget: string;
  readonly namespace: string;
}

/** One app's resolved policies and its circuit breakers (one per method, least recently used dropped). */
interface AppEntry {
  readonly policies: AppPolicies | undefined;
  readonly breakers: BreakerCache | undefined;
  readonly metricsTarget: string;
  /** The last policy handed out for a method, kept so repeated calls to one method allocate nothing. */
  last: { method: string; policy: CallPolicy } | undefined;
}

/**
 * The Resiliency resources in force for a sidecar's outgoing calls: which policy applies to a call
 * (Dapr's order: the app's `targets.apps` entry, else `DefaultApp…Policy`, else `Default…Policy`),
 * and the circuit breakers' state. Replaced whole when the resources change (the breakers start
 * closed again, as Dapr's do).
 */
export class Resiliency {
  readonly spec: ResiliencySpec;
  readonly #namespace: string;
  readonly #metrics: SidecarMetrics | undefined;
  readonly #apps = new Map<string, AppEntry>();

  readonly #logger: Logger | undefined;

  constructor(spec: ResiliencySpec, namespace: string, metrics: SidecarMetrics | undefined, logger?: Logger) {
    this.spec = spec;
    this.#logger = logger;
    this.#namespace = namespace;
    this.#metrics = metrics;
  }

  /** The tuned built-in retries, when a resource defines `DaprBuiltInServiceRetries`. */
  get builtIn(): RetrySpec | undefined {
    return this.spec.builtIn;
  }

  /**
   * The policy for a call to `method` of `appId` (in this sidecar's namespace or another), or undefined
   * when no policy applies to the app. Counts the policy as applied (`dapr_resiliency_count`).
   */
  forCall(appId: string, method: string): CallPolicy | undefined {
    let entry = this.#apps.get(appId);
    if (entry === undefined) {
      entry = this.#entry(appId);
      if (this.#apps.size >= MAX_APPS) this.#apps.clear();
      this.#apps.set(appId, entry);
    }
    const policies = entry.policies;
    if (policies === undefined) return undefined;
    let policy: CallPolicy;
    if (entry.last !== undefined && entry.last.method === method) policy = entry.last.policy;
    else {
      const breaker = entry.breakers?.get(`${appId}:${method}`);
      policy = { policies, breaker, metricsTarget: entry.metricsTarget, namespace: this.#namespace };
      entry.last = { method, policy };
    }
    const metrics = this.#metrics;
    if (metrics !== undefined) {
      const { resource } = policies;
      if (policies.timeoutMs !== undefined) metrics.resiliencyApplied(resource, this.#namespace, 'timeout', entry.metricsTarget);
      if (policies.retry !== undefined) metrics.resiliencyApplied(resource, this.#namespace, 'retry', entry.metricsTarget);
      if (policy.breaker !== undefined) metrics.resiliencyApplied(resource, this.#namespace, 'circuitbreaker', entry.metricsTarget, policy.breaker.state);
    }
    return policy;
  }

  #entry(appId: string): AppEntry {
    const policies = appPolicies(this.spec, appId);
    const metricsTarget = `app_${appId}`;
    const spec = policies?.breaker;
    if (policies === undefined || spec === undefined) return { policies, breakers: undefined, metricsTarget, last: undefined };
    const metrics = this.#metrics;
    const namespace = this.#namespace;
    const logger = this.#logger;
    const breakers = new BreakerCache(policies.breakerCacheSize, (key) => {
      const breaker = new CircuitBreaker({
        maxRequests: spec.maxRequests,
        intervalMs: spec.intervalMs,
        timeoutMs: spec.timeoutMs,
        trip: spec.trip,
        onStateChange: (from, to) => {
          logger?.info({ breaker: spec.name, key, from, to }, `circuit breaker "${key}" changed state from ${from} to ${to}`);
          metrics?.resiliencyActivated(policies.resource, namespace, 'circuitbreaker', metricsTarget, to);
          metrics?.breakerState(policies.resource, namespace, metricsTarget, to);
        },
      });
      metrics?.breakerState(policies.resource, namespace, metricsTarget, 'closed');
      return breaker;
    });
    return { policies, breakers, metricsTarget, last: undefined };
  }
}

/** Past this many distinct app ids the resolved policies are worked out again (a caller naming random ids). */
const MAX_APPS = 10_000;
