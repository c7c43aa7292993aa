// `courier injector`: the mutating admission webhook that adds a Courier sidecar to Pods annotated the Dapr way.
import { readFileSync } from '../../util/builtins.js';
import { flagError, formatFlagHelp, parseFlags, type FlagSpec } from '../../cli/flags.js';
import { CourierError, errorMessage } from '../../errors/index.js';
import { createLogger, logLevels, type LogLevel } from '../../observability/logging/index.js';
import { version } from '../../version.js';
import type { InjectorOptions } from './patch.js';
import { InjectorServer } from './server.js';

export const DEFAULT_INJECTOR_PORT = 4000;
export const DEFAULT_CONTROL_PLANE_NS = 'courier-system';
export const DEFAULT_SIDECAR_IMAGE = `courier:${version}`;
export const DEFAULT_TRUST_ANCHORS_KEY = 'ca.crt';

const injectorFlags: readonly FlagSpec[] = [
  { name: 'port', type: 'int', placeholder: '<port>', defaultText: String(DEFAULT_INJECTOR_PORT), help: 'the HTTPS port the API server calls' },
  { name: 'listen-address', type: 'string', placeholder: '<host>', defaultText: '0.0.0.0', help: 'the address to listen on' },
  { name: 'tls-cert-file', type: 'string', placeholder: '<file>', help: 'the serving certificate (PEM chain), reloaded when it changes (required)' },
  { name: 'tls-key-file', type: 'string', placeholder: '<file>', help: 'its private key (PEM), reloaded with it (required)' },
  { name: 'image', type: 'string', placeholder: '<image>', defaultText: DEFAULT_SIDECAR_IMAGE, help: 'the sidecar image (a Pod may name another with dapr.io/sidecar-image)' },
  {
    name: 'namespace',
    type: 'string',
    placeholder: '<ns>',
    defaultText: `$NAMESPACE or ${DEFAULT_CONTROL_PLANE_NS}`,
    help: 'the control-plane namespace (of the Sentry)',
  },
  { name: 'sentry-address', type: 'string', placeholder: '<host:port>', defaultText: 'courier-sentry.<namespace>.svc:443', help: 'the Sentry the sidecars get certificates from' },
  {
    name: 'trust-anchors-file',
    type: 'string',
    placeholder: '<file>',
    help: 'PEM trust anchors given to every sidecar as DAPR_TRUST_ANCHORS; turns mTLS on',
  },
  {
    name: 'trust-anchors-configmap',
    type: 'string',
    placeholder: '<name>[:key]',
    help: `a ConfigMap present in every app namespace whose key (default ${DEFAULT_TRUST_ANCHORS_KEY}) holds the trust anchors, mounted into the sidecar and watched; turns mTLS on`,
  },
  { name: 'log-level', type: 'string', placeholder: '<level>', defaultText: 'info', help: 'debug, info, warn, error or fatal' },
  { name: 'log-as-json', type: 'bool', help: 'write logs as JSON lines' },
  { name: 'help', short: 'h', type: 'bool', help: 'show this help' },
];

const usage = `Usage: courier injector --tls-cert-file <file> --tls-key-file <file> [flags]

Runs the sidecar injector: a mutating admission webhook (POST /mutate, admission.k8s.io/v1) that adds a
"courier" sidecar container to every Pod created with the annotation dapr.io/enabled: "true", configured
from the Pod's other dapr.io/ annotations as Dapr's injector does. GET /healthz answers 200.

Flags:
${formatFlagHelp(injectorFlags)}
`;

export interface InjectorCommandOptions extends InjectorOptions {
  readonly port: number;
  readonly host: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly logLevel: LogLevel;
  readonly logAsJson: boolean;
}

/** Turns `courier injector` arguments into options. Throws ERR_INVALID_FLAG. */
export function parseInjectorArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): InjectorCommandOptions | 'help' {
  const cmd = 'injector';
  const { values } = parseFlags(cmd, argv, injectorFlags);
  if (values.get('help') === true) return 'help';
  const str = (n: string): string | undefined => {
    const v = values.get(n) as string | undefined;
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };
  const port = (values.get('port') as number | undefined) ?? DEFAULT_INJECTOR_PORT;
  if (port < 0 || port > 65535) throw flagError(cmd, `--port: ${port} is not a port number`);
  const certFile = str('tls-cert-file');
  const keyFile = str('tls-key-file');
  if (certFile === undefined || keyFile === undefined) throw flagError(cmd, '--tls-cert-file and --tls-key-file are required (the API server calls webhooks over HTTPS only)');
  const logLevel = (str('log-level') ?? 'info').toLowerCase();
  if (!(logLevels as readonly string[]).includes(logLevel)) throw flagError(cmd, `--log-level: "${logLevel}" is not one of ${logLevels.join(', ')}`);
  const namespace = str('namespace') ?? (env.NAMESPACE?.trim() || undefined) ?? DEFAULT_CONTROL_PLANE_NS;
  const sentryAddress = str('sentry-address') ?? `courier-sentry.${namespace}.svc:443`;
  if (!/^\[?[^\]\s]+\]?:\d+$/.test(sentryAddress)) throw flagError(cmd, `--sentry-address: "${sentryAddress}" is not host:port`);

  const anchorsFile = str('trust-anchors-file');
  const anchorsMap = str('trust-anchors-configmap');
  if (anchorsFile !== undefined && anchorsMap !== undefined) throw flagError(cmd, 'give either --trust-anchors-file or --trust-anchors-configmap, not both');
  let trustAnchors: InjectorOptions['trustAnchors'];
  if (anchorsFile !== undefined) {
    let pem: string;
    try {
      pem = readFileSync(anchorsFile, 'utf8').trim();
    } catch (err) {
      throw flagError(cmd, `--trust-anchors-file ${anchorsFile}: ${errorMessage(err)}`);
    }
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw flagError(cmd, `--trust-anchors-file ${anchorsFile}: holds no PEM certificate`);
    trustAnchors = { pem: `${pem}\n` };
  } else if (anchorsMap !== undefined) {
    const [name = '', key = DEFAULT_TRUST_ANCHORS_KEY] = anchorsMap.split(':');
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) || !/^[-._a-zA-Z0-9]+$/.test(key)) {
      throw flagError(cmd, `--trust-anchors-configmap: "${anchorsMap}" is not <configmap-name>[:key]`);
    }
    trustAnchors = { configMap: name, key };
  }
  return {
    port,
    host: str('listen-address') ?? '0.0.0.0',
    certFile,
    keyFile,
    image: str('image') ?? DEFAULT_SIDECAR_IMAGE,
    controlPlaneNamespace: namespace,
    sentryAddress,
    trustAnchors,
    logLevel: logLevel as LogLevel,
    logAsJson: values.get('log-as-json') === true,
  };
}

export async function injectorMain(argv: readonly string[]): Promise<number> {
  const options = parseInjectorArgs(argv);
  if (options === 'help') {
    process.stdout.write(usage);
    return 0;
  }
  const logger = createLogger({ level: options.logLevel, json: options.logAsJson, base: { scope: 'injector' } });
  const server = new InjectorServer({ ...options, logger });
  let port: number;
  try {
    port = await server.listen(options.host, options.port);
  } catch (err) {
    throw new CourierError('ERR_INVALID_CONFIG', `courier injector: cannot listen on ${options.host}:${options.port}: ${errorMessage(err)}`);
  }
  if (options.trustAnchors === undefined) logger.warn('no --trust-anchors-file or --trust-anchors-configmap: injected sidecars run without mTLS');
  logger.info({ address: `${options.host}:${port}`, image: options.image, sentry_address: options.sentryAddress }, 'sidecar injector listening');
  return new Promise<number>((resolve) => {
    const stop = (signal: string): void => {
      logger.info({ signal }, 'stopping');
      void server.close().then(() => resolve(0));
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
