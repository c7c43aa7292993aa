import { createServer } from 'node:net';
import { CourierError } from '../../errors/index.js';
import type { AppLaunch } from './launch.js';

/** A sidecar port a launch asks for explicitly, with where it was asked for. */
export interface PortClaim {
  readonly port: number;
  /** `--dapr-http-port`, or `daprHTTPPort of app "x" in /dir/dapr.yaml`. */
  readonly origin: string;
  /** The addresses the sidecar binds it on. */
  readonly hosts: readonly string[];
}

/** The sidecar flags that take a port, with their run-file keys. */
const portKeys = [
  { field: 'httpPort', flag: '--dapr-http-port', key: 'daprHTTPPort' },
  { field: 'grpcPort', flag: '--dapr-grpc-port', key: 'daprGRPCPort' },
  { field: 'internalGrpcPort', flag: '--dapr-internal-grpc-port', key: 'daprInternalGRPCPort' },
  { field: 'metricsPort', flag: '--metrics-port', key: 'metricsPort' },
] as const;

/** Where a launch's port flag came from: the flag itself, or the run-file key of its app. */
export function portOrigin(launch: AppLaunch, flag: string): string {
  const entry = portKeys.find((k) => k.flag === flag);
  if (launch.runTemplate === undefined || entry === undefined) return flag;
  return `${entry.key} of app "${launch.appId}" in ${launch.runTemplate.path}`;
}

/** The last value of a sidecar flag in the launch, if given. */
function flagValue(launch: AppLaunch, flag: string): string | undefined {
  const at = launch.sidecarFlags.lastIndexOf(flag);
  return at < 0 ? undefined : launch.sidecarFlags[at + 1];
}

/** Every port the launch's sidecar will bind because the user chose it (ports left free are not claims). */
export function portClaims(launch: AppLaunch): PortClaim[] {
  const apiHosts = (flagValue(launch, '--dapr-listen-addresses') ?? '127.0.0.1,[::1]')
    .split(',')
    .map((a) => a.trim().replace(/^\[(.*)\]$/, '$1'))
    .filter((a) => a !== '');
  const internalHost = (flagValue(launch, '--dapr-internal-grpc-listen-address') ?? '127.0.0.1').replace(/^\[(.*)\]$/, '$1');
  const claims: PortClaim[] = [];
  for (const { field, flag } of portKeys) {
    const port = launch[field];
    if (port === undefined || port === 0) continue;
    const hosts = field === 'internalGrpcPort' ? [internalHost] : field === 'metricsPort' ? ['127.0.0.1'] : apiHosts;
    claims.push({ port, origin: portOrigin(launch, flag), hosts });
  }
  return claims;
}

/** The one line for a port another process holds, as `courier run` and `courier sidecar` print it. */
export function portInUseMessage(port: number, origin: string): string {
  return `courier run: port ${port} (${origin}) is already in use`;
}

/**
 * Before anything starts: every port chosen by a flag or a run-file key must be chosen once and be
 * free now, else the run stops with one line naming the port and what chose it. (A port taken between
 * this check and the sidecar's start is reported by the sidecar, and worded the same way.)
 */
export async function checkPortsFree(launches: readonly AppLaunch[]): Promise<void> {
  const seen = new Map<number, string>();
  const claims = launches.flatMap(portClaims);
  for (const claim of claims) {
    const earlier = seen.get(claim.port);
    if (earlier !== undefined) throw new CourierError('ERR_INVALID_FLAG', `courier run: port ${claim.port} is chosen twice: ${earlier} and ${claim.origin}`);
    seen.set(claim.port, claim.origin);
  }
  for (const claim of claims) {
    for (const host of claim.hosts) {
      if ((await probe(host, claim.port)) === 'in-use') throw new CourierError('ERR_INVALID_FLAG', portInUseMessage(claim.port, claim.origin));
    }
  }
}

/** Binds the port for a moment: free, taken, or not bindable here for another reason (left for the sidecar to report). */
function probe(host: string, port: number): Promise<'free' | 'in-use' | 'no-host'> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'EADDRINUSE' ? 'in-use' : 'no-host'));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve('free')));
  });
}

/** The sidecar's own line for a port in use (`port 3500 (--dapr-http-port) is already in use`), if its output has one. */
export function sidecarPortInUse(lines: readonly string[]): { port: number; flag: string } | undefined {
  for (const line of lines) {
    const match = /port (\d+) \((--[a-z-]+)\) is already in use/.exec(line);
    if (match !== null) return { port: Number(match[1]), flag: match[2] ?? '' };
  }
  return undefined;
}
