import { resolve } from 'node:path';
import { appSslDeprecation, parseAppProtocol, withAppSsl } from '../../channel/app-protocol.js';
import { CourierError } from '../../errors/index.js';
import { validateAppId } from '../../invoke/identity.js';
import { flagError, formatFlagHelp, parseFlags, type FlagSpec } from '../flags.js';
import { sidecarFlags } from '../sidecar-command.js';
import { randomAppId } from './app-names.js';
import { bareFlagMessage, checkPath, checkSidecarFlags, type AppLaunch } from './launch.js';

/** A sidecar flag as `courier run` offers it: the same definition, with dapr CLI's short name or default. */
function shared(name: string, changes: Partial<FlagSpec> = {}): FlagSpec {
  const spec = sidecarFlags.find((f) => f.name === name);
  if (spec === undefined) throw new Error(`no sidecar flag --${name}`);
  return { ...spec, ...changes };
}

/** The flags of `courier run`, which are `dapr run`'s: the sidecar's own flags plus the CLI's. */
export const runFlags: readonly FlagSpec[] = [
  shared('app-id', { short: 'a', defaultText: 'a random adjective-noun name', help: 'the id of the app' }),
  shared('app-port', { short: 'p' }),
  shared('app-protocol', { short: 'P' }),
  shared('app-ssl'),
  shared('app-channel-address'),
  shared('dapr-http-port', { short: 'H', defaultText: 'a free port', help: "the port of the sidecar's HTTP API" }),
  shared('dapr-grpc-port', { short: 'G', defaultText: 'a free port' }),
  shared('dapr-internal-grpc-port', { short: 'I' }),
  shared('metrics-port', { defaultText: 'a free port' }),
  shared('config'),
  shared('resources-path', { short: 'd', help: 'a directory of resource files (repeatable; -d/--components-path is the old name)' }),
  shared('app-max-concurrency', { defaultText: 'unlimited' }),
  shared('log-level', { help: "the sidecar's log level: debug, info, warn, error or fatal" }),
  shared('max-body-size'),
  shared('read-buffer-size'),
  shared('enable-app-health-check'),
  shared('app-health-check-path'),
  shared('app-health-probe-interval'),
  shared('app-health-probe-timeout'),
  shared('app-health-threshold'),
  shared('dapr-listen-addresses'),
  shared('unix-domain-socket', { short: 'u' }),
  { name: 'run-file', short: 'f', type: 'string', placeholder: '<dir|file>', help: 'run the apps of a run file (dapr.yaml in a directory)' },
  shared('enable-api-logging'),
  shared('placement-host-address'),
  shared('scheduler-host-address'),
  shared('enable-profiling'),
  shared('profile-port'),
  shared('load-balancing'),
  shared('outlier-ejection'),
  shared('retry-budget'),
  shared('retry-budget-min'),
  { name: 'runtime-path', type: 'string', hidden: true, ignored: 'Courier needs no Dapr installation', help: '' },
  { name: 'kubernetes', short: 'k', type: 'bool', hidden: true, help: '' },
  shared('help'),
];

/** Flags refused with a reason rather than ignored. */
const refused: Readonly<Record<string, string>> = {
  kubernetes: 'Courier runs apps on this machine only; there is no Kubernetes mode',
};

export const runUsage = `Usage: courier run [flags] [--] [<command> [<args>...]]
       courier run -f <dir|file>

Starts a Courier sidecar, then your app with APP_ID, APP_PORT, APP_PROTOCOL, DAPR_HTTP_PORT,
DAPR_GRPC_PORT and DAPR_METRICS_PORT in its environment, and shows the output of both. Everything
from the first argument that is not a flag belongs to the app's command. Ctrl-C stops the app, then
the sidecar. Ports not given are chosen free. Without a command only the sidecar runs.

With -f, starts every app of a run file (Dapr's multi-app run template, dapr.yaml in a directory).

Examples:
  courier run --app-id nodeapp --app-port 3000 -- node app.js
  courier run -a checkout node app.js
  courier run -f .

Flags:
${formatFlagHelp(runFlags)}
`;

export type RunRequest =
  | { readonly kind: 'help' }
  | { readonly kind: 'file'; readonly path: string; readonly warnings: readonly string[] }
  | { readonly kind: 'app'; readonly launch: AppLaunch; readonly warnings: readonly string[] };

export interface RunArgsContext {
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  readonly randomId?: () => string;
}

/** Turns `courier run` arguments into what to start. Throws ERR_INVALID_FLAG. */
export function parseRunArgs(argv: readonly string[], context: RunArgsContext): RunRequest {
  const cmd = 'run';
  const { values, rest } = parseFlags(cmd, argv, runFlags, { stopAtPositional: true });
  if (values.get('help') === true) return { kind: 'help' };

  const warnings: string[] = [];
  for (const spec of runFlags) {
    if (!values.has(spec.name)) continue;
    const reason = refused[spec.name];
    if (reason !== undefined) throw flagError(cmd, `--${spec.name} is not supported: ${reason}`);
    if (spec.ignored !== undefined) warnings.push(`--${spec.name} is ignored: ${spec.ignored}`);
  }
  const str = (name: string): string | undefined => values.get(name) as string | undefined;
  const int = (name: string): number | undefined => values.get(name) as number | undefined;

  const runFile = str('run-file');
  if (runFile !== undefined) {
    const others = runFlags.filter((s) => s.name !== 'run-file' && s.ignored === undefined && values.has(s.name)).map((s) => `--${s.name}`);
    if (others.length > 0) throw flagError(cmd, `${others.join(', ')} cannot be combined with --run-file: set it in the run file instead`);
    if (rest.length > 0) throw flagError(cmd, `an app command cannot be combined with --run-file: give each app's command in the run file`);
    if (runFile === '') throw flagError(cmd, '--run-file needs a file or directory');
    return { kind: 'file', path: resolve(context.cwd, runFile), warnings };
  }

  const appId = str('app-id') ?? (context.randomId ?? randomAppId)();
  const invalid = validateAppId(appId);
  if (invalid !== undefined) throw flagError(cmd, `--app-id: ${invalid}`);

  const sidecarFlags: string[] = [];
  const config = str('config');
  if (config !== undefined) {
    const file = resolve(context.cwd, config);
    const problem = checkPath(file, 'file');
    if (problem !== undefined) throw flagError(cmd, `--config ${config}: ${problem}`);
    sidecarFlags.push('--config', file);
  }
  for (const dir of (values.get('resources-path') as string[] | undefined) ?? []) {
    const path = resolve(context.cwd, dir);
    const problem = checkPath(path, 'directory');
    if (problem !== undefined) throw flagError(cmd, `--resources-path ${dir}: ${problem}`);
    sidecarFlags.push('--resources-path', path);
  }
  const socketDir = str('unix-domain-socket');
  if (socketDir !== undefined) {
    const dir = resolve(context.cwd, socketDir);
    const problem = checkPath(dir, 'directory');
    if (problem !== undefined) throw flagError(cmd, `--unix-domain-socket ${socketDir}: ${problem}`);
    sidecarFlags.push('--unix-domain-socket', dir);
  }
  if (values.get('enable-api-logging') !== undefined) sidecarFlags.push(`--enable-api-logging=${String(values.get('enable-api-logging'))}`);
  if (values.get('enable-profiling') === true) sidecarFlags.push('--enable-profiling');
  if (values.get('profile-port') !== undefined) sidecarFlags.push('--profile-port', String(values.get('profile-port')));
  for (const name of [
    'app-max-concurrency',
    'log-level',
    'max-body-size',
    'read-buffer-size',
    'app-health-check-path',
    'app-health-probe-interval',
    'app-health-probe-timeout',
    'app-health-threshold',
    'dapr-listen-addresses',
    'load-balancing',
    'outlier-ejection',
    'retry-budget',
    'retry-budget-min',
  ]) {
    const value = values.get(name);
    if (value !== undefined) sidecarFlags.push(`--${name}`, String(value));
  }
  if (values.get('enable-app-health-check') === true) sidecarFlags.push('--enable-app-health-check');

  // The deprecated --app-ssl picks the TLS variant of the protocol; the app and its sidecar see the result.
  let appProtocol = (str('app-protocol') ?? 'http').toLowerCase();
  if (values.has('app-ssl')) {
    warnings.push(appSslDeprecation);
    const known = parseAppProtocol(appProtocol);
    if (values.get('app-ssl') === true && known !== undefined) appProtocol = withAppSsl(known);
  }

  const port = (name: string): number | undefined => {
    const value = int(name);
    if (value === undefined) return undefined;
    if (value < 0 || value > 65535) throw flagError(cmd, `--${name}: ${value} is not a port number`);
    return value === 0 ? undefined : value;
  };
  const launch: AppLaunch = {
    appId,
    appPort: port('app-port'),
    appProtocol,
    appChannelAddress: str('app-channel-address'),
    httpPort: port('dapr-http-port'),
    grpcPort: port('dapr-grpc-port'),
    internalGrpcPort: port('dapr-internal-grpc-port'),
    metricsPort: port('metrics-port'),
    sidecarFlags,
    command: rest,
    cwd: context.cwd,
    env: {},
    appLogDestination: 'console',
    sidecarLogDestination: 'console',
    logDirectory: undefined,
    runTemplate: undefined,
  };
  try {
    checkSidecarFlags(launch, context.env);
  } catch (err) {
    if (err instanceof CourierError && err.code === 'ERR_INVALID_FLAG') throw flagError(cmd, bareFlagMessage(err));
    throw err;
  }
  return { kind: 'app', launch, warnings };
}
