// Reads a Pod's `dapr.io/*` annotations into the settings of the sidecar the injector adds. Every value is
// checked here, so a Pod is either injected exactly as annotated or refused with all its problems at once.
import { appProtocols, parseAppProtocol, type AppProtocol } from '../../channel/app-protocol.js';
import { validateAppId } from '../../invoke/identity.js';
import { logLevels } from '../../observability/logging/index.js';
import { parseDuration } from '../../util/duration.js';
import { parseQuantity } from '../../util/quantity.js';

/** The sidecar's ports as Dapr's injector sets them: fixed, because every Pod has its own network. */
export const SIDECAR_HTTP_PORT = 3500;
/** The health endpoints alone, on the Pod's address (`--dapr-public-port`, daprd's 3501), for the probes. */
export const SIDECAR_PUBLIC_PORT = 3501;
export const SIDECAR_GRPC_PORT = 50001;
export const DEFAULT_INTERNAL_GRPC_PORT = 50002;
export const DEFAULT_METRICS_PORT = 9090;
export const DEFAULT_PROFILE_PORT = 7777;

/** Dapr's injector default: the sidecar's API is reachable from the Pod only. */
export const DEFAULT_LISTEN_ADDRESSES = ['[::1]', '127.0.0.1'] as const;

export interface ProbeSettings {
  readonly initialDelaySeconds: number;
  readonly timeoutSeconds: number;
  readonly periodSeconds: number;
  readonly failureThreshold: number;
}

/** Dapr's defaults for `dapr.io/sidecar-{liveness,readiness}-probe-*`. */
export const DEFAULT_PROBE: ProbeSettings = { initialDelaySeconds: 3, timeoutSeconds: 3, periodSeconds: 6, failureThreshold: 3 };

export interface SecretEnv {
  readonly name: string;
  readonly secret: string;
  readonly key: string;
}

/** A volume of the Pod mounted into the sidecar (`dapr.io/volume-mounts`, `dapr.io/volume-mounts-rw`). */
export interface VolumeMountSetting {
  readonly volume: string;
  readonly path: string;
  readonly readOnly: boolean;
}

/** The seccomp profiles `dapr.io/sidecar-seccomp-profile-type` may name (Localhost needs a profile file the annotation cannot give). */
export const seccompProfileTypes = ['RuntimeDefault', 'Unconfined'] as const;
export type SeccompProfileType = (typeof seccompProfileTypes)[number];

export interface SidecarSettings {
  readonly appId: string;
  readonly image: string | undefined;
  readonly appPort: number | undefined;
  readonly appProtocol: AppProtocol | undefined;
  readonly appSsl: boolean;
  readonly appChannelAddress: string | undefined;
  /** A ConfigMap in the Pod's namespace whose `config.yaml` is the sidecar's Configuration. */
  readonly config: string | undefined;
  readonly logLevel: string | undefined;
  readonly logAsJson: boolean;
  readonly enableMetrics: boolean;
  readonly metricsPort: number;
  readonly enableProfiling: boolean;
  readonly profilePort: number | undefined;
  /** Secrets (key `token`) for DAPR_API_TOKEN and APP_API_TOKEN. */
  readonly apiTokenSecret: string | undefined;
  readonly appTokenSecret: string | undefined;
  readonly resources: { readonly limits: Readonly<Record<string, string>>; readonly requests: Readonly<Record<string, string>> };
  /** `--max-body-size` and `--read-buffer-size` as quantities. */
  readonly maxBodySize: string | undefined;
  readonly readBufferSize: string | undefined;
  readonly gracefulShutdownSeconds: number | undefined;
  readonly enableApiLogging: boolean | undefined;
  readonly appMaxConcurrency: number | undefined;
  readonly appHealthCheck: boolean;
  readonly appHealthCheckPath: string | undefined;
  readonly appHealthProbeInterval: number | undefined;
  readonly appHealthProbeTimeout: number | undefined;
  readonly appHealthThreshold: number | undefined;
  readonly listenAddresses: readonly string[];
  readonly internalGrpcPort: number;
  readonly env: readonly { readonly name: string; readonly value: string }[];
  readonly envFromSecret: readonly SecretEnv[];
  readonly liveness: ProbeSettings;
  readonly readiness: ProbeSettings;
  readonly volumeMounts: readonly VolumeMountSetting[];
  /** `dapr.io/unix-domain-socket-path`: where the app containers find the sidecar's sockets. */
  readonly unixDomainSocketPath: string | undefined;
  readonly seccompProfileType: SeccompProfileType | undefined;
  /** `dapr.io/block-shutdown-duration` as the sidecar's `--dapr-block-shutdown-duration`. */
  readonly blockShutdownDuration: string | undefined;
}

export type SettingsResult =
  | { readonly ok: true; readonly settings: SidecarSettings; readonly warnings: readonly string[] }
  | { readonly ok: false; readonly problems: readonly string[] };

/** The annotations this injector reads; any other `dapr.io/` annotation is ignored with a warning. */
export const supportedAnnotations = [
  'enabled',
  'app-id',
  'sidecar-image',
  'app-port',
  'app-protocol',
  'app-ssl',
  'app-channel-address',
  'config',
  'log-level',
  'log-as-json',
  'enable-metrics',
  'metrics-port',
  'enable-profiling',
  'profile-port',
  'api-token-secret',
  'app-token-secret',
  'sidecar-cpu-limit',
  'sidecar-memory-limit',
  'sidecar-cpu-request',
  'sidecar-memory-request',
  'http-max-request-size',
  'max-body-size',
  'http-read-buffer-size',
  'read-buffer-size',
  'graceful-shutdown-seconds',
  'enable-api-logging',
  'app-max-concurrency',
  'enable-app-health-check',
  'app-health-check-path',
  'app-health-probe-interval',
  'app-health-probe-timeout',
  'app-health-threshold',
  'sidecar-listen-addresses',
  'internal-grpc-port',
  'env',
  'env-from-secret',
  'sidecar-liveness-probe-delay-seconds',
  'sidecar-liveness-probe-timeout-seconds',
  'sidecar-liveness-probe-period-seconds',
  'sidecar-liveness-probe-threshold',
  'sidecar-readiness-probe-delay-seconds',
  'sidecar-readiness-probe-timeout-seconds',
  'sidecar-readiness-probe-period-seconds',
  'sidecar-readiness-probe-threshold',
  'volume-mounts',
  'volume-mounts-rw',
  'unix-domain-socket-path',
  'sidecar-seccomp-profile-type',
  'block-shutdown-duration',
  // Courier always streams request bodies; the annotation is checked and has nothing to turn on.
  'http-stream-request-body',
] as const;

const PREFIX = 'dapr.io/';
const supported = new Set<string>(supportedAnnotations.map((a) => PREFIX + a));
const truthy = new Set(['y', 'yes', 'true', 't', 'on', '1']);
const falsy = new Set(['n', 'no', 'false', 'f', 'off', '0']);
/** A Kubernetes resource quantity (apimachinery's grammar, without the sign). */
const quantityPattern = /^\+?(\d+(\.\d*)?|\.\d+)([numkMGTPE]|[KMGTPE]i|[eE][+-]?\d+)?$/;
const envNamePattern = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A DNS-1123 subdomain: the names of Secrets and ConfigMaps. */
const objectNamePattern = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const secretKeyPattern = /^[-._a-zA-Z0-9]{1,253}$/;
/** A DNS-1123 label: the names of a Pod's volumes. */
const volumeNamePattern = /^(?=.{1,63}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;


/** Whether the Pod asks for a sidecar: `dapr.io/enabled` truthy, as Dapr's `IsTruthy` reads it. */
export function injectionRequested(annotations: Readonly<Record<string, string>>): boolean {
  const value = annotations[`${PREFIX}enabled`];
  return value !== undefined && truthy.has(value.trim().toLowerCase());
}

/**
 * Reads the sidecar settings of a Pod whose `dapr.io/enabled` is truthy. `podName` is the name the app id
 * defaults to, as in Dapr (the Pod's name, or its generateName without the trailing dash).
 */
export function readSidecarSettings(annotations: Readonly<Record<string, string>>, podName: string | undefined): SettingsResult {
  const r = new AnnotationReader(annotations);
  const warnings: string[] = [];
  for (const name of Object.keys(annotations)) {
    if (name.startsWith(PREFIX) && !supported.has(name)) warnings.push(`annotation ${name} is not supported by Courier's injector and is ignored`);
  }

  let appId = r.string('app-id') ?? podName;
  if (appId === undefined || appId === '') {
    r.problem('dapr.io/app-id is not set and the Pod has no name or generateName to default it to');
    appId = '';
  } else {
    const invalid = validateAppId(appId);
    if (invalid !== undefined) r.problem(`dapr.io/app-id: ${invalid}`);
  }

  const protocolText = r.string('app-protocol');
  let appProtocol: AppProtocol | undefined;
  if (protocolText !== undefined) {
    appProtocol = parseAppProtocol(protocolText);
    if (appProtocol === undefined) r.problem(`dapr.io/app-protocol: "${protocolText}" is not one of ${appProtocols.join(', ')}`);
  }
  const logLevel = r.oneOf('log-level', logLevels);

  const limits: Record<string, string> = {};
  const requests: Record<string, string> = {};
  for (const [kind, target] of [['limit', limits], ['request', requests]] as const) {
    for (const resource of ['cpu', 'memory'] as const) {
      const value = r.quantity(`sidecar-${resource}-${kind}`);
      if (value !== undefined) target[resource] = value;
    }
  }

  const legacyBody = r.int('http-max-request-size', 1, 1024 * 1024);
  const maxBodySize = r.byteSize('max-body-size', 1) ?? (legacyBody === undefined ? undefined : `${legacyBody}Mi`);
  const legacyRead = r.int('http-read-buffer-size', 1, 1024 * 1024);
  const readBufferSize = r.byteSize('read-buffer-size', 1024) ?? (legacyRead === undefined ? undefined : `${legacyRead}Ki`);

  const concurrency = r.int('app-max-concurrency', -1, 2 ** 31 - 1);
  if (concurrency === 0) r.problem('dapr.io/app-max-concurrency: must be a positive number, or -1 for unlimited');

  const healthPath = r.string('app-health-check-path');
  const listenText = r.string('sidecar-listen-addresses');
  const listenAddresses = listenText === undefined ? [...DEFAULT_LISTEN_ADDRESSES] : listenText.split(',').map((a) => a.trim()).filter((a) => a !== '');
  if (listenText !== undefined && listenAddresses.length === 0) r.problem('dapr.io/sidecar-listen-addresses: names no address');

  r.bool('http-stream-request-body');
  const volumeMounts = [...r.volumeMounts('volume-mounts', true), ...r.volumeMounts('volume-mounts-rw', false)];
  const seenPaths = new Set<string>();
  for (const m of volumeMounts) {
    if (seenPaths.has(m.path)) r.problem(`${PREFIX}volume-mounts: ${m.path} is named twice`);
    seenPaths.add(m.path);
  }

  const settings: SidecarSettings = {
    appId,
    image: r.string('sidecar-image'),
    appPort: r.int('app-port', 1, 65535),
    appProtocol,
    appSsl: r.bool('app-ssl') ?? false,
    appChannelAddress: r.string('app-channel-address'),
    config: r.objectName('config'),
    logLevel,
    logAsJson: r.bool('log-as-json') ?? false,
    enableMetrics: r.bool('enable-metrics') ?? true,
    metricsPort: r.int('metrics-port', 1, 65535) ?? DEFAULT_METRICS_PORT,
    enableProfiling: r.bool('enable-profiling') ?? false,
    profilePort: r.int('profile-port', 1, 65535),
    apiTokenSecret: r.objectName('api-token-secret'),
    appTokenSecret: r.objectName('app-token-secret'),
    resources: { limits, requests },
    maxBodySize,
    readBufferSize,
    gracefulShutdownSeconds: r.int('graceful-shutdown-seconds', 0, 86_400),
    enableApiLogging: r.bool('enable-api-logging'),
    appMaxConcurrency: concurrency,
    appHealthCheck: r.bool('enable-app-health-check') ?? false,
    appHealthCheckPath: healthPath === undefined || healthPath.startsWith('/') ? healthPath : `/${healthPath}`,
    appHealthProbeInterval: r.int('app-health-probe-interval', 1, 86_400),
    appHealthProbeTimeout: r.int('app-health-probe-timeout', 1, 3_600_000),
    appHealthThreshold: r.int('app-health-threshold', 1, 2 ** 31 - 1),
    listenAddresses,
    internalGrpcPort: r.int('internal-grpc-port', 1, 65535) ?? DEFAULT_INTERNAL_GRPC_PORT,
    env: r.env(),
    envFromSecret: r.envFromSecret(),
    liveness: r.probe('liveness'),
    readiness: r.probe('readiness'),
    volumeMounts,
    unixDomainSocketPath: r.absolutePath('unix-domain-socket-path'),
    seccompProfileType: r.oneOf('sidecar-seccomp-profile-type', seccompProfileTypes),
    blockShutdownDuration: r.duration('block-shutdown-duration'),
  };
  for (const [name, port] of [['metrics-port', settings.enableMetrics ? settings.metricsPort : undefined], ['internal-grpc-port', settings.internalGrpcPort]] as const) {
    if (port === SIDECAR_HTTP_PORT || port === SIDECAR_GRPC_PORT) r.problem(`dapr.io/${name}: ${port} is the sidecar's ${port === SIDECAR_HTTP_PORT ? 'HTTP' : 'gRPC'} API port`);
  }
  if (settings.enableMetrics && settings.metricsPort === settings.internalGrpcPort) r.problem(`dapr.io/metrics-port and dapr.io/internal-grpc-port are both ${settings.metricsPort}`);
  if (settings.appPort !== undefined && [SIDECAR_HTTP_PORT, SIDECAR_GRPC_PORT, settings.internalGrpcPort].includes(settings.appPort)) {
    r.problem(`dapr.io/app-port: ${settings.appPort} is a port of the sidecar in the same Pod`);
  }
  return r.problems.length > 0 ? { ok: false, problems: r.problems } : { ok: true, settings, warnings };
}

/** Typed reads of `dapr.io/<name>` that record every bad value instead of stopping at the first. */
class AnnotationReader {
  readonly problems: string[] = [];
  readonly #annotations: Readonly<Record<string, string>>;

  constructor(annotations: Readonly<Record<string, string>>) {
    this.#annotations = annotations;
  }

  problem(message: string): void {
    this.problems.push(message);
  }

  /** The trimmed value; an empty value counts as absent, as in Dapr. */
  string(name: string): string | undefined {
    const value = this.#annotations[PREFIX + name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  }

  bool(name: string): boolean | undefined {
    const value = this.string(name)?.toLowerCase();
    if (value === undefined) return undefined;
    if (truthy.has(value)) return true;
    if (falsy.has(value)) return false;
    this.problem(`${PREFIX}${name}: "${value}" is not true or false`);
    return undefined;
  }

  int(name: string, min: number, max: number): number | undefined {
    const value = this.string(name);
    if (value === undefined) return undefined;
    const n = /^-?\d+$/.test(value) ? Number(value) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      this.problem(`${PREFIX}${name}: "${value}" is not a whole number from ${min} to ${max}`);
      return undefined;
    }
    return n;
  }

  quantity(name: string): string | undefined {
    const value = this.string(name);
    if (value !== undefined && !quantityPattern.test(value)) {
      this.problem(`${PREFIX}${name}: "${value}" is not a Kubernetes quantity such as 500m, 1 or 128Mi`);
      return undefined;
    }
    return value;
  }

  /** A size the sidecar accepts (`4Mi`, `16Ki`), at least `min` bytes. */
  byteSize(name: string, min: number): string | undefined {
    const value = this.string(name);
    if (value === undefined) return undefined;
    const bytes = parseQuantity(value);
    if (bytes === undefined || bytes < min) {
      this.problem(`${PREFIX}${name}: "${value}" is not a size of at least ${min} bytes such as 4Mi`);
      return undefined;
    }
    return value;
  }

  /** One of `values`, matched without regard to case; the canonical spelling is returned. */
  oneOf<T extends string>(name: string, values: readonly T[]): T | undefined {
    const value = this.string(name);
    if (value === undefined) return undefined;
    const found = values.find((v) => v.toLowerCase() === value.toLowerCase());
    if (found === undefined) this.problem(`${PREFIX}${name}: "${value}" is not one of ${values.join(', ')}`);
    return found;
  }

  absolutePath(name: string): string | undefined {
    const value = this.string(name);
    if (value === undefined || value.startsWith('/')) return value;
    this.problem(`${PREFIX}${name}: "${value}" is not an absolute path`);
    return undefined;
  }

  /** A duration as daprd's flags take it (`30s`, `1m30s`; a bare number is seconds), kept as written. */
  duration(name: string): string | undefined {
    const value = this.string(name);
    if (value === undefined) return undefined;
    const ms = parseDuration(value, 's');
    if (ms !== undefined && ms >= 0) return value;
    this.problem(`${PREFIX}${name}: "${value}" is not a duration such as 30s or 1m`);
    return undefined;
  }

  objectName(name: string): string | undefined {
    const value = this.string(name);
    if (value !== undefined && !objectNamePattern.test(value)) {
      this.problem(`${PREFIX}${name}: "${value}" is not a Kubernetes object name (lower-case letters, digits, "-" and ".")`);
      return undefined;
    }
    return value;
  }

  /** `dapr.io/env`: `NAME=value,NAME2=value2`; a comma not followed by `NAME=` belongs to the value, as in Dapr. */
  env(): { name: string; value: string }[] {
    const raw = this.string('env');
    if (raw === undefined) return [];
    const out: { name: string; value: string }[] = [];
    for (const part of raw.split(/,(?=\s*[A-Za-z_][A-Za-z0-9_]*=)/)) {
      const eq = part.indexOf('=');
      const name = eq < 0 ? part.trim() : part.slice(0, eq).trim();
      if (eq < 0 || !envNamePattern.test(name)) {
        this.problem(`${PREFIX}env: "${part.trim()}" is not NAME=value`);
        continue;
      }
      out.push({ name, value: part.slice(eq + 1).trim() });
    }
    return out;
  }

  /** `dapr.io/env-from-secret`: `NAME=secret:key`, or `NAME=secret` for the key named like the secret. */
  envFromSecret(): SecretEnv[] {
    const raw = this.string('env-from-secret');
    if (raw === undefined) return [];
    const out: SecretEnv[] = [];
    for (const part of raw.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
      const match = /^([A-Za-z_][A-Za-z0-9_]*)=([^:]+)(?::(.+))?$/.exec(part);
      const name = match?.[1];
      const secret = match?.[2]?.trim();
      const key = match?.[3]?.trim() ?? secret;
      if (name === undefined || secret === undefined || key === undefined || !objectNamePattern.test(secret) || !secretKeyPattern.test(key)) {
        this.problem(`${PREFIX}env-from-secret: "${part}" is not NAME=secret or NAME=secret:key`);
        continue;
      }
      out.push({ name, secret, key });
    }
    return out;
  }

  /** `volume-name:/path,…`, as Dapr reads `dapr.io/volume-mounts(-rw)`. */
  volumeMounts(name: 'volume-mounts' | 'volume-mounts-rw', readOnly: boolean): VolumeMountSetting[] {
    const raw = this.string(name);
    if (raw === undefined) return [];
    const out: VolumeMountSetting[] = [];
    for (const part of raw.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
      const colon = part.indexOf(':');
      const volume = colon < 0 ? '' : part.slice(0, colon).trim();
      const path = colon < 0 ? '' : part.slice(colon + 1).trim();
      if (!volumeNamePattern.test(volume) || !path.startsWith('/')) {
        this.problem(`${PREFIX}${name}: "${part}" is not volume-name:/absolute/path`);
        continue;
      }
      out.push({ volume, path, readOnly });
    }
    return out;
  }

  probe(kind: 'liveness' | 'readiness'): ProbeSettings {
    const at = (suffix: string, min: number, fallback: number): number => this.int(`sidecar-${kind}-probe-${suffix}`, min, 86_400) ?? fallback;
    return {
      initialDelaySeconds: at('delay-seconds', 0, DEFAULT_PROBE.initialDelaySeconds),
      timeoutSeconds: at('timeout-seconds', 1, DEFAULT_PROBE.timeoutSeconds),
      periodSeconds: at('period-seconds', 1, DEFAULT_PROBE.periodSeconds),
      failureThreshold: at('threshold', 1, DEFAULT_PROBE.failureThreshold),
    };
  }
}
