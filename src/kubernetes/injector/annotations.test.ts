// The annotation → sidecar mapping: each annotation, the defaults, refusals. Patches are applied with a real
// RFC 6902 library and the result is validated against the Kubernetes OpenAPI schema.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import jsonpatch from 'fast-json-patch';
import { Pod } from 'kubernetes-models/v1';
import { parseSidecarArgs } from '../../cli/sidecar-command.js';
import { SENTRY_TOKEN_AUDIENCE, SENTRY_TOKEN_FILE } from '../constants.js';
import type { InjectorOptions } from './patch.js';
import { reviewAdmission, type AdmissionResponse } from './review.js';

const options: InjectorOptions = { image: 'courier:test', controlPlaneNamespace: 'courier-system', sentryAddress: 'courier-sentry.courier-system.svc:443', trustAnchors: undefined };

interface Container {
  name: string;
  image?: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: Record<string, Record<string, string>> }[];
  ports?: { name: string; containerPort: number }[];
  resources?: { limits?: Record<string, string>; requests?: Record<string, string> };
  livenessProbe?: Record<string, unknown>;
  readinessProbe?: Record<string, unknown>;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  securityContext?: Record<string, unknown>;
}
interface PodDoc {
  metadata: { name?: string; generateName?: string; annotations?: Record<string, string>; labels?: Record<string, string> };
  spec: { containers: Container[]; volumes?: { name: string; [k: string]: unknown }[] };
}

/** `name` null: a Pod of a Deployment, which has only a generateName when it is admitted. */
function pod(annotations: Record<string, string>, name: string | null = 'orders'): PodDoc {
  return {
    metadata: { ...(name === null ? { generateName: 'orders-5c9d7-' } : { name }), annotations: { 'dapr.io/enabled': 'true', ...annotations } },
    spec: { containers: [{ name: 'app', image: 'example/orders:1' }] },
  };
}

function review(p: PodDoc, opts: InjectorOptions = options): AdmissionResponse {
  const body = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u-1', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', object: p } };
  return reviewAdmission(body, opts).review.response;
}

/** Applies the answer's patch and checks the Pod against the schema; returns the Pod and its sidecar. */
function inject(p: PodDoc, opts: InjectorOptions = options): { pod: PodDoc; sidecar: Container; response: AdmissionResponse } {
  const response = review(p, opts);
  assert.equal(response.allowed, true, response.status?.message);
  assert.equal(response.patchType, 'JSONPatch');
  const ops = JSON.parse(Buffer.from(response.patch ?? '', 'base64').toString('utf8')) as jsonpatch.Operation[];
  const patched = jsonpatch.applyPatch(structuredClone(p), ops, true, false).newDocument;
  new Pod({ apiVersion: 'v1', kind: 'Pod', ...patched } as ConstructorParameters<typeof Pod>[0]).validate();
  const sidecar = patched.spec.containers.find((c) => c.name === 'courier');
  assert.ok(sidecar, 'the sidecar container is added');
  return { pod: patched, sidecar, response };
}

function flagValue(args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  if (i >= 0) return args[i + 1];
  return args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

const envOf = (c: Container, name: string): Container['env'] extends (infer E)[] | undefined ? E | undefined : never => c.env?.find((e) => e.name === name);

describe('injector annotations', () => {
  test('minimal: Dapr ports, fixed internal port, loopback API, metrics probes, identity token', () => {
    const { pod: p, sidecar } = inject(pod({ 'dapr.io/app-id': 'orders' }));
    const args = sidecar.args ?? [];
    assert.equal(sidecar.image, 'courier:test');
    assert.equal(args[0], 'sidecar');
    assert.equal(flagValue(args, 'app-id'), 'orders');
    assert.equal(flagValue(args, 'dapr-internal-grpc-port'), '50002');
    assert.equal(flagValue(args, 'dapr-listen-addresses'), '[::1],127.0.0.1');
    assert.equal(flagValue(args, 'enable-mtls'), undefined);
    assert.deepEqual(
      sidecar.ports?.map((x) => [x.name, x.containerPort]),
      [['dapr-http', 3500], ['dapr-grpc', 50001], ['dapr-internal', 50002], ['dapr-metrics', 9090]],
    );
    assert.deepEqual(sidecar.livenessProbe, { httpGet: { path: '/v1.0/healthz', port: 3501 }, initialDelaySeconds: 3, timeoutSeconds: 3, periodSeconds: 6, failureThreshold: 3 });
    assert.equal(flagValue(args, 'dapr-public-port'), '3501');
    assert.deepEqual(envOf(sidecar, 'NAMESPACE')?.valueFrom, { fieldRef: { fieldPath: 'metadata.namespace' } });
    assert.deepEqual(envOf(sidecar, 'POD_NAME')?.valueFrom, { fieldRef: { fieldPath: 'metadata.name' } });
    const token = p.spec.volumes?.find((v) => v.name === 'dapr-identity-token');
    assert.deepEqual(token?.projected, { sources: [{ serviceAccountToken: { audience: SENTRY_TOKEN_AUDIENCE, expirationSeconds: 7200, path: 'token' } }] });
    assert.deepEqual(p.metadata.labels, { 'dapr.io/sidecar-injected': 'true', 'dapr.io/metrics-enabled': 'true', 'dapr.io/app-id': 'orders' });
    assert.equal(envOf(p.spec.containers[0] as Container, 'DAPR_HTTP_PORT')?.value, '3500');
    assert.equal(envOf(p.spec.containers[0] as Container, 'DAPR_GRPC_PORT')?.value, '50001');
  });

  test('the generated arguments are ones `courier sidecar` accepts, with the values annotated', () => {
    const { sidecar } = inject(
      pod({
        'dapr.io/app-id': 'orders',
        'dapr.io/app-port': '8080',
        'dapr.io/app-protocol': 'grpc',
        'dapr.io/log-level': 'DEBUG',
        'dapr.io/log-as-json': 'true',
        'dapr.io/metrics-port': '9091',
        'dapr.io/http-max-request-size': '16',
        'dapr.io/http-read-buffer-size': '64',
        'dapr.io/graceful-shutdown-seconds': '20',
        'dapr.io/enable-api-logging': 'false',
        'dapr.io/app-max-concurrency': '10',
        'dapr.io/enable-app-health-check': 'true',
        'dapr.io/app-health-check-path': 'ready',
        'dapr.io/app-health-probe-interval': '2',
        'dapr.io/app-health-probe-timeout': '300',
        'dapr.io/app-health-threshold': '4',
        'dapr.io/internal-grpc-port': '50010',
        'dapr.io/app-channel-address': '127.0.0.1',
        'dapr.io/enable-profiling': 'true',
      }),
    );
    const parsed = parseSidecarArgs((sidecar.args ?? []).slice(1), { NAMESPACE: 'shop' });
    assert.notEqual(parsed, 'help');
    if (parsed === 'help') return;
    const o = parsed.options;
    assert.equal(o.appPort, 8080);
    assert.equal(o.appProtocol, 'grpc');
    assert.equal(o.logLevel, 'debug');
    assert.equal(o.logAsJson, true);
    assert.equal(o.metricsPort, 9091);
    assert.equal(o.maxBodyBytes, 16 * 1024 * 1024);
    assert.equal(o.readBufferBytes, 64 * 1024);
    assert.equal(o.gracefulShutdownMs, 20_000);
    assert.equal(o.enableApiLogging, false);
    assert.equal(o.appMaxConcurrency, 10);
    assert.deepEqual(o.healthProbe, { path: '/ready', intervalMs: 2000, timeoutMs: 300, threshold: 4 });
    assert.equal(o.internalGrpcPort, 50010);
    assert.equal(o.internalGrpcListenAddress, '0.0.0.0');
    assert.deepEqual(o.listenAddresses, ['::1', '127.0.0.1']);
    assert.equal(o.profilePort, 7777);
    assert.deepEqual(parsed.warnings, []);
    assert.equal(o.mode, 'kubernetes');
    assert.deepEqual(sidecar.ports?.map((x) => x.containerPort), [3500, 50001, 50010, 9091]);
  });

  test('the sidecar runs in Kubernetes mode, as non-root with a read-only root file system', () => {
    const { sidecar } = inject(pod({ 'dapr.io/app-id': 'orders' }));
    assert.equal(flagValue(sidecar.args ?? [], 'mode'), 'kubernetes');
    assert.deepEqual(sidecar.securityContext, { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, readOnlyRootFilesystem: true, runAsNonRoot: true });
    const seccomp = inject(pod({ 'dapr.io/sidecar-seccomp-profile-type': 'runtimedefault' })).sidecar;
    assert.deepEqual(seccomp.securityContext?.seccompProfile, { type: 'RuntimeDefault' });
  });

  test("volume-mounts and volume-mounts-rw mount the Pod's volumes into the sidecar; a missing volume is skipped with a warning", () => {
    const p = pod({ 'dapr.io/volume-mounts': 'certs:/mnt/certs, missing:/mnt/nothing', 'dapr.io/volume-mounts-rw': 'scratch:/tmp/scratch' });
    p.spec.volumes = [
      { name: 'certs', secret: { secretName: 'orders-certs' } },
      { name: 'scratch', emptyDir: {} },
    ];
    const { sidecar, response } = inject(p);
    const mounts = sidecar.volumeMounts ?? [];
    assert.deepEqual(mounts.find((m) => m.name === 'certs'), { name: 'certs', mountPath: '/mnt/certs', readOnly: true });
    assert.deepEqual(mounts.find((m) => m.name === 'scratch'), { name: 'scratch', mountPath: '/tmp/scratch', readOnly: false });
    assert.equal(mounts.find((m) => m.name === 'missing'), undefined);
    assert.deepEqual(response.warnings, ['dapr.io/volume-mounts: the Pod has no volume named missing; it is not mounted into the sidecar']);
    // Malformed entries, a path named twice, and a mount over the sidecar's own directories are refused.
    assert.match(review(pod({ 'dapr.io/volume-mounts': 'certs' })).status?.message ?? '', /volume-mounts: "certs" is not volume-name:\/absolute\/path/);
    assert.match(review(pod({ 'dapr.io/volume-mounts': 'a:relative' })).status?.message ?? '', /volume-mounts: "a:relative"/);
    assert.match(review(pod({ 'dapr.io/volume-mounts': 'a:/mnt/x', 'dapr.io/volume-mounts-rw': 'b:/mnt/x' })).status?.message ?? '', /\/mnt\/x is named twice/);
    const over = pod({ 'dapr.io/volume-mounts': 'certs:/var/run/secrets' });
    over.spec.volumes = [{ name: 'certs', emptyDir: {} }];
    assert.match(review(over).status?.message ?? '', /\/var\/run\/secrets overlaps a directory the sidecar mounts itself/);
  });

  test('unix-domain-socket-path shares a socket directory between the sidecar and every app container', () => {
    const p = pod({ 'dapr.io/app-id': 'orders', 'dapr.io/unix-domain-socket-path': '/tmp/dapr-sockets' });
    p.spec.containers.push({ name: 'worker', image: 'example/worker:1', volumeMounts: [{ name: 'cache', mountPath: '/cache' }] });
    p.spec.volumes = [{ name: 'cache', emptyDir: {} }];
    const { pod: patched, sidecar } = inject(p);
    assert.deepEqual(patched.spec.volumes?.find((v) => v.name === 'dapr-unix-domain-socket'), { name: 'dapr-unix-domain-socket', emptyDir: {} });
    assert.deepEqual(sidecar.volumeMounts?.find((m) => m.name === 'dapr-unix-domain-socket'), { name: 'dapr-unix-domain-socket', mountPath: '/var/run/dapr-sockets', readOnly: false });
    for (const c of patched.spec.containers.filter((x) => x.name !== 'courier')) {
      assert.deepEqual(c.volumeMounts?.find((m) => m.name === 'dapr-unix-domain-socket'), { name: 'dapr-unix-domain-socket', mountPath: '/tmp/dapr-sockets' }, c.name);
    }
    assert.equal(flagValue(sidecar.args ?? [], 'unix-domain-socket'), '/var/run/dapr-sockets');
    assert.match(review(pod({ 'dapr.io/unix-domain-socket-path': 'sockets' })).status?.message ?? '', /unix-domain-socket-path: "sockets" is not an absolute path/);
  });

  test('block-shutdown-duration reaches the sidecar; http-stream-request-body is accepted (Courier always streams)', () => {
    const { sidecar, response } = inject(pod({ 'dapr.io/app-id': 'orders', 'dapr.io/block-shutdown-duration': '1m30s', 'dapr.io/http-stream-request-body': 'true' }));
    assert.deepEqual(response.warnings ?? [], []);
    const parsed = parseSidecarArgs((sidecar.args ?? []).slice(1), {});
    assert.notEqual(parsed, 'help');
    if (parsed === 'help') return;
    assert.equal(parsed.options.blockShutdownMs, 90_000);
    assert.match(review(pod({ 'dapr.io/block-shutdown-duration': 'soon' })).status?.message ?? '', /block-shutdown-duration: "soon" is not a duration/);
    assert.match(review(pod({ 'dapr.io/http-stream-request-body': 'maybe' })).status?.message ?? '', /http-stream-request-body: "maybe"/);
    assert.match(review(pod({ 'dapr.io/sidecar-seccomp-profile-type': 'Localhost' })).status?.message ?? '', /sidecar-seccomp-profile-type: "Localhost" is not one of RuntimeDefault, Unconfined/);
  });

  test('the app id defaults to the Pod name, or its generateName without the dash', () => {
    assert.equal(flagValue(inject(pod({}, 'checkout')).sidecar.args ?? [], 'app-id'), 'checkout');
    assert.equal(flagValue(inject(pod({}, null)).sidecar.args ?? [], 'app-id'), 'orders-5c9d7');
  });

  test('tokens, resources, env and env-from-secret', () => {
    const { sidecar } = inject(
      pod({
        'dapr.io/api-token-secret': 'dapr-api-token',
        'dapr.io/app-token-secret': 'app-api-token',
        'dapr.io/sidecar-cpu-limit': '500m',
        'dapr.io/sidecar-memory-limit': '256Mi',
        'dapr.io/sidecar-cpu-request': '0.1',
        'dapr.io/sidecar-memory-request': '64Mi',
        'dapr.io/env': 'GREETING=hello, world,MODE=fast',
        'dapr.io/env-from-secret': 'DB_PASSWORD=db:password,TOKEN=token-secret',
      }),
    );
    assert.deepEqual(envOf(sidecar, 'DAPR_API_TOKEN')?.valueFrom, { secretKeyRef: { name: 'dapr-api-token', key: 'token' } });
    assert.deepEqual(envOf(sidecar, 'APP_API_TOKEN')?.valueFrom, { secretKeyRef: { name: 'app-api-token', key: 'token' } });
    assert.deepEqual(sidecar.resources, { limits: { cpu: '500m', memory: '256Mi' }, requests: { cpu: '0.1', memory: '64Mi' } });
    assert.equal(envOf(sidecar, 'GREETING')?.value, 'hello, world');
    assert.equal(envOf(sidecar, 'MODE')?.value, 'fast');
    assert.deepEqual(envOf(sidecar, 'DB_PASSWORD')?.valueFrom, { secretKeyRef: { name: 'db', key: 'password' } });
    assert.deepEqual(envOf(sidecar, 'TOKEN')?.valueFrom, { secretKeyRef: { name: 'token-secret', key: 'token-secret' } });
  });

  test('listening beyond loopback makes the probes HTTP GETs of /v1.0/healthz, with the annotated timings', () => {
    const { sidecar } = inject(
      pod({
        'dapr.io/sidecar-listen-addresses': '0.0.0.0',
        'dapr.io/sidecar-liveness-probe-delay-seconds': '10',
        'dapr.io/sidecar-liveness-probe-timeout-seconds': '5',
        'dapr.io/sidecar-liveness-probe-period-seconds': '15',
        'dapr.io/sidecar-liveness-probe-threshold': '7',
        'dapr.io/sidecar-readiness-probe-threshold': '2',
      }),
    );
    assert.deepEqual(sidecar.livenessProbe, { httpGet: { path: '/v1.0/healthz', port: 3501 }, initialDelaySeconds: 10, timeoutSeconds: 5, periodSeconds: 15, failureThreshold: 7 });
    assert.deepEqual(sidecar.readinessProbe, { httpGet: { path: '/v1.0/healthz', port: 3501 }, initialDelaySeconds: 3, timeoutSeconds: 3, periodSeconds: 6, failureThreshold: 2 });
  });

  test('metrics off: no metrics port; the probes still check /v1.0/healthz on the public port', () => {
    const { sidecar, response, pod: p } = inject(pod({ 'dapr.io/enable-metrics': 'false' }));
    assert.equal(flagValue(sidecar.args ?? [], 'enable-metrics'), 'false');
    assert.equal(sidecar.ports?.some((x) => x.name === 'dapr-metrics'), false);
    assert.deepEqual(sidecar.readinessProbe?.httpGet, { path: '/v1.0/healthz', port: 3501 });
    assert.doesNotMatch(response.warnings?.join('\n') ?? '', /probe/);
    assert.equal(p.metadata.labels?.['dapr.io/metrics-enabled'], 'false');
  });

  test('config names a ConfigMap mounted into the sidecar', () => {
    const { sidecar, pod: p } = inject(pod({ 'dapr.io/config': 'appconfig' }));
    assert.equal(flagValue(sidecar.args ?? [], 'config'), '/etc/courier/config/config.yaml');
    assert.deepEqual(p.spec.volumes?.find((v) => v.name === 'courier-config')?.configMap, { name: 'appconfig', items: [{ key: 'config.yaml', path: 'config.yaml' }] });
    assert.ok(sidecar.volumeMounts?.some((m) => m.name === 'courier-config' && m.mountPath === '/etc/courier/config'));
  });

  test('trust anchors turn mTLS on: PEM as DAPR_TRUST_ANCHORS, or a mounted ConfigMap', () => {
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    const a = inject(pod({}), { ...options, trustAnchors: { pem } }).sidecar;
    assert.equal(envOf(a, 'DAPR_TRUST_ANCHORS')?.value, pem);
    assert.equal(envOf(a, 'DAPR_SENTRY_TOKEN_FILE')?.value, SENTRY_TOKEN_FILE);
    assert.equal(flagValue(a.args ?? [], 'enable-mtls'), 'true');
    assert.equal(flagValue(a.args ?? [], 'sentry-address'), 'courier-sentry.courier-system.svc:443');
    assert.equal(flagValue(a.args ?? [], 'control-plane-namespace'), 'courier-system');
    const b = inject(pod({}), { ...options, trustAnchors: { configMap: 'courier-trust-bundle', key: 'ca.crt' } });
    assert.equal(flagValue(b.sidecar.args ?? [], 'trust-anchors-file'), '/var/run/secrets/courier.io/trust-anchors/ca.crt');
    assert.equal(envOf(b.sidecar, 'DAPR_TRUST_ANCHORS'), undefined);
    assert.ok(b.pod.spec.volumes?.some((v) => v.name === 'courier-trust-anchors'));
  });

  test('unknown dapr.io annotations are ignored with a warning', () => {
    const { response } = inject(pod({ 'dapr.io/placement-host-address': 'placement:50005' }));
    assert.deepEqual(response.warnings, ["annotation dapr.io/placement-host-address is not supported by Courier's injector and is ignored"]);
  });

  test('Pods without dapr.io/enabled, or with it false, are allowed unchanged', () => {
    for (const enabled of [undefined, 'false', 'no', '']) {
      const p = pod({});
      if (enabled === undefined) delete p.metadata.annotations?.['dapr.io/enabled'];
      else (p.metadata.annotations ?? {})['dapr.io/enabled'] = enabled;
      const r = review(p);
      assert.deepEqual(r, { uid: 'u-1', allowed: true });
    }
  });

  test('invalid values refuse the Pod, naming every bad annotation', () => {
    const r = review(
      pod({
        'dapr.io/app-port': 'http',
        'dapr.io/app-protocol': 'websocket',
        'dapr.io/log-level': 'verbose',
        'dapr.io/sidecar-cpu-limit': 'lots',
        'dapr.io/enable-metrics': 'maybe',
        'dapr.io/app-id': 'my.app',
        'dapr.io/api-token-secret': 'Bad_Name',
        'dapr.io/env': 'NOEQUALS',
        'dapr.io/app-max-concurrency': '0',
      }),
    );
    assert.equal(r.allowed, false);
    assert.equal(r.patch, undefined);
    assert.equal(r.status?.code, 400);
    const message = r.status?.message ?? '';
    for (const a of ['app-port', 'app-protocol', 'log-level', 'sidecar-cpu-limit', 'enable-metrics', 'app-id', 'api-token-secret', 'env', 'app-max-concurrency']) {
      assert.match(message, new RegExp(`dapr\\.io/${a}:`), a);
    }
  });

  test('port clashes inside the Pod are refused', () => {
    assert.match(review(pod({ 'dapr.io/app-port': '3500' })).status?.message ?? '', /app-port: 3500 is a port of the sidecar/);
    assert.match(review(pod({ 'dapr.io/metrics-port': '50001' })).status?.message ?? '', /metrics-port: 50001/);
  });
});
