import { z } from 'zod';
import type { ResourceDocument } from '../config/resources.js';
import { schemaError } from '../config/schema-errors.js';
import { CourierError, errorMessage } from '../errors/index.js';
import { formatDuration, parseDuration } from '../util/duration.js';
import { compileTrip, type TripFn } from './circuit-breaker.js';
import { parseCodes, type CodeSet } from './codes.js';

export { hasCode, parseCodes, type CodeSet } from './codes.js';

export const RESILIENCY_KIND = 'Resiliency';

/** The built-in retries of calls to other sidecars; a Resiliency resource may tune them (not below 3 retries). */
export const BUILT_IN_SERVICE_RETRIES = 'DaprBuiltInServiceRetries';


/** A named retry policy (`spec.policies.retries.<name>`). */
export interface RetrySpec {
  readonly name: string;
  readonly policy: 'constant' | 'exponential';
  /** The wait between attempts of a constant policy. */
  readonly durationMs: number;
  /** The longest wait of an exponential policy. */
  readonly maxIntervalMs: number;
  /** Retries after the first attempt; -1: no limit (Dapr's default). */
  readonly maxRetries: number;
  /** `matching.httpStatusCodes`; undefined: every failed HTTP status is retried. */
  readonly httpStatusCodes: CodeSet | undefined;
  /** `matching.gRPCStatusCodes`; undefined: every failed gRPC status is retried. */
  readonly grpcStatusCodes: CodeSet | undefined;
}

/** A named circuit breaker (`spec.policies.circuitBreakers.<name>`). */
export interface BreakerSpec {
  readonly name: string;
  readonly maxRequests: number;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly trip: TripFn;
  readonly tripExpression: string;
}

/** The policies one target app gets, by name (already resolved against the named policies). */
export interface AppPolicies {
  /** The Resiliency resource the policies come from (the `name` label of the resiliency metrics). */
  readonly resource: string;
  readonly timeoutMs: number | undefined;
  readonly timeoutName: string | undefined;
  readonly retry: RetrySpec | undefined;
  readonly breaker: BreakerSpec | undefined;
  readonly breakerCacheSize: number;
  /** True when a `targets.apps` entry names the app: the built-in retries are then off (as in Dapr). */
  readonly named: boolean;
}

/** Everything the Resiliency resources of a sidecar declare, validated. */
export interface ResiliencySpec {
  /** The names of the Resiliency resources loaded, in load order. */
  readonly resources: readonly string[];
  readonly timeouts: ReadonlyMap<string, { readonly ms: number; readonly resource: string }>;
  readonly retries: ReadonlyMap<string, RetrySpec & { readonly resource: string }>;
  readonly breakers: ReadonlyMap<string, BreakerSpec & { readonly resource: string }>;
  readonly apps: ReadonlyMap<string, { readonly timeout?: string; readonly retry?: string; readonly circuitBreaker?: string; readonly circuitBreakerCacheSize: number; readonly resource: string }>;
  /** The tuned built-in retries (`DaprBuiltInServiceRetries`), when a resource defines them. */
  readonly builtIn: RetrySpec | undefined;
}

const duration = z.union([z.string(), z.number()]);
const retrySchema = z
  .object({
    policy: z.enum(['constant', 'exponential'], { error: 'must be "constant" or "exponential"' }).optional(),
    duration: duration.optional(),
    maxInterval: duration.optional(),
    maxRetries: z.union([z.number(), z.string()]).optional(),
    matching: z
      .object({ httpStatusCodes: z.union([z.string(), z.number()]).optional(), gRPCStatusCodes: z.union([z.string(), z.number()]).optional() })
      .strict()
      .optional(),
  })
  .strict();
const breakerSchema = z
  .object({
    maxRequests: z.union([z.number(), z.string()]).optional(),
    interval: duration.optional(),
    timeout: duration.optional(),
    trip: z.string().optional(),
  })
  .strict();
const appTargetSchema = z
  .object({
    timeout: z.string().optional(),
    retry: z.string().optional(),
    circuitBreaker: z.string().optional(),
    circuitBreakerCacheSize: z.union([z.number(), z.string()]).optional(),
  })
  .strict();
const resiliencySchema = z
  .object({
    spec: z
      .object({
        policies: z
          .object({
            timeouts: z.record(z.string(), duration).nullish(),
            retries: z.record(z.string(), retrySchema).nullish(),
            circuitBreakers: z.record(z.string(), breakerSchema).nullish(),
          })
          .strict(),
        targets: z
          .object({
            apps: z.record(z.string(), appTargetSchema).nullish(),
            // Actors and components are Dapr building blocks Courier does not provide: accepted, not used.
            actors: z.unknown().optional(),
            components: z.unknown().optional(),
          })
          .strict()
          .nullish(),
      })
      .strict(),
  })
  .loose();

/** Dapr's defaults for a retry policy (`kit/retry`): constant, 5 s apart, at most 60 s apart when exponential, no limit. */
const RETRY_DEFAULTS = { durationMs: 5000, maxIntervalMs: 60_000, maxRetries: -1 };
/** Dapr's defaults for a circuit breaker (sony/gobreaker via Dapr). */
const BREAKER_DEFAULTS = { maxRequests: 1, intervalMs: 0, timeoutMs: 60_000, trip: 'consecutiveFailures > 5' };
const DEFAULT_BREAKER_CACHE_SIZE = 100;

/**
 * Reads the Resiliency resources among a sidecar's resources (those that apply to it: namespace and
 * scopes already checked) into one set of policies. Every duration, code list and `trip` expression is
 * checked here, so a mistake stops the sidecar at start (or keeps the old policies on reload) with a
 * message naming the file and key. A policy name defined by two resources is an error naming both.
 * `warn` gets what is accepted but not acted on.
 */
export function loadResiliency(resources: readonly ResourceDocument[], warn: (message: string) => void): ResiliencySpec | undefined {
  const mine = resources.filter((r) => r.kind === RESILIENCY_KIND);
  if (mine.length === 0) return undefined;
  const timeouts = new Map<string, { ms: number; resource: string }>();
  const retries = new Map<string, RetrySpec & { resource: string }>();
  const breakers = new Map<string, BreakerSpec & { resource: string }>();
  const apps = new Map<string, { timeout?: string; retry?: string; circuitBreaker?: string; circuitBreakerCacheSize: number; resource: string }>();
  const where = new Map<string, string>();
  const claim = (kind: string, name: string, doc: ResourceDocument): void => {
    const key = `${kind}/${name}`;
    const earlier = where.get(key);
    if (earlier !== undefined) throw invalid(doc.where, `${kind} "${name}" is also defined in ${earlier}`);
    where.set(key, doc.where);
  };
  for (const doc of mine) {
    const parsed = resiliencySchema.safeParse(doc.value);
    if (!parsed.success) throw schemaError(doc.where, parsed.error);
    const { policies, targets } = parsed.data.spec;
    for (const [name, value] of Object.entries(policies.timeouts ?? {})) {
      claim('timeout', name, doc);
      const ms = durationMs(value, doc.where, `spec.policies.timeouts.${name}`);
      if (ms <= 0) throw invalid(doc.where, `spec.policies.timeouts.${name} must be longer than 0`);
      timeouts.set(name, { ms, resource: doc.name });
    }
    for (const [name, value] of Object.entries(policies.retries ?? {})) {
      claim('retry', name, doc);
      retries.set(name, { ...retrySpec(name, value, doc.where), resource: doc.name });
    }
    for (const [name, value] of Object.entries(policies.circuitBreakers ?? {})) {
      claim('circuit breaker', name, doc);
      breakers.set(name, { ...breakerSpec(name, value, doc.where), resource: doc.name });
    }
    if (targets?.actors !== undefined && targets.actors !== null) warn(`${doc.where}: spec.targets.actors is not used: Courier provides service invocation only`);
    if (targets?.components !== undefined && targets.components !== null) warn(`${doc.where}: spec.targets.components is not used: Courier provides service invocation only`);
    for (const [appId, value] of Object.entries(targets?.apps ?? {})) {
      claim('target app', appId, doc);
      const size = value.circuitBreakerCacheSize === undefined ? DEFAULT_BREAKER_CACHE_SIZE : integer(value.circuitBreakerCacheSize, doc.where, `spec.targets.apps.${appId}.circuitBreakerCacheSize`);
      if (size < 1) throw invalid(doc.where, `spec.targets.apps.${appId}.circuitBreakerCacheSize must be at least 1`);
      apps.set(appId, { ...definedOnly({ timeout: value.timeout, retry: value.retry, circuitBreaker: value.circuitBreaker }), circuitBreakerCacheSize: size, resource: doc.name });
    }
  }
  // References are checked once every resource is read: a target may name a policy of another resource.
  for (const [appId, target] of apps) {
    const at = where.get(`target app/${appId}`) ?? '';
    if (target.timeout !== undefined && !timeouts.has(target.timeout)) throw invalid(at, `spec.targets.apps.${appId}.timeout names "${target.timeout}", which is not a timeout policy`);
    if (target.retry !== undefined && !retries.has(target.retry)) throw invalid(at, `spec.targets.apps.${appId}.retry names "${target.retry}", which is not a retry policy`);
    if (target.circuitBreaker !== undefined && !breakers.has(target.circuitBreaker)) {
      throw invalid(at, `spec.targets.apps.${appId}.circuitBreaker names "${target.circuitBreaker}", which is not a circuit breaker`);
    }
  }
  let builtIn = retries.get(BUILT_IN_SERVICE_RETRIES);
  if (builtIn !== undefined) {
    retries.delete(BUILT_IN_SERVICE_RETRIES);
    if (builtIn.maxRetries >= 0 && builtIn.maxRetries < 3) {
      warn(`${where.get(`retry/${BUILT_IN_SERVICE_RETRIES}`) ?? ''}: ${BUILT_IN_SERVICE_RETRIES}.maxRetries ${builtIn.maxRetries} is below 3; 3 is used (as Dapr does)`);
      builtIn = { ...builtIn, maxRetries: 3 };
    }
  }
  return { resources: mine.map((r) => r.name), timeouts, retries, breakers, apps, builtIn };
}

/**
 * The policies for calls to `appId`, in Dapr's order: the app's `targets.apps` entry when there is one
 * (only the policies it names), otherwise for each kind of policy `DefaultApp<Kind>Policy`, then
 * `Default<Kind>Policy`. Undefined when nothing applies.
 */
export function appPolicies(spec: ResiliencySpec, appId: string): AppPolicies | undefined {
  const target = spec.apps.get(appId);
  if (target !== undefined) {
    const timeout = target.timeout === undefined ? undefined : spec.timeouts.get(target.timeout);
    return {
      resource: target.resource,
      timeoutMs: timeout?.ms,
      timeoutName: target.timeout,
      retry: target.retry === undefined ? undefined : spec.retries.get(target.retry),
      breaker: target.circuitBreaker === undefined ? undefined : spec.breakers.get(target.circuitBreaker),
      breakerCacheSize: target.circuitBreakerCacheSize,
      named: true,
    };
  }
  const timeoutName = spec.timeouts.has('DefaultAppTimeoutPolicy') ? 'DefaultAppTimeoutPolicy' : spec.timeouts.has('DefaultTimeoutPolicy') ? 'DefaultTimeoutPolicy' : undefined;
  const timeout = timeoutName === undefined ? undefined : spec.timeouts.get(timeoutName);
  const retry = spec.retries.get('DefaultAppRetryPolicy') ?? spec.retries.get('DefaultRetryPolicy');
  const breaker = spec.breakers.get('DefaultAppCircuitBreakerPolicy') ?? spec.breakers.get('DefaultCircuitBreakerPolicy');
  if (timeout === undefined && retry === undefined && breaker === undefined) return undefined;
  return {
    resource: timeout?.resource ?? retry?.resource ?? breaker?.resource ?? '',
    timeoutMs: timeout?.ms,
    timeoutName,
    retry,
    breaker,
    breakerCacheSize: DEFAULT_BREAKER_CACHE_SIZE,
    named: false,
  };
}

function retrySpec(name: string, value: z.infer<typeof retrySchema>, where: string): RetrySpec {
  const key = `spec.policies.retries.${name}`;
  const durationMsValue = value.duration === undefined ? RETRY_DEFAULTS.durationMs : durationMs(value.duration, where, `${key}.duration`);
  const maxIntervalMs = value.maxInterval === undefined ? RETRY_DEFAULTS.maxIntervalMs : durationMs(value.maxInterval, where, `${key}.maxInterval`);
  const maxRetries = value.maxRetries === undefined ? RETRY_DEFAULTS.maxRetries : integer(value.maxRetries, where, `${key}.maxRetries`);
  if (maxRetries < -1) throw invalid(where, `${key}.maxRetries must be -1 (no limit), 0 or more`);
  if (durationMsValue < 0 || maxIntervalMs < 0) throw invalid(where, `${key}: durations must not be negative`);
  const codes = (field: 'httpStatusCodes' | 'gRPCStatusCodes', kind: 'http' | 'grpc'): CodeSet | undefined => {
    const text = value.matching?.[field];
    if (text === undefined) return undefined;
    try {
      return parseCodes(String(text), kind);
    } catch (err) {
      throw invalid(where, `${key}.matching.${field}: ${errorMessage(err)}`);
    }
  };
  return {
    name,
    policy: value.policy ?? 'constant',
    durationMs: durationMsValue,
    maxIntervalMs,
    maxRetries,
    httpStatusCodes: codes('httpStatusCodes', 'http'),
    grpcStatusCodes: codes('gRPCStatusCodes', 'grpc'),
  };
}

function breakerSpec(name: string, value: z.infer<typeof breakerSchema>, where: string): BreakerSpec {
  const key = `spec.policies.circuitBreakers.${name}`;
  const maxRequests = value.maxRequests === undefined ? BREAKER_DEFAULTS.maxRequests : integer(value.maxRequests, where, `${key}.maxRequests`);
  // gobreaker treats 0 as 1.
  const intervalMs = value.interval === undefined ? BREAKER_DEFAULTS.intervalMs : durationMs(value.interval, where, `${key}.interval`);
  const timeoutMs = value.timeout === undefined ? BREAKER_DEFAULTS.timeoutMs : durationMs(value.timeout, where, `${key}.timeout`);
  if (maxRequests < 0 || intervalMs < 0 || timeoutMs < 0) throw invalid(where, `${key}: values must not be negative`);
  const tripExpression = value.trip ?? BREAKER_DEFAULTS.trip;
  let trip: TripFn;
  try {
    trip = compileTrip(tripExpression);
  } catch (err) {
    throw invalid(where, `${key}.trip: ${errorMessage(err)}`);
  }
  return { name, maxRequests: Math.max(1, maxRequests), intervalMs, timeoutMs: timeoutMs === 0 ? BREAKER_DEFAULTS.timeoutMs : timeoutMs, trip, tripExpression };
}

function durationMs(value: string | number, where: string, key: string): number {
  const ms = parseDuration(value);
  if (ms === undefined) throw invalid(where, `${key}: "${String(value)}" is not a duration such as 500ms, 5s or 1m30s`);
  return ms;
}

function integer(value: number | string, where: string, key: string): number {
  const n = typeof value === 'number' ? value : Number(value.trim());
  if (!Number.isInteger(n)) throw invalid(where, `${key}: "${String(value)}" is not a whole number`);
  return n;
}

function invalid(where: string, message: string): CourierError {
  return new CourierError('ERR_INVALID_CONFIG', `${where}: ${message}`);
}

function definedOnly<T extends Record<string, unknown>>(value: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = v;
  return out as { [K in keyof T]?: Exclude<T[K], undefined> };
}

/** A one-line description of a retry policy, for the start-up log. */
export function describeRetry(spec: RetrySpec): string {
  const limit = spec.maxRetries < 0 ? 'no limit' : `at most ${spec.maxRetries}`;
  const wait = spec.policy === 'constant' ? `${formatDuration(spec.durationMs)} apart` : `exponential up to ${formatDuration(spec.maxIntervalMs)}`;
  return `${spec.name}: ${limit}, ${wait}`;
}
