// Turns a Pod and its sidecar settings into the RFC 6902 JSON patch that adds the `courier` container, the
// environment its app containers need and the volumes the sidecar mounts.
import { SENTRY_TOKEN_AUDIENCE, SENTRY_TOKEN_DIR, SENTRY_TOKEN_FILE } from '../constants.js';
import { SIDECAR_GRPC_PORT, SIDECAR_HTTP_PORT, SIDECAR_PUBLIC_PORT, type ProbeSettings, type SidecarSettings } from './annotations.js';

/** The container the injector adds; a Pod that already has it (or Dapr's `daprd`) is left alone. */
export const SIDECAR_CONTAINER_NAME = 'courier';
export const SIDECAR_CONTAINER_NAMES: readonly string[] = [SIDECAR_CONTAINER_NAME, 'daprd'];

/** Volume names as Dapr's injector uses them where Dapr has one, so tooling written for Dapr finds them. */
export const TOKEN_VOLUME = 'dapr-identity-token';
export const TRUST_ANCHORS_VOLUME = 'courier-trust-anchors';
export const TRUST_ANCHORS_DIR = '/var/run/secrets/courier.io/trust-anchors';
export const CONFIG_VOLUME = 'courier-config';
/** `dapr.io/unix-domain-socket-path`: an emptyDir shared by the sidecar (here) and the app containers (at the annotated path), as Dapr's. */
export const SOCKET_VOLUME = 'dapr-unix-domain-socket';
export const SOCKET_DIR = '/var/run/dapr-sockets';
export const CONFIG_DIR = '/etc/courier/config';
/** The key of the `dapr.io/config` ConfigMap that holds the Configuration document. */
export const CONFIG_KEY = 'config.yaml';
/** The Kubernetes Secret key Dapr reads API tokens from. */
export const TOKEN_SECRET_KEY = 'token';
/** The projected token lives two hours; the kubelet refreshes it, and the sidecar only needs it to start. */
const TOKEN_EXPIRATION_SECONDS = 7200;

/** How the injector itself was configured (`courier injector` flags). */
export interface InjectorOptions {
  /** The image of the sidecar, unless a Pod names its own with `dapr.io/sidecar-image`. */
  readonly image: string;
  readonly controlPlaneNamespace: string;
  readonly sentryAddress: string;
  /**
   * The trust anchors that turn mTLS on: PEM given to every sidecar as `DAPR_TRUST_ANCHORS`, or a
   * ConfigMap that exists in every app namespace (e.g. distributed by trust-manager) mounted and watched.
   * Undefined: sidecars run without mTLS.
   */
  readonly trustAnchors: { readonly pem: string } | { readonly configMap: string; readonly key: string } | undefined;
}

export interface PatchOperation {
  readonly op: 'add' | 'replace';
  readonly path: string;
  readonly value: unknown;
}

/** The parts of a Pod the injector reads; everything else passes through untouched. */
export interface PodView {
  readonly metadata?: { readonly labels?: Readonly<Record<string, string>> };
  readonly spec: {
    readonly containers: readonly {
      readonly name?: string;
      readonly env?: readonly { readonly name?: string }[];
      readonly volumeMounts?: readonly { readonly mountPath?: string }[];
    }[];
    readonly volumes?: readonly { readonly name?: string }[];
  };
}

type EnvVar = { name: string; value: string } | { name: string; valueFrom: Record<string, unknown> };

export type PatchResult = { readonly ok: true; readonly patch: PatchOperation[]; readonly warnings: string[] } | { readonly ok: false; readonly problems: string[] };

/** Escapes one JSON-pointer segment (RFC 6901): label keys such as `dapr.io/app-id` contain a slash. */
export function pointerSegment(key: string): string {
  return key.replaceAll('~', '~0').replaceAll('/', '~1');
}

export function buildPatch(pod: PodView, settings: SidecarSettings, options: InjectorOptions): PatchResult {
  const warnings: string[] = [];
  const volumes = sidecarVolumes(settings, options);
  const taken = new Set((pod.spec.volumes ?? []).map((v) => v.name));
  const clashes = volumes.map((v) => v.volume.name).filter((name) => taken.has(name));
  if (clashes.length > 0) return { ok: false, problems: clashes.map((name) => `the Pod already has a volume named ${name}, which the sidecar needs`) };

  // The Pod's own volumes the annotations mount into the sidecar; one the Pod lacks is skipped with a warning, as Dapr does.
  const podMounts: SidecarVolume['mount'][] = [];
  for (const m of settings.volumeMounts) {
    if (!taken.has(m.volume)) {
      warnings.push(`dapr.io/volume-mounts${m.readOnly ? '' : '-rw'}: the Pod has no volume named ${m.volume}; it is not mounted into the sidecar`);
      continue;
    }
    podMounts.push({ name: m.volume, mountPath: m.path, readOnly: m.readOnly });
  }
  const own = volumes.map((v) => v.mount.mountPath);
  const overlapping = podMounts.filter((m) => own.some((path) => path === m.mountPath || path.startsWith(`${m.mountPath}/`) || m.mountPath.startsWith(`${path}/`)));
  if (overlapping.length > 0) {
    return { ok: false, problems: overlapping.map((m) => `dapr.io/volume-mounts: ${m.mountPath} overlaps a directory the sidecar mounts itself (${own.join(', ')})`) };
  }

  const patch: PatchOperation[] = [];
  const labels: Record<string, string> = { 'dapr.io/sidecar-injected': 'true', 'dapr.io/metrics-enabled': String(settings.enableMetrics) };
  if (settings.appId.length <= 63) labels['dapr.io/app-id'] = settings.appId;
  else warnings.push(`the app id "${settings.appId}" is longer than a label value may be: the Pod gets no dapr.io/app-id label`);
  if (pod.metadata?.labels === undefined) {
    if (pod.metadata === undefined) patch.push({ op: 'add', path: '/metadata', value: {} });
    patch.push({ op: 'add', path: '/metadata/labels', value: labels });
  } else {
    for (const [key, value] of Object.entries(labels)) {
      patch.push({ op: key in pod.metadata.labels ? 'replace' : 'add', path: `/metadata/labels/${pointerSegment(key)}`, value });
    }
  }

  // Every app container learns where its sidecar is, unless it already says so itself.
  const appEnv = [
    { name: 'DAPR_HTTP_PORT', value: String(SIDECAR_HTTP_PORT) },
    { name: 'DAPR_GRPC_PORT', value: String(SIDECAR_GRPC_PORT) },
  ];
  pod.spec.containers.forEach((container, i) => {
    const present = new Set((container.env ?? []).map((e) => e.name));
    const missing = appEnv.filter((e) => !present.has(e.name));
    if (missing.length === 0) return;
    if (container.env === undefined) patch.push({ op: 'add', path: `/spec/containers/${i}/env`, value: missing });
    else for (const e of missing) patch.push({ op: 'add', path: `/spec/containers/${i}/env/-`, value: e });
  });

  // The socket directory, where each app container asked for it.
  const socketPath = settings.unixDomainSocketPath;
  if (socketPath !== undefined) {
    const mount = { name: SOCKET_VOLUME, mountPath: socketPath };
    pod.spec.containers.forEach((c, i) => {
      if ((c.volumeMounts ?? []).some((m) => m.mountPath === socketPath)) {
        warnings.push(`container ${c.name ?? i} already mounts something at ${socketPath}: the sidecar's sockets are not mounted there`);
        return;
      }
      if (c.volumeMounts === undefined) patch.push({ op: 'add', path: `/spec/containers/${i}/volumeMounts`, value: [mount] });
      else patch.push({ op: 'add', path: `/spec/containers/${i}/volumeMounts/-`, value: mount });
    });
  }

  const container = sidecarContainer(settings, options, volumes, podMounts);
  patch.push({ op: 'add', path: '/spec/containers/-', value: container });
  if (pod.spec.volumes === undefined) patch.push({ op: 'add', path: '/spec/volumes', value: volumes.map((v) => v.volume) });
  else for (const v of volumes) patch.push({ op: 'add', path: '/spec/volumes/-', value: v.volume });
  return { ok: true, patch, warnings };
}

interface SidecarVolume {
  readonly volume: { name: string } & Record<string, unknown>;
  readonly mount: { name: string; mountPath: string; readOnly: boolean };
}

function sidecarVolumes(settings: SidecarSettings, options: InjectorOptions): SidecarVolume[] {
  const volume = (name: string, mountPath: string, source: Record<string, unknown>): SidecarVolume => ({
    volume: { name, ...source },
    mount: { name, mountPath, readOnly: true },
  });
  const out = [
    // A token for the Sentry's audience only: the app's own ServiceAccount token never leaves the API server's audience.
    volume(TOKEN_VOLUME, SENTRY_TOKEN_DIR, {
      projected: { sources: [{ serviceAccountToken: { audience: SENTRY_TOKEN_AUDIENCE, expirationSeconds: TOKEN_EXPIRATION_SECONDS, path: 'token' } }] },
    }),
  ];
  const anchors = options.trustAnchors;
  if (anchors !== undefined && 'configMap' in anchors) {
    out.push(volume(TRUST_ANCHORS_VOLUME, TRUST_ANCHORS_DIR, { configMap: { name: anchors.configMap, items: [{ key: anchors.key, path: anchors.key }] } }));
  }
  if (settings.config !== undefined) {
    out.push(volume(CONFIG_VOLUME, CONFIG_DIR, { configMap: { name: settings.config, items: [{ key: CONFIG_KEY, path: CONFIG_KEY }] } }));
  }
  if (settings.unixDomainSocketPath !== undefined) {
    out.push({ volume: { name: SOCKET_VOLUME, emptyDir: {} }, mount: { name: SOCKET_VOLUME, mountPath: SOCKET_DIR, readOnly: false } });
  }
  return out;
}

function sidecarContainer(settings: SidecarSettings, options: InjectorOptions, volumes: readonly SidecarVolume[], podMounts: readonly SidecarVolume['mount'][]): Record<string, unknown> {
  const s = settings;
  const args = [
    'sidecar',
    '--app-id', s.appId,
    '--dapr-http-port', String(SIDECAR_HTTP_PORT),
    '--dapr-grpc-port', String(SIDECAR_GRPC_PORT),
    '--dapr-internal-grpc-port', String(s.internalGrpcPort),
    // Other sidecars reach this one on the Pod's address, through the headless <app-id>-dapr Service.
    '--dapr-internal-grpc-listen-address', '0.0.0.0',
    '--dapr-listen-addresses', s.listenAddresses.join(','),
    // The health endpoints alone, on the Pod's address, for the kubelet's probes (the API stays where it listens).
    '--dapr-public-port', String(SIDECAR_PUBLIC_PORT),
    // The kubernetes name resolver (unless the Configuration names another), nothing written to disk.
    '--mode', 'kubernetes',
  ];
  const flag = (name: string, value: string | number | boolean | undefined): void => {
    if (value === undefined) return;
    args.push(typeof value === 'boolean' ? `--${name}=${value}` : `--${name}`, ...(typeof value === 'boolean' ? [] : [String(value)]));
  };
  flag('app-port', s.appPort);
  flag('app-protocol', s.appProtocol);
  if (s.appSsl) flag('app-ssl', true);
  flag('app-channel-address', s.appChannelAddress);
  if (s.config !== undefined) flag('config', `${CONFIG_DIR}/${CONFIG_KEY}`);
  flag('log-level', s.logLevel);
  if (s.logAsJson) flag('log-as-json', true);
  flag('enable-metrics', s.enableMetrics);
  flag('metrics-port', s.metricsPort);
  if (s.enableProfiling) {
    flag('enable-profiling', true);
    flag('profile-port', s.profilePort);
  }
  flag('max-body-size', s.maxBodySize);
  flag('read-buffer-size', s.readBufferSize);
  flag('dapr-graceful-shutdown-seconds', s.gracefulShutdownSeconds);
  flag('enable-api-logging', s.enableApiLogging);
  flag('app-max-concurrency', s.appMaxConcurrency);
  if (s.appHealthCheck) flag('enable-app-health-check', true);
  flag('app-health-check-path', s.appHealthCheckPath);
  flag('app-health-probe-interval', s.appHealthProbeInterval);
  flag('app-health-probe-timeout', s.appHealthProbeTimeout);
  flag('app-health-threshold', s.appHealthThreshold);
  flag('dapr-block-shutdown-duration', s.blockShutdownDuration);
  if (s.unixDomainSocketPath !== undefined) flag('unix-domain-socket', SOCKET_DIR);

  const env = new Map<string, EnvVar>();
  const put = (e: EnvVar): void => void env.set(e.name, e);
  put({ name: 'NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } });
  put({ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } });
  const anchors = options.trustAnchors;
  if (anchors !== undefined) {
    flag('enable-mtls', true);
    flag('sentry-address', options.sentryAddress);
    flag('control-plane-namespace', options.controlPlaneNamespace);
    if ('pem' in anchors) put({ name: 'DAPR_TRUST_ANCHORS', value: anchors.pem });
    else flag('trust-anchors-file', `${TRUST_ANCHORS_DIR}/${anchors.key}`);
    put({ name: 'DAPR_SENTRY_TOKEN_FILE', value: SENTRY_TOKEN_FILE });
  }
  const secretRef = (name: string, secret: string, key: string): EnvVar => ({ name, valueFrom: { secretKeyRef: { name: secret, key } } });
  if (s.apiTokenSecret !== undefined) put(secretRef('DAPR_API_TOKEN', s.apiTokenSecret, TOKEN_SECRET_KEY));
  if (s.appTokenSecret !== undefined) put(secretRef('APP_API_TOKEN', s.appTokenSecret, TOKEN_SECRET_KEY));
  for (const e of s.env) put(e);
  for (const e of s.envFromSecret) put(secretRef(e.name, e.secret, e.key));

  const ports = [
    { name: 'dapr-http', containerPort: SIDECAR_HTTP_PORT, protocol: 'TCP' },
    { name: 'dapr-grpc', containerPort: SIDECAR_GRPC_PORT, protocol: 'TCP' },
    { name: 'dapr-internal', containerPort: s.internalGrpcPort, protocol: 'TCP' },
  ];
  if (s.enableMetrics) ports.push({ name: 'dapr-metrics', containerPort: s.metricsPort, protocol: 'TCP' });

  const container: Record<string, unknown> = {
    name: SIDECAR_CONTAINER_NAME,
    image: s.image ?? options.image,
    imagePullPolicy: 'IfNotPresent',
    // The image's entrypoint is the courier CLI (the repository's Dockerfile), so only the arguments are set.
    args,
    ports,
    env: [...env.values()],
    volumeMounts: [...volumes.map((v) => v.mount), ...podMounts],
    // As Dapr's injector sets daprd's by default; the image runs as uid 1000 and writes nothing.
    securityContext: {
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      ...(s.seccompProfileType === undefined ? {} : { seccompProfile: { type: s.seccompProfileType } }),
    },
  };
  const resources: Record<string, Readonly<Record<string, string>>> = {};
  if (Object.keys(s.resources.limits).length > 0) resources.limits = s.resources.limits;
  if (Object.keys(s.resources.requests).length > 0) resources.requests = s.resources.requests;
  if (Object.keys(resources).length > 0) container.resources = resources;

  // The kubelet probes the Pod's address: the sidecar serves /v1.0/healthz there on its public port (as
  // daprd does on 3501), whatever address the API itself listens on. Readiness is the sidecar's: its
  // app answering, name resolution registered.
  const handler = { httpGet: { path: '/v1.0/healthz', port: SIDECAR_PUBLIC_PORT } };
  const probe = (p: ProbeSettings): Record<string, unknown> => ({ ...handler, ...p });
  container.livenessProbe = probe(s.liveness);
  container.readinessProbe = probe(s.readiness);
  return container;
}
