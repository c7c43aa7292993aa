/**
 * Joins a host and a port into one dialable address, bracketing IPv6 literals the way Go's
 * `net.JoinHostPort` does ("::1", 50002 → "[::1]:50002"). Dapr sidecars write addresses with that
 * function, so Courier must produce byte-identical strings: a shared registry deduplicates on them.
 * A host that is already bracketed is kept as it is.
 */
export function joinHostPort(host: string, port: number): string {
  if (host.includes(':') && !host.startsWith('[')) return `[${host}]:${port}`;
  return `${host}:${port}`;
}
