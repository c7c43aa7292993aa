/**
 * Parses a Kubernetes resource quantity as used by `--max-body-size` and `--read-buffer-size`
 * ("4Mi", "512Ki", "1G", "100M", "2048") into bytes. Returns undefined for malformed or fractional
 * byte counts.
 */
const suffixes: Readonly<Record<string, number>> = {
  '': 1,
  k: 1e3,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

export function parseQuantity(input: string | number): number | undefined {
  if (typeof input === 'number') return Number.isSafeInteger(input) && input >= 0 ? input : undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kKMGTPE]i?|)\s*$/.exec(input);
  if (match === null) return undefined;
  const factor = suffixes[match[2] ?? ''];
  if (factor === undefined) return undefined;
  const bytes = Number(match[1]) * factor;
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** Formats a byte count compactly for messages: 4194304 → "4Mi". */
export function formatQuantity(bytes: number): string {
  for (const [suffix, factor] of [['Gi', 2 ** 30], ['Mi', 2 ** 20], ['Ki', 2 ** 10]] as const) {
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${suffix}`;
  }
  return `${bytes}B`;
}
