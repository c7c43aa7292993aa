import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { parseAllDocuments } from 'yaml';
import { CourierError } from '../../errors/index.js';
import { KubernetesNameResolver, parseKubernetesMetadata } from '../../nameresolution/kubernetes/index.js';
import { formatManifests, manifestObjects, parseManifestArgs, type ManifestRequest } from './command.js';
import type { KubernetesObject } from './control-plane.js';
import { appFromId, appsFromWorkloadText } from './discovery.js';
import { validateObject } from './testing/schema.js';
import { parseFlags } from '../../cli/flags.js';
import { sentryFlags } from '../../cli/sentry-command.js';

function request(argv: string[]): ManifestRequest {
  const r = parseManifestArgs(argv);
  assert.notEqual(r, 'help');
  return r as ManifestRequest;
}

function objects(argv: string[]): KubernetesObject[] {
  return manifestObjects(request(argv));
}

const find = (all: readonly KubernetesObject[], kind: string, name?: string): KubernetesObject[] =>
  all.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));

function one(all: readonly KubernetesObject[], kind: string, name?: string): KubernetesObject {
  const found = find(all, kind, name);
  assert.equal(found.length, 1, `expected one ${kind} ${name ?? ''}, found ${found.length}`);
  return found[0] as KubernetesObject;
}

/** A path into plain data, for assertions. */
function at(value: unknown, ...path: (string | number)[]): unknown {
  let v = value;
  for (const key of path) v = (v as Record<string | number, unknown> | undefined)?.[key];
  return v;
}

function podSpec(deployment: KubernetesObject): Record<string, unknown> {
  return at(deployment, 'spec', 'template', 'spec') as Record<string, unknown>;
}

const deploymentYaml = (annotations: string, extra = ''): string => `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: orders
${extra}spec:
  selector:
    matchLabels: { app: orders }
  template:
    metadata:
      labels: { app: orders, tier: backend }
      annotations:
${annotations}
    spec:
      containers: [{ name: orders, image: orders:1 }]
`;

test('every generated object matches its Kubernetes schema, with one and with three replicas, in YAML and JSON', () => {
  for (const argv of [[], ['--replicas', '3', '--app-id', 'orders'], ['-n', 'mesh', '--replicas', '2', '--enable-mtls=false', '--app-id', 'a']]) {
    const all = objects(argv);
    for (const object of all) validateObject(object);
    const yamlDocs = parseAllDocuments(formatManifests(all, 'yaml')).map((d) => d.toJS() as unknown);
    assert.deepEqual(yamlDocs, JSON.parse(JSON.stringify(all)));
    const list = JSON.parse(formatManifests(all, 'json')) as { kind: string; items: unknown[] };
    assert.equal(list.kind, 'List');
    assert.deepEqual(list.items, yamlDocs);
  }
});

test('the schema check names the object that fails', () => {
  assert.throws(
    () => validateObject({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x', namespace: 'y' }, spec: { replicas: 'two' } }),
    /Deployment y\/x \(apps\/v1\) does not match its schema: .*replicas/,
  );
  assert.throws(() => validateObject({ apiVersion: 'v9', kind: 'Thing', metadata: { name: 'x' } }), /Thing x: no schema/);
});

test('the control plane: namespace, Sentry, injector, webhook, RBAC; one replica has no PodDisruptionBudget', () => {
  const all = objects([]);
  assert.equal(all[0]?.kind, 'Namespace');
  assert.equal(all[0]?.metadata.name, 'courier-system');
  assert.equal(all.at(-1)?.kind, 'MutatingWebhookConfiguration');
  for (const kind of ['Deployment', 'Service', 'ServiceAccount']) assert.equal(find(all, kind).length, 2, kind);
  // The Sentry may get pods (to check the pod a token names) and nothing else of the API.
  assert.deepEqual(at(one(all, 'ClusterRole', 'courier-sentry-pods'), 'rules'), [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }]);
  assert.equal(at(one(all, 'ClusterRoleBinding', 'courier-sentry-pods'), 'roleRef', 'name'), 'courier-sentry-pods');
  one(all, 'ClusterRoleBinding', 'courier-sentry');
  const sentryArgv = at(podSpec(one(all, 'Deployment', 'courier-sentry')), 'containers', 0, 'args') as string[];
  assert.equal(sentryArgv[sentryArgv.indexOf('--kubernetes-api-server') + 1], 'https://kubernetes.default.svc');
  assert.equal(sentryArgv[sentryArgv.indexOf('--kubernetes-app-id-from') + 1], 'pod', "Dapr's rule by default");
  one(all, 'Role', 'courier-sidecar-injector');
  one(all, 'RoleBinding', 'courier-sidecar-injector');
  one(all, 'ConfigMap', 'courier-trust-bundle');
  assert.equal(find(all, 'PodDisruptionBudget').length, 0);
  // Private keys never go into generated manifests.
  assert.equal(find(all, 'Secret').length, 0);

  const sentryService = one(all, 'Service', 'courier-sentry');
  assert.deepEqual(at(sentryService, 'spec', 'ports'), [{ name: 'grpc', port: 443, targetPort: 'grpc', protocol: 'TCP', appProtocol: 'grpc' }]);
  const sentry = podSpec(one(all, 'Deployment', 'courier-sentry'));
  assert.equal(at(sentry, 'containers', 0, 'ports', 0, 'containerPort'), 50001);
  const injectorService = one(all, 'Service', 'courier-sidecar-injector');
  assert.deepEqual(at(injectorService, 'spec', 'ports', 0), { name: 'https', port: 443, targetPort: 'https', protocol: 'TCP' });
  const injector = podSpec(one(all, 'Deployment', 'courier-sidecar-injector'));
  assert.equal(at(injector, 'containers', 0, 'ports', 0, 'containerPort'), 4000);

  for (const name of ['courier-sentry', 'courier-sidecar-injector']) {
    const deployment = one(all, 'Deployment', name);
    const pod = podSpec(deployment);
    assert.deepEqual(at(deployment, 'spec', 'selector', 'matchLabels'), at(one(all, 'Service', name), 'spec', 'selector'), `${name}: the Service selects the Deployment's pods`);
    assert.equal(pod.serviceAccountName, name);
    assert.equal(at(pod, 'securityContext', 'runAsNonRoot'), true);
    const containers = [...((pod.containers as unknown[]) ?? []), ...((pod.initContainers as unknown[] | undefined) ?? [])];
    for (const c of containers) {
      assert.equal(at(c, 'securityContext', 'readOnlyRootFilesystem'), true, name);
      assert.equal(at(c, 'securityContext', 'allowPrivilegeEscalation'), false, name);
      assert.deepEqual(at(c, 'securityContext', 'capabilities', 'drop'), ['ALL'], name);
      assert.ok(at(c, 'resources', 'requests', 'memory') !== undefined && at(c, 'resources', 'limits', 'memory') !== undefined, name);
    }
    const main = (pod.containers as unknown[])[0];
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      assert.equal(at(main, probe, 'tcpSocket', 'port'), at(main, 'ports', 0, 'containerPort'), `${name} ${probe}`);
    }
  }
  // Least privilege: the Sentry may only read the token signing keys; the injector may only read the trust bundle.
  assert.equal(at(one(all, 'ClusterRoleBinding', 'courier-sentry'), 'roleRef', 'name'), 'system:service-account-issuer-discovery');
  assert.deepEqual(at(one(all, 'Role'), 'rules', 0, 'resourceNames'), ['courier-trust-bundle']);
});

test("the webhook: Dapr's failure policy and path, v1 reviews, no side effects, system namespaces left out", () => {
  const all = objects(['-n', 'mesh']);
  const config = one(all, 'MutatingWebhookConfiguration', 'courier-sidecar-injector');
  const hook = at(config, 'webhooks', 0) as Record<string, unknown>;
  assert.equal(hook.failurePolicy, 'Ignore');
  assert.equal(hook.sideEffects, 'None');
  assert.deepEqual(hook.admissionReviewVersions, ['v1']);
  assert.equal(hook.timeoutSeconds, 10);
  assert.deepEqual(at(hook, 'clientConfig', 'service'), { name: 'courier-sidecar-injector', namespace: 'mesh', path: '/mutate', port: 443 });
  assert.equal(at(hook, 'clientConfig', 'caBundle'), undefined);
  assert.match(String(at(config, 'metadata', 'annotations', 'courier.dev/ca-bundle')), /caBundle/);
  assert.deepEqual(hook.rules, [{ apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], operations: ['CREATE'], scope: 'Namespaced' }]);
  assert.deepEqual(at(hook, 'namespaceSelector'), {
    matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'kube-node-lease', 'kube-public', 'mesh'] }],
  });
  assert.equal(hook.objectSelector, undefined);
});

test('--webhook-ca-file embeds the caBundle; --trust-anchors-file fills the trust bundle', () => {
  const dir = mkdtempSync(join(tmpdir(), 'courier-k8s-'));
  try {
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    writeFileSync(join(dir, 'ca.crt'), pem);
    writeFileSync(join(dir, 'not.crt'), 'hello');
    const all = objects(['--webhook-ca-file', join(dir, 'ca.crt'), '--trust-anchors-file', join(dir, 'ca.crt')]);
    const config = one(all, 'MutatingWebhookConfiguration');
    assert.equal(at(config, 'webhooks', 0, 'clientConfig', 'caBundle'), Buffer.from(pem).toString('base64'));
    validateObject(config);
    assert.equal(at(one(all, 'ConfigMap'), 'data', 'ca.crt'), pem);
    // The injector hands the anchors to the sidecars it injects (so they run with mTLS), from the bundle mounted at /trust.
    const injectorPod = at(one(all, 'Deployment', 'courier-sidecar-injector'), 'spec', 'template', 'spec') as { containers: { args: string[]; volumeMounts: { name: string; mountPath: string }[] }[]; volumes: { name: string; configMap?: { name: string } }[] };
    const injector = injectorPod.containers[0];
    assert.ok(injector !== undefined);
    assert.deepEqual(injector.args.slice(injector.args.indexOf('--trust-anchors-file'), injector.args.indexOf('--trust-anchors-file') + 2), ['--trust-anchors-file', '/trust/ca.crt']);
    assert.ok(injector.volumeMounts.some((m) => m.name === 'trust' && m.mountPath === '/trust'));
    assert.deepEqual(injectorPod.volumes.find((v) => v.name === 'trust')?.configMap, { name: 'courier-trust-bundle' });
    const withoutAnchors = one(objects([]), 'Deployment', 'courier-sidecar-injector');
    assert.ok(!(at(withoutAnchors, 'spec', 'template', 'spec', 'containers', 0, 'args') as string[]).includes('--trust-anchors-file'));
    assert.throws(() => parseManifestArgs(['--webhook-ca-file', join(dir, 'not.crt')]), /--webhook-ca-file: .*not\.crt holds no PEM certificate/);
    assert.throws(() => parseManifestArgs(['--trust-anchors-file', join(dir, 'missing.crt')]), /--trust-anchors-file: .*missing\.crt: .*ENOENT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--namespace, --image and --replicas reach every place they belong', () => {
  const all = objects(['--namespace', 'mesh-prod', '--image', 'registry.example.com/courier:9.9.9', '--replicas', '3']);
  for (const o of all) {
    const clusterScoped = ['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'MutatingWebhookConfiguration'].includes(o.kind);
    assert.equal(o.metadata.namespace, clusterScoped ? undefined : 'mesh-prod', `${o.kind} ${o.metadata.name}`);
    for (const subject of (o.subjects as { namespace?: string }[] | undefined) ?? []) assert.equal(subject.namespace, 'mesh-prod');
  }
  assert.equal(one(all, 'Namespace').metadata.name, 'mesh-prod');
  const deployments = find(all, 'Deployment');
  for (const d of deployments) {
    assert.equal(at(d, 'spec', 'replicas'), 3);
    const pod = podSpec(d);
    for (const c of [...(pod.containers as unknown[]), ...((pod.initContainers as unknown[] | undefined) ?? [])]) {
      assert.equal(at(c, 'image'), 'registry.example.com/courier:9.9.9');
      // The image's entrypoint is the courier CLI and it has no shell (scripts/image/build-offline.sh).
      assert.equal(at(c, 'command'), undefined, 'no container overrides the entrypoint');
    }
    assert.equal(at(pod, 'topologySpreadConstraints', 0, 'topologyKey'), 'kubernetes.io/hostname');
  }
  const sentryArgs = at(podSpec(one(all, 'Deployment', 'courier-sentry')), 'containers', 0, 'args') as string[];
  assert.equal(sentryArgs[sentryArgs.indexOf('--control-plane-namespace') + 1], 'mesh-prod');
  assert.equal(sentryArgs[sentryArgs.indexOf('--issuer-credentials-from') + 1], '/var/run/courier/secret');
  const injectorArgs = at(podSpec(one(all, 'Deployment', 'courier-sidecar-injector')), 'containers', 0, 'args') as string[];
  assert.deepEqual(injectorArgs, [
    'injector',
    '--port',
    '4000',
    '--tls-cert-file',
    '/tls/tls.crt',
    '--tls-key-file',
    '/tls/tls.key',
    '--image',
    'registry.example.com/courier:9.9.9',
    '--namespace',
    'mesh-prod',
  ]);
  assert.equal(at(one(all, 'MutatingWebhookConfiguration'), 'webhooks', 0, 'clientConfig', 'service', 'namespace'), 'mesh-prod');

  const pdbs = find(all, 'PodDisruptionBudget');
  assert.deepEqual(pdbs.map((p) => p.metadata.name).sort(), ['courier-sentry', 'courier-sidecar-injector']);
  for (const pdb of pdbs) {
    assert.equal(at(pdb, 'spec', 'maxUnavailable'), 1);
    assert.deepEqual(at(pdb, 'spec', 'selector', 'matchLabels'), at(one(all, 'Deployment', pdb.metadata.name), 'spec', 'selector', 'matchLabels'));
  }
  assert.equal(find(objects(['--replicas', '1']), 'PodDisruptionBudget').length, 0);
});

test("an app's discovery Service: <app-id>-dapr, headless, Dapr's four ports, selecting the pod template's labels", () => {
  const [app] = appsFromWorkloadText(deploymentYaml('        dapr.io/enabled: "true"\n        dapr.io/app-id: orders', '  namespace: shop\n'), 'orders.yaml', 'default');
  assert.ok(app !== undefined);
  const [service] = manifestObjects({ controlPlane: undefined, apps: [app], configurations: [], mtls: true, output: 'yaml' });
  assert.ok(service !== undefined);
  validateObject(service);
  assert.equal(service.metadata.name, 'orders-dapr');
  assert.equal(service.metadata.namespace, 'shop');
  assert.equal(service.metadata.labels?.['dapr.io/enabled'], 'true');
  assert.equal(at(service, 'spec', 'clusterIP'), 'None');
  assert.deepEqual(at(service, 'spec', 'selector'), { app: 'orders', tier: 'backend' });
  assert.deepEqual(
    (at(service, 'spec', 'ports') as { name: string; port: number; targetPort: number; appProtocol: string }[]).map((p) => [p.name, p.port, p.targetPort, p.appProtocol]),
    [
      ['dapr-http', 80, 3500, 'http'],
      ['dapr-grpc', 50001, 50001, 'grpc'],
      ['dapr-internal', 50002, 50002, 'tls'],
      ['dapr-metrics', 9090, 9090, 'http'],
    ],
  );
  const [plain] = manifestObjects({ controlPlane: undefined, apps: [appFromId('checkout', 'default')], configurations: [], mtls: false, output: 'yaml' });
  assert.deepEqual(at(plain, 'spec', 'selector'), { 'dapr.io/app-id': 'checkout' });
  assert.equal(at(plain, 'spec', 'ports', 2, 'appProtocol'), 'grpc');
});

test('the Service is the name the Kubernetes resolver looks up', async () => {
  const [app] = appsFromWorkloadText(deploymentYaml('        dapr.io/enabled: "true"\n        dapr.io/app-id: orders', '  namespace: shop\n'), 'orders.yaml', 'default');
  const [service] = manifestObjects({ controlPlane: undefined, apps: [app as NonNullable<typeof app>], configurations: [], mtls: true, output: 'yaml' });
  const resolver = new KubernetesNameResolver(parseKubernetesMetadata(undefined, 'test'), pino({ level: 'silent' }));
  await resolver.register({ appId: 'me', namespace: 'shop', host: '10.0.0.1', internalPort: 50002, httpPort: 3500 });
  const target = resolver.target({ appId: 'orders', namespace: 'shop' });
  assert.equal(target.host, `${service?.metadata.name}.${service?.metadata.namespace}.svc.cluster.local`);
  assert.equal(target.port, at(service, 'spec', 'ports', 2, 'port'));
});

test('workload files: several documents, a List, StatefulSets; unannotated workloads skipped beside annotated ones', () => {
  const text = [
    deploymentYaml('        dapr.io/enabled: "true"\n        dapr.io/app-id: orders'),
    deploymentYaml('        other: x').replace('name: orders', 'name: plain'),
    'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: c }\n',
  ].join('\n---\n');
  assert.deepEqual(
    appsFromWorkloadText(text, 'f.yaml', 'team').map((a) => [a.appId, a.namespace]),
    [['orders', 'team']],
  );
  const list = {
    apiVersion: 'v1',
    kind: 'List',
    items: [
      {
        apiVersion: 'apps/v1',
        kind: 'StatefulSet',
        metadata: { name: 'db', namespace: 'data' },
        spec: { template: { metadata: { labels: { app: 'db' }, annotations: { 'dapr.io/enabled': true, 'dapr.io/app-id': 'db' } } } },
      },
    ],
  };
  assert.deepEqual(appsFromWorkloadText(JSON.stringify(list), 'l.json', 'default')[0]?.podLabels, { app: 'db' });
});

test('bad inputs give errors that say what is wrong and where', () => {
  const fails = (f: () => unknown, pattern: RegExp): void => {
    assert.throws(f, (e: unknown) => e instanceof CourierError && pattern.test(e.message), String(pattern));
  };
  fails(() => parseManifestArgs(['--app-id', 'Orders_Svc']), /--app-id: .*"Orders_Svc-dapr" must be an RFC 1123 label/);
  fails(() => parseManifestArgs(['--app-id', 'a.b']), /--app-id: .*must not contain dots/);
  fails(() => parseManifestArgs(['--app-id', 'x'.repeat(59)]), /at most 58/);
  fails(() => parseManifestArgs(['--namespace', 'Courier_System']), /--namespace: the control plane namespace: "Courier_System" is not a valid namespace name: an RFC 1123 label/);
  fails(() => parseManifestArgs(['--namespace', `n${'x'.repeat(63)}`]), /not a valid namespace name/);
  fails(() => parseManifestArgs(['--app-namespace', '-x']), /--app-namespace: .*not a valid namespace name/);
  fails(() => parseManifestArgs(['--replicas', '0']), /--replicas: 0 is not a number of at least 1/);
  fails(() => parseManifestArgs(['--image', 'a b']), /--image: "a b" is not an image reference/);
  fails(() => parseManifestArgs(['-o', 'toml']), /--output: "toml" is not yaml or json/);
  fails(() => parseManifestArgs(['--apps-only']), /--apps-only needs at least one --app or --app-id/);
  fails(() => parseManifestArgs(['--app', 'nowhere/orders.yaml']), /--app: nowhere\/orders\.yaml: .*ENOENT/);
  fails(() => parseManifestArgs(['--app-id', 'a', '--app', 'a']), /--app-id a: the app id a in default is already used by --app a/);

  fails(() => appsFromWorkloadText(deploymentYaml('        other: x'), 'orders.yaml', 'default'), /orders\.yaml: no app to make a discovery Service for: Deployment orders has no dapr\.io\/enabled: "true" annotation on the pod template/);
  fails(() => appsFromWorkloadText(deploymentYaml('        dapr.io/enabled: "false"\n        dapr.io/app-id: orders'), 'o.yaml', 'default'), /Deployment orders has no dapr\.io\/enabled/);
  fails(() => appsFromWorkloadText(deploymentYaml('        dapr.io/enabled: "true"'), 'o.yaml', 'default'), /o\.yaml: Deployment orders: its pod template has dapr\.io\/enabled but no dapr\.io\/app-id annotation/);
  fails(() => appsFromWorkloadText(deploymentYaml('        dapr.io/enabled: "true"\n        dapr.io/app-id: Bad_Id'), 'o.yaml', 'default'), /o\.yaml: Deployment orders: .*"Bad_Id-dapr" must be an RFC 1123 label/);
  fails(() => appsFromWorkloadText(deploymentYaml('        dapr.io/enabled: "true"\n        dapr.io/app-id: ok', '  namespace: Bad\n'), 'o.yaml', 'default'), /metadata\.namespace: "Bad" is not a valid namespace name/);
  fails(() => appsFromWorkloadText('apiVersion: v1\nkind: Service\nmetadata: { name: s }\n', 's.yaml', 'default'), /s\.yaml: no app .*holds no Deployment/);
  fails(() => appsFromWorkloadText('a: [1, 2', 'bad.yaml', 'default'), /bad\.yaml: not valid YAML/);
});

test("the Sentry checks projected ServiceAccount tokens against the cluster's issuer by default, with flags its parser takes; off leaves join tokens only", () => {
  const sentryArgs = (all: readonly KubernetesObject[]): string[] => at(one(all, 'Deployment', 'courier-sentry'), 'spec', 'template', 'spec', 'containers', 0, 'args') as string[];
  const args = sentryArgs(objects([]));
  const value = (flag: string): string | undefined => args[args.indexOf(flag) + 1];
  assert.equal(value('--kubernetes-issuer'), 'https://kubernetes.default.svc.cluster.local');
  assert.equal(value('--kubernetes-jwks-url'), 'https://kubernetes.default.svc/openid/v1/jwks');
  assert.equal(value('--kubernetes-jwks-ca-file'), '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt');
  assert.equal(value('--kubernetes-jwks-token-file'), '/var/run/secrets/kubernetes.io/serviceaccount/token');
  const parsed = parseFlags('sentry', args.slice(1), sentryFlags).values;
  assert.equal(parsed.get('kubernetes-issuer'), 'https://kubernetes.default.svc.cluster.local');
  assert.equal(sentryArgs(objects(['--kubernetes-issuer', 'https://oidc.example.com/id/ABC'])).includes('https://oidc.example.com/id/ABC'), true);
  assert.ok(!sentryArgs(objects(['--kubernetes-issuer', 'off'])).some((a) => a.startsWith('--kubernetes-')));
  assert.throws(() => parseManifestArgs(['--kubernetes-issuer', 'http://plain.example']), /--kubernetes-issuer: "http:\/\/plain\.example" is not an https URL/);
});
