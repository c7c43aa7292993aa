// The sidecar injector over real HTTPS on loopback, as the API server calls it: AdmissionReview documents
// in, AdmissionReview answers out; each patch is applied with an RFC 6902 library and the Pod validated
// against the Kubernetes OpenAPI schema. The CLI entry point (`courier injector`) runs as a process.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import jsonpatch from 'fast-json-patch';
import { Pod } from 'kubernetes-models/v1';
import { silentLogger } from '../../src/observability/logging/index.js';
import { InjectorServer } from '../../src/kubernetes/injector/server.js';
import { SENTRY_TOKEN_AUDIENCE, SENTRY_TOKEN_DIR, SENTRY_TOKEN_FILE } from '../../src/kubernetes/constants.js';
import { freePort } from '../framework/ports.js';
import { TestCa } from '../framework/test-pki.js';

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: Record<string, Record<string, string>>;
}
interface Container {
  name: string;
  image?: string;
  args?: string[];
  env?: EnvVar[];
  ports?: { name: string; containerPort: number }[];
  livenessProbe?: Record<string, unknown>;
  readinessProbe?: Record<string, unknown>;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface PodDoc {
  metadata: { name?: string; generateName?: string; namespace?: string; annotations?: Record<string, string>; labels?: Record<string, string> };
  spec: { containers: Container[]; volumes?: { name: string; [k: string]: unknown }[] };
}
interface Answer {
  status: number;
  body: string;
}

const pem = '-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n';

function post(port: number, ca: string, path: string, body: string | Buffer, method = 'POST'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, ca, servername: 'localhost', agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function admissionReview(pod: PodDoc, uid = 'f0b8b4c6-1d2e-4c1a-9a55-7b1f3c2e9d01'): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      namespace: pod.metadata.namespace ?? 'shop',
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' },
      object: { apiVersion: 'v1', kind: 'Pod', ...pod },
      oldObject: null,
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
    },
  });
}

function deploymentPod(annotations: Record<string, string> | undefined, containers: Container[] = [{ name: 'app', image: 'example/orders:1.2' }]): PodDoc {
  return {
    metadata: { generateName: 'orders-7d9f8c6b5-', namespace: 'shop', labels: { app: 'orders' }, ...(annotations === undefined ? {} : { annotations }) },
    spec: { containers, volumes: [{ name: 'kube-api-access-x1', projected: { sources: [{ serviceAccountToken: { path: 'token', expirationSeconds: 3607 } }] } }] },
  };
}

/** Kubernetes rules the OpenAPI schema does not express but the API server enforces. */
function assertApiServerRules(pod: PodDoc): void {
  const names = pod.spec.containers.map((c) => c.name);
  assert.equal(new Set(names).size, names.length, 'container names are unique');
  const volumes = (pod.spec.volumes ?? []).map((v) => v.name);
  assert.equal(new Set(volumes).size, volumes.length, 'volume names are unique');
  for (const c of pod.spec.containers) {
    for (const p of c.ports ?? []) assert.ok(p.name.length <= 15 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(p.name), `port name ${p.name}`);
    for (const m of c.volumeMounts ?? []) assert.ok(volumes.includes(m.name), `mount ${m.name} has a volume`);
    for (const e of c.env ?? []) assert.match(e.name, /^[-._a-zA-Z][-._a-zA-Z0-9]*$/);
    const env = (c.env ?? []).map((e) => e.name);
    assert.equal(new Set(env).size, env.length, `env names of ${c.name} are unique`);
  }
  for (const [k, v] of Object.entries(pod.metadata.labels ?? {})) assert.ok(v.length <= 63 && /^([A-Za-z0-9]([-._A-Za-z0-9]*[A-Za-z0-9])?)?$/.test(v), `label ${k}=${v}`);
}

describe('courier injector over HTTPS', () => {
  let dir: string;
  let ca: TestCa;
  let server: InjectorServer;
  let port: number;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'courier-injector-'));
    ca = await TestCa.create('Courier injector test CA');
    const serving = await ca.server();
    writeFileSync(join(dir, 'tls.crt'), serving.cert);
    writeFileSync(join(dir, 'tls.key'), serving.key);
    server = new InjectorServer({
      certFile: join(dir, 'tls.crt'),
      keyFile: join(dir, 'tls.key'),
      logger: silentLogger(),
      image: 'registry.example/courier:1.0',
      controlPlaneNamespace: 'courier-system',
      sentryAddress: 'courier-sentry.courier-system.svc:443',
      trustAnchors: { pem },
    });
    port = await server.listen('127.0.0.1', 0);
  });
  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function mutate(pod: PodDoc): Promise<{ response: Record<string, unknown>; patched: PodDoc }> {
    const uid = `uid-${Math.random().toString(36).slice(2)}`;
    const answer = await post(port, ca.certPem, '/mutate', admissionReview(pod, uid));
    assert.equal(answer.status, 200, answer.body);
    const review = JSON.parse(answer.body) as { apiVersion: string; kind: string; response: Record<string, unknown> };
    assert.equal(review.apiVersion, 'admission.k8s.io/v1');
    assert.equal(review.kind, 'AdmissionReview');
    const response = review.response;
    assert.equal(response.uid, uid);
    let patched = structuredClone(pod);
    if (response.patch !== undefined) {
      assert.equal(response.patchType, 'JSONPatch');
      const ops = JSON.parse(Buffer.from(response.patch as string, 'base64').toString('utf8')) as jsonpatch.Operation[];
      assert.equal(jsonpatch.validate(ops, patched), undefined, 'the patch is valid RFC 6902 against the Pod');
      patched = jsonpatch.applyPatch(patched, ops, true, false).newDocument;
    }
    new Pod({ apiVersion: 'v1', kind: 'Pod', ...patched } as ConstructorParameters<typeof Pod>[0]).validate();
    assertApiServerRules(patched);
    return { response, patched };
  }

  const sidecarOf = (pod: PodDoc): Container | undefined => pod.spec.containers.find((c) => c.name === 'courier');
  const env = (c: Container | undefined, name: string): EnvVar | undefined => c?.env?.find((e) => e.name === name);

  test('GET /healthz answers 200', async () => {
    const answer = await post(port, ca.certPem, '/healthz', '', 'GET');
    assert.equal(answer.status, 200);
  });

  test('minimal annotations: the sidecar with Dapr ports, probes, identity token and trust anchors', async () => {
    const { response, patched } = await mutate(deploymentPod({ 'dapr.io/enabled': 'true', 'dapr.io/app-id': 'orders', 'dapr.io/app-port': '8080' }));
    assert.equal(response.allowed, true);
    const sidecar = sidecarOf(patched);
    assert.ok(sidecar);
    assert.equal(sidecar.image, 'registry.example/courier:1.0');
    assert.deepEqual(sidecar.ports?.map((p) => `${p.name}:${p.containerPort}`), ['dapr-http:3500', 'dapr-grpc:50001', 'dapr-internal:50002', 'dapr-metrics:9090']);
    assert.ok(sidecar.livenessProbe && sidecar.readinessProbe);
    assert.deepEqual(env(sidecar, 'NAMESPACE')?.valueFrom, { fieldRef: { fieldPath: 'metadata.namespace' } });
    assert.equal(env(sidecar, 'DAPR_TRUST_ANCHORS')?.value, pem);
    assert.equal(env(sidecar, 'DAPR_SENTRY_TOKEN_FILE')?.value, SENTRY_TOKEN_FILE);
    assert.deepEqual(sidecar.volumeMounts, [{ name: 'dapr-identity-token', mountPath: SENTRY_TOKEN_DIR, readOnly: true }]);
    const token = patched.spec.volumes?.find((v) => v.name === 'dapr-identity-token') as { projected: { sources: { serviceAccountToken: { audience: string } }[] } } | undefined;
    assert.equal(token?.projected.sources[0]?.serviceAccountToken.audience, SENTRY_TOKEN_AUDIENCE);
    assert.ok(patched.spec.volumes?.some((v) => v.name === 'kube-api-access-x1'), 'existing volumes are kept');
    const app = patched.spec.containers[0];
    assert.equal(app?.name, 'app');
    assert.deepEqual(app.env, [{ name: 'DAPR_HTTP_PORT', value: '3500' }, { name: 'DAPR_GRPC_PORT', value: '50001' }]);
    assert.equal(patched.metadata.labels?.app, 'orders');
    assert.equal(patched.metadata.labels?.['dapr.io/app-id'], 'orders');
  });

  test('every annotation at once yields a valid Pod', async () => {
    const withScratch = (pod: PodDoc): PodDoc => ({ ...pod, spec: { ...pod.spec, volumes: [...(pod.spec.volumes ?? []), { name: 'scratch', emptyDir: {} }] } });
    const { response, patched } = await mutate(
      withScratch(deploymentPod({
        'dapr.io/enabled': 'true',
        'dapr.io/app-id': 'orders',
        'dapr.io/sidecar-image': 'registry.example/courier:canary',
        'dapr.io/app-port': '50051',
        'dapr.io/app-protocol': 'grpc',
        'dapr.io/app-channel-address': '127.0.0.1',
        'dapr.io/config': 'appconfig',
        'dapr.io/log-level': 'debug',
        'dapr.io/log-as-json': 'true',
        'dapr.io/enable-metrics': 'true',
        'dapr.io/metrics-port': '9095',
        'dapr.io/enable-profiling': 'true',
        'dapr.io/profile-port': '7778',
        'dapr.io/api-token-secret': 'dapr-api-token',
        'dapr.io/app-token-secret': 'app-api-token',
        'dapr.io/sidecar-cpu-limit': '1',
        'dapr.io/sidecar-memory-limit': '512Mi',
        'dapr.io/sidecar-cpu-request': '100m',
        'dapr.io/sidecar-memory-request': '128Mi',
        'dapr.io/max-body-size': '8Mi',
        'dapr.io/read-buffer-size': '32Ki',
        'dapr.io/graceful-shutdown-seconds': '15',
        'dapr.io/enable-api-logging': 'true',
        'dapr.io/app-max-concurrency': '20',
        'dapr.io/enable-app-health-check': 'true',
        'dapr.io/app-health-check-path': '/healthz',
        'dapr.io/app-health-probe-interval': '3',
        'dapr.io/app-health-probe-timeout': '800',
        'dapr.io/app-health-threshold': '2',
        'dapr.io/sidecar-listen-addresses': '0.0.0.0',
        'dapr.io/internal-grpc-port': '50012',
        'dapr.io/env': 'OTEL_SERVICE_NAME=orders,GREETING=a,b',
        'dapr.io/env-from-secret': 'DB_URL=db:url',
        'dapr.io/sidecar-readiness-probe-period-seconds': '4',
        'dapr.io/volume-mounts': 'kube-api-access-x1:/mnt/api',
        'dapr.io/volume-mounts-rw': 'scratch:/tmp/scratch',
        'dapr.io/unix-domain-socket-path': '/tmp/dapr',
        'dapr.io/block-shutdown-duration': '20s',
        'dapr.io/sidecar-seccomp-profile-type': 'RuntimeDefault',
        'dapr.io/http-stream-request-body': 'true',
      })),
    );
    assert.equal(response.allowed, true);
    assert.equal(response.warnings, undefined);
    const sidecar = sidecarOf(patched);
    assert.equal(sidecar?.image, 'registry.example/courier:canary');
    assert.deepEqual(sidecar?.readinessProbe, { httpGet: { path: '/v1.0/healthz', port: 3501 }, initialDelaySeconds: 3, timeoutSeconds: 3, periodSeconds: 4, failureThreshold: 3 });
    assert.deepEqual(sidecar?.volumeMounts?.map((m) => m.name), ['dapr-identity-token', 'courier-config', 'dapr-unix-domain-socket', 'kube-api-access-x1', 'scratch']);
    assert.equal(env(sidecar, 'GREETING')?.value, 'a,b');
    assert.deepEqual(env(sidecar, 'DAPR_API_TOKEN')?.valueFrom, { secretKeyRef: { name: 'dapr-api-token', key: 'token' } });
    assert.ok(sidecar?.args?.includes('--enable-app-health-check=true'));
  });

  test('not annotated, or disabled: allowed with no patch', async () => {
    for (const annotations of [undefined, { 'dapr.io/enabled': 'false' }, { 'dapr.io/app-id': 'orders' }]) {
      const { response, patched } = await mutate(deploymentPod(annotations));
      assert.equal(response.allowed, true);
      assert.equal(response.patch, undefined);
      assert.equal(sidecarOf(patched), undefined);
    }
  });

  test('already injected (courier or daprd container): allowed with no patch', async () => {
    for (const name of ['courier', 'daprd']) {
      const pod = deploymentPod({ 'dapr.io/enabled': 'true' }, [{ name: 'app', image: 'a' }, { name, image: 'sidecar' }]);
      const { response } = await mutate(pod);
      assert.equal(response.allowed, true);
      assert.equal(response.patch, undefined);
    }
  });

  test('two app containers with existing env: both get the ports, set values are kept', async () => {
    const { patched } = await mutate(
      deploymentPod({ 'dapr.io/enabled': 'true', 'dapr.io/app-id': 'orders' }, [
        { name: 'web', image: 'web', env: [{ name: 'DAPR_HTTP_PORT', value: '3600' }, { name: 'MODE', value: 'prod' }] },
        { name: 'worker', image: 'worker', env: [] },
      ]),
    );
    const [web, worker] = patched.spec.containers;
    assert.deepEqual(web?.env, [{ name: 'DAPR_HTTP_PORT', value: '3600' }, { name: 'MODE', value: 'prod' }, { name: 'DAPR_GRPC_PORT', value: '50001' }]);
    assert.deepEqual(worker?.env, [{ name: 'DAPR_HTTP_PORT', value: '3500' }, { name: 'DAPR_GRPC_PORT', value: '50001' }]);
    assert.deepEqual(patched.spec.containers.map((c) => c.name), ['web', 'worker', 'courier']);
  });

  test('the app id defaults to the generateName of a Deployment Pod', async () => {
    const { patched } = await mutate(deploymentPod({ 'dapr.io/enabled': 'true' }));
    const args = sidecarOf(patched)?.args ?? [];
    assert.equal(args[args.indexOf('--app-id') + 1], 'orders-7d9f8c6b5');
  });

  test('an invalid annotation refuses the Pod with a clear status', async () => {
    const { response } = await mutate(deploymentPod({ 'dapr.io/enabled': 'true', 'dapr.io/app-port': '99999' }));
    assert.equal(response.allowed, false);
    assert.deepEqual(response.status, { code: 400, reason: 'BadRequest', message: 'courier injector: dapr.io/app-port: "99999" is not a whole number from 1 to 65535' });
  });

  test('bad requests get 400, 404, 405 or 413 and the server keeps serving', async () => {
    const cases: [string, string, string | Buffer, number][] = [
      ['POST', '/mutate', 'not json', 400],
      ['POST', '/mutate', '{"apiVersion":"v1","kind":"Pod"}', 400],
      ['POST', '/mutate', '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}', 400],
      ['POST', '/mutate', '[]', 400],
      ['GET', '/mutate', '', 405],
      ['POST', '/other', '{}', 404],
      ['POST', '/mutate', Buffer.alloc(5 * 1024 * 1024, 0x20), 413],
    ];
    for (const [method, path, body, status] of cases) {
      const answer = await post(port, ca.certPem, path, body, method);
      assert.equal(answer.status, status, `${method} ${path}: ${answer.body}`);
    }
    const bad = JSON.parse((await post(port, ca.certPem, '/mutate', '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}')).body) as { message: string };
    assert.match(bad.message, /request\.uid is missing/);
    assert.equal((await post(port, ca.certPem, '/healthz', '', 'GET')).status, 200);
  });

  test('a new serving certificate is picked up when its files change', async () => {
    const other = await TestCa.create('Rotated CA');
    const serving = await other.server();
    writeFileSync(join(dir, 'tls.crt'), serving.cert);
    writeFileSync(join(dir, 'tls.key'), serving.key);
    assert.equal(server.reloadIfChanged(), true);
    assert.equal((await post(port, other.certPem, '/healthz', '', 'GET')).status, 200);
    await assert.rejects(post(port, ca.certPem, '/healthz', '', 'GET'));
  });
});

describe('courier injector as a process', () => {
  test('serves /healthz and /mutate from node dist/cli/main.js injector', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'courier-injector-cli-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const ca = await TestCa.create('Courier injector CLI CA');
    const serving = await ca.server();
    writeFileSync(join(dir, 'tls.crt'), serving.cert);
    writeFileSync(join(dir, 'tls.key'), serving.key);
    writeFileSync(join(dir, 'ca.pem'), pem);
    const port = await freePort();
    const child = spawn(
      process.execPath,
      ['dist/cli/main.js', 'injector', '--port', String(port), '--listen-address', '127.0.0.1', '--tls-cert-file', join(dir, 'tls.crt'), '--tls-key-file', join(dir, 'tls.key'), '--image', 'courier:cli', '--namespace', 'mesh', '--trust-anchors-file', join(dir, 'ca.pem')],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    t.after(() => child.kill('SIGKILL'));
    const deadline = Date.now() + 15_000;
    while (!output.includes('sidecar injector listening')) {
      assert.ok(Date.now() < deadline && child.exitCode === null, `the injector did not start: ${output}`);
      await sleep(50);
    }
    assert.equal((await post(port, ca.certPem, '/healthz', '', 'GET')).status, 200);
    const answer = await post(port, ca.certPem, '/mutate', admissionReview(deploymentPod({ 'dapr.io/enabled': 'true', 'dapr.io/app-id': 'orders' })));
    const response = (JSON.parse(answer.body) as { response: { patch: string } }).response;
    const ops = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as { path: string; value: Container }[];
    const sidecar = ops.find((o) => o.path === '/spec/containers/-')?.value;
    assert.equal(sidecar?.image, 'courier:cli');
    assert.ok(sidecar?.args?.join(' ').includes('--sentry-address courier-sentry.mesh.svc:443'));
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    assert.equal(code, 0, output);
  });
});
