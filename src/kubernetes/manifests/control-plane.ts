import { DEFAULT_SENTRY_PORT } from '../../sentry/names.js';
import { IN_CLUSTER_API_SERVER, IN_CLUSTER_CA_FILE, IN_CLUSTER_TOKEN_FILE } from '../constants.js';
import { version } from '../../version.js';
import {
  INJECTOR_NAME,
  INJECTOR_PORT,
  INJECTOR_TLS_SECRET,
  SENTRY_CREDENTIALS_SECRET,
  SENTRY_NAME,
  TRUST_BUNDLE_NAME,
  WEBHOOK_CONFIGURATION_NAME,
  WEBHOOK_NAME,
} from './names.js';

/** A Kubernetes object as it is printed: plain data, checked against the API schemas in the tests. */
export interface KubernetesObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

export interface ControlPlaneOptions {
  namespace: string;
  image: string;
  /** Replicas of the Sentry and of the injector each; more than one adds PodDisruptionBudgets and spreads them over nodes. */
  replicas: number;
  /** PEM of the CA that signed the injector's serving certificate; without it caBundle is left for the install steps. */
  webhookCaPem?: string;
  /** PEM of the trust anchors (the Sentry's ca.crt) for the trust-bundle ConfigMap; without it the ConfigMap is empty. */
  trustAnchorsPem?: string;
  /**
   * The cluster's ServiceAccount token issuer: the Sentry then accepts sidecars' projected tokens,
   * checked against the API server's signing keys (fetched with its own ServiceAccount token); without
   * it, join tokens only.
   */
  kubernetesIssuer?: string;
  /**
   * With the issuer: where the Sentry takes a pod's app id from. `pod` (Dapr's rule, the default): the
   * pod's `dapr.io/app-id` annotation, read from the API server; `serviceaccount`: the ServiceAccount's
   * name. Either way the Sentry looks the pod up and refuses a token whose pod is gone.
   */
  sentryAppIdFrom?: 'pod' | 'serviceaccount';
}

/** The issuer of ServiceAccount tokens in a cluster set up with the defaults (kubeadm and most distributions). */
export const DEFAULT_KUBERNETES_ISSUER = 'https://kubernetes.default.svc.cluster.local';


/** The uid and gid the image runs as (the `node` user of the Node.js images); numeric so that runAsNonRoot can be checked. */
const RUN_AS = 1000;

function labels(component: string): Record<string, string> {
  return {
    'app.kubernetes.io/name': component,
    'app.kubernetes.io/part-of': 'courier',
    'app.kubernetes.io/component': component === SENTRY_NAME ? 'sentry' : 'sidecar-injector',
    'app.kubernetes.io/version': version,
    'app.kubernetes.io/managed-by': 'courier',
  };
}

/** Only the stable labels select pods: the version label changes on upgrade, and a Deployment's selector cannot. */
function selector(component: string): Record<string, string> {
  return { 'app.kubernetes.io/name': component, 'app.kubernetes.io/part-of': 'courier' };
}

const containerSecurity = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  capabilities: { drop: ['ALL'] },
};

const podSecurity = {
  runAsNonRoot: true,
  runAsUser: RUN_AS,
  runAsGroup: RUN_AS,
  seccompProfile: { type: 'RuntimeDefault' },
};

/** The whole control plane, in the order kubectl should create it (Namespace first, webhook last: it needs the injector's Service). */
export function controlPlaneManifests(options: ControlPlaneOptions): KubernetesObject[] {
  const { namespace } = options;
  const meta = (name: string, component: string): KubernetesObject['metadata'] => ({ name, namespace, labels: labels(component) });
  const out: KubernetesObject[] = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace, labels: { 'app.kubernetes.io/part-of': 'courier' } } },
    ...sentryObjects(options, meta),
    ...injectorObjects(options, meta),
  ];
  return out;
}

type Meta = (name: string, component: string) => KubernetesObject['metadata'];

function deployment(options: ControlPlaneOptions, meta: Meta, name: string, pod: Record<string, unknown>): KubernetesObject {
  const spread =
    options.replicas > 1
      ? {
          // Replicas on different nodes, so that losing one node keeps the service up; preferred, not required, so small clusters still schedule them.
          topologySpreadConstraints: [
            { maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: selector(name) } },
          ],
        }
      : {};
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(name, name),
    spec: {
      replicas: options.replicas,
      selector: { matchLabels: selector(name) },
      template: {
        metadata: { labels: labels(name) },
        spec: { serviceAccountName: name, securityContext: podSecurity, ...spread, ...pod },
      },
    },
  };
}

/** One replica may be evicted at a time; a single replica gets no budget, which would block node drains for good. */
function disruptionBudget(options: ControlPlaneOptions, meta: Meta, name: string): KubernetesObject[] {
  if (options.replicas <= 1) return [];
  return [{ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: meta(name, name), spec: { maxUnavailable: 1, selector: { matchLabels: selector(name) } } }];
}

function tcpProbes(port: number): Record<string, unknown> {
  // Neither server has a plain-HTTP health endpoint yet: a TCP connect shows that it listens.
  return {
    startupProbe: { tcpSocket: { port }, periodSeconds: 2, failureThreshold: 30 },
    readinessProbe: { tcpSocket: { port }, periodSeconds: 5, failureThreshold: 3 },
    livenessProbe: { tcpSocket: { port }, periodSeconds: 10, failureThreshold: 6 },
  };
}

/** Node.js needs a writable /tmp now and then (the root filesystem is read-only). */
const tmpVolume = { name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } };
const tmpMount = { name: 'tmp', mountPath: '/tmp' };

function sentryObjects(options: ControlPlaneOptions, meta: Meta): KubernetesObject[] {
  const name = SENTRY_NAME;
  const { namespace } = options;
  const port = DEFAULT_SENTRY_PORT;
  const credentials = '/var/run/courier/credentials';
  const secretDir = '/var/run/courier/secret';
  const container = {
    name: 'sentry',
    image: options.image,
    imagePullPolicy: 'IfNotPresent',
    args: [
      'sentry',
      '--issuer-credentials',
      credentials,
      // The Sentry refuses key files its group or others can read, and a Secret volume's files are root's
      // (group-readable with an fsGroup): it copies them, owner-only, into memory when it starts.
      '--issuer-credentials-from',
      secretDir,
      '--port',
      String(port),
      '--listen-address',
      '0.0.0.0',
      '--control-plane-namespace',
      namespace,
      '--log-as-json',
      ...(options.kubernetesIssuer === undefined
        ? []
        : [
            '--kubernetes-issuer',
            options.kubernetesIssuer,
            // The API server's key set, read with the Sentry's own token (the issuer-discovery role below).
            '--kubernetes-jwks-url',
            `${IN_CLUSTER_API_SERVER}/openid/v1/jwks`,
            '--kubernetes-jwks-ca-file',
            IN_CLUSTER_CA_FILE,
            '--kubernetes-jwks-token-file',
            IN_CLUSTER_TOKEN_FILE,
            // The pod each token was issued for (the pods-reader role below): gone pods' tokens are refused.
            '--kubernetes-api-server',
            IN_CLUSTER_API_SERVER,
            '--kubernetes-api-ca-file',
            IN_CLUSTER_CA_FILE,
            '--kubernetes-api-token-file',
            IN_CLUSTER_TOKEN_FILE,
            '--kubernetes-app-id-from',
            options.sentryAppIdFrom ?? 'pod',
          ]),
    ],
    env: [
      { name: 'NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      { name: 'COURIER_HOME', value: '/tmp/courier' },
    ],
    ports: [{ name: 'grpc', containerPort: port, protocol: 'TCP' }],
    ...tcpProbes(port),
    resources: { requests: { cpu: '20m', memory: '64Mi' }, limits: { cpu: '500m', memory: '256Mi' } },
    securityContext: containerSecurity,
    volumeMounts: [{ name: 'secret', mountPath: secretDir, readOnly: true }, { name: 'credentials', mountPath: credentials }, tmpMount],
  };
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(name, name), automountServiceAccountToken: true },
    // Least privilege: the Sentry checks sidecars' ServiceAccount tokens itself, against the API server's
    // signing keys (Kubernetes' own read-only issuer-discovery role lets it fetch them), and reads the
    // pod each token names (get on pods, nothing else: no list, no watch, no secrets).
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name, labels: labels(name) },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:service-account-issuer-discovery' },
      subjects: [{ kind: 'ServiceAccount', name, namespace }],
    },
    ...(options.kubernetesIssuer === undefined
      ? []
      : [
          {
            apiVersion: 'rbac.authorization.k8s.io/v1',
            kind: 'ClusterRole',
            metadata: { name: `${name}-pods`, labels: labels(name) },
            rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }],
          },
          {
            apiVersion: 'rbac.authorization.k8s.io/v1',
            kind: 'ClusterRoleBinding',
            metadata: { name: `${name}-pods`, labels: labels(name) },
            roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: `${name}-pods` },
            subjects: [{ kind: 'ServiceAccount', name, namespace }],
          },
        ]),
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        ...meta(TRUST_BUNDLE_NAME, name),
        annotations: { 'courier.dev/description': "the trust anchors (the Sentry's ca.crt) that every sidecar verifies certificates against" },
      },
      data: { 'ca.crt': options.trustAnchorsPem ?? '' },
    },
    deployment(options, meta, name, {
      automountServiceAccountToken: true,
      containers: [container],
      volumes: [
        { name: 'secret', secret: { secretName: SENTRY_CREDENTIALS_SECRET, defaultMode: 0o444 } },
        { name: 'credentials', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } },
        tmpVolume,
      ],
    }),
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta(name, name),
      spec: { selector: selector(name), ports: [{ name: 'grpc', port: 443, targetPort: 'grpc', protocol: 'TCP', appProtocol: 'grpc' }] },
    },
    ...disruptionBudget(options, meta, name),
  ];
}

function injectorObjects(options: ControlPlaneOptions, meta: Meta): KubernetesObject[] {
  const name = INJECTOR_NAME;
  const { namespace } = options;
  const withAnchors = options.trustAnchorsPem !== undefined && options.trustAnchorsPem.includes('-----BEGIN CERTIFICATE-----');
  const container = {
    name: 'injector',
    image: options.image,
    imagePullPolicy: 'IfNotPresent',
    args: [
      'injector',
      '--port',
      String(INJECTOR_PORT),
      '--tls-cert-file',
      '/tls/tls.crt',
      '--tls-key-file',
      '/tls/tls.key',
      // The image the injected sidecars run: the same as the control plane's, so that they upgrade together.
      '--image',
      options.image,
      '--namespace',
      namespace,
      // With the trust anchors known, the injected sidecars get them and run with mTLS; without them the
      // injector starts anyway and its sidecars run without mTLS (it logs so).
      ...(withAnchors ? ['--trust-anchors-file', '/trust/ca.crt'] : []),
    ],
    env: [{ name: 'NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } }],
    ports: [{ name: 'https', containerPort: INJECTOR_PORT, protocol: 'TCP' }],
    ...tcpProbes(INJECTOR_PORT),
    resources: { requests: { cpu: '10m', memory: '64Mi' }, limits: { cpu: '500m', memory: '256Mi' } },
    securityContext: containerSecurity,
    volumeMounts: [{ name: 'tls', mountPath: '/tls', readOnly: true }, ...(withAnchors ? [{ name: 'trust', mountPath: '/trust', readOnly: true }] : []), tmpMount],
  };
  const clientConfig: Record<string, unknown> = { service: { name, namespace, path: '/mutate', port: 443 } };
  if (options.webhookCaPem !== undefined) clientConfig.caBundle = Buffer.from(options.webhookCaPem).toString('base64');
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(name, name), automountServiceAccountToken: true },
    // Least privilege: read the one ConfigMap whose trust anchors go into the sidecars it injects, in its own namespace.
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: meta(name, name),
      rules: [{ apiGroups: [''], resources: ['configmaps'], resourceNames: [TRUST_BUNDLE_NAME], verbs: ['get', 'watch'] }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: meta(name, name),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ kind: 'ServiceAccount', name, namespace }],
    },
    deployment(options, meta, name, {
      automountServiceAccountToken: true,
      containers: [container],
      volumes: [
        { name: 'tls', secret: { secretName: INJECTOR_TLS_SECRET, defaultMode: 0o444 } },
        ...(withAnchors ? [{ name: 'trust', configMap: { name: TRUST_BUNDLE_NAME } }] : []),
        tmpVolume,
      ],
    }),
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta(name, name),
      spec: { selector: selector(name), ports: [{ name: 'https', port: 443, targetPort: 'https', protocol: 'TCP' }] },
    },
    ...disruptionBudget(options, meta, name),
    {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: {
        name: WEBHOOK_CONFIGURATION_NAME,
        labels: labels(name),
        annotations: {
          'courier.dev/ca-bundle':
            options.webhookCaPem === undefined
              ? `set webhooks[0].clientConfig.caBundle to the base64 PEM of the CA that signed the Secret ${namespace}/${INJECTOR_TLS_SECRET} (docs/kubernetes.md#install)`
              : 'caBundle embedded by courier kubernetes manifests --webhook-ca-file',
        },
      },
      webhooks: [
        {
          name: WEBHOOK_NAME,
          clientConfig,
          rules: [{ apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], operations: ['CREATE'], scope: 'Namespaced' }],
          // As Dapr: a pod is created without a sidecar rather than not at all when the injector is down.
          failurePolicy: 'Ignore',
          sideEffects: 'None',
          admissionReviewVersions: ['v1'],
          timeoutSeconds: 10,
          // Whether to inject is decided from the pod's dapr.io/enabled annotation, which selectors cannot see;
          // the selector only keeps the API server from calling the injector for the system's and its own pods.
          namespaceSelector: {
            matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [...new Set(['kube-system', 'kube-node-lease', 'kube-public', namespace])] }],
          },
        },
      ],
    },
  ];
}
