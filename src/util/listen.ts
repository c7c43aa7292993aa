import { lstatSync, unlinkSync } from './builtins.js';
import { connect, type AddressInfo, type Server as NetServer } from 'node:net';
import { CourierError } from '../errors/index.js';

/** Errors that mean "this machine has no such address" (e.g. ::1 where IPv6 is off), not "the port is taken". */
const UNAVAILABLE = new Set(['EADDRNOTAVAIL', 'EAFNOSUPPORT']);

/**
 * Listens on every host of `hosts` on one port: the first bound host picks the port (when `port` is 0)
 * and the others use it. A host this machine does not have is skipped and reported through `skipped`
 * (a container without IPv6 has no ::1), as long as one host was bound; any other failure is thrown.
 */
export async function listenOnHosts(
  hosts: readonly string[],
  port: number,
  listenOne: (host: string, port: number) => Promise<number>,
  skipped: (host: string, err: Error) => void,
): Promise<number> {
  let chosen = port;
  let bound = 0;
  let lastError: Error | undefined;
  for (const host of hosts) {
    try {
      chosen = await listenOne(host, chosen);
      bound++;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (!UNAVAILABLE.has(code)) throw err;
      lastError = err as Error;
      skipped(host, err as Error);
    }
  }
  if (bound === 0 && lastError !== undefined) throw lastError;
  return chosen;
}

/**
 * Makes `path` ready for a Unix domain socket listener: a socket file left behind by a process that
 * died (nothing accepts on it) is removed; a live socket or any other kind of file is an error, never
 * deleted.
 */
export async function prepareUnixSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!isSocket) throw new CourierError('ERR_INVALID_FLAG', `--unix-domain-socket: ${path} exists and is not a socket`);
  const live = await new Promise<boolean>((resolve) => {
    const socket = connect({ path });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
  if (live) throw new CourierError('ERR_INVALID_FLAG', `--unix-domain-socket: another process is listening on ${path}`);
  unlinkSync(path);
}

/** Listens on `host:port` (0: a free port) and resolves to the port bound; rejects with the listen error (EADDRINUSE, ...). */
export function listenOn(server: NetServer, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Stops accepting and closes every connection at once, idle or not (an HTTP or HTTPS server with nothing left to finish). */
export function closeServer(server: NetServer & { closeAllConnections(): void }): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
