import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** The kernel's range for ports chosen by `listen(0)` and outgoing connections. */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low !== undefined && high !== undefined && Number.isInteger(low) && Number.isInteger(high)) return [low, high];
  } catch {
    // not Linux: the IANA range
  }
  return [49152, 65535];
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A port on 127.0.0.1 where nothing listens, chosen below the kernel's ephemeral range, for a port a
 * test hands to a process that binds it later (an app's `--app-port`, a Prometheus, a Sentry): a port
 * the OS handed out by `listen(0)` may be handed to another process of a parallel test (or to an
 * outgoing connection) before the intended one binds it.
 */
export async function freePort(): Promise<number> {
  const [low] = ephemeralRange();
  const top = Math.min(low, 65536) - 1;
  const bottom = Math.max(1024, top - 12000);
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = bottom + Math.floor(Math.random() * (top - bottom));
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port between ${bottom} and ${top}`);
}

/** `count` free ports, all different (each picked at random, so two picks alone may be the same). */
export async function freePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < count) {
    const port = await freePort();
    if (!ports.includes(port)) ports.push(port);
  }
  return ports;
}

/**
 * A port where nothing listens, for a test that expects "connection refused" there: below the
 * ephemeral range, so no parallel test's `listen(0)` lands on it in the meantime.
 */
export const refusedPort = freePort;
