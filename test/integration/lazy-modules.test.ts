// What a sidecar holds in memory depends on what it has loaded: node:http2 and node:tls (with Node's
// bundled undici, which an ES module import of node:http loads on Node 22 and later) and the npm undici
// pool are loaded when a connection first needs them, not at start. Each sidecar here runs with a
// probe preloaded that, on SIGUSR2, writes the builtins and CommonJS modules the process has loaded.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestEnv } from '../framework/env.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { startApp } from '../framework/test-app.js';
import { send } from '../framework/http-client.js';
import { daprClient, invokeService, until } from '../framework/grpc-apps.js';
import { HttpVerb } from '../../src/proto/index.js';
import { forTests as idleMemory } from '../../src/runtime/idle-memory.js';

const PROBE = `
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const { writeFileSync } = require('node:fs');
process.on('SIGUSR2', () => {
  const loaded = { builtins: process.moduleLoadList, modules: Object.keys(require.cache) };
  writeFileSync(process.env.COURIER_TEST_PROBE_OUT + '.tmp', JSON.stringify(loaded));
  require('node:fs').renameSync(process.env.COURIER_TEST_PROBE_OUT + '.tmp', process.env.COURIER_TEST_PROBE_OUT);
});
`;

interface Loaded {
  http2: boolean;
  tls: boolean;
  /** Node's own undici (fetch, http.WebSocket). */
  nodeUndici: boolean;
  /** The npm undici package (Courier's HTTPS app channel and HTTP endpoints use it). */
  undici: boolean;
}

describe('modules a sidecar loads only when it needs them', () => {
  const env = new TestEnv();
  let caller: SidecarProcess;
  let callee: SidecarProcess;
  const outFile = (appId: string): string => join(env.home, `loaded-${appId}.json`);

  /** What `sidecar` has loaded so far: its probe writes the file (atomically) when signalled. */
  async function loaded(sidecar: SidecarProcess): Promise<Loaded> {
    rmSync(outFile(sidecar.appId), { force: true });
    sidecar.child.kill('SIGUSR2');
    await until(() => existsSync(outFile(sidecar.appId)), `${sidecar.appId} to write its loaded modules`, 20_000);
    const { builtins, modules } = JSON.parse(readFileSync(outFile(sidecar.appId), 'utf8')) as { builtins: string[]; modules: string[] };
    const has = (name: string): boolean => builtins.includes(`NativeModule ${name}`);
    return {
      http2: has('http2'),
      tls: has('tls'),
      nodeUndici: has('internal/deps/undici/undici'),
      undici: modules.some((m) => /[\\/]node_modules[\\/]undici[\\/]/.test(m)),
    };
  }

  async function withProbe(appId: string, appPort: number | undefined): Promise<SidecarProcess> {
    const probe = join(env.home, 'probe.mjs');
    writeFileSync(probe, PROBE);
    return startSidecar(env, {
      appId,
      ...(appPort === undefined ? {} : { appPort }),
      waitForApp: appPort !== undefined,
      nodeArgs: ['--import', probe],
      env: { COURIER_TEST_PROBE_OUT: outFile(appId) },
    });
  }

  before(async () => {
    const app = await startApp(env, (routes) => routes.route('/hello', (_req, res) => res.end('hi')));
    callee = await withProbe('lazy-callee', app.port);
    caller = await withProbe('lazy-caller', undefined);
  });
  after(() => env.close());

  test('a sidecar that has served no call has loaded neither HTTP/2, TLS nor undici', async () => {
    for (const sidecar of [caller, callee]) {
      assert.deepEqual(await loaded(sidecar), { http2: false, tls: false, nodeUndici: false, undici: false }, sidecar.appId);
    }
  });

  // On V8 11 (Node 20) V8's own memory reducer does this better than an explicit collection can (src/runtime/idle-memory.ts).
  test('once idle after start-up, a sidecar collects what starting left: its heap is back to what it needs when quiet', { skip: !idleMemory.thoroughGc && 'V8 11 leaves it to its memory reducer' }, async () => {
    for (const sidecar of [caller, callee]) {
      // The debug line the idle-memory watcher writes after its first idle interval (about 5 s in).
      const line = (): string | undefined => sidecar.output.split('\n').find((l) => l.includes('start-up garbage collected'));
      await until(() => line() !== undefined, `${sidecar.appId} to collect its start-up garbage`, 60_000);
      const figure = (name: string): number => Number(new RegExp(`${name}=([0-9.]+)`).exec(line() ?? '')?.[1]);
      // 10-11 MB on Node 24 (14 before the collection when V8 has not made one of its own yet).
      assert.ok(figure('heap_after_mb') <= 12.5, line());
    }
  });

  test('a call over the lane to an HTTP app loads neither undici nor HTTP/2 in either sidecar', async () => {
    const res = await send(caller.httpPort, { method: 'GET', path: '/v1.0/invoke/lazy-callee/method/hello' });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.text, 'hi');
    assert.deepEqual(await loaded(caller), { http2: false, tls: false, nodeUndici: false, undici: false }, 'caller');
    // The callee reaches a plain-HTTP app with Courier's own HTTP/1.1 client (src/http1/).
    assert.deepEqual(await loaded(callee), { http2: false, tls: false, nodeUndici: false, undici: false }, 'callee');
  });

  test('a gRPC connection from the app is served without loading node:http2', async () => {
    const client = daprClient(caller.grpcPort);
    try {
      const { err, res } = await invokeService(client, { id: 'lazy-callee', message: { method: 'hello', httpExtension: { verb: HttpVerb.GET } } });
      assert.equal(err, null);
      assert.equal(Buffer.from(res?.data?.value ?? []).toString(), 'hi');
    } finally {
      client.close();
    }
    // Courier serves plaintext HTTP/2 itself (src/h2/); node:http2 is for TLS and daprd peers only.
    const after = await loaded(caller);
    assert.equal(after.http2, false);
    assert.equal(after.nodeUndici, false);
    assert.equal(after.undici, false);
  });
});
