// `courier top`: the busiest routes of the mesh, redrawn every window until Ctrl-C.
import { formatFlagHelp, flagError, parseFlags, type FlagSpec } from '../flags.js';
import { meshView, sampleMesh } from './collect.js';
import {
  describeRef,
  discover,
  findSidecars,
  helpFlag,
  nameResolutionFlags,
  onStopSignal,
  outputFlag,
  parseMeshFlags,
  parseOutput,
  parseWindow,
  reportUnreadable,
  reportWarnings,
  sampleOptions,
  sampleWindow,
  sidecarFlag,
  unreadable,
  waitUntil,
  windowFlag,
} from './command-options.js';
import { formatClock, formatLatency, formatRps, formatSuccess, renderTable } from './format.js';
import type { MeshSample, MeshView, RouteView } from './view-types.js';

export const topFlags: readonly FlagSpec[] = [
  windowFlag('2s'),
  { name: 'once', type: 'bool', help: 'show one window and exit' },
  sidecarFlag,
  ...nameResolutionFlags,
  outputFlag,
  helpFlag,
];

export const topUsage = `Usage: courier top [flags]

Shows the routes of every app that received calls in the last window, busiest first, and redraws
them every window until Ctrl-C. With --once, one window and exit. With -o json, one JSON document per
window, one per line. Reads every sidecar on this machine (from $COURIER_HOME/run), those given with
--sidecar, and the sidecars name resolution lists for the apps these call and those named with --app
(read on their hosts at --remote-metrics-port), all looked for again every window.

Flags:
${formatFlagHelp(topFlags)}
`;

/** What one refresh shows: the routes that received calls in the window, busiest first. */
export interface TopResult {
  readonly at: number;
  readonly windowSeconds: number;
  readonly routes: readonly RouteView[];
}

export function topResult(view: MeshView): TopResult {
  return { at: view.at, windowSeconds: view.windowSeconds, routes: view.routes.filter((r) => r.stats.calls > 0) };
}

const CLEAR = '\x1b[H\x1b[2J';

/** The screen of one refresh; `maxRows` routes at most (the terminal's height); name resolution's `warnings` at the end. */
export function formatTop(result: TopResult, after: MeshSample, maxRows = Infinity, warnings: readonly string[] = []): string {
  const problems = unreadable(after);
  const read = `${after.sidecars.length - problems.length}/${after.sidecars.length} sidecars read`;
  const head = `courier top: busiest routes over ${result.windowSeconds.toFixed(1)}s at ${formatClock(result.at).slice(0, 8)}, ${read}\n\n`;
  const failed = [...problems.map((s) => `cannot read the sidecar of ${describeRef(s.ref)}: ${s.error ?? ''}\n`), ...warnings.map((w) => `${w}\n`)];
  if (result.routes.length === 0) return `${head}No calls in the window.\n${failed.join('')}`;
  const shown = result.routes.slice(0, Math.max(1, maxRows));
  const rows = shown.map((r) => [r.appId, r.verb, r.route, String(r.stats.calls), formatSuccess(r.stats.successRate), formatRps(r.stats.rps), ...[r.stats.p50, r.stats.p95, r.stats.p99].map(formatLatency)]);
  const more = result.routes.length > shown.length ? `… and ${result.routes.length - shown.length} more\n` : '';
  return `${head}${renderTable(['APP', 'VERB', 'ROUTE', 'CALLS', 'SUCCESS', 'RPS', 'LATENCY_P50', 'LATENCY_P95', 'LATENCY_P99'], rows)}${more}${failed.join('')}`;
}

export async function topMain(argv: readonly string[]): Promise<number> {
  const cmd = 'top';
  const { values, rest } = parseFlags(cmd, argv, topFlags);
  if (values.get('help') === true) {
    process.stdout.write(topUsage);
    return 0;
  }
  if (rest.length > 0) throw flagError(cmd, `unexpected argument "${rest.join(' ')}"`);
  const windowMs = parseWindow(cmd, values.get('window') as string | undefined, 2000);
  const output = parseOutput(cmd, values.get('output') as string | undefined);
  const flags = parseMeshFlags(cmd, values);
  const options = sampleOptions(process.env);
  try {
    const first = await findSidecars(cmd, flags);

    if (values.get('once') === true) {
      const sampled = await sampleWindow(first.refs, windowMs, options);
      if (sampled === undefined) return 0;
      reportUnreadable(cmd, sampled.after);
      const result = topResult(sampled.view);
      process.stdout.write(output === 'json' ? `${JSON.stringify(result, null, 2)}\n` : formatTop(result, sampled.after));
      return 0;
    }

    const stop = onStopSignal();
    const redraw = output === 'table' && process.stdout.isTTY;
    let warnings = first.warnings;
    try {
      let before = await sampleMesh(first.refs, options);
      if (redraw) process.stdout.write(`${CLEAR}courier top: the first figures come in ${windowMs / 1000}s (Ctrl-C to quit)\n`);
      while (await waitUntil(before.at, windowMs, stop.signal)) {
        // Sidecars started since the last window join in (counted from their start); gone ones leave.
        // The resolver is the one made for the first window: it may hold a database or sockets.
        const found = await discover(flags);
        const after = await sampleMesh(found.refs, options);
        if (stop.signal.aborted) break;
        const result = topResult(meshView(before, after));
        if (output === 'json') {
          // Said on stderr when they change, not every window.
          if (found.warnings.join('\n') !== warnings.join('\n')) reportWarnings(cmd, found.warnings);
          process.stdout.write(`${JSON.stringify(result)}\n`);
        } else if (redraw) process.stdout.write(`${CLEAR}${formatTop(result, after, (process.stdout.rows || 24) - 5, found.warnings)}`);
        else process.stdout.write(`${formatTop(result, after, Infinity, found.warnings)}\n`);
        warnings = found.warnings;
        before = after;
      }
    } finally {
      stop.dispose();
    }
  } finally {
    await flags.names.close();
  }
  return 0;
}
