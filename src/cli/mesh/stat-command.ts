// `courier stat [app-id]`: each app's calls over a window (success rate, rate, latency quantiles), and
// with --routes (or for one app) the routes it serves.
import { CourierError } from '../../errors/index.js';
import { flagError, formatFlagHelp, parseFlags, type FlagSpec } from '../flags.js';
import { helpFlag, nameResolutionFlags, outputFlag, sampleFromFlags, sidecarFlag, windowFlag } from './command-options.js';
import { renderTable, statCells } from './format.js';
import type { AppView, MeshView, RouteView } from './view-types.js';

export const statFlags: readonly FlagSpec[] = [
  { name: 'routes', type: 'bool', help: "each route's figures (of <app-id> when given; every app's otherwise)" },
  windowFlag('5s'),
  sidecarFlag,
  ...nameResolutionFlags,
  outputFlag,
  helpFlag,
];

export const statUsage = `Usage: courier stat [app-id] [flags]

Shows, for every app (or one), the calls its instances received over a window: the share that
succeeded, requests per second and latency quantiles, measured by the sidecars themselves. With an
app id or --routes, also each route (verb and path, or the Configuration's pathMatching pattern).
Reads every sidecar on this machine (from $COURIER_HOME/run), those given with --sidecar, and the
sidecars name resolution lists for the apps these call and those named with --app (read on their
hosts at --remote-metrics-port).

Examples:
  courier stat
  courier stat orders --window 10s
  courier stat --routes -o json
  courier stat --config nameresolution.yaml --app orders --remote-metrics-port 9090

Flags:
${formatFlagHelp(statFlags)}
`;

/** The part of the view `courier stat` shows: the apps asked for and their routes. */
export interface StatResult {
  readonly at: number;
  readonly windowSeconds: number;
  readonly apps: readonly AppView[];
  readonly routes: readonly RouteView[];
}

export function statResult(view: MeshView, appId: string | undefined): StatResult {
  const apps = appId === undefined ? view.apps : view.apps.filter((a) => a.appId === appId);
  const routes = appId === undefined ? view.routes : view.routes.filter((r) => r.appId === appId);
  return { at: view.at, windowSeconds: view.windowSeconds, apps, routes };
}

/** NAME, INSTANCES (healthy/total), then the calls each app received. */
export function formatApps(apps: readonly AppView[]): string {
  if (apps.length === 0) return 'No apps found.\n';
  const rows = apps.map((app) => {
    const healthy = app.instances.filter((i) => i.health === 'healthy').length;
    const read = app.instances.some((i) => i.health !== 'unreachable');
    const cells = read ? statCells(app.inbound) : ['-', '-', '-', '-', '-'];
    return [app.appId === '' ? '(unknown)' : app.appId, `${healthy}/${app.instances.length}`, ...cells];
  });
  return renderTable(['NAME', 'INSTANCES', 'SUCCESS', 'RPS', 'LATENCY_P50', 'LATENCY_P95', 'LATENCY_P99'], rows);
}

/** One line per route, busiest first. */
export function formatRoutes(routes: readonly RouteView[]): string {
  if (routes.length === 0) return 'No calls received in the window.\n';
  const rows = routes.map((r) => [r.appId, r.verb, r.route, ...statCells(r.stats)]);
  return renderTable(['APP', 'VERB', 'ROUTE', 'SUCCESS', 'RPS', 'LATENCY_P50', 'LATENCY_P95', 'LATENCY_P99'], rows);
}

export async function statMain(argv: readonly string[]): Promise<number> {
  const cmd = 'stat';
  const { values, rest } = parseFlags(cmd, argv, statFlags, { allowPositionals: true });
  if (values.get('help') === true) {
    process.stdout.write(statUsage);
    return 0;
  }
  if (rest.length > 1) throw flagError(cmd, `takes at most one app id, got ${rest.join(' ')}`);
  const appId = rest[0];
  const sampled = await sampleFromFlags(cmd, values, 5000);
  if (sampled === undefined) return 0;
  const { output } = sampled;
  if (appId !== undefined && !sampled.view.apps.some((a) => a.appId === appId)) {
    const known = sampled.view.apps.map((a) => a.appId).filter((id) => id !== '');
    throw new CourierError('ERR_BAD_REQUEST', `no sidecar of app "${appId}" found${known.length === 0 ? '' : ` (apps: ${known.join(', ')})`}`);
  }
  const result = statResult(sampled.view, appId);
  if (output === 'json') {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return 0;
  }
  let text = formatApps(result.apps);
  if (appId !== undefined || values.get('routes') === true) text += `\n${formatRoutes(result.routes)}`;
  process.stdout.write(text);
  return 0;
}
