/** Codes a retry policy's `matching` lists: a lookup table over HTTP 0–599 or gRPC 0–16. */
export type CodeSet = Uint8Array;

/** Whether `set` lists `code` (a set made by `parseCodes`). */
export function hasCode(set: CodeSet, code: number): boolean {
  return code >= 0 && code < set.length && set[code] === 1;
}

/**
 * Parses a `matching` list: codes and ranges separated by commas (`"429,500-599"`), within 100–599 for
 * HTTP and 0–16 for gRPC. Undefined for an empty list (which retries every code, as in Dapr).
 */
export function parseCodes(text: string, kind: 'http' | 'grpc'): CodeSet | undefined {
  const [low, high] = kind === 'http' ? [100, 599] : [0, 16];
  const set = new Uint8Array(high + 1);
  let any = false;
  for (const raw of text.split(',')) {
    const part = raw.trim();
    if (part === '') continue;
    const m = /^(\d+)(?:\s*-\s*(\d+))?$/.exec(part);
    if (m === null) throw new Error(`"${part}" is not a code or a range such as 500-599`);
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (from < low || to > high || from > to) throw new Error(`"${part}" is outside ${low}-${high}`);
    for (let c = from; c <= to; c++) set[c] = 1;
    any = true;
  }
  return any ? set : undefined;
}
