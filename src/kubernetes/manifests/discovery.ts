import { readdirSync, readFileSync, statSync } from '../../util/builtins.js';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { CourierError, errorMessage } from '../../errors/index.js';
import { CONFIG_KEY } from '../injector/patch.js';
import type { KubernetesObject } from './control-plane.js';
import { checkKubernetesAppId, checkNamespace, discoveryServiceName, SIDECAR_PORTS } from './names.js';

/** An app that gets a discovery Service: its id, namespace and the labels of its pods. */
export interface DiscoveredApp {
  appId: string;
  namespace: string;
  /** Selects the app's pods; from the workload's pod template, or `dapr.io/app-id` for a bare app id. */
  podLabels: Record<string, string>;
  /** Where it came from, for messages. */
  source: string;
}

/** The workloads whose pod template the Dapr injector reads. */
const WORKLOAD_KINDS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet']);

/**
 * The headless `<app-id>-dapr` Service that Dapr's operator keeps for each annotated workload, and
 * that the Kubernetes name resolver looks up as `<app-id>-dapr.<namespace>.svc.<clusterDomain>`:
 * one address per ready pod, so callers balance over the pods themselves.
 */
export function discoveryService(app: DiscoveredApp, options: { mtls: boolean }): KubernetesObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: discoveryServiceName(app.appId),
      namespace: app.namespace,
      labels: { 'dapr.io/enabled': 'true', 'app.kubernetes.io/managed-by': 'courier' },
      annotations: {
        'dapr.io/app-id': app.appId,
        'prometheus.io/probe': 'true',
        'prometheus.io/scrape': 'true',
        'prometheus.io/port': String(SIDECAR_PORTS.metrics),
        'prometheus.io/path': '/',
      },
    },
    spec: {
      clusterIP: 'None',
      selector: { ...app.podLabels },
      ports: [
        { name: 'dapr-http', port: 80, targetPort: SIDECAR_PORTS.http, protocol: 'TCP', appProtocol: 'http' },
        { name: 'dapr-grpc', port: SIDECAR_PORTS.grpc, targetPort: SIDECAR_PORTS.grpc, protocol: 'TCP', appProtocol: 'grpc' },
        { name: 'dapr-internal', port: SIDECAR_PORTS.internal, targetPort: SIDECAR_PORTS.internal, protocol: 'TCP', appProtocol: options.mtls ? 'tls' : 'grpc' },
        { name: 'dapr-metrics', port: SIDECAR_PORTS.metrics, targetPort: SIDECAR_PORTS.metrics, protocol: 'TCP', appProtocol: 'http' },
      ],
    },
  };
}

/** A bare app id: its pods are found by the `dapr.io/app-id` label, which the injected pods must carry. */
export function appFromId(appId: string, namespace: string, source = `--app-id ${appId}`): DiscoveredApp {
  checkKubernetesAppId(appId, source);
  checkNamespace(namespace, `--app-namespace`);
  return { appId, namespace, podLabels: { 'dapr.io/app-id': appId }, source };
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

function stringMap(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(record(value) ?? {})) if (typeof v === 'string') out[k] = v;
  return out;
}

/** A Dapr `Configuration` resource found beside the workloads, turned into what the injector mounts. */
export interface DiscoveredConfiguration {
  name: string;
  namespace: string;
  /** The whole document, as the sidecar reads it from `config.yaml`. */
  document: Record<string, unknown>;
  source: string;
}

/** What a file (or directory) of manifests holds for Courier: its apps and its Dapr Configurations. */
export interface DiscoveredResources {
  apps: DiscoveredApp[];
  configurations: DiscoveredConfiguration[];
}

/**
 * The apps of a file of workload manifests (one or several YAML documents, or a List). A workload is
 * an app when its pod template has `dapr.io/enabled: "true"` and a `dapr.io/app-id`, as the injector
 * requires; others in the file are skipped, but a file with none is an error, since it was named for one.
 */
export function appsFromWorkloadText(text: string, source: string, defaultNamespace: string): DiscoveredApp[] {
  const { apps, skipped } = readResources(text, source, defaultNamespace);
  if (apps.length === 0) throw nothingFound(source, skipped);
  return apps;
}

function nothingFound(source: string, skipped: readonly string[]): CourierError {
  const why =
    skipped.length > 0
      ? `${skipped.join(', ')} ${skipped.length === 1 ? 'has' : 'have'} no dapr.io/enabled: "true" annotation on the pod template (spec.template.metadata.annotations)`
      : 'it holds no Deployment, StatefulSet, DaemonSet or ReplicaSet';
  return new CourierError('ERR_INVALID_CONFIG', `${source}: no app to make a discovery Service for: ${why}`);
}

/**
 * The apps and the Dapr `Configuration` documents of a manifests file, or of every `.yaml`, `.yml` and
 * `.json` file of a directory (as `kubectl apply -f <dir>` reads it). Other objects are passed over; a
 * source with neither an app nor a Configuration is an error.
 */
export function resourcesFromPath(path: string, defaultNamespace: string): DiscoveredResources {
  let files: string[];
  try {
    files = statSync(path).isDirectory()
      ? readdirSync(path)
          .filter((f) => /\.(ya?ml|json)$/i.test(f))
          .sort()
          .map((f) => join(path, f))
      : [path];
  } catch (err) {
    throw new CourierError('ERR_INVALID_CONFIG', `${path}: ${errorMessage(err)}`, { cause: err });
  }
  const out: DiscoveredResources = { apps: [], configurations: [] };
  const skipped: string[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new CourierError('ERR_INVALID_CONFIG', `${file}: ${errorMessage(err)}`, { cause: err });
    }
    const found = readResources(text, file, defaultNamespace);
    out.apps.push(...found.apps);
    out.configurations.push(...found.configurations);
    skipped.push(...found.skipped);
  }
  if (out.apps.length === 0 && out.configurations.length === 0) {
    if (files.length === 0) throw new CourierError('ERR_INVALID_CONFIG', `${path}: the directory holds no .yaml, .yml or .json file`);
    throw nothingFound(path, skipped);
  }
  return out;
}

function readResources(text: string, source: string, defaultNamespace: string): DiscoveredResources & { skipped: string[] } {
  const docs = parseAllDocuments(text);
  const objects: Record<string, unknown>[] = [];
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new CourierError('ERR_INVALID_CONFIG', `${source}: not valid YAML: ${doc.errors[0]?.message ?? ''}`);
    const value = record(doc.toJS());
    if (value === undefined) continue;
    if (value.kind === 'List' && Array.isArray(value.items)) objects.push(...value.items.map(record).filter((o) => o !== undefined));
    else objects.push(value);
  }
  const apps: DiscoveredApp[] = [];
  const configurations: DiscoveredConfiguration[] = [];
  const skipped: string[] = [];
  for (const object of objects) {
    const kind = typeof object.kind === 'string' ? object.kind : '';
    if (kind === 'Configuration' && typeof object.apiVersion === 'string' && object.apiVersion.startsWith('dapr.io/')) {
      configurations.push(configurationOf(object, source, defaultNamespace));
      continue;
    }
    if (!WORKLOAD_KINDS.has(kind)) continue;
    const metadata = record(object.metadata) ?? {};
    const name = typeof metadata.name === 'string' ? metadata.name : '(unnamed)';
    const where = `${source}: ${kind} ${name}`;
    const template = record(record(object.spec)?.template) ?? {};
    const templateMeta = record(template.metadata) ?? {};
    const annotations = record(templateMeta.annotations) ?? {};
    const enabled = annotations['dapr.io/enabled'];
    if (enabled !== 'true' && enabled !== true) {
      skipped.push(`${kind} ${name}`);
      continue;
    }
    const appId = annotations['dapr.io/app-id'];
    if (typeof appId !== 'string' || appId === '') {
      throw new CourierError('ERR_INVALID_CONFIG', `${where}: its pod template has dapr.io/enabled but no dapr.io/app-id annotation`);
    }
    checkKubernetesAppId(appId, where);
    const namespace = typeof metadata.namespace === 'string' ? metadata.namespace : defaultNamespace;
    checkNamespace(namespace, `${where}: metadata.namespace`);
    const podLabels = stringMap(templateMeta.labels);
    if (Object.keys(podLabels).length === 0) {
      throw new CourierError('ERR_INVALID_CONFIG', `${where}: its pod template has no labels, so no Service can select its pods`);
    }
    apps.push({ appId, namespace, podLabels, source: where });
  }
  return { apps, configurations, skipped };
}

/** A ConfigMap name (DNS-1123 subdomain), which `dapr.io/config` names. */
const CONFIG_MAP_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function configurationOf(object: Record<string, unknown>, source: string, defaultNamespace: string): DiscoveredConfiguration {
  const metadata = record(object.metadata) ?? {};
  const name = typeof metadata.name === 'string' ? metadata.name : '';
  const where = `${source}: Configuration ${name === '' ? '(unnamed)' : name}`;
  if (!CONFIG_MAP_NAME.test(name)) throw new CourierError('ERR_INVALID_CONFIG', `${where}: "${name}" is not a name a ConfigMap can have (lower-case letters, digits, "-" and ".")`);
  const namespace = typeof metadata.namespace === 'string' ? metadata.namespace : defaultNamespace;
  checkNamespace(namespace, `${where}: metadata.namespace`);
  return { name, namespace, document: object, source: where };
}

/**
 * The ConfigMap the injector mounts for `dapr.io/config: <name>`: the Configuration document under
 * `config.yaml`, in the Configuration's namespace. Two Configurations of one name in one namespace
 * are an error, as two objects of one name are for the API server.
 */
export function configurationConfigMaps(configurations: readonly DiscoveredConfiguration[]): KubernetesObject[] {
  checkDistinctConfigurations(configurations);
  return configurations.map((c) => ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: c.name,
      namespace: c.namespace,
      labels: { 'app.kubernetes.io/part-of': 'courier', 'app.kubernetes.io/managed-by': 'courier' },
      annotations: { 'courier.dev/description': `the Dapr Configuration ${c.name}, for pods annotated dapr.io/config: ${c.name}` },
    },
    data: { [CONFIG_KEY]: stringify(c.document, { lineWidth: 0 }) },
  }));
}



/** One Service per app id and namespace: two workloads claiming the same one would fight over it. */
export function checkDistinctApps(apps: readonly DiscoveredApp[]): void {
  checkDistinct(apps, (a) => `${a.namespace}/${a.appId}`, (a, previous) => `${a.source}: the app id ${a.appId} in ${a.namespace} is already used by ${previous}`);
}

/** One ConfigMap per Configuration name and namespace, as the API server allows one object per name. */
export function checkDistinctConfigurations(configurations: readonly DiscoveredConfiguration[]): void {
  checkDistinct(configurations, (c) => `${c.namespace}/${c.name}`, (c, previous) => `${c.source}: a Configuration ${c.name} in ${c.namespace} is already given by ${previous}`);
}

/** Refuses the second of two items with the same key, naming where each came from. */
function checkDistinct<T extends { readonly source: string }>(items: readonly T[], key: (item: T) => string, clash: (item: T, previous: string) => string): void {
  const seen = new Map<string, string>();
  for (const item of items) {
    const previous = seen.get(key(item));
    if (previous !== undefined) throw new CourierError('ERR_INVALID_CONFIG', clash(item, previous));
    seen.set(key(item), item.source);
  }
}

export function discoveryServices(apps: readonly DiscoveredApp[], options: { mtls: boolean }): KubernetesObject[] {
  checkDistinctApps(apps);
  return apps.map((app) => discoveryService(app, options));
}
