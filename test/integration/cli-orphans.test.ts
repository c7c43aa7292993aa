// Whatever ends `courier run` (SIGKILL included), the sidecars and apps it started do not outlive it.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { TestEnv } from '../framework/env.js';
import { appDirectory, CliProcess, freePort, listJson, runCli, trackPids, waitForListed, waitGone } from '../framework/cli-process.js';

function testEnv(t: TestContext): TestEnv {
  const env = new TestEnv();
  t.after(() => env.close());
  return env;
}

/**
 * How long everything may take to be gone after the CLI is killed. The measured time is the app's
 * 5 s grace after SIGTERM (the stubborn app ignores it) plus well under a second; the bound is wide
 * for a busy machine.
 */
const GONE_WITHIN_MS = 25_000;

/** An app that ignores SIGTERM and starts a grandchild that ignores it too. */
const stubbornApp = `
const { spawn } = require('node:child_process');
process.on('SIGTERM', () => console.log('stubborn ignores SIGTERM'));
const g = spawn(process.execPath, ['-e', "process.on('SIGTERM', () => {}); setInterval(() => {}, 1000)"], { stdio: 'ignore' });
console.log('grandchild ' + g.pid);
setInterval(() => {}, 1000);
`;

/** The grandchild pids the apps printed (`grandchild <pid>`). */
function grandchildren(cli: CliProcess): number[] {
  return [...cli.stdout.matchAll(/grandchild (\d+)$/gm)].map((m) => Number(m[1]));
}

test('courier run killed with SIGKILL: its sidecar, its app and the app\'s child stop soon after', async (t) => {
  const env = testEnv(t);
  const dir = appDirectory(env, { 'app.js': stubbornApp });
  const cli = new CliProcess(env, ['run', '-a', 'stubborn', '-p', String(await freePort()), '--', 'node', 'app.js'], { cwd: dir });
  const [entry] = await waitForListed(env, ['stubborn']);
  assert.ok(entry !== undefined);
  await cli.waitFor(/== APP == grandchild \d+/);
  const pids = [entry.daprdPid, entry.appPid, ...grandchildren(cli)];
  trackPids(env, () => pids);
  assert.equal(pids.length, 3);

  const killedAt = Date.now();
  cli.child.kill('SIGKILL');
  await cli.waitForExit();
  assert.deepEqual(await waitGone(pids, GONE_WITHIN_MS), [], 'sidecar, app and grandchild are gone');
  t.diagnostic(`gone ${Date.now() - killedAt} ms after SIGKILL`);
  assert.deepEqual(await listJson(env), []);
});

test('courier run -f killed with SIGKILL: every sidecar, app and grandchild stops soon after', async (t) => {
  const env = testEnv(t);
  const dir = appDirectory(env, {
    'stubborn/app.js': stubbornApp,
    'dapr.yaml': `version: 1
apps:
  - appID: stubborn
    appDirPath: ./stubborn
    command: ["node", "app.js"]
  - appID: shell
    appDirPath: ./stubborn
    command: ["sh", "-c", "sleep 1000 & echo grandchild $!; wait"]
`,
  });
  const cli = new CliProcess(env, ['run', '-f', '.'], { cwd: dir });
  const entries = await waitForListed(env, ['stubborn', 'shell']);
  await cli.waitFor(/== APP - stubborn == grandchild \d+/);
  await cli.waitFor(/== APP - shell == grandchild \d+/);
  const pids = [...entries.flatMap((e) => [e.daprdPid, e.appPid]), ...grandchildren(cli)];
  trackPids(env, () => pids);
  assert.equal(pids.length, 6);

  const killedAt = Date.now();
  cli.child.kill('SIGKILL');
  await cli.waitForExit();
  assert.deepEqual(await waitGone(pids, GONE_WITHIN_MS), [], 'sidecars, apps and grandchildren are gone');
  t.diagnostic(`gone ${Date.now() - killedAt} ms after SIGKILL`);
  assert.deepEqual(await listJson(env), []);
});

test('courier run with mTLS killed with SIGKILL: the local Sentry it started stops too', async (t) => {
  const env = testEnv(t);
  const init = await runCli(env, ['init']);
  assert.equal(init.code, 0, init.stderr);
  const dir = appDirectory(env, { 'app.js': 'setInterval(() => {}, 1000); process.on("SIGTERM", () => process.exit(0));\n' });
  const cli = new CliProcess(env, ['run', '-a', 'secured', '--', 'node', 'app.js'], { cwd: dir });
  const sentry = Number((await cli.waitFor(/Local Sentry \(certificate authority\) is up on .* \(pid (\d+)\)/))[1]);
  trackPids(env, () => [sentry]);
  const [entry] = await waitForListed(env, ['secured']);
  assert.ok(entry !== undefined);
  const pids = [sentry, entry.daprdPid, entry.appPid];

  const killedAt = Date.now();
  cli.child.kill('SIGKILL');
  await cli.waitForExit();
  assert.deepEqual(await waitGone(pids, GONE_WITHIN_MS), [], 'Sentry, sidecar and app are gone');
  t.diagnostic(`gone ${Date.now() - killedAt} ms after SIGKILL`);
  assert.deepEqual(await listJson(env), []);
});
