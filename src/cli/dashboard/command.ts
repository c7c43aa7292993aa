// `courier dashboard`: serves a live web view of the mesh until Ctrl-C.
import { isIP } from 'node:net';
import { formatDuration, parseDuration } from '../../util/duration.js';
import { flagError, formatFlagHelp, parseFlags, type FlagSpec } from '../flags.js';
import { DashboardServer } from './server.js';
import { parseSidecarAddress } from '../mesh/collect.js';
import { nameResolutionFlags, parseMeshFlags } from '../mesh/command-options.js';
import { meshSource, type MeshSource } from './source.js';

export const dashboardFlags: readonly FlagSpec[] = [
  { name: 'address', type: 'string', placeholder: '<ip>', defaultText: '127.0.0.1', help: 'the address to serve on; whoever reaches it sees the mesh, so keep it on loopback unless you mean to share it' },
  { name: 'port', short: 'p', type: 'int', placeholder: '<port>', defaultText: '8080', help: 'the port to serve on; 0 picks a free one' },
  { name: 'sidecar', type: 'list', placeholder: '<host:port>', help: 'also read the sidecar whose metrics port is there (repeatable), beside those running on this machine' },
  ...nameResolutionFlags,
  { name: 'window', type: 'string', placeholder: '<duration>', defaultText: '2s', help: 'how often the sidecars are read, and the window rates and latencies are computed over' },
  { name: 'help', short: 'h', type: 'bool', help: 'show this help' },
];

export const dashboardUsage = `Usage: courier dashboard [flags]

Serves a live web view of the mesh: apps and their instances, the call graph with rates, success and
latencies, per-app and per-route tables, charts, a tap of recent calls (never bodies or header values)
and each sidecar's configuration. It reads the sidecars running on this machine (from
$COURIER_HOME/run), those given with --sidecar, and the sidecars name resolution lists for the apps
these call and those named with --app (on their hosts at --remote-metrics-port), on their metrics
ports, with DAPR_API_TOKEN when set. It prints the address to open and opens no browser itself.

Flags:
${formatFlagHelp(dashboardFlags)}
`;

export interface DashboardSettings {
  readonly host: string;
  readonly port: number;
  readonly windowMs: number;
  readonly addresses: readonly string[];
}

/** Checks the flags into settings; throws flag errors with the command's name. */
export function dashboardSettings(values: ReadonlyMap<string, string | number | boolean | string[]>): DashboardSettings {
  const host = ((values.get('address') as string | undefined) ?? '127.0.0.1').trim().replace(/^\[(.*)\]$/, '$1');
  if (host !== 'localhost' && isIP(host) === 0) throw flagError('dashboard', `--address: "${host}" is not an IP address`);
  const port = (values.get('port') as number | undefined) ?? 8080;
  if (port < 0 || port > 65535) throw flagError('dashboard', `--port: ${port} is not a port (0 to 65535)`);
  const windowText = (values.get('window') as string | undefined) ?? '2s';
  const windowMs = parseDuration(windowText);
  if (windowMs === undefined || windowMs < 250 || windowMs > 3_600_000) {
    throw flagError('dashboard', `--window: "${windowText}" is not a duration from 250ms to 1h (such as 2s)`);
  }
  const addresses = ((values.get('sidecar') as string[] | undefined) ?? []).map((a) => a.trim());
  for (const address of addresses) {
    if (parseSidecarAddress(address) === undefined) throw flagError('dashboard', `--sidecar: "${address}" is not the host:port of a sidecar's metrics port`);
  }
  return { host, port, windowMs, addresses };
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

export async function dashboardMain(argv: readonly string[], source?: MeshSource): Promise<number> {
  const { values } = parseFlags('dashboard', argv, dashboardFlags);
  if (values.get('help') === true) {
    process.stdout.write(dashboardUsage);
    return 0;
  }
  const settings = dashboardSettings(values);
  if (!isLoopback(settings.host)) {
    process.stderr.write(`courier dashboard: serving on ${settings.host}, not loopback: the dashboard has no login, and anyone who can reach this address sees the mesh\n`);
  }
  // One resolver for the whole run (it may hold a database or sockets): every refresh uses it, and
  // the dashboard closes it when it stops.
  const names = parseMeshFlags('dashboard', values);
  const token = process.env.DAPR_API_TOKEN;
  const dashboard = await DashboardServer.start({
    source: source ?? meshSource,
    host: settings.host,
    port: settings.port,
    windowMs: settings.windowMs,
    addresses: settings.addresses,
    names: { lookup: names.names, appIds: names.appIds, remoteMetricsPort: names.remoteMetricsPort },
    env: process.env,
    ...(token === undefined || token === '' ? {} : { token }),
    onProblem: (problem) => process.stderr.write(`courier dashboard: ${problem ?? 'the sidecars are read again'}\n`),
  }).catch(async (err: unknown) => {
    await names.names.close();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw flagError('dashboard', `port ${settings.port} on ${settings.host} is in use; choose another with --port (0 picks a free one)`);
    if (code === 'EADDRNOTAVAIL') throw flagError('dashboard', `--address: this machine has no address ${settings.host}`);
    throw err;
  });
  process.stdout.write(`Courier dashboard: ${dashboard.url} (window ${formatDuration(settings.windowMs)}; Ctrl-C to stop)\n`);
  await new Promise<void>((resolve) => {
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    const stop = (): void => {
      for (const s of signals) process.off(s, stop);
      resolve();
    };
    for (const s of signals) process.on(s, stop);
  });
  await dashboard.close();
  return 0;
}
