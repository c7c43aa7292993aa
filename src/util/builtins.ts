// node:fs (and node:http, in builtin-http.ts), taken as CommonJS `require` returns them rather than
// through an ES module `import`. On Node 22 and later an `import` of a builtin builds the module's
// whole namespace, and doing so reads each of its lazy exports:
//
// - node:http's WebSocket, CloseEvent and MessageEvent load Node's bundled undici, and with it
//   node:http2, node:tls, node:crypto, node:zlib, node:worker_threads, node:perf_hooks, readline and
//   fs/promises: 14 MB of resident memory on Node 24 (an empty process that imports node:http holds
//   61.9 MB, one that requires it 47.8);
// - node:fs's `promises` loads fs/promises, readline and the REPL's history module: 3.1 MB.
//
// `require` leaves lazy exports unread. Courier's modules take these two builtins from here and from
// builtin-http.ts (ESLint refuses a value import of them elsewhere in src/); type-only imports are
// erased and stay as they are. node:http has a module of its own so that a process that uses only
// files (the `courier run` supervisor) does not load it.
import { createRequire } from 'node:module';
import type * as Fs from 'node:fs';
import type * as Http2 from 'node:http2';
import type * as Tls from 'node:tls';

const require = createRequire(import.meta.url);
const fs = require('node:fs') as typeof Fs;

export const {
  chmodSync,
  closeSync,
  constants,
  createWriteStream,
  existsSync,
  fchmodSync,
  fstatSync,
  fsyncSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  unwatchFile,
  watchFile,
  writeFileSync,
  writeSync,
} = fs;

// node:http2 and node:tls (with the crypto parts TLS uses) are loaded when a connection first needs
// them, not when a module that can make one is imported: a plaintext sidecar whose callers all speak
// Courier's lane, and whose app speaks HTTP/1.1, never loads node:http2, and an idle sidecar loads
// neither (about 4 MB of an idle sidecar's RSS on Node 24; docs/performance.md, "Memory").
let http2Module: typeof Http2 | undefined;
let tlsModule: typeof Tls | undefined;

/** node:http2, loaded on first use. */
export function http2(): typeof Http2 {
  return (http2Module ??= require('node:http2') as typeof Http2);
}

/** node:tls, loaded on first use. */
export function tls(): typeof Tls {
  return (tlsModule ??= require('node:tls') as typeof Tls);
}
