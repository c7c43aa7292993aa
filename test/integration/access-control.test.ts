// Access control (Configuration spec.accessControl) evaluated by the callee with the caller's verified
// identity, and replaced atomically when the file changes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestEnv } from '../framework/env.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { startSentry, type SentryProcess } from '../framework/sentry-process.js';
import { startApp } from '../framework/test-app.js';
import { errorOf, send } from '../framework/http-client.js';

const policy = (body: string): string => `apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: acl
spec:
  accessControl:
${body}
`;

const initialPolicy = policy(`    defaultAction: deny
    trustDomain: public
    policies:
    - appId: frontend
      defaultAction: deny
      trustDomain: public
      namespace: default
      operations:
      - name: /orders/*
        httpVerb: ['GET', 'POST']
        action: allow
      - name: /admin/**
        httpVerb: ['*']
        action: deny
      - name: /Reports
        httpVerb: ['GET']
        action: allow
    - appId: frontend
      defaultAction: allow
      trustDomain: public
      namespace: prod
    - appId: auditor
      defaultAction: allow
      trustDomain: elsewhere
      namespace: default`);

describe('access control', () => {
  const env = new TestEnv();
  let sentry: SentryProcess;
  let configFile: string;
  let frontend: SidecarProcess;
  let frontendProd: SidecarProcess;
  let auditor: SidecarProcess;
  let backend: SidecarProcess;

  before(async () => {
    sentry = await startSentry(env);
    configFile = join(env.home, 'backend-config.yaml');
    writeFileSync(configFile, initialPolicy);
    const app = await startApp(env, (a) => a.fallback((req, res) => res.end(`${req.method ?? ''} ${req.url ?? ''}`)));
    backend = await startSidecar(env, { appId: 'backend', appPort: app.port, waitForApp: true, ...withArgs(sentry.sidecar('backend'), ['--config', configFile]) });
    frontend = await startSidecar(env, { appId: 'frontend', ...sentry.sidecar('frontend') });
    // The same app id in another namespace, which the policy treats differently.
    frontendProd = await startSidecar(env, { appId: 'frontend', ...sentry.sidecar('frontend', 'prod') });
    auditor = await startSidecar(env, { appId: 'auditor', ...sentry.sidecar('auditor') });
  });
  after(() => env.close());

  const call = (from: SidecarProcess, verb: string, method: string) =>
    send(from.httpPort, { method: verb, path: `/v1.0/invoke/backend.default/method/${method}`, ...(verb === 'POST' ? { body: '{}' } : {}) });

  test('operations and verbs: allowed ones reach the app; others are 403 naming identity, operation and verb', async () => {
    const cases: Array<[string, string, number]> = [
      ['GET', 'orders/17', 200],
      ['POST', 'orders/17', 200],
      ['DELETE', 'orders/17', 403],
      ['GET', 'orders/17/items', 403],
      ['GET', 'admin/users', 403],
      ['GET', 'reports', 200],
      ['POST', 'reports', 403],
      ['GET', 'elsewhere', 403],
    ];
    for (const [verb, method, status] of cases) {
      const res = await call(frontend, verb, method);
      assert.equal(res.status, status, `${verb} ${method}: ${res.text}`);
      if (status === 403) {
        const err = errorOf(res);
        assert.equal(err.errorCode, 'ERR_DIRECT_INVOKE');
        assert.match(err.message, new RegExp(`access control policy has denied access to id: spiffe://public/ns/default/frontend operation: /${method.toLowerCase()} verb: ${verb}`));
      } else {
        assert.equal(res.text, `${verb} /${method}`);
      }
    }
  });

  test('namespaces: the same app id in another namespace gets that namespace policy', async () => {
    assert.equal((await call(frontendProd, 'DELETE', 'orders/17')).status, 200);
  });

  test('trust domains: a policy for another trust domain does not apply; the global default does', async () => {
    const res = await call(auditor, 'GET', 'orders/1');
    assert.equal(res.status, 403);
    assert.match(errorOf(res).message, /id: spiffe:\/\/public\/ns\/default\/auditor/);
  });

  test('a policy file replaced by a broken one is refused and the old policy stays; a valid one applies without a restart', async () => {
    writeFileSync(configFile, policy('    defaultAction: allow\n    policies:\n    - appId: frontend\n      operations: [{ name: /x, action: maybe }]'));
    await waitForOutput(backend, /the changed configuration was refused/);
    assert.equal((await call(frontend, 'DELETE', 'orders/17')).status, 403, 'the old policy is still in force');
    writeFileSync(configFile, 'kind: Configuration\nspec: [not yaml');
    await waitForOutput(backend, /the changed configuration was refused.*invalid YAML/s);
    assert.equal((await call(frontend, 'GET', 'orders/17')).status, 200, 'still the old policy');
    writeFileSync(configFile, policy('    defaultAction: allow\n    trustDomain: public'));
    await waitForOutput(backend, /access-control policy reloaded/);
    assert.equal((await call(frontend, 'DELETE', 'orders/17')).status, 200, 'the new policy applies');
    assert.equal((await call(auditor, 'GET', 'admin/users')).status, 200);
  });

  test('without mTLS only the global default applies (callers are not identified)', async () => {
    const env2 = new TestEnv();
    try {
      const file = join(env2.home, 'acl.yaml');
      writeFileSync(file, policy('    defaultAction: deny\n    policies:\n    - appId: frontend\n      defaultAction: allow\n      trustDomain: public\n      namespace: default'));
      const app = await startApp(env2, (a) => a.fallback((_req, res) => res.end('ok')));
      const target = await startSidecar(env2, { appId: 'backend', appPort: app.port, waitForApp: true, args: ['--config', file] });
      const caller = await startSidecar(env2, { appId: 'frontend' });
      const res = await send(caller.httpPort, { path: '/v1.0/invoke/backend/method/anything' });
      assert.equal(res.status, 403);
      assert.match(target.output, /only the global default action of the access-control policy applies/);
    } finally {
      await env2.close();
    }
  });
});

function withArgs(settings: { args: string[]; env: Record<string, string> }, extra: string[]): { args: string[]; env: Record<string, string> } {
  return { args: [...settings.args, ...extra], env: settings.env };
}

async function waitForOutput(sidecar: SidecarProcess, pattern: RegExp, timeoutMs = 10_000): Promise<void> {
  const start = sidecar.output.length;
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(sidecar.output.slice(start))) {
    if (Date.now() > deadline) throw new Error(`sidecar ${sidecar.appId} did not log ${String(pattern)}\n${sidecar.output.slice(start)}`);
    await sleep(100);
  }
}
