import { createRequire, Module } from 'node:module';
import type { Pool as UndiciPool } from 'undici';

// undici's package entry loads all of undici (fetch, WebSocket, the cache and the mock agents): about
// 20 MB of a sidecar's RSS, of which the connection pool and the request API that Courier uses are about
// 12 MB. Only those are loaded, from their own modules (undici has no exports map; the paths are the same
// in undici 6 and 7), and the request API is put on the dispatchers' prototype as undici's entry does.
// They are loaded when the first pool is made, that is when a sidecar first calls its app or an HTTP
// endpoint: an idle sidecar, or one whose app only makes calls, does not hold them (about 6 MB of an
// idle sidecar's RSS on Node 24). The types still come from the package entry. docs/performance.md,
// "Memory".

export type Pool = UndiciPool;

let PoolClass: typeof UndiciPool | undefined;

/** A new undici connection pool to `origin`; the first one loads undici. */
export function newPool(origin: string, options: UndiciPool.Options): Pool {
  PoolClass ??= loadPool();
  return new PoolClass(origin, options);
}

function loadPool(): typeof UndiciPool {
  const require = createRequire(import.meta.url);
  // undici's client requires its HTTP/2 module when it loads, and that module requires node:http2 and
  // with it node:tls (about 4 MB of RSS on Node 24). Courier's pools never speak HTTP/2: they do not set
  // `allowH2`, so TLS connections offer only http/1.1 by ALPN and plaintext ones are HTTP/1.1. The module
  // is put in the require cache as a stand-in that refuses, unless something in the process loaded
  // undici's own first. undici's TLS connector loads node:tls itself when an https pool first connects.
  const h2Client = require.resolve('undici/lib/dispatcher/client-h2.js');
  if (require.cache[h2Client] === undefined) {
    const standIn = new Module(h2Client);
    standIn.filename = h2Client;
    standIn.loaded = true;
    standIn.exports = function connectH2(): never {
      throw new Error('HTTP/2 was negotiated on a connection of a pool that does not offer it');
    };
    require.cache[h2Client] = standIn;
  }
  const Dispatcher = require('undici/lib/dispatcher/dispatcher.js') as { prototype: object };
  const api = require('undici/lib/api/index.js') as Record<string, unknown>;
  if (!('request' in Dispatcher.prototype)) Object.assign(Dispatcher.prototype, api);
  return require('undici/lib/dispatcher/pool.js') as typeof UndiciPool;
}
