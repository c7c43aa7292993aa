// node:http as CommonJS `require` returns it: an ES module import of it loads Node's bundled undici,
// node:http2, node:tls and more on Node 22 and later (see builtins.ts).
import { createRequire } from 'node:module';
import type * as Http from 'node:http';

const http = createRequire(import.meta.url)('node:http') as typeof Http;

export const { METHODS, STATUS_CODES, createServer, request } = http;
