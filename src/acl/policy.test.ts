import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CourierError } from '../errors/index.js';
import { parseAccessControl, type AccessControlPolicy } from './policy.js';

const where = 'config.yaml: spec.accessControl';
const frontend = { trustDomain: 'public', namespace: 'default', appId: 'frontend' };

function compile(raw: unknown, protocol: 'http' | 'grpc' = 'http'): AccessControlPolicy {
  const { policy } = parseAccessControl(raw, where, protocol);
  assert.ok(policy);
  return policy;
}

const spec = {
  defaultAction: 'deny',
  trustDomain: 'public',
  policies: [
    {
      appId: 'frontend',
      defaultAction: 'allow',
      trustDomain: 'public',
      namespace: 'default',
      operations: [
        { name: '/orders/*', httpVerb: ['POST', 'GET'], action: 'deny' },
        { name: 'Reports', httpVerb: ['*'], action: 'deny' },
        { name: '/open', httpVerb: ['GET'], action: 'allow' },
      ],
    },
  ],
};

test('HTTP verbs: the listed verb decides, then *, then the app default', () => {
  const policy = compile(spec);
  assert.equal(policy.evaluate(frontend, { operation: '/orders/1', verb: 'GET', isHttp: true }).allowed, false);
  assert.equal(policy.evaluate(frontend, { operation: '/orders/1', verb: 'DELETE', isHttp: true }).allowed, true, 'not listed: app default allow');
  assert.equal(policy.evaluate(frontend, { operation: '/reports', verb: 'PATCH', isHttp: true }).allowed, false, '* applies');
  assert.equal(policy.evaluate(frontend, { operation: '/elsewhere', verb: 'GET', isHttp: true }).allowed, true, 'no rule: app default');
});

test('HTTP operations ignore case; gRPC operations do not', () => {
  const http = compile(spec);
  assert.equal(http.evaluate(frontend, { operation: '/REPORTS', verb: 'GET', isHttp: true }).allowed, false);
  const grpc = compile({ ...spec, policies: [{ ...spec.policies[0], defaultAction: 'allow', operations: [{ name: '/pkg.Svc/Secret', action: 'deny' }] }] }, 'grpc');
  assert.equal(grpc.evaluate(frontend, { operation: '/pkg.Svc/Secret', verb: undefined, isHttp: false }).allowed, false);
  assert.equal(grpc.evaluate(frontend, { operation: '/pkg.svc/secret', verb: undefined, isHttp: false }).allowed, true);
});

test('an HTTP call without a verb matching a rule falls to the app default, or deny without one', () => {
  assert.equal(compile(spec).evaluate(frontend, { operation: '/open', verb: undefined, isHttp: true }).allowed, true);
  const noDefault = compile({ ...spec, policies: [{ ...spec.policies[0], defaultAction: undefined }] });
  assert.equal(noDefault.evaluate(frontend, { operation: '/open', verb: undefined, isHttp: true }).allowed, false);
});

test('without a verified caller only the global default applies', () => {
  const policy = compile({ ...spec, defaultAction: 'allow' });
  assert.equal(policy.evaluate(undefined, { operation: '/orders/1', verb: 'GET', isHttp: true }).allowed, true);
  const deny = compile(spec).evaluate(undefined, { operation: '/open', verb: 'GET', isHttp: true });
  assert.equal(deny.allowed, false);
  assert.equal(deny.scope, 'global');
});

test('an unknown caller, or a policy whose trust domain or namespace differs, gets the global default', () => {
  const policy = compile(spec);
  for (const caller of [
    { ...frontend, appId: 'other' },
    { ...frontend, trustDomain: 'elsewhere' },
    { ...frontend, namespace: 'prod' },
  ]) {
    const d = policy.evaluate(caller, { operation: '/open', verb: 'GET', isHttp: true });
    assert.equal(d.allowed, false, JSON.stringify(caller));
    assert.equal(d.scope, 'global');
  }
});

test("the denial message is Dapr's", () => {
  const d = compile(spec).evaluate(frontend, { operation: 'Orders/9', verb: 'post', isHttp: true });
  assert.equal(d.message, 'access control policy has denied access to id: spiffe://public/ns/default/frontend operation: /orders/9 verb: POST');
  assert.equal(d.scope, 'app');
  const none = compile({ defaultAction: 'deny' }).evaluate(undefined, { operation: '/x', verb: undefined, isHttp: false });
  assert.equal(none.message, 'access control policy has denied access to id:  operation: /x verb: NONE');
});

test('the safe reading of an omitted defaultAction, with a warning either way', () => {
  const withPolicies = parseAccessControl({ policies: spec.policies }, where, 'http');
  assert.equal(withPolicies.policy?.defaultAction, 'deny');
  assert.match(withPolicies.warnings[0] ?? '', /defaultAction is not set: calls that no policy allows are denied/);
  const trustDomainOnly = parseAccessControl({ trustDomain: 'public' }, where, 'http');
  assert.equal(trustDomainOnly.policy, undefined);
  assert.match(trustDomainOnly.warnings[0] ?? '', /no policies: every call is allowed/);
  assert.deepEqual(parseAccessControl(undefined, where, 'http'), { policy: undefined, warnings: [] });
  assert.deepEqual(parseAccessControl({ defaultAction: 'ALLOW' }, where, 'http').warnings, []);
});

test('configuration mistakes name the key and the reason', () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ defaultAction: 'maybe' }, /spec\.accessControl\.defaultAction must be allow or deny/],
    [{ defaultAction: 'deny', policy: [] }, /spec\.accessControl: unknown key "policy"/],
    [{ policies: [{ appId: 'a', trustDomain: 'public' }] }, /spec\.accessControl\.policies\[0\]\.namespace is required/],
    [{ policies: [{ appId: 'a', namespace: 'default' }] }, /policies\[0\]\.trustDomain is required/],
    [{ policies: [{ namespace: 'default', trustDomain: 'public' }] }, /policies\[0\]\.appId is required/],
    [{ policies: [{ appId: 'a', trustDomain: 'public', namespace: 'default', operations: [{ name: '/x' }] }] }, /operations\[0\]\.action is required/],
    [{ policies: [{ appId: 'a', trustDomain: 'public', namespace: 'default', operations: [{ name: '/x', action: 'allow', verbs: [] }] }] }, /operations\[0\]: unknown key "verbs"/],
    [
      { policies: [{ appId: 'a', trustDomain: 'public', namespace: 'default' }, { appId: 'a', trustDomain: 'x', namespace: 'default' }] },
      /policies\[1\]: a second policy for app "a" in namespace "default"/,
    ],
    ['not an object', /spec\.accessControl/],
  ];
  for (const [raw, pattern] of cases) {
    assert.throws(
      () => parseAccessControl(raw, where, 'http'),
      (err: unknown) => err instanceof CourierError && err.code === 'ERR_INVALID_CONFIG' && pattern.test(err.message),
      JSON.stringify(raw),
    );
  }
});

test('describe() summarizes the policy', () => {
  assert.equal(compile(spec).describe(), 'global default deny; 1 app policy (frontend||default); HTTP operations (case-insensitive)');
});
