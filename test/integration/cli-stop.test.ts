// `courier list` and `courier stop` check who holds a recorded pid before trusting or signalling it,
// and stop what a `courier run` that is gone left behind, at once.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestEnv } from '../framework/env.js';
import { ChildHandle } from '../framework/child.js';
import { appDirectory, isAlive, listJson, runCli, trackPids, waitGone } from '../framework/cli-process.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { processStartTime } from '../../src/runtime/run-registry.js';

function testEnv(t: TestContext): TestEnv {
  const env = new TestEnv();
  t.after(() => env.close());
  return env;
}

/** A process that merely runs, stopped by its pid when the test ends; `group` makes it lead its own process group. */
async function bystander(env: TestEnv, command: string, args: string[], group = false): Promise<ChildHandle> {
  const child = env.track(new ChildHandle(spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: group }), command));
  // Started once the system shows its start time.
  while (processStartTime(child.pid) === undefined) await new Promise((resolve) => setTimeout(resolve, 10));
  return child;
}

/** Sets the metadata `courier run` gives a sidecar, as a `courier run` that started it would have. */
async function putMetadata(sidecar: SidecarProcess, values: Record<string, string>): Promise<void> {
  for (const [key, value] of Object.entries(values)) {
    const res = await fetch(sidecar.url(`/v1.0/metadata/${key}`), { method: 'PUT', body: value });
    await res.arrayBuffer();
    assert.equal(res.status, 204, `PUT ${key}`);
  }
}

/** A run file for `courier stop -f` to name. */
function runFile(env: TestEnv): string {
  const dir = appDirectory(env, { 'dapr.yaml': 'version: 1\napps:\n  - appDirPath: .\n' });
  return join(dir, 'dapr.yaml');
}

test('a run record whose pid now belongs to another process: list ignores it, stop never signals it', async (t) => {
  const env = testEnv(t);
  const other = await bystander(env, 'sleep', ['1000'], true);
  const runDir = join(env.home, 'run');
  mkdirSync(runDir, { recursive: true });
  const record = join(runDir, `${other.pid}.json`);
  writeFileSync(
    record,
    JSON.stringify({
      appId: 'impostor',
      namespace: 'default',
      pid: other.pid,
      startTime: `1@${'0'.repeat(8)}-0000-0000-0000-${'0'.repeat(12)}`,
      httpPort: 1,
      grpcPort: 2,
      internalGrpcPort: 3,
      appPort: null,
      metricsPort: 4,
      listenAddresses: ['127.0.0.1'],
      startedAt: new Date().toISOString(),
      command: [],
      cwd: env.home,
    }),
  );
  assert.deepEqual(await listJson(env), []);
  assert.equal(existsSync(record), false, 'the stale record is removed');
  const stopped = await runCli(env, ['stop', '--app-id', 'impostor']);
  assert.equal(stopped.code, 1);
  assert.equal(stopped.stderr, 'courier: no running app with id "impostor"\n');
  assert.ok(isAlive(other.pid), 'the process holding the pid was not signalled');
});

test('metadata naming a CLI and an app whose pids now belong to other processes: stop -f stops the sidecar only', async (t) => {
  const env = testEnv(t);
  const file = runFile(env);
  const sidecar = await startSidecar(env, { appId: 'checkout' });
  const notTheCli = await bystander(env, 'sleep', ['1000']);
  const notTheApp = await bystander(env, 'sleep', ['1000'], true);
  const wrong = `1@${'0'.repeat(8)}-0000-0000-0000-${'0'.repeat(12)}`;
  await putMetadata(sidecar, {
    cliStartTime: wrong,
    cliPID: String(notTheCli.pid),
    appStartTime: wrong,
    appPID: String(notTheApp.pid),
    appCommand: 'node app.js',
    runTemplatePath: file,
  });
  const [entry] = await listJson(env);
  assert.deepEqual([entry?.appId, entry?.daprdPid, entry?.cliPid, entry?.appPid], ['checkout', sidecar.pid, 0, 0]);

  const stopped = await runCli(env, ['stop', '-f', file]);
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.match(stopped.stdout, /app stopped successfully: checkout/);
  assert.equal(await sidecar.exited(), 0);
  assert.ok(isAlive(notTheCli.pid) && isAlive(notTheApp.pid), 'neither process holding a recorded pid was signalled');
});

test('courier stop -f after its courier run was killed: the app and its sidecar are stopped directly, at once', async (t) => {
  const env = testEnv(t);
  const file = runFile(env);
  const sidecar = await startSidecar(env, { appId: 'checkout' });
  // The app: a shell in its own process group with a child of its own, as `courier run` starts apps.
  const app = await bystander(env, 'sh', ['-c', 'sleep 1000 & echo "grandchild $!"; wait'], true);
  const grandchild = Number((await app.waitFor(/grandchild (\d+)/))[1]);
  trackPids(env, () => [grandchild]);
  // The CLI that started both: gone (its pid is recorded with its start time, as courier run records it).
  const cli = await bystander(env, 'sleep', ['1000']);
  const cliStartTime = processStartTime(cli.pid) ?? '';
  await cli.stop();
  await putMetadata(sidecar, {
    cliStartTime,
    cliPID: String(cli.pid),
    appStartTime: processStartTime(app.pid) ?? '',
    appPID: String(app.pid),
    appCommand: 'sh -c ...',
    runTemplatePath: file,
  });
  const [entry] = await listJson(env);
  assert.deepEqual([entry?.cliPid, entry?.appPid], [0, app.pid]);

  const started = Date.now();
  const stopped = await runCli(env, ['stop', '-f', file]);
  const tookMs = Date.now() - started;
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.equal(stopped.stdout, '✅  app stopped successfully: checkout\n');
  assert.deepEqual(await waitGone([sidecar.pid, app.pid, grandchild], 1000), []);
  // The sidecar's graceful shutdown is all it waits for (well under a second when idle); far below the
  // 10 s it would wait for a `courier run` that is not there.
  assert.ok(tookMs < 8000, `courier stop took ${tookMs} ms`);
  t.diagnostic(`courier stop -f took ${tookMs} ms`);
  assert.deepEqual(await listJson(env), []);
});
