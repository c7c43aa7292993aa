/**
 * Parses a Go duration string ("300ms", "1.5h", "2h45m", "5s", "0") into milliseconds, the format
 * Dapr's YAML and flags use. A bare number is taken in `bareUnit` (seconds unless told otherwise),
 * which is how Dapr reads fields such as `timeoutInSeconds`. Returns undefined for malformed input.
 */
const unitMs: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3,
  'μs': 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

export function parseDuration(input: string | number, bareUnit: 'ms' | 's' = 's'): number | undefined {
  if (typeof input === 'number') {
    return Number.isFinite(input) ? input * (bareUnit === 's' ? 1000 : 1) : undefined;
  }
  const text = input.trim();
  if (text === '') return undefined;
  if (/^[+-]?\d+(\.\d+)?$/.test(text)) return Number(text) * (bareUnit === 's' ? 1000 : 1);
  let rest = text;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    if (rest.startsWith('-')) sign = -1;
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  let total = 0;
  const re = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/;
  if (rest === '') return undefined;
  while (rest.length > 0) {
    const match = re.exec(rest);
    if (match === null) return undefined;
    const factor = unitMs[match[2] ?? ''];
    if (factor === undefined) return undefined;
    total += Number(match[1]) * factor;
    rest = rest.slice(match[0].length);
  }
  return sign * total;
}

/** Formats milliseconds the way Go prints a duration, for messages: 1500 → "1.5s", 60000 → "1m0s". */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (Math.abs(ms) < 1000) return `${ms}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = (ms % 60_000) / 1000;
  let out = '';
  if (h > 0) out += `${h}h`;
  if (h > 0 || m > 0) out += `${m}m`;
  out += `${Number(s.toFixed(3))}s`;
  return out;
}
