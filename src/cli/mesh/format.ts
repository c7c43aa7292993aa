// How the terminal views print figures: tables padded like `courier list`'s, and the same spelling of
// rates, shares and latencies in every view.
import type { TappedCall, WindowStats } from './view-types.js';

export { renderTable } from '../table.js';

/** `99.50%`; `-` without calls. */
export function formatSuccess(rate: number | null): string {
  return rate === null ? '-' : `${(rate * 100).toFixed(2)}%`;
}

/** `12.4rps`. */
export function formatRps(rps: number): string {
  return `${rps.toFixed(1)}rps`;
}

/** `0.8ms`, `37ms`; `-` without calls. A tenth of a millisecond only where it says something. */
export function formatLatency(ms: number | null): string {
  if (ms === null) return '-';
  return ms < 10 ? `${(Math.round(ms * 10) / 10).toString()}ms` : `${Math.round(ms)}ms`;
}

/** SUCCESS, RPS and the latency columns of one row. */
export function statCells(stats: WindowStats, latencies: ReadonlyArray<'p50' | 'p95' | 'p99'> = ['p50', 'p95', 'p99']): string[] {
  return [formatSuccess(stats.successRate), formatRps(stats.rps), ...latencies.map((q) => formatLatency(stats[q]))];
}

/**
 * A SPIFFE id short enough for a column: `spiffe://public/ns/default/orders` → `public/default/orders`
 * (trust domain, namespace, app id); anything else as it is.
 */
export function shortIdentity(id: string): string {
  const match = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/(.+)$/.exec(id);
  return match === null ? id : `${match[1]}/${match[2]}/${match[3]}`;
}

/** The identities of one side of an edge: `-` without mTLS, the first one and how many more. */
export function formatIdentities(ids: readonly string[]): string {
  const [first] = ids;
  if (first === undefined) return '-';
  return ids.length === 1 ? shortIdentity(first) : `${shortIdentity(first)} (+${ids.length - 1})`;
}

/** `15:04:05.123` in local time. */
export function formatClock(ms: number): string {
  const d = new Date(ms);
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

/** One line of `courier tap` (and one more per header with `--headers`). */
export function formatTapLine(call: TappedCall, withHeaders = false): string {
  const status = call.status === 0 ? 'no-answer' : String(call.status);
  // Lines are printed as calls come, so columns get room for usual widths rather than the widest seen.
  const cells = [
    formatClock(call.at),
    call.direction.padEnd(8),
    `${call.srcAppId || '?'} → ${call.dstAppId || '?'}`.padEnd(16),
    call.method.padEnd(6),
    call.path.padEnd(24),
    (call.errorCode === '' ? status : `${status} ${call.errorCode}`).padEnd(3),
    formatLatency(call.latencyMs).padStart(6),
  ];
  if (call.traceId !== '') cells.push(`trace=${call.traceId}`);
  let line = cells.join('  ').trimEnd();
  if (withHeaders) {
    for (const [name, value] of Object.entries(call.headers).sort(([a], [b]) => a.localeCompare(b))) line += `\n    ${name}: ${value}`;
  }
  return `${line}\n`;
}
