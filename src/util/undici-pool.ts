import type { Pool as UndiciPool } from 'undici';
// undici's package entry loads all of undici (fetch, WebSocket, the cache and the mock agents): about
// 20 MB of a sidecar's RSS, of which the connection pool and the request API that Courier uses are about
// 12 MB. They are imported from their own modules (undici has no exports map; the paths are the same in
// undici 6 and 7), and the request API is put on the dispatchers' prototype as undici's entry does. The
// types still come from the package entry. docs/performance.md, "Memory".
import PoolImplementation from 'undici/lib/dispatcher/pool.js';
import Dispatcher from 'undici/lib/dispatcher/dispatcher.js';
import api from 'undici/lib/api/index.js';

const prototype = (Dispatcher as { prototype: object }).prototype;
if (!('request' in prototype)) Object.assign(prototype, api);

export type Pool = UndiciPool;
export const Pool: typeof UndiciPool = PoolImplementation as typeof UndiciPool;
