// What `courier stat`, `edges`, `top` and `tap` share: their common flags, where they find sidecars,
// and the two samples a window takes.
import { setTimeout as sleep } from 'node:timers/promises';
import { CourierError } from '../../errors/index.js';
import { validateAppId } from '../../invoke/identity.js';
import { parseDuration } from '../../util/duration.js';
import { flagError, type FlagSpec, type ParsedFlags } from '../flags.js';
import {
  DEFAULT_REMOTE_METRICS_PORT,
  discoverMesh,
  MeshNames,
  meshView,
  noSidecarsMessage,
  parseSidecarAddress,
  sampleMesh,
  type DiscoverMeshOptions,
  type MeshDiscovery,
  type SampleOptions,
} from './collect.js';
import type { MeshSample, MeshView, SidecarRef, SidecarSample } from './view-types.js';

export type MeshOutput = 'table' | 'json';

export const windowFlag = (defaultText: string): FlagSpec => ({
  name: 'window',
  short: 't',
  type: 'string',
  placeholder: '<duration>',
  defaultText,
  help: 'the window the figures cover: two reads of every sidecar this far apart (1s, 500ms, …)',
});

export const sidecarFlag: FlagSpec = {
  name: 'sidecar',
  type: 'list',
  placeholder: '<host:port>',
  help: "also read the sidecar whose metrics port is there (repeatable); this machine's sidecars are found by themselves",
};

/**
 * How the views find sidecars of other machines: the apps the found sidecars call (and `--app`) are
 * looked up with a Configuration's name resolver, as `courier resolve` does, and each instance is
 * read on its host at `--remote-metrics-port`. Shared by the four views and the dashboard.
 */
export const nameResolutionFlags: readonly FlagSpec[] = [
  { name: 'app', type: 'list', placeholder: '<app-id>', help: "also find this app's sidecars by name resolution, whether or not a sidecar calls it (repeatable)" },
  {
    name: 'config',
    short: 'c',
    type: 'string',
    placeholder: '<file>',
    help: 'the Configuration whose spec.nameResolution finds the sidecars of the apps called (default: the embedded default, SQLite in $COURIER_HOME)',
  },
  { name: 'namespace', short: 'n', type: 'string', placeholder: '<ns>', defaultText: '$NAMESPACE or "default"', help: 'the namespace of the apps looked up' },
  {
    name: 'remote-metrics-port',
    type: 'int',
    placeholder: '<port>',
    defaultText: String(DEFAULT_REMOTE_METRICS_PORT),
    help: 'the metrics port of the sidecars found by name resolution (name resolution knows only their internal port)',
  },
];

export const outputFlag: FlagSpec = { name: 'output', short: 'o', type: 'string', placeholder: '<format>', defaultText: 'table', help: 'table or json' };

export const helpFlag: FlagSpec = { name: 'help', short: 'h', type: 'bool', help: 'show this help' };

/** A Go-style duration (`5s`, `500ms`, a bare number of seconds) that is more than 0 and at most an hour. */
export function parseWindow(command: string, raw: string | undefined, fallbackMs: number): number {
  if (raw === undefined) return fallbackMs;
  const ms = parseDuration(raw, 's');
  if (ms === undefined || !(ms > 0) || ms > 3_600_000) throw flagError(command, `--window: "${raw}" is not a duration such as 5s or 500ms (more than 0, at most 1h)`);
  return ms;
}

export function parseOutput(command: string, raw: string | undefined): MeshOutput {
  const format = (raw ?? 'table').toLowerCase();
  if (format !== 'table' && format !== 'json') throw flagError(command, `--output: "${raw ?? ''}" is not one of table, json`);
  return format;
}

/** The `--sidecar` addresses, each checked. */
export function parseSidecarFlags(command: string, values: ParsedFlags['values']): string[] {
  const addresses = (values.get('sidecar') as string[] | undefined) ?? [];
  for (const address of addresses) {
    if (parseSidecarAddress(address) === undefined) throw flagError(command, `--sidecar: "${address}" is not the host:port of a sidecar's metrics port`);
  }
  return addresses;
}

/** The token the sidecars want: their own `DAPR_API_TOKEN`, which the views take from the environment. */
export function sampleOptions(env: NodeJS.ProcessEnv): SampleOptions {
  const token = env.DAPR_API_TOKEN;
  return token === undefined || token === '' ? {} : { token };
}

/** Where a view looks for sidecars, from its flags. */
export interface MeshFlags {
  /** `--sidecar` addresses, checked. */
  readonly addresses: readonly string[];
  /** `--app`: app ids looked up whether or not a sidecar calls them. */
  readonly appIds: readonly string[];
  readonly remoteMetricsPort: number;
  /** The resolver of `--config`, made at the first lookup; the command closes it when it ends. */
  readonly names: MeshNames;
}

/**
 * Reads `--sidecar` and the {@link nameResolutionFlags}. Throws ERR_INVALID_FLAG for a bad value, and
 * ERR_INVALID_CONFIG for a `--config` that is not a usable Configuration (nothing is opened yet).
 */
export function parseMeshFlags(command: string, values: ParsedFlags['values'], env: NodeJS.ProcessEnv = process.env): MeshFlags {
  const addresses = parseSidecarFlags(command, values);
  const appIds = ((values.get('app') as string[] | undefined) ?? []).map((id) => id.trim());
  for (const appId of appIds) {
    const problem = validateAppId(appId);
    if (problem !== undefined) throw flagError(command, `--app: ${problem}`);
  }
  const remoteMetricsPort = (values.get('remote-metrics-port') as number | undefined) ?? DEFAULT_REMOTE_METRICS_PORT;
  if (remoteMetricsPort < 1 || remoteMetricsPort > 65535) throw flagError(command, `--remote-metrics-port: ${remoteMetricsPort} is not a port (1 to 65535)`);
  const flagNamespace = values.get('namespace') as string | undefined;
  const namespace = [flagNamespace, env.NAMESPACE].find((ns) => ns !== undefined && ns.trim() !== '')?.trim() ?? 'default';
  const configFile = values.get('config') as string | undefined;
  const names = new MeshNames(env, { configFile, namespace });
  return { addresses, appIds: [...new Set(appIds)], remoteMetricsPort, names };
}

/** One discovery (see discoverMesh) with the view's flags; `more` adds app ids or turns off following calls. */
export function discover(flags: MeshFlags, more: Pick<DiscoverMeshOptions, 'appIds' | 'called'> = {}, env: NodeJS.ProcessEnv = process.env): Promise<MeshDiscovery> {
  return discoverMesh(env, {
    ...sampleOptions(env),
    addresses: flags.addresses,
    names: flags.names,
    appIds: [...flags.appIds, ...(more.appIds ?? [])],
    ...(more.called === undefined ? {} : { called: more.called }),
    remoteMetricsPort: flags.remoteMetricsPort,
  });
}

/** Name resolution's warnings, one line each on stderr: the view goes on without what they name. */
export function reportWarnings(command: string, warnings: readonly string[], stderr: { write(text: string): unknown } = process.stderr): void {
  for (const warning of warnings) stderr.write(`courier ${command}: ${warning}\n`);
}

/** The sidecars to read (at least one), warnings reported; a CourierError naming where it looked when there is none. */
export async function findSidecars(command: string, flags: MeshFlags, more: Pick<DiscoverMeshOptions, 'appIds' | 'called'> = {}, env: NodeJS.ProcessEnv = process.env): Promise<MeshDiscovery> {
  const found = await discover(flags, more, env);
  reportWarnings(command, found.warnings);
  if (found.refs.length === 0) throw new CourierError('ERR_BAD_REQUEST', noSidecarsMessage(env, found.resolved));
  return found;
}

/** Waits until `ms` after `from` (at once if that has passed); false if `signal` aborted the wait. */
export async function waitUntil(from: number, ms: number, signal?: AbortSignal): Promise<boolean> {
  const left = from + ms - Date.now();
  if (signal?.aborted === true) return false;
  if (left <= 0) return true;
  try {
    await sleep(left, undefined, signal === undefined ? {} : { signal });
    return true;
  } catch {
    return false;
  }
}

/** Two samples `windowMs` apart and the view between them; undefined if `signal` aborted the wait. */
export async function sampleWindow(refs: readonly SidecarRef[], windowMs: number, options: SampleOptions, signal?: AbortSignal): Promise<{ view: MeshView; after: MeshSample } | undefined> {
  const before = await sampleMesh(refs, options);
  if (!(await waitUntil(before.at, windowMs, signal))) return undefined;
  const after = await sampleMesh(refs, options);
  return { view: meshView(before, after), after };
}

/**
 * What `stat` and `edges` share: the window and output flags read, the sidecars found, two samples
 * taken and the unreadable sidecars reported; undefined if the wait was aborted.
 */
export async function sampleFromFlags(command: string, values: ParsedFlags['values'], fallbackWindowMs: number): Promise<{ output: MeshOutput; view: MeshView } | undefined> {
  const windowMs = parseWindow(command, values.get('window') as string | undefined, fallbackWindowMs);
  const output = parseOutput(command, values.get('output') as string | undefined);
  const flags = parseMeshFlags(command, values);
  let refs: readonly SidecarRef[];
  try {
    refs = (await findSidecars(command, flags)).refs;
  } finally {
    // Found once: the resolver is not needed for the window itself.
    await flags.names.close();
  }
  const sampled = await sampleWindow(refs, windowMs, sampleOptions(process.env));
  if (sampled === undefined) return undefined;
  reportUnreadable(command, sampled.after);
  return { output, view: sampled.view };
}

/** One line per sidecar that could not be read. */
export function unreadable(sample: MeshSample): SidecarSample[] {
  return sample.sidecars.filter((s) => s.error !== undefined);
}

/** A sidecar in messages; one found by name resolution with the address it was found at (its metrics port is a guess). */
export function describeRef(ref: SidecarRef): string {
  const named = ref.appId === '' ? ref.metricsUrl : `${ref.appId} at ${ref.metricsUrl}`;
  return ref.source === 'name-resolution' && ref.address !== undefined ? `${named} (found by name resolution at ${ref.address})` : named;
}

/** Writes each unreadable sidecar to stderr; throws when no sidecar at all could be read. */
export function reportUnreadable(command: string, sample: MeshSample, stderr: { write(text: string): unknown } = process.stderr): void {
  const failed = unreadable(sample);
  if (failed.length > 0 && failed.length === sample.sidecars.length) {
    throw new CourierError('ERR_BAD_REQUEST', `no sidecar could be read: ${failed.map((s) => `${describeRef(s.ref)}: ${s.error ?? ''}`).join('; ')}`);
  }
  for (const s of failed) stderr.write(`courier ${command}: cannot read the sidecar of ${describeRef(s.ref)}: ${s.error ?? ''}\n`);
}

/**
 * Aborts when SIGINT or SIGTERM arrives (the views' way to stop), or when stdout can no longer be
 * written (a pipe whose reader is gone, as with `| head`). `dispose` removes the handlers, so a view
 * that ends by itself leaves the process as it was.
 */
export function onStopSignal(): { readonly signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  process.stdout.on('error', stop);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      process.stdout.off('error', stop);
    },
  };
}
