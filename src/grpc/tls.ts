import type { Http2SecureServer, SecureServerOptions } from 'node:http2';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ConnectionOptions, SecureContextOptions } from 'node:tls';
import { http2, tls } from '../util/builtins.js';
import type { ChannelTarget } from './connection.js';

/** TLS settings of a server; for mutual TLS set `requestCert` and `rejectUnauthorized`, with the trust anchors as `ca`. */
export type ServerTlsOptions = SecureContextOptions & { requestCert?: boolean; rejectUnauthorized?: boolean };

/**
 * The `createServer` hook of a GrpcServer for TLS, with `refresh()` to apply new settings (a rotated
 * certificate, reloaded trust anchors) to every server it created: new connections get them; those
 * already established keep theirs.
 */
export function tlsServer(settings: () => ServerTlsOptions): {
  createServer: (options: SecureServerOptions) => Http2SecureServer;
  refresh: () => void;
} {
  const servers = new Set<Http2SecureServer>();
  return {
    createServer: ({ ALPNProtocols, ...options }) => {
      const server = http2().createSecureServer({ ...options, allowHTTP1: false, ...alpnSelection(Array.isArray(ALPNProtocols) ? (ALPNProtocols as string[]) : ['h2']), ...settings() });
      servers.add(server);
      server.once('close', () => servers.delete(server));
      return server;
    },
    refresh: () => {
      const next = settings();
      for (const server of servers) server.setSecureContext(next);
    },
  };
}

/**
 * How a TLS server picks the application protocol. Node's HTTP/2 server replaces `ALPNProtocols` with
 * `['h2']` (plus `http/1.1`), so any other protocol it should offer is chosen by an `ALPNCallback`:
 * the first of `protocols` (in the server's order of preference) that the client offers. A client
 * offering none of them is refused during the handshake.
 */
function alpnSelection(protocols: readonly string[]): { ALPNProtocols: string[] } | { ALPNCallback: (offer: { protocols: string[] }) => string | undefined } {
  if (protocols.length === 1 && protocols[0] === 'h2') return { ALPNProtocols: ['h2'] };
  return { ALPNCallback: ({ protocols: offered }) => protocols.find((p) => offered.includes(p)) };
}

/**
 * The `createConnection` and `scheme` of a GrpcChannel for TLS. `settings` is asked for every new
 * connection, so a rotated certificate applies from then on; it sees the target, including the
 * identity the server must prove (check it in `checkServerIdentity`).
 */
export function tlsClient(settings: (target: ChannelTarget) => ConnectionOptions): {
  scheme: 'https';
  createConnection: (target: ChannelTarget) => Duplex;
} {
  return tlsClientFor(settings, ['h2']);
}

/** `tlsClient` offering the given ALPN protocols (the lane offers `courier-lane/1` and `h2`). */
export function tlsClientFor(
  settings: (target: ChannelTarget) => ConnectionOptions,
  alpnProtocols: string[],
): { scheme: 'https'; createConnection: (target: ChannelTarget) => Duplex } {
  return {
    scheme: 'https',
    createConnection: (target) => {
      const socket = tls().connect({
        host: target.host,
        port: target.port,
        ALPNProtocols: alpnProtocols,
        // SNI carries names, not addresses (RFC 6066).
        ...(isIP(target.host) === 0 ? { servername: target.host } : {}),
        ...settings(target),
      });
      // As on plaintext connections: calls share the connection, and Nagle's algorithm would hold a
      // small frame back until the one before it is acknowledged.
      socket.setNoDelay(true);
      return socket;
    },
  };
}
