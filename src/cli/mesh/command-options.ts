// What `courier stat`, `edges`, `top` and `tap` share: their common flags, where they find sidecars,
// and the two samples a window takes.
import { setTimeout as sleep } from 'node:timers/promises';
import { CourierError } from '../../errors/index.js';
import { parseDuration } from '../../util/duration.js';
import { flagError, type FlagSpec, type ParsedFlags } from '../flags.js';
import { discoverSidecars, meshView, noSidecarsMessage, parseSidecarAddress, sampleMesh, type SampleOptions } from './collect.js';
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

/** The sidecars to read; a CourierError naming where it looked when there is none. */
export function findSidecars(env: NodeJS.ProcessEnv, addresses: readonly string[]): SidecarRef[] {
  const refs = discoverSidecars(env, addresses);
  if (refs.length === 0) throw new CourierError('ERR_BAD_REQUEST', noSidecarsMessage(env));
  return refs;
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
  const refs = findSidecars(process.env, parseSidecarFlags(command, values));
  const sampled = await sampleWindow(refs, windowMs, sampleOptions(process.env));
  if (sampled === undefined) return undefined;
  reportUnreadable(command, sampled.after);
  return { output, view: sampled.view };
}

/** One line per sidecar that could not be read. */
export function unreadable(sample: MeshSample): SidecarSample[] {
  return sample.sidecars.filter((s) => s.error !== undefined);
}

export function describeRef(ref: SidecarRef): string {
  return ref.appId === '' ? ref.metricsUrl : `${ref.appId} at ${ref.metricsUrl}`;
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
