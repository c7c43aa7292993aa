import { existsSync, readFileSync } from '../../util/builtins.js';
import { stringify } from 'yaml';
import { CourierError, errorMessage } from '../../errors/index.js';
import { flagError, formatFlagHelp, parseFlags, type FlagSpec } from '../../cli/flags.js';
import { version } from '../../version.js';
import { controlPlaneManifests, DEFAULT_KUBERNETES_ISSUER, type ControlPlaneOptions, type KubernetesObject } from './control-plane.js';
import { appFromId, checkDistinctApps, checkDistinctConfigurations, configurationConfigMaps, discoveryServices, resourcesFromPath, type DiscoveredApp, type DiscoveredConfiguration } from './discovery.js';
import { checkNamespace, DEFAULT_NAMESPACE } from './names.js';

const DEFAULT_IMAGE = `courier:${version}`;

const manifestFlags: readonly FlagSpec[] = [
  { name: 'namespace', short: 'n', type: 'string', placeholder: '<ns>', defaultText: DEFAULT_NAMESPACE, help: "the control plane's namespace" },
  { name: 'image', type: 'string', placeholder: '<ref>', defaultText: DEFAULT_IMAGE, help: 'the Courier image of the control plane and of the sidecars it injects' },
  { name: 'replicas', type: 'int', placeholder: '<n>', defaultText: '1', help: 'replicas of the Sentry and of the injector; more than 1 adds PodDisruptionBudgets' },
  {
    name: 'app',
    type: 'list',
    placeholder: '<file|app-id>',
    help: 'a manifests file or directory: a discovery Service for each workload annotated dapr.io/enabled and dapr.io/app-id, and a ConfigMap for each Dapr Configuration (what dapr.io/config names); or an app id (repeatable)',
  },
  { name: 'app-id', type: 'list', placeholder: '<app-id>', help: 'a discovery Service for this app id, selecting pods labelled dapr.io/app-id=<app-id> (repeatable)' },
  { name: 'app-namespace', type: 'string', placeholder: '<ns>', defaultText: 'default', help: 'the namespace of --app-id apps and of workloads that name none' },
  { name: 'apps-only', type: 'bool', help: 'print only the discovery Services, not the control plane' },
  { name: 'enable-mtls', type: 'bool', defaultText: 'true', help: 'whether the sidecars use mTLS (marks the dapr-internal port tls); --enable-mtls=false if not' },
  { name: 'webhook-ca-file', type: 'string', placeholder: '<ca.crt>', help: "embed this CA (the one that signed the injector's serving certificate) as the webhook's caBundle" },
  { name: 'trust-anchors-file', type: 'string', placeholder: '<ca.crt>', help: "put this CA (the Sentry's ca.crt) in the trust-bundle ConfigMap" },
  {
    name: 'kubernetes-issuer',
    type: 'string',
    placeholder: '<iss>',
    defaultText: DEFAULT_KUBERNETES_ISSUER,
    help: "the cluster's ServiceAccount token issuer (kubectl get --raw /.well-known/openid-configuration); the Sentry checks sidecars' projected tokens against it; off: join tokens only",
  },
  {
    name: 'sentry-app-id-from',
    type: 'string',
    placeholder: 'pod|serviceaccount',
    defaultText: 'pod',
    help: "where the Sentry takes a pod's app id from: its dapr.io/app-id annotation (as Dapr), or its ServiceAccount's name (only who may use a ServiceAccount may claim its app id)",
  },
  { name: 'output', short: 'o', type: 'string', placeholder: 'yaml|json', defaultText: 'yaml', help: 'a multi-document YAML, or a JSON List' },
  { name: 'help', short: 'h', type: 'bool', help: 'show this help' },
];

const usage = `Usage: courier kubernetes manifests [flags] > courier.yaml

Prints the manifests that run Courier's control plane on Kubernetes: the Namespace, the Sentry
(certificate authority) and the sidecar injector with their Services, ServiceAccounts, RBAC,
PodDisruptionBudgets and the MutatingWebhookConfiguration; and, with --app or --app-id, the headless
<app-id>-dapr Service that the Kubernetes name resolver looks up for each app. Review them, then apply
them with "kubectl apply -f". The install steps (secrets, the webhook's caBundle) are in
docs/kubernetes.md.

Flags:
${formatFlagHelp(manifestFlags)}
`;

const groupUsage = `Usage: courier kubernetes <command> [flags]

Commands:
  manifests  print the control plane's manifests and the apps' discovery Services
`;

/** What the manifests command was asked for, checked. */
export interface ManifestRequest {
  controlPlane: ControlPlaneOptions | undefined;
  apps: DiscoveredApp[];
  /** Dapr Configuration documents from the --app files, printed as the ConfigMaps `dapr.io/config` names. */
  configurations: DiscoveredConfiguration[];
  mtls: boolean;
  output: 'yaml' | 'json';
}

/** Every object the request asks for, control plane first. */
export function manifestObjects(request: ManifestRequest): KubernetesObject[] {
  return [
    ...(request.controlPlane === undefined ? [] : controlPlaneManifests(request.controlPlane)),
    ...discoveryServices(request.apps, { mtls: request.mtls }),
    ...configurationConfigMaps(request.configurations),
  ];
}

/** The objects as kubectl reads them: YAML documents separated by `---`, or one JSON List. */
export function formatManifests(objects: readonly KubernetesObject[], output: 'yaml' | 'json'): string {
  if (output === 'json') return `${JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }, null, 2)}\n`;
  const header = `# Generated by courier ${version}: courier kubernetes manifests. Review, then kubectl apply -f.\n`;
  // lineWidth 0: long strings (the caBundle) stay on one line.
  return header + objects.map((o) => `---\n${stringify(o, { lineWidth: 0 })}`).join('');
}

function readPem(cmd: string, flag: string, file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw flagError(cmd, `--${flag}: ${file}: ${errorMessage(err)}`);
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) throw flagError(cmd, `--${flag}: ${file} holds no PEM certificate`);
  return text;
}

/** A value of --app that names no file is an app id, unless it looks like a path. */
function isWorkloadFile(value: string): boolean {
  return existsSync(value) || /[/\\]|\.(ya?ml|json)$/i.test(value);
}

export function parseManifestArgs(argv: readonly string[]): ManifestRequest | 'help' {
  const cmd = 'kubernetes manifests';
  const { values } = parseFlags(cmd, argv, manifestFlags);
  if (values.get('help') === true) return 'help';
  const str = (n: string): string | undefined => values.get(n) as string | undefined;
  const list = (n: string): string[] => (values.get(n) as string[] | undefined) ?? [];
  const wrap = <T>(flag: string, f: () => T): T => {
    try {
      return f();
    } catch (err) {
      if (err instanceof CourierError && err.code === 'ERR_INVALID_CONFIG') throw flagError(cmd, `--${flag}: ${err.message}`);
      throw err;
    }
  };
  const namespace = wrap('namespace', () => checkNamespace(str('namespace') ?? DEFAULT_NAMESPACE, 'the control plane namespace'));
  const appNamespace = wrap('app-namespace', () => checkNamespace(str('app-namespace') ?? 'default', 'the app namespace'));
  const image = (str('image') ?? DEFAULT_IMAGE).trim();
  if (image === '' || /\s/.test(image)) throw flagError(cmd, `--image: "${image}" is not an image reference such as registry.example.com/courier:${version}`);
  const replicas = (values.get('replicas') as number | undefined) ?? 1;
  if (!Number.isInteger(replicas) || replicas < 1) throw flagError(cmd, `--replicas: ${replicas} is not a number of at least 1`);
  const output = (str('output') ?? 'yaml').toLowerCase();
  if (output !== 'yaml' && output !== 'json') throw flagError(cmd, `--output: "${output}" is not yaml or json`);

  const apps: DiscoveredApp[] = [];
  const configurations: DiscoveredConfiguration[] = [];
  for (const value of list('app')) {
    const found = wrap('app', () => (isWorkloadFile(value) ? resourcesFromPath(value, appNamespace) : { apps: [appFromId(value, appNamespace, `--app ${value}`)], configurations: [] }));
    apps.push(...found.apps);
    configurations.push(...found.configurations);
  }
  for (const value of list('app-id')) apps.push(wrap('app-id', () => appFromId(value, appNamespace)));

  // A CourierError of its own: the sources in the message name the flags.
  checkDistinctApps(apps);
  const appsOnly = values.get('apps-only') === true;
  if (appsOnly && apps.length === 0 && configurations.length === 0) throw flagError(cmd, '--apps-only needs at least one --app or --app-id');
  wrap('app', () => checkDistinctConfigurations(configurations));
  const webhookCaPem = readPem(cmd, 'webhook-ca-file', str('webhook-ca-file'));
  const trustAnchorsPem = readPem(cmd, 'trust-anchors-file', str('trust-anchors-file'));
  const issuer = (str('kubernetes-issuer') ?? DEFAULT_KUBERNETES_ISSUER).trim();
  if (issuer !== 'off' && !/^https:\/\/\S+$/.test(issuer)) throw flagError(cmd, `--kubernetes-issuer: "${issuer}" is not an https URL (or off)`);
  const appIdFrom = (str('sentry-app-id-from') ?? 'pod').toLowerCase();
  if (appIdFrom !== 'pod' && appIdFrom !== 'serviceaccount') throw flagError(cmd, `--sentry-app-id-from: "${appIdFrom}" is not pod or serviceaccount`);
  const controlPlane: ControlPlaneOptions = {
    namespace,
    image,
    replicas,
    sentryAppIdFrom: appIdFrom,
    ...(issuer === 'off' ? {} : { kubernetesIssuer: issuer }),
    ...(webhookCaPem === undefined ? {} : { webhookCaPem }),
    ...(trustAnchorsPem === undefined ? {} : { trustAnchorsPem }),
  };
  return { controlPlane: appsOnly ? undefined : controlPlane, apps, configurations, mtls: values.get('enable-mtls') !== false, output };
}

/** `courier kubernetes <command>`: only `manifests` for now. */
export async function kubernetesMain(argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(groupUsage);
    return sub === undefined ? 1 : 0;
  }
  if (sub !== 'manifests') throw new CourierError('ERR_INVALID_FLAG', `courier kubernetes: unknown command "${sub}" (see "courier kubernetes --help")`);
  const request = parseManifestArgs(rest);
  if (request === 'help') {
    process.stdout.write(usage);
    return 0;
  }
  process.stdout.write(formatManifests(manifestObjects(request), request.output));
  await Promise.resolve();
  return 0;
}
