import { createRequire } from 'node:module';
import type { Pool as UndiciPool } from 'undici';

// undici's package entry loads all of undici (fetch, WebSocket, the cache and the mock agents): about
// 20 MB of a sidecar's RSS, of which the connection pool and the request API that Courier uses are about
// 12 MB. Only those are loaded, from their own modules (undici has no exports map; the paths are the same
// in undici 6 and 7), and the request API is put on the dispatchers' prototype as undici's entry does.
// They are loaded when the first pool is made, that is when a sidecar first calls its app or an HTTP
// endpoint: an idle sidecar, or one whose app only makes calls, does not hold them (about 6 MB of an
// idle sidecar's RSS on Node 24, with the node:http2 that undici loads). The types still come from the
// package entry. docs/performance.md, "Memory".

export type Pool = UndiciPool;

let PoolClass: typeof UndiciPool | undefined;

/** A new undici connection pool to `origin`; the first one loads undici. */
export function newPool(origin: string, options: UndiciPool.Options): Pool {
  PoolClass ??= loadPool();
  return new PoolClass(origin, options);
}

function loadPool(): typeof UndiciPool {
  const require = createRequire(import.meta.url);
  const Dispatcher = require('undici/lib/dispatcher/dispatcher.js') as { prototype: object };
  const api = require('undici/lib/api/index.js') as Record<string, unknown>;
  if (!('request' in Dispatcher.prototype)) Object.assign(Dispatcher.prototype, api);
  return require('undici/lib/dispatcher/pool.js') as typeof UndiciPool;
}
