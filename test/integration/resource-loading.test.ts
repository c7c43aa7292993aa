// Start-up safety: what `--resources-path` and `--config` may hold, and a sidecar that is told to stop
// while it is still starting.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { courierBin, TestEnv } from '../framework/env.js';
import { SidecarProcess, startSidecar } from '../framework/sidecar-process.js';
import { generateCaMaterial } from '../../src/security/index.js';

function testEnv(t: TestContext): TestEnv {
  const env = new TestEnv();
  t.after(() => env.close());
  return env;
}

/** A plain TCP listener on 127.0.0.1 that accepts connections and never answers, closed after the test. */
async function silentListener(t: TestContext): Promise<{ port: number; connections: () => number }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server: Server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as { port: number }).port, connections: () => accepted };
}

test('a FIFO and a socket in --resources-path are skipped with a warning naming them; a symlink to a file is read', async (t) => {
  const env = testEnv(t);
  const dir = join(env.home, 'resources');
  mkdirSync(dir);
  const fifo = join(dir, 'pipe.yaml');
  const made = spawnSync('mkfifo', [fifo]);
  assert.equal(made.status, 0, `mkfifo: ${String(made.stderr)}`);
  // A Unix socket whose name looks like a resource file.
  const socketServer = createServer();
  await new Promise<void>((resolve) => socketServer.listen(join(dir, 'socket.yaml'), resolve));
  t.after(() => new Promise<void>((resolve) => socketServer.close(() => resolve())));
  const real = join(env.home, 'elsewhere.yaml');
  writeFileSync(real, 'apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: linked\nspec:\n  type: state.in-memory\n  version: v1\n');
  symlinkSync(real, join(dir, 'linked.yaml'));

  const sidecar = await startSidecar(env, { appId: 'fifo', args: ['--resources-path', dir] });
  assert.match(sidecar.output, /pipe\.yaml.*(FIFO|named pipe)|(FIFO|named pipe).*pipe\.yaml/i, sidecar.output);
  assert.match(sidecar.output, /socket\.yaml.*socket|socket.*socket\.yaml/i, sidecar.output);
  assert.match(sidecar.output, /Component\/linked/, 'the symlinked file was read');
  assert.equal((await fetch(sidecar.url('/v1.0/healthz/outbound'))).status, 204);
});

test('SIGTERM while the sidecar is still starting (waiting on a Sentry that never answers) stops it promptly with status 0', async (t) => {
  const env = testEnv(t);
  const sentry = await silentListener(t);
  const anchors = (await generateCaMaterial({ trustDomain: 'public' })).rootCertPem;
  const child = spawn(
    process.execPath,
    [courierBin, 'sidecar', '--app-id', 'waiting', '--dapr-http-port', '0', '--dapr-grpc-port', '0', '--dapr-internal-grpc-port', '0', '--metrics-port', '0', '--enable-mtls', '--sentry-address', `127.0.0.1:${sentry.port}`],
    { env: { ...process.env, COURIER_HOME: env.home, DAPR_TRUST_ANCHORS: anchors }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const sidecar = env.track(new SidecarProcess('waiting', child));
  // Start-up is now waiting for the Sentry to answer.
  const deadline = Date.now() + 20_000;
  while (sentry.connections() === 0) {
    assert.ok(sidecar.running, `the sidecar exited before contacting the Sentry:\n${sidecar.output}`);
    assert.ok(Date.now() < deadline, `the sidecar never contacted the Sentry:\n${sidecar.output}`);
    await sleep(20);
  }
  const signalledAt = Date.now();
  child.kill('SIGTERM');
  const code = await Promise.race([sidecar.exited(), sleep(10_000).then(() => 'still running' as const)]);
  const tookMs = Date.now() - signalledAt;
  assert.notEqual(code, 'still running', `the sidecar did not stop within 10 s of SIGTERM:\n${sidecar.output}`);
  assert.equal(code, 0, `exit status after SIGTERM during start-up:\n${sidecar.output}`);
  assert.ok(tookMs < 5_000, `stopping took ${tookMs} ms`);
  assert.match(sidecar.output, /received SIGTERM/);
  assert.doesNotMatch(sidecar.output, /could not get a certificate from the Sentry: /, 'a requested stop is not reported as a failure');
});

test('a --config file holding two YAML documents is refused, naming the file and the count', (t) => {
  const env = testEnv(t);
  const config = join(env.home, 'two.yaml');
  writeFileSync(
    config,
    [
      'apiVersion: dapr.io/v1alpha1',
      'kind: Configuration',
      'metadata:',
      '  name: first',
      'spec:',
      '  nameResolution:',
      '    component: sqlite',
      '---',
      'apiVersion: dapr.io/v1alpha1',
      'kind: Configuration',
      'metadata:',
      '  name: second',
      'spec:',
      '  accessControl:',
      '    defaultAction: deny',
      '    trustDomain: public',
      '',
    ].join('\n'),
  );
  const r = spawnSync(process.execPath, [courierBin, 'sidecar', '--app-id', 'x', '--dapr-http-port', '0', '--dapr-grpc-port', '0', '--config', config], {
    env: { ...process.env, COURIER_HOME: env.home },
    encoding: 'utf8',
    timeout: 20_000,
  });
  const output = `${r.stdout}${r.stderr}`;
  assert.equal(r.status, 1, output);
  assert.match(output, /two\.yaml: .*2 YAML documents/);
  assert.equal(output.trim().split('\n').filter((l) => l.includes('two.yaml')).length, 1, `one line:\n${output}`);
  assert.doesNotMatch(output, /\n\s+at /, 'no stack trace');
});
