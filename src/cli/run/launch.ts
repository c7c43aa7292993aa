import { existsSync, statSync } from '../../util/builtins.js';
import type { CourierError } from '../../errors/index.js';
import { parseSidecarArgs } from '../sidecar-command.js';
import { withLauncherEnv, withoutLauncherEnv } from '../../runtime/heap-flags.js';

/** Where the output of an app or its sidecar goes (Dapr's run-file `appLogDestination` values). */
export type LogDestination = 'file' | 'console' | 'fileAndConsole';
export const logDestinations: readonly LogDestination[] = ['file', 'console', 'fileAndConsole'];

/** The run template an app came from (`courier run -f`). */
export interface RunTemplateRef {
  /** Absolute path of the run file. */
  readonly path: string;
  readonly name: string;
}

/**
 * One app and its sidecar, as `courier run` starts them, from flags or from an entry of a run file.
 * Paths are absolute. Unset ports are chosen at start.
 */
export interface AppLaunch {
  readonly appId: string;
  readonly appPort: number | undefined;
  readonly appProtocol: string;
  readonly appChannelAddress: string | undefined;
  readonly httpPort: number | undefined;
  readonly grpcPort: number | undefined;
  readonly internalGrpcPort: number | undefined;
  readonly metricsPort: number | undefined;
  /** Further `courier sidecar` flags: configuration, resources, limits, health checks, log level, listen addresses. */
  readonly sidecarFlags: readonly string[];
  /** The app's command line; empty to run only the sidecar. */
  readonly command: readonly string[];
  /** Working directory of the app and its sidecar. */
  readonly cwd: string;
  /** Variables added to the environment of the app and its sidecar. */
  readonly env: Readonly<Record<string, string>>;
  /** Variables for the sidecar only (its Sentry token and trust anchors), never the app. */
  readonly sidecarEnv?: Readonly<Record<string, string>>;
  readonly appLogDestination: LogDestination;
  readonly sidecarLogDestination: LogDestination;
  /** Where log files go when a destination includes `file`. */
  readonly logDirectory: string | undefined;
  readonly runTemplate: RunTemplateRef | undefined;
}

/** The ports a started sidecar actually uses. */
export interface LaunchPorts {
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly metricsPort: number;
}

/** The arguments after `courier sidecar` for this launch (`httpPort` 0 lets the sidecar pick). */
export function sidecarArgs(launch: AppLaunch, ports: LaunchPorts): string[] {
  const args = ['--app-id', launch.appId];
  if (launch.appPort !== undefined) args.push('--app-port', String(launch.appPort));
  args.push('--app-protocol', launch.appProtocol);
  if (launch.appChannelAddress !== undefined) args.push('--app-channel-address', launch.appChannelAddress);
  args.push('--dapr-http-port', String(ports.httpPort), '--dapr-grpc-port', String(ports.grpcPort), '--metrics-port', String(ports.metricsPort));
  if (launch.internalGrpcPort !== undefined) args.push('--dapr-internal-grpc-port', String(launch.internalGrpcPort));
  args.push(...launch.sidecarFlags);
  return args;
}

/** The app's environment: inherited, then the launch's own variables, then Dapr's variables. */
export function appEnvironment(launch: AppLaunch, ports: LaunchPorts, base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...withoutLauncherEnv(base), ...launch.env };
  env.APP_ID = launch.appId;
  if (launch.appPort !== undefined) env.APP_PORT = String(launch.appPort);
  else delete env.APP_PORT;
  env.APP_PROTOCOL = launch.appProtocol;
  if (launch.appChannelAddress !== undefined && launch.appChannelAddress !== '127.0.0.1') env.APP_CHANNEL_ADDRESS = launch.appChannelAddress;
  else delete env.APP_CHANNEL_ADDRESS;
  if (socketDirectoryOf(launch) === undefined) {
    env.DAPR_HTTP_PORT = String(ports.httpPort);
    env.DAPR_GRPC_PORT = String(ports.grpcPort);
  } else {
    // The APIs listen on Unix sockets only: a port here would point at nothing.
    delete env.DAPR_HTTP_PORT;
    delete env.DAPR_GRPC_PORT;
  }
  env.DAPR_METRICS_PORT = String(ports.metricsPort);
  return env;
}

/** The sidecar's environment: inherited, the launcher's allocator settings, then the launch's own variables. */
export function sidecarEnvironment(launch: AppLaunch, base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...withLauncherEnv(base), ...launch.env, ...launch.sidecarEnv };
}

/** The `--unix-domain-socket` directory a launch passes to its sidecar, if any. */
export function socketDirectoryOf(launch: AppLaunch): string | undefined {
  const at = launch.sidecarFlags.lastIndexOf('--unix-domain-socket');
  return at < 0 ? undefined : launch.sidecarFlags[at + 1];
}

/** The `--config` file a launch passes to its sidecar, if any. */
export function configFileOf(launch: AppLaunch): string | undefined {
  const at = launch.sidecarFlags.lastIndexOf('--config');
  return at < 0 ? undefined : launch.sidecarFlags[at + 1];
}

/**
 * Checks the sidecar flags of a launch the way `courier sidecar` will, before anything is started.
 * Throws the sidecar's ERR_INVALID_FLAG error unchanged; callers reword it for their context.
 */
export function checkSidecarFlags(launch: AppLaunch, env: NodeJS.ProcessEnv): void {
  parseSidecarArgs(sidecarArgs(launch, { httpPort: launch.httpPort ?? 0, grpcPort: launch.grpcPort ?? 0, metricsPort: launch.metricsPort ?? 0 }), {
    ...env,
    ...launch.env,
  });
}

/** The text of a `courier sidecar` flag error without its `courier sidecar: ` prefix and help hint. */
export function bareFlagMessage(error: CourierError): string {
  return error.message.replace(/^courier sidecar: /, '').replace(/ \(see "courier sidecar --help"\)$/, '');
}

/** Undefined if `path` is an existing file (or directory, when `kind` says so); else why not. */
export function checkPath(path: string, kind: 'file' | 'directory'): string | undefined {
  if (!existsSync(path)) return 'does not exist';
  const isDir = statSync(path).isDirectory();
  if (kind === 'directory' && !isDir) return 'is not a directory';
  if (kind === 'file' && isDir) return 'is a directory, not a file';
  return undefined;
}

/** `20240131154502`: the timestamp in log file names, as Dapr's CLI writes it (local time). */
export function logTimestamp(date: Date): string {
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${date.getFullYear()}${two(date.getMonth() + 1)}${two(date.getDate())}${two(date.getHours())}${two(date.getMinutes())}${two(date.getSeconds())}`;
}
