// `courier run -f` (Dapr's multi-app run template) and `courier stop -f`, through the built CLI.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestEnv } from '../framework/env.js';
import { appDirectory, CliProcess, freePort, listJson, runCli, trackPids, waitForListed, waitGone } from '../framework/cli-process.js';

function testEnv(t: TestContext): TestEnv {
  const env = new TestEnv();
  t.after(() => env.close());
  return env;
}

/** Serves POST /orders on APP_PORT. */
const backend = `
const http = require('node:http');
const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    console.log('backend got ' + req.method + ' ' + req.url + ' ' + body);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ stored: JSON.parse(body), by: process.env.APP_ID, shared: process.env.SHARED, own: process.env.OWN }));
  });
});
server.listen(Number(process.env.APP_PORT), '127.0.0.1', () => console.log('backend ready'));
process.on('SIGTERM', () => { server.close(); process.exit(0); });
`;

/** Calls backend's /orders through its own sidecar with the dapr-app-id header until it answers, then idles. */
const frontend = `
const http = require('node:http');
function call(attempt) {
  const body = JSON.stringify({ orderId: 7 });
  const req = http.request({ host: '127.0.0.1', port: Number(process.env.DAPR_HTTP_PORT), method: 'POST', path: '/orders',
    headers: { 'dapr-app-id': 'backend', 'content-type': 'application/json' } }, (res) => {
    let text = '';
    res.on('data', (c) => (text += c));
    res.on('end', () => {
      if (res.statusCode === 200) console.log('frontend got ' + text);
      else if (attempt < 100) setTimeout(() => call(attempt + 1), 200);
      else { console.error('frontend failed: ' + res.statusCode + ' ' + text); process.exit(2); }
    });
  });
  req.on('error', (err) => (attempt < 100 ? setTimeout(() => call(attempt + 1), 200) : (console.error(String(err)), process.exit(2))));
  req.end(body);
}
call(0);
setInterval(() => {}, 1000);
process.on('SIGTERM', () => process.exit(0));
`;

test('courier run -f: two apps, one calls the other through its sidecar; logs go to files; stop -f stops everything', async (t) => {
  const env = testEnv(t);
  const backendPort = await freePort();
  const dir = appDirectory(env, {
    'backend/app.js': backend,
    'frontend/app.js': frontend,
    'dapr.yaml': `version: 1
name: shop
common:
  env:
    SHARED: from-common
  daprdLogDestination: fileAndConsole
apps:
  - appID: backend
    appDirPath: ./backend
    appPort: ${backendPort}
    command: ["node", "app.js"]
    env:
      OWN: backend-only
  - appID: frontend
    appDirPath: ./frontend/
    command: ["node", "app.js"]
    appLogDestination: console
`,
  });
  const cli = new CliProcess(env, ['run', '-f', '.'], { cwd: dir });
  const got = await cli.waitFor(/^== APP - frontend == frontend got (.*)$/m);
  assert.deepEqual(JSON.parse(got[1] ?? ''), { stored: { orderId: 7 }, by: 'backend', shared: 'from-common', own: 'backend-only' });
  assert.match(cli.stdout, /^== APP - backend == backend got POST \/orders \{"orderId":7\}$/m);
  assert.match(cli.stdout, /^== COURIER - backend == /m);
  assert.match(cli.stdout, /^== COURIER - frontend == /m);

  const entries = await waitForListed(env, ['backend', 'frontend']);
  const file = join(dir, 'dapr.yaml');
  for (const entry of entries) {
    assert.equal(entry.cliPid, cli.pid);
    assert.equal(entry.runTemplatePath, file);
  }
  assert.equal(entries[0]?.appPort, backendPort);

  // Log files in Dapr's layout, per the destinations: backend's app and sidecar output, frontend's
  // sidecar output only; the CLI says where each is, and so does courier list.
  const backendDir = join(dir, 'backend', '.dapr', 'logs');
  const backendLogs = readdirSync(backendDir).sort();
  assert.equal(backendLogs.length, 2, backendLogs.join(', '));
  assert.match(backendLogs[0] ?? '', /^backend_app_\d{14}\.log$/);
  assert.match(backendLogs[1] ?? '', /^backend_daprd_\d{14}\.log$/);
  const frontendDir = join(dir, 'frontend', '.dapr', 'logs');
  const frontendLogs = readdirSync(frontendDir);
  assert.deepEqual(frontendLogs.map((f) => f.replace(/\d{14}/, 'T')), ['frontend_daprd_T.log']);
  const printed = (line: string): void => assert.ok(cli.stdout.split('\n').includes(line), `printed: ${line}\n${cli.stdout}`);
  printed(`ℹ️  Writing log files to directory : ${backendDir}`);
  printed(`ℹ️  App log of "backend": ${join(backendDir, backendLogs[0] ?? '')}`);
  printed(`ℹ️  Sidecar log of "backend": ${join(backendDir, backendLogs[1] ?? '')}`);
  printed(`ℹ️  Writing log files to directory : ${frontendDir}`);
  printed(`ℹ️  Sidecar log of "frontend": ${join(frontendDir, frontendLogs[0] ?? '')}`);
  assert.doesNotMatch(cli.stdout, /App log of "frontend"/);
  assert.deepEqual(
    entries.map((e) => [e.appId, e.appLogPath, e.daprdLogPath, e.runTemplateName]),
    [
      ['backend', join(backendDir, backendLogs[0] ?? ''), join(backendDir, backendLogs[1] ?? ''), 'shop'],
      ['frontend', '', join(frontendDir, frontendLogs[0] ?? ''), 'shop'],
    ],
  );

  const stopped = await runCli(env, ['stop', '-f', dir]);
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.match(stopped.stdout, /app stopped successfully: backend/);
  assert.match(stopped.stdout, /app stopped successfully: frontend/);
  assert.deepEqual(await cli.waitForExit(), { code: 0, signal: null });
  const pids = entries.flatMap((e) => [e.daprdPid, e.appPid]);
  assert.deepEqual(await waitGone(pids, 1000), []);
  assert.deepEqual(await listJson(env), []);

  const appLog = readFileSync(join(backendDir, backendLogs[0] ?? ''), 'utf8');
  assert.match(appLog, /^backend ready$/m);
  assert.match(appLog, /^backend got POST \/orders/m);
  assert.doesNotMatch(appLog, /== APP/);
});

test('courier run -f: when every app has exited the CLI exits, with the first failing code', async (t) => {
  const env = testEnv(t);
  const dir = appDirectory(env, {
    'ok/run.js': "console.log('ok done'); setTimeout(() => process.exit(0), 200);\n",
    'bad/run.js': "console.log('bad done'); setTimeout(() => process.exit(4), 400);\n",
    'dapr.yaml': `version: 1
apps:
  - appDirPath: ok
    command: [node, run.js]
  - appDirPath: bad
    command: [node, run.js]
`,
  });
  const cli = new CliProcess(env, ['run', '--run-file', join(dir, 'dapr.yaml')], { cwd: dir });
  const sidecars: number[] = [];
  trackPids(env, () => sidecars);
  const collect = async (): Promise<void> => {
    for (const id of ['ok', 'bad']) sidecars.push(Number((await cli.waitFor(new RegExp(`sidecar for app "${id}" is up: .*\\(pid (\\d+)\\)`)))[1]));
  };
  await collect();
  assert.deepEqual(await cli.waitForExit(), { code: 4, signal: null });
  assert.deepEqual(await waitGone(sidecars, 1000), []);
  assert.match(cli.stdout, /^== APP - ok == ok done$/m);
  assert.match(cli.stdout, /^== APP - bad == bad done$/m);
  // daprdLogDestination defaults to file: no sidecar output on the console.
  assert.doesNotMatch(cli.stdout, /== COURIER - /);
});

test('courier run -f: an app that cannot start stops all the others and fails', async (t) => {
  const env = testEnv(t);
  const dir = appDirectory(env, {
    'good/app.js': 'setInterval(() => {}, 1000);\n',
    'broken/.keep': '',
    'dapr.yaml': `version: 1
apps:
  - appDirPath: good
    command: [node, app.js]
  - appDirPath: broken
    command: [no-such-program-courier-test]
`,
  });
  const cli = new CliProcess(env, ['run', '-f', dir]);
  const sidecars: number[] = [];
  trackPids(env, () => sidecars);
  const exit = await cli.waitForExit();
  for (const match of cli.stdout.matchAll(/sidecar for app "[^"]+" is up: .*\(pid (\d+)\)/g)) sidecars.push(Number(match[1]));
  const apps = [...cli.stdout.matchAll(/Started app "[^"]+" \(pid (\d+)\)/g)].map((m) => Number(m[1]));
  trackPids(env, () => apps);
  assert.deepEqual(exit, { code: 1, signal: null });
  assert.match(cli.stderr, /^courier: cannot start no-such-program-courier-test: /m);
  assert.deepEqual(await waitGone([...sidecars, ...apps], 1000), []);
  assert.deepEqual(await listJson(env), []);
});

test('courier stop --app-id with one app of a run file stops that app and its sidecar only', async (t) => {
  const env = testEnv(t);
  const dir = appDirectory(env, {
    'one/app.js': 'setInterval(() => {}, 1000); process.on("SIGTERM", () => process.exit(0));\n',
    'two/app.js': 'setInterval(() => {}, 1000); process.on("SIGTERM", () => process.exit(0));\n',
    'dapr.yaml': 'version: 1\napps:\n  - appDirPath: one\n    command: [node, app.js]\n  - appDirPath: two\n    command: [node, app.js]\n',
  });
  const cli = new CliProcess(env, ['run', '-f', dir]);
  const [one, two] = await waitForListed(env, ['one', 'two']);
  assert.ok(one !== undefined && two !== undefined);
  const stopped = await runCli(env, ['stop', '--app-id', 'one']);
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.deepEqual(await waitGone([one.daprdPid, one.appPid], 1000), []);
  assert.ok(cli.running, 'the CLI keeps running the other app');
  assert.deepEqual(
    (await listJson(env)).map((e) => e.appId),
    ['two'],
  );
  const rest = await runCli(env, ['stop', '--app-id', 'two']);
  assert.equal(rest.code, 0, rest.stderr);
  assert.deepEqual(await cli.waitForExit(), { code: 0, signal: null });
  assert.deepEqual(await waitGone([two.daprdPid, two.appPid], 1000), []);
});
