// `courier edges`: who calls whom, as the callers' sidecars counted it over a window, with the mTLS
// identities at both ends.
import { flagError, formatFlagHelp, parseFlags, type FlagSpec } from '../flags.js';
import { helpFlag, nameResolutionFlags, outputFlag, sampleFromFlags, sidecarFlag, windowFlag } from './command-options.js';
import { formatIdentities, renderTable, statCells } from './format.js';
import type { EdgeView } from './view-types.js';

export const edgesFlags: readonly FlagSpec[] = [windowFlag('5s'), sidecarFlag, ...nameResolutionFlags, outputFlag, helpFlag];

export const edgesUsage = `Usage: courier edges [flags]

Shows the calls between apps over a window, one line per caller and callee, as the caller's sidecars
counted them: the mTLS identities of both ends (- without mTLS), the share that succeeded, requests
per second and latency quantiles. Reads every sidecar on this machine (from $COURIER_HOME/run), those
given with --sidecar, and the sidecars name resolution lists for the apps these call and those named
with --app (read on their hosts at --remote-metrics-port).

Flags:
${formatFlagHelp(edgesFlags)}
`;

export function formatEdges(edges: readonly EdgeView[]): string {
  if (edges.length === 0) return 'No calls between apps in the window.\n';
  const rows = edges.map((e) => [e.src, e.dst, formatIdentities(e.srcIdentities), formatIdentities(e.dstIdentities), ...statCells(e.stats, ['p50', 'p99'])]);
  return renderTable(['SRC', 'DST', 'SRC_IDENTITY', 'DST_IDENTITY', 'SUCCESS', 'RPS', 'P50', 'P99'], rows);
}

export async function edgesMain(argv: readonly string[]): Promise<number> {
  const cmd = 'edges';
  const { values, rest } = parseFlags(cmd, argv, edgesFlags);
  if (values.get('help') === true) {
    process.stdout.write(edgesUsage);
    return 0;
  }
  if (rest.length > 0) throw flagError(cmd, `unexpected argument "${rest.join(' ')}"`);
  const sampled = await sampleFromFlags(cmd, values, 5000);
  if (sampled === undefined) return 0;
  const { output } = sampled;
  const { at, windowSeconds, edges } = sampled.view;
  process.stdout.write(output === 'json' ? `${JSON.stringify({ at, windowSeconds, edges }, null, 2)}\n` : formatEdges(edges));
  return 0;
}
