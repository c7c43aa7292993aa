import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse } from 'yaml';
import type { ResourceDocument } from '../config/resources.js';
import { CourierError } from '../errors/index.js';
import { appPolicies, hasCode, loadResiliency, parseCodes, type ResiliencySpec } from './resource.js';

function doc(yaml: string, file = 'res.yaml'): ResourceDocument {
  const value = parse(yaml) as { metadata: { name: string }; kind: string };
  return { file, where: file, apiVersion: 'dapr.io/v1alpha1', kind: value.kind, name: value.metadata.name, namespace: undefined, type: undefined, version: undefined, scopes: undefined, value };
}

function load(...yamls: string[]): { spec: ResiliencySpec; warnings: string[] } {
  const warnings: string[] = [];
  const spec = loadResiliency(
    yamls.map((y, i) => doc(y, `res${i}.yaml`)),
    (m) => warnings.push(m),
  );
  assert.ok(spec !== undefined);
  return { spec, warnings };
}

const quickstart = `
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: { name: myresiliency }
scopes: [checkout]
spec:
  policies:
    timeouts:
      general: 5s
      important: 60s
    retries:
      retryForever: { policy: exponential, maxInterval: 15s, maxRetries: -1 }
      pubsubRetry: { policy: constant, duration: 5s, maxRetries: 10, matching: { httpStatusCodes: "429,500-599", gRPCStatusCodes: "1-4,8-11,13,14" } }
    circuitBreakers:
      simpleCB: { maxRequests: 1, interval: 8s, timeout: 45s, trip: "consecutiveFailures > 8" }
  targets:
    apps:
      order-processor: { timeout: general, retry: retryForever, circuitBreaker: simpleCB, circuitBreakerCacheSize: 50 }
    components:
      statestore: { outbound: { retry: pubsubRetry } }
`;

test("Dapr's documented example loads: durations, retry defaults, matching codes, breakers and app targets", () => {
  const { spec, warnings } = load(quickstart);
  assert.deepEqual(spec.resources, ['myresiliency']);
  assert.equal(spec.timeouts.get('general')?.ms, 5000);
  const forever = spec.retries.get('retryForever');
  assert.equal(forever?.policy, 'exponential');
  assert.equal(forever.maxIntervalMs, 15_000);
  assert.equal(forever.maxRetries, -1);
  assert.equal(forever.durationMs, 5000, "Dapr's default duration");
  assert.equal(forever.httpStatusCodes, undefined, 'no matching: every code is retried');
  const pubsub = spec.retries.get('pubsubRetry');
  assert.ok(pubsub?.httpStatusCodes !== undefined && pubsub.grpcStatusCodes !== undefined);
  assert.ok(hasCode(pubsub.httpStatusCodes, 429) && hasCode(pubsub.httpStatusCodes, 503) && !hasCode(pubsub.httpStatusCodes, 404));
  assert.ok(hasCode(pubsub.grpcStatusCodes, 14) && !hasCode(pubsub.grpcStatusCodes, 5) && !hasCode(pubsub.grpcStatusCodes, 0));
  const cb = spec.breakers.get('simpleCB');
  assert.equal(cb?.intervalMs, 8000);
  assert.equal(cb.timeoutMs, 45_000);
  assert.equal(cb.trip({ requests: 9, totalSuccesses: 0, totalFailures: 9, consecutiveSuccesses: 0, consecutiveFailures: 9 }), true);
  assert.equal(cb.trip({ requests: 8, totalSuccesses: 0, totalFailures: 8, consecutiveSuccesses: 0, consecutiveFailures: 8 }), false);
  const policies = appPolicies(spec, 'order-processor');
  assert.equal(policies?.timeoutMs, 5000);
  assert.equal(policies.retry?.name, 'retryForever');
  assert.equal(policies.breaker?.name, 'simpleCB');
  assert.equal(policies.breakerCacheSize, 50);
  assert.equal(policies.named, true);
  assert.equal(appPolicies(spec, 'someone-else'), undefined, 'no default policies: nothing applies to other apps');
  assert.deepEqual(warnings, ['res0.yaml: spec.targets.components is not used: Courier provides service invocation only']);
});

test("default policies apply in Dapr's order, and a named target takes only what it names", () => {
  const { spec } = load(`
kind: Resiliency
metadata: { name: defaults }
spec:
  policies:
    timeouts: { DefaultTimeoutPolicy: 3s, DefaultAppTimeoutPolicy: 2s, short: 100ms }
    retries: { DefaultRetryPolicy: { maxRetries: 1 }, fast: { duration: 10ms, maxRetries: 2 } }
    circuitBreakers: { DefaultCircuitBreakerPolicy: {} }
  targets:
    apps:
      named: { retry: fast }
`);
  const other = appPolicies(spec, 'other');
  assert.equal(other?.timeoutMs, 2000, 'DefaultAppTimeoutPolicy before DefaultTimeoutPolicy');
  assert.equal(other.retry?.name, 'DefaultRetryPolicy');
  assert.equal(other.breaker?.name, 'DefaultCircuitBreakerPolicy');
  assert.equal(other.breaker.tripExpression, 'consecutiveFailures > 5', "Dapr's default trip");
  assert.equal(other.breaker.timeoutMs, 60_000);
  assert.equal(other.named, false, 'the built-in retries stay on under default policies');
  const named = appPolicies(spec, 'named');
  assert.equal(named?.retry?.name, 'fast');
  assert.equal(named.timeoutMs, undefined, 'a named target gets only the policies it names');
  assert.equal(named.breaker, undefined);
  assert.equal(named.named, true);
});

test('DaprBuiltInServiceRetries tunes the built-in retries, never below 3', () => {
  const { spec, warnings } = load(`
kind: Resiliency
metadata: { name: builtin }
spec:
  policies:
    retries: { DaprBuiltInServiceRetries: { duration: 200ms, maxRetries: 1 } }
`);
  assert.equal(spec.builtIn?.durationMs, 200);
  assert.equal(spec.builtIn.maxRetries, 3);
  assert.equal(spec.retries.has('DaprBuiltInServiceRetries'), false);
  assert.match(warnings[0] ?? '', /maxRetries 1 is below 3; 3 is used/);
});

test('every mistake is refused with the file and key named', () => {
  const cases: Array<[string, RegExp]> = [
    ['policies: { timeouts: { t: 5 parsecs } }', /res0\.yaml: spec\.policies\.timeouts\.t: "5 parsecs" is not a duration/],
    ['policies: { timeouts: { t: 0s } }', /spec\.policies\.timeouts\.t must be longer than 0/],
    ['policies: { retries: { r: { policy: linear } } }', /spec\.policies\.retries\.r\.policy must be "constant" or "exponential"/],
    ['policies: { retries: { r: { maxRetries: -2 } } }', /maxRetries must be -1/],
    ['policies: { retries: { r: { maxRetries: 1.5 } } }', /"1\.5" is not a whole number/],
    ['policies: { retries: { r: { matching: { httpStatusCodes: "500-99" } } } }', /httpStatusCodes: "500-99" is outside 100-599/],
    ['policies: { retries: { r: { matching: { httpStatusCodes: "abc" } } } }', /"abc" is not a code or a range/],
    ['policies: { retries: { r: { matching: { gRPCStatusCodes: "17" } } } }', /gRPCStatusCodes: "17" is outside 0-16/],
    ['policies: { retries: { r: { backoff: 1s } } }', /unknown key "backoff"/],
    ['policies: { circuitBreakers: { c: { trip: "consecutiveFailures >" } } }', /spec\.policies\.circuitBreakers\.c\.trip: .*consecutiveFailures >/],
    ['policies: { circuitBreakers: { c: { trip: "failures > 3" } } }', /spec\.policies\.circuitBreakers\.c\.trip: /],
    ['policies: {}\n  targets: { apps: { a: { retry: missing } } }', /spec\.targets\.apps\.a\.retry names "missing", which is not a retry policy/],
    ['policies: {}\n  targets: { apps: { a: { timeout: missing } } }', /which is not a timeout policy/],
    ['policies: {}\n  targets: { apps: { a: { circuitBreaker: missing } } }', /which is not a circuit breaker/],
  ];
  for (const [spec, expected] of cases) {
    assert.throws(
      () => load(`kind: Resiliency\nmetadata: { name: bad }\nspec:\n  ${spec}\n`),
      (err: unknown) => err instanceof CourierError && err.code === 'ERR_INVALID_CONFIG' && expected.test(err.message),
      `${spec} → ${String(expected)}`,
    );
  }
});

test('policies from several resources combine; a name defined twice names both files', () => {
  const a = 'kind: Resiliency\nmetadata: { name: a }\nspec:\n  policies: { timeouts: { t: 1s } }\n';
  const b = 'kind: Resiliency\nmetadata: { name: b }\nspec:\n  policies: {}\n  targets: { apps: { x: { timeout: t } } }\n';
  const { spec } = load(a, b);
  assert.deepEqual(spec.resources, ['a', 'b']);
  assert.equal(appPolicies(spec, 'x')?.timeoutMs, 1000);
  assert.equal(appPolicies(spec, 'x')?.resource, 'b');
  assert.throws(() => load(a, a), /res1\.yaml: timeout "t" is also defined in res0\.yaml/);
});

test('code lists: ranges, spaces, and an empty list (every code)', () => {
  const set = parseCodes(' 429 , 500 - 502 ', 'http');
  assert.ok(set !== undefined);
  assert.deepEqual([429, 499, 500, 501, 502, 503].map((c) => hasCode(set, c)), [true, false, true, true, true, false]);
  assert.equal(parseCodes('', 'grpc'), undefined);
  assert.equal(hasCode(set, 9999), false);
});

test('no Resiliency resource: nothing to load', () => {
  assert.equal(loadResiliency([], () => undefined), undefined);
});
