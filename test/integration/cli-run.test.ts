// `courier run` of one app, with `courier list`, `courier invoke` and `courier stop`, through the built CLI.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { TestEnv } from '../framework/env.js';
import { appDirectory, CliProcess, freePort, listJson, runCli, trackPids, waitForHealthz, waitForListed, waitGone } from '../framework/cli-process.js';
import { MALLOC_ENV } from '../../src/runtime/heap-flags.js';

function testEnv(t: TestContext): TestEnv {
  const env = new TestEnv();
  t.after(() => env.close());
  return env;
}

/** An HTTP app that prints its environment, answers /hello with what it got, and logs SIGTERM. */
const echoApp = `
const http = require('node:http');
const vars = ['APP_ID', 'APP_PORT', 'APP_PROTOCOL', 'APP_CHANNEL_ADDRESS', 'DAPR_HTTP_PORT', 'DAPR_GRPC_PORT', 'DAPR_METRICS_PORT', 'INHERITED', 'MALLOC_MMAP_THRESHOLD_'];
console.log('env ' + vars.map((v) => v + '=' + (process.env[v] ?? '')).join(' '));
console.error('a line on stderr');
const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    if (req.url !== '/hello') { res.writeHead(404); res.end('no such method'); return; }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ method: req.method, body, contentType: req.headers['content-type'] ?? null }));
  });
});
server.listen(Number(process.env.APP_PORT), '127.0.0.1', () => console.log('ready'));
process.on('SIGTERM', () => { console.log('app got SIGTERM'); server.close(); process.exit(0); });
`;

/** The sidecar pid from the "is up" line of `courier run`. */
async function sidecarPid(cli: CliProcess): Promise<number> {
  const match = await cli.waitFor(/Courier sidecar for app "[^"]+" is up: .*\(pid (\d+)\)/);
  return Number(match[1]);
}

test('courier run: the app gets its environment, output is prefixed, list, invoke and stop work, nothing is left behind', async (t) => {
  const env = testEnv(t);
  const dir = appDirectory(env, { 'app.js': echoApp });
  const appPort = await freePort();
  const cli = new CliProcess(env, ['run', '--app-id', 'nodeapp', '--app-port', String(appPort), '--log-level', 'debug', '--', 'node', 'app.js'], {
    cwd: dir,
    // As the courier executable's interpreter line starts it: with the launcher's allocator setting.
    env: { INHERITED: 'yes', ...MALLOC_ENV },
  });
  const sidecar = await sidecarPid(cli);
  trackPids(env, () => [sidecar]);
  await cli.waitFor(/== APP == ready/);

  // Environment and prefixes.
  const envLine = await cli.waitFor(/^== APP == env (.*)$/m);
  const vars = Object.fromEntries((envLine[1] ?? '').split(' ').map((kv) => kv.split('=') as [string, string]));
  assert.equal(vars.APP_ID, 'nodeapp');
  assert.equal(vars.APP_PORT, String(appPort));
  assert.equal(vars.APP_PROTOCOL, 'http');
  assert.equal(vars.APP_CHANNEL_ADDRESS, '');
  assert.equal(vars.INHERITED, 'yes');
  // The launcher's allocator setting is the sidecar's, not the app's.
  assert.equal(vars.MALLOC_MMAP_THRESHOLD_, '', 'the app runs with the allocator settings it would have without Courier');
  const sidecarEnv = readFileSync(`/proc/${sidecar}/environ`, 'utf8').split('\0');
  for (const [name, value] of Object.entries(MALLOC_ENV)) assert.ok(sidecarEnv.includes(`${name}=${value}`), `the sidecar runs with ${name}=${value}`);
  for (const name of ['DAPR_HTTP_PORT', 'DAPR_GRPC_PORT', 'DAPR_METRICS_PORT']) assert.match(vars[name] ?? '', /^\d+$/, name);
  assert.match(cli.stderr, /^== APP == a line on stderr$/m);
  assert.match(cli.output, /^== COURIER == .+/m);
  assert.doesNotMatch(cli.stdout, /^(?!== APP == |== COURIER == |✅|ℹ️|⚠️)./m, 'every line is prefixed or a CLI message');

  // courier list shows the app with the pids of its processes.
  const [entry] = await waitForListed(env, ['nodeapp']);
  assert.ok(entry !== undefined);
  assert.equal(entry.cliPid, cli.pid);
  assert.equal(entry.daprdPid, sidecar);
  assert.equal(entry.courierPid, sidecar);
  assert.equal(entry.appPort, appPort);
  assert.equal(entry.httpPort, Number(vars.DAPR_HTTP_PORT));
  assert.equal(entry.grpcPort, Number(vars.DAPR_GRPC_PORT));
  // The metrics port the app is told is the one the sidecar bound (it picks a free one itself) and serves.
  assert.notEqual(vars.DAPR_METRICS_PORT, '0');
  assert.match(cli.stdout, new RegExp(`is up: .*metrics port ${vars.DAPR_METRICS_PORT ?? ''} \\(pid`));
  const scraped = await fetch(`http://127.0.0.1:${vars.DAPR_METRICS_PORT ?? ''}/metrics`);
  assert.equal(scraped.status, 200);
  assert.match(await scraped.text(), /^# TYPE dapr_runtime_service_invocation_req_sent_total counter$/m);
  assert.equal(entry.command, 'node app.js');
  assert.equal(entry.namespace, 'default');
  assert.equal(entry.runTemplatePath, '');
  assert.match(entry.age, /^\d+s$/);
  assert.ok(entry.appPid > 0);
  const appPid = entry.appPid;
  const table = await runCli(env, ['list']);
  assert.match(table.stdout, /^APP ID\s+HTTP PORT\s+GRPC PORT\s+APP PORT\s+COMMAND\s+AGE\s+CREATED\s+DAPRD PID\s+CLI PID\s+APP PID\s+RUN_TEMPLATE_PATH\s+APP_LOG_PATH\s+DAPRD_LOG_PATH$/m);
  assert.match(table.stdout, new RegExp(`^nodeapp\\s+${entry.httpPort}\\s+${entry.grpcPort}\\s+${appPort}\\s+node app\\.js\\s+.*\\s${sidecar}\\s+${cli.pid}\\s+${appPid}$`, 'm'));

  // -o json and -o yaml carry Dapr CLI's keys with its types, then Courier's own.
  const daprKeys: Record<string, 'string' | 'number' | 'boolean'> = {
    appId: 'string',
    httpPort: 'number',
    grpcPort: 'number',
    appPort: 'number',
    metricsEnabled: 'boolean',
    command: 'string',
    age: 'string',
    created: 'string',
    daprdPid: 'number',
    cliPid: 'number',
    appPid: 'number',
    maxRequestBodySize: 'number',
    httpReadBufferSize: 'number',
    runTemplatePath: 'string',
    appLogPath: 'string',
    daprdLogPath: 'string',
    runTemplateName: 'string',
  };
  for (const format of ['json', 'yaml']) {
    const res = await runCli(env, ['list', '-o', format]);
    assert.equal(res.code, 0, res.stderr);
    const parsed = (format === 'json' ? JSON.parse(res.stdout) : parseYaml(res.stdout)) as Array<Record<string, unknown>>;
    assert.equal(parsed.length, 1);
    const row = parsed[0] ?? {};
    assert.deepEqual(Object.keys(row).slice(0, Object.keys(daprKeys).length), Object.keys(daprKeys), format);
    for (const [key, type] of Object.entries(daprKeys)) assert.equal(typeof row[key], type, `${format} ${key}`);
    assert.deepEqual(
      { daprdPid: row.daprdPid, cliPid: row.cliPid, appPid: row.appPid, appPort: row.appPort, metricsEnabled: row.metricsEnabled },
      { daprdPid: sidecar, cliPid: cli.pid, appPid, appPort, metricsEnabled: true },
    );
    // --max-body-size 4Mi and --read-buffer-size 16Ki (Courier's defaults) in Dapr's units, MB and KB.
    assert.equal(row.maxRequestBodySize, 4);
    assert.equal(row.httpReadBufferSize, 16);
    assert.equal(row.courierPid, sidecar);
  }

  // courier invoke reaches the app through its sidecar (once the sidecar sees the app).
  await waitForHealthz(entry.httpPort);
  const invoked = await runCli(env, ['invoke', '--app-id', 'nodeapp', '--method', 'hello', '--data', '{"n":1}']);
  assert.equal(invoked.code, 0, invoked.stderr);
  assert.deepEqual(JSON.parse(invoked.stdout.split('\n')[0] ?? ''), { method: 'POST', body: '{"n":1}', contentType: 'application/json' });
  assert.match(invoked.stdout, /✅ {2}App invoked successfully\n$/);
  const get = await runCli(env, ['invoke', '-a', 'nodeapp', '-m', 'hello', '-v', 'GET']);
  assert.equal(get.code, 0, get.stderr);
  assert.equal((JSON.parse(get.stdout.split('\n')[0] ?? '') as { method: string }).method, 'GET');
  const missing = await runCli(env, ['invoke', '-a', 'nodeapp', '-m', 'nope']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /HTTP 404/);
  assert.match(missing.stderr, /no such method/);
  assert.doesNotMatch(missing.stdout, /invoked successfully/);

  // courier stop ends app, sidecar and CLI; the CLI exits 0.
  const stopped = await runCli(env, ['stop', '--app-id', 'nodeapp']);
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.match(stopped.stdout, /app stopped successfully: nodeapp/);
  assert.deepEqual(await cli.waitForExit(), { code: 0, signal: null });
  assert.deepEqual(await waitGone([cli.pid, sidecar, appPid], 1000), []);
  assert.match(cli.stdout, /== APP == app got SIGTERM/);
  assert.deepEqual(await listJson(env), []);
  assert.equal((await runCli(env, ['list'])).stdout, 'No Courier instances found.\n');
  assert.deepEqual(readdirSync(join(env.home, 'run')), []);
});

test('courier run: the app exiting with code 3 stops the sidecar and makes courier run exit 3', async (t) => {
  const env = testEnv(t);
  const dir = appDirectory(env, { 'quit.js': "console.log('working'); setTimeout(() => process.exit(3), 300);\n" });
  const cli = new CliProcess(env, ['run', '-a', 'quitter', 'node', 'quit.js'], { cwd: dir });
  const sidecar = await sidecarPid(cli);
  trackPids(env, () => [sidecar]);
  assert.deepEqual(await cli.waitForExit(), { code: 3, signal: null });
  assert.deepEqual(await waitGone([sidecar], 1000), []);
  assert.match(cli.stdout, /== APP == working/);
  assert.match(cli.stdout, /App "quitter" exited \(exit code 3\); stopping its sidecar/);
  assert.deepEqual(await listJson(env), []);
});

test('courier run: SIGINT stops the app, then the sidecar, and exits 0', async (t) => {
  const env = testEnv(t);
  const dir = appDirectory(env, { 'app.js': echoApp });
  const cli = new CliProcess(env, ['run', '-a', 'interrupted', '-p', String(await freePort()), 'node', 'app.js'], { cwd: dir });
  const sidecar = await sidecarPid(cli);
  trackPids(env, () => [sidecar]);
  const [entry] = await waitForListed(env, ['interrupted']);
  const appPid = entry?.appPid ?? -1;
  await cli.waitFor(/== APP == ready/);
  cli.child.kill('SIGINT');
  assert.deepEqual(await cli.waitForExit(), { code: 0, signal: null });
  assert.deepEqual(await waitGone([sidecar, appPid], 1000), []);
  const out = cli.stdout;
  assert.match(out, /Received SIGINT/);
  assert.ok(out.includes('app got SIGTERM'), out);
  assert.ok(out.indexOf('app got SIGTERM') < out.indexOf('Stopped the Courier sidecar'), 'the app stops before the sidecar');
});

test('courier run without a command runs the sidecar alone until SIGTERM; ignored flags are warned about, --enable-api-logging reaches the sidecar', async (t) => {
  const env = testEnv(t);
  const cli = new CliProcess(env, ['run', '--app-id', 'lonely', '--enable-api-logging', '--placement-host-address', 'localhost:50005']);
  const sidecar = await sidecarPid(cli);
  trackPids(env, () => [sidecar]);
  const [entry] = await waitForListed(env, ['lonely'], { withApp: false });
  assert.equal(entry?.appPid, 0);
  assert.equal(entry?.appPort, 0);
  assert.equal(entry?.command, '');
  assert.doesNotMatch(cli.stderr, /--enable-api-logging is ignored/);
  await cli.waitFor(/msg="HTTP API Called" .*\/v1\.0\/metadata/);
  assert.match(cli.stderr, /^⚠️ {2}--placement-host-address is ignored: Courier has no actors$/m);
  cli.child.kill('SIGTERM');
  assert.deepEqual(await cli.waitForExit(), { code: 0, signal: null });
  assert.deepEqual(await waitGone([sidecar], 1000), []);
});

test('courier run: a random app id when none is given', async (t) => {
  const env = testEnv(t);
  const cli = new CliProcess(env, ['run']);
  const sidecar = await sidecarPid(cli);
  trackPids(env, () => [sidecar]);
  const match = await cli.waitFor(/Courier sidecar for app "([a-z]+-[a-z]+)" is up/);
  const [entry] = await waitForListed(env, [match[1] ?? ''], { withApp: false });
  assert.equal(entry?.cliPid, cli.pid);
  const stopped = await runCli(env, ['stop', '-a', match[1] ?? '']);
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.deepEqual(await cli.waitForExit(), { code: 0, signal: null });
  assert.deepEqual(await waitGone([sidecar], 1000), []);
});

test('courier run: a sidecar that dies stops the app, and courier run exits 1', async (t) => {
  const env = testEnv(t);
  const dir = appDirectory(env, { 'app.js': echoApp });
  const cli = new CliProcess(env, ['run', '-a', 'orphan', '-p', String(await freePort()), 'node', 'app.js'], { cwd: dir });
  const sidecar = await sidecarPid(cli);
  trackPids(env, () => [sidecar]);
  const [entry] = await waitForListed(env, ['orphan']);
  process.kill(sidecar, 'SIGKILL');
  assert.deepEqual(await cli.waitForExit(), { code: 1, signal: null });
  assert.deepEqual(await waitGone([entry?.appPid ?? -1], 1000), []);
  assert.match(cli.stdout, /The Courier sidecar of app "orphan" exited \(signal SIGKILL\); stopping the app/);
});

test('courier run: an app command that does not exist stops the sidecar and fails with one clear line', async (t) => {
  const env = testEnv(t);
  const cli = new CliProcess(env, ['run', '-a', 'typo', 'no-such-program-courier-test']);
  const sidecar = await sidecarPid(cli);
  trackPids(env, () => [sidecar]);
  assert.deepEqual(await cli.waitForExit(), { code: 1, signal: null });
  assert.match(cli.stderr, /^courier: cannot start no-such-program-courier-test: no-such-program-courier-test: command not found/m);
  assert.deepEqual(await waitGone([sidecar], 1000), []);
});

test('courier run, list, invoke and stop with DAPR_API_TOKEN set', async (t) => {
  const env = testEnv(t);
  const dir = appDirectory(env, { 'app.js': echoApp });
  const withToken = { env: { DAPR_API_TOKEN: 'courier-test-token' } };
  const cli = new CliProcess(env, ['run', '-a', 'guarded', '-p', String(await freePort()), 'node', 'app.js'], { cwd: dir, ...withToken });
  const sidecar = await sidecarPid(cli);
  trackPids(env, () => [sidecar]);
  // The metadata (set and read with the token) has the CLI and app pids.
  const [entry] = await waitForListed(env, ['guarded'], { cli: withToken });
  assert.equal(entry?.cliPid, cli.pid);
  await waitForHealthz(entry.httpPort);
  // Without the token the sidecar refuses the metadata call: the pids it holds are shown empty.
  const [anonymous] = await listJson(env);
  assert.equal(anonymous?.appId, 'guarded');
  assert.equal(anonymous?.cliPid, 0);
  assert.equal(anonymous?.appPid, 0);
  const invoked = await runCli(env, ['invoke', '-a', 'guarded', '-m', 'hello', '-d', '{}'], withToken);
  assert.equal(invoked.code, 0, invoked.stderr);
  assert.match(invoked.stdout, /App invoked successfully/);
  const refused = await runCli(env, ['invoke', '-a', 'guarded', '-m', 'hello', '-d', '{}']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /HTTP 401/);
  const stopped = await runCli(env, ['stop', '-a', 'guarded'], withToken);
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.deepEqual(await cli.waitForExit(), { code: 0, signal: null });
  assert.deepEqual(await waitGone([sidecar, entry?.appPid ?? -1], 1000), []);
});
