import type { AddressInfo, Server } from 'node:net';
import type { Logger } from '../observability/logging/index.js';

/** How often, at most, refused connections are reported. */
const REPORT_EVERY_MS = 10_000;

/**
 * Caps the connections a listener holds at once (`--max-connections`): Node closes each connection
 * over the cap as it arrives, before any byte is read. Refusals are logged as one warning per
 * interval with their count, not one line each, so a flood cannot flood the log too. 0 is unlimited.
 */
export function limitConnections(server: Server, max: number, logger: Logger, what: string): void {
  if (max <= 0) return;
  server.maxConnections = max;
  let dropped = 0;
  let timer: NodeJS.Timeout | undefined;
  const report = (): void => {
    timer = undefined;
    if (dropped === 0) return;
    const address = server.address() as AddressInfo | null;
    logger.warn(
      { port: address?.port, refused: dropped, max_connections: max },
      `refused ${dropped} ${dropped === 1 ? 'connection' : 'connections'} to the ${what} port: ${max} already open (--max-connections)`,
    );
    dropped = 0;
    timer = setTimeout(report, REPORT_EVERY_MS);
    timer.unref();
  };
  server.on('drop', () => {
    dropped++;
    if (timer === undefined) report();
  });
  server.once('close', () => clearTimeout(timer));
}

/** What each listening port allows its clients (`--max-connections`, `--handshake-timeout`). */
export interface ConnectionLimits {
  /** Connections open at once per listener; 0 is unlimited. */
  readonly maxConnections: number;
  /** How long a new connection may take to finish its TLS handshake and protocol preface (HTTP/2) or request head (HTTP/1.1). */
  readonly handshakeTimeoutMs: number;
}
