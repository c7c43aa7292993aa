// `courier tap <app-id>`: the calls every sidecar of an app sees, live, one line each.
import { CourierError } from '../../errors/index.js';
import { flagError, formatFlagHelp, parseFlags, type FlagSpec, type ParsedFlags } from '../flags.js';
import { sampleMesh } from './collect.js';
import { describeRef, findSidecars, helpFlag, nameResolutionFlags, onStopSignal, outputFlag, parseMeshFlags, parseOutput, sampleOptions, sidecarFlag } from './command-options.js';
import { formatTapLine } from './format.js';
import { tapMesh, type TapFilters } from './tap-client.js';
import type { SidecarRef } from './view-types.js';

export const tapFlags: readonly FlagSpec[] = [
  { name: 'path', type: 'string', placeholder: '<prefix>', help: 'only calls whose path starts with this, e.g. /orders' },
  { name: 'method', type: 'string', placeholder: '<verb>', help: 'only calls with this HTTP verb (or GRPC)' },
  { name: 'status', type: 'string', placeholder: '<status>', help: 'only calls that ended with this status (503) or class (5xx)' },
  { name: 'direction', type: 'string', placeholder: '<dir>', help: 'only inbound (calls the app received) or outbound (calls it made)' },
  { name: 'max', type: 'int', placeholder: '<n>', help: 'exit after this many calls' },
  { name: 'headers', type: 'bool', help: "show request headers (values only from sidecars started with --tap-header-values)" },
  sidecarFlag,
  ...nameResolutionFlags,
  outputFlag,
  helpFlag,
];

export const tapUsage = `Usage: courier tap <app-id> [flags]

Shows the calls the sidecars of <app-id> see as they end: the calls the app receives and the calls
it makes, one line each (time, direction, caller → callee, verb, path, status, latency, trace id),
until Ctrl-C or --max calls. With -o json, one JSON object per call and line. Filters apply in the
sidecars. Request bodies are never shown; header values only when the sidecar allows it. The sidecars
are those of this machine (from $COURIER_HOME/run), those given with --sidecar, and the instances of
<app-id> that name resolution lists (read on their hosts at --remote-metrics-port).

Examples:
  courier tap orders
  courier tap orders --status 5xx --direction inbound
  courier tap orders --path /orders --max 10 -o json

Flags:
${formatFlagHelp(tapFlags)}
`;

export interface TapArgs {
  readonly appId: string;
  readonly filters: TapFilters;
  readonly max: number | undefined;
  readonly headers: boolean;
}

/** The filters of `courier tap`, checked; throws ERR_INVALID_FLAG. */
export function parseTapArgs(cmd: string, values: ParsedFlags['values'], rest: readonly string[]): TapArgs {
  const appId = rest[0];
  if (appId === undefined || appId === '') throw flagError(cmd, 'needs the app id to tap');
  if (rest.length > 1) throw flagError(cmd, `takes one app id, got ${rest.join(' ')}`);
  const str = (name: string): string | undefined => values.get(name) as string | undefined;
  const filters: { -readonly [K in keyof TapFilters]: TapFilters[K] } = {};
  const path = str('path');
  if (path !== undefined) {
    if (path === '' || /[\s?#]/.test(path)) throw flagError(cmd, `--path: "${path}" is not the start of a path such as /orders`);
    filters.path = path.startsWith('/') ? path : `/${path}`;
  }
  const method = str('method');
  if (method !== undefined) {
    if (!/^[A-Za-z]+$/.test(method)) throw flagError(cmd, `--method: "${method}" is not an HTTP verb`);
    filters.method = method.toUpperCase();
  }
  const status = str('status');
  if (status !== undefined) {
    if (!/^(\d{1,3}|[1-5]xx)$/i.test(status)) throw flagError(cmd, `--status: "${status}" is not a status such as 503 or a class such as 5xx`);
    filters.status = status.toLowerCase();
  }
  const direction = str('direction');
  if (direction !== undefined) {
    const d = direction.toLowerCase();
    if (d !== 'inbound' && d !== 'outbound') throw flagError(cmd, `--direction: "${direction}" is not inbound or outbound`);
    filters.direction = d;
  }
  const headers = values.get('headers') === true;
  if (headers) filters.headers = true;
  const max = values.get('max') as number | undefined;
  if (max !== undefined && max < 1) throw flagError(cmd, `--max: ${max} is not a number of calls (1 or more)`);
  return { appId, filters, max, headers };
}

/**
 * The sidecars of `appId`: run records say whose they are; a sidecar given by address is asked (its
 * info) and kept if it serves that app.
 */
async function sidecarsOf(appId: string, refs: readonly SidecarRef[]): Promise<{ mine: SidecarRef[]; others: string[]; unread: string[] }> {
  const known = refs.filter((r) => r.appId !== '');
  const unknown = refs.filter((r) => r.appId === '');
  const asked = unknown.length === 0 ? [] : (await sampleMesh(unknown, sampleOptions(process.env))).sidecars;
  const named = [...known, ...asked.flatMap((s) => (s.info === null ? [] : [{ ...s.ref, appId: s.info.appId }]))];
  return {
    mine: named.filter((r) => r.appId === appId),
    others: [...new Set(named.map((r) => r.appId))].filter((id) => id !== appId).sort(),
    unread: asked.flatMap((s) => (s.info === null ? [`${s.ref.metricsUrl}: ${s.error ?? ''}`] : [])),
  };
}

export async function tapMain(argv: readonly string[]): Promise<number> {
  const cmd = 'tap';
  const { values, rest } = parseFlags(cmd, argv, tapFlags, { allowPositionals: true });
  if (values.get('help') === true) {
    process.stdout.write(tapUsage);
    return 0;
  }
  const args = parseTapArgs(cmd, values, rest);
  const output = parseOutput(cmd, values.get('output') as string | undefined);
  const flags = parseMeshFlags(cmd, values);
  let refs: readonly SidecarRef[];
  try {
    // The tapped app is looked up by name; the apps others call are of no use here.
    refs = (await findSidecars(cmd, flags, { appIds: [args.appId], called: false })).refs;
  } finally {
    await flags.names.close();
  }
  const { mine, others, unread } = await sidecarsOf(args.appId, refs);
  if (mine.length === 0) {
    const seen = others.length === 0 ? '' : ` (apps: ${others.join(', ')})`;
    const failed = unread.length === 0 ? '' : `; cannot read ${unread.join('; ')}`;
    throw new CourierError('ERR_BAD_REQUEST', `no sidecar of app "${args.appId}" found${seen}${failed}`);
  }

  const stop = onStopSignal();
  let seen = 0;
  let failed = 0;
  let reachedMax!: () => void;
  const enough = new Promise<void>((resolve) => (reachedMax = resolve));
  const session = tapMesh(
    mine,
    args.filters,
    {
      ...sampleOptions(process.env),
      onError: (ref, message) => {
        failed++;
        process.stderr.write(`courier tap: the sidecar of ${describeRef(ref)}: ${message}\n`);
      },
      onDropped: (ref, count) => process.stderr.write(`courier tap: the sidecar of ${describeRef(ref)} dropped ${count} call(s): this reader was too slow\n`),
    },
    (call) => {
      if (stop.signal.aborted || (args.max !== undefined && seen >= args.max)) return;
      seen++;
      process.stdout.write(output === 'json' ? `${JSON.stringify(call)}\n` : formatTapLine(call, args.headers));
      if (args.max !== undefined && seen >= args.max) reachedMax();
    },
  );
  const stopped = new Promise<void>((resolve) => stop.signal.addEventListener('abort', () => resolve(), { once: true }));
  try {
    await Promise.race([enough, stopped, session.ended]);
  } finally {
    stop.dispose();
    await session.close();
  }
  // Every stream gone by itself (the sidecars stopped, or refused): that is a failure to tap.
  const endedAlone = !stop.signal.aborted && (args.max === undefined || seen < args.max);
  return endedAlone && failed > 0 ? 1 : 0;
}
