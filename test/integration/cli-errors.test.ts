// The CLI's user errors: one clear line on stderr and exit code 1, with nothing started.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestEnv } from '../framework/env.js';
import { createServer, type AddressInfo } from 'node:net';
import { appDirectory, freePort, runCli } from '../framework/cli-process.js';

function testEnv(t: TestContext): TestEnv {
  const env = new TestEnv();
  t.after(() => env.close());
  return env;
}

/** Runs the CLI and checks it failed with exactly one line on stderr and nothing on stdout; returns that line. */
async function failsWith(env: TestEnv, args: string[], cwd?: string): Promise<string> {
  const res = await runCli(env, args, cwd === undefined ? {} : { cwd });
  assert.equal(res.code, 1, `courier ${args.join(' ')}: ${res.stdout}${res.stderr}`);
  const lines = res.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${res.stderr}`);
  assert.equal(res.stdout, '');
  // Nothing was started.
  const runDir = join(env.home, 'run');
  assert.ok(!existsSync(runDir) || readdirSync(runDir).length === 0);
  return lines[0] ?? '';
}

test('bad flags of courier run', async (t) => {
  const env = testEnv(t);
  assert.equal(await failsWith(env, ['run', '--bogus']), 'courier: courier run: unknown flag --bogus (see "courier run --help")');
  assert.equal(await failsWith(env, ['run', '--app-port', 'http']), 'courier: courier run: flag --app-port: "http" is not a whole number (see "courier run --help")');
  assert.equal(
    await failsWith(env, ['run', '-k', 'node', 'app.js']),
    'courier: courier run: --kubernetes is not supported: Courier runs apps on this machine only; there is no Kubernetes mode (see "courier run --help")',
  );
  assert.equal(
    await failsWith(env, ['run', '-u', '/nonexistent/sockets']),
    'courier: courier run: --unix-domain-socket /nonexistent/sockets: does not exist (see "courier run --help")',
  );
  assert.equal(
    await failsWith(env, ['run', '--log-level', 'loud']),
    'courier: courier run: --log-level: "loud" is not one of debug, info, warn, error, fatal (see "courier run --help")',
  );
  assert.equal(await failsWith(env, ['run', '-a', 'bad.id']), `courier: courier run: --app-id: the app id "bad.id" must not contain dots (a dot separates a target's namespace) (see "courier run --help")`);
});

test('bad run files: bad YAML, unknown keys, wrong types, missing keys', async (t) => {
  const env = testEnv(t);
  const dir = appDirectory(env, { 'a/.keep': '', 'b/.keep': '' });
  const file = join(dir, 'dapr.yaml');
  const cases: Array<[string, string]> = [
    ['version: 1\napps:\n  - appDirPath: a\n    command: [node, app.js\n', `courier: ${file}:5:1: invalid YAML: `],
    ['version: 1\napps:\n  - appDirPath: a\n  - appDirPath: b\n    appPrt: 3000\n', `courier: ${file}: apps[1].appPrt: unknown key (did you mean appPort?)`],
    ['version: 1\napps:\n  - appDirPath: a\n    appPort: three\n', `courier: ${file}: apps[0].appPort: must be a whole number, not the string "three"`],
    ['version: 1\napps:\n  - appID: a\n', `courier: ${file}: apps[0].appDirPath: is required`],
    ['apps:\n  - appDirPath: a\n', `courier: ${file}: version: is required (version: 1)`],
    ['version: 1\napps:\n  - appDirPath: a\n    containerImage: a:1\n', `courier: ${file}: apps[0].containerImage: is for Kubernetes; Courier runs apps as processes on this machine`],
  ];
  for (const [yaml, expected] of cases) {
    writeFileSync(file, yaml);
    const line = await failsWith(env, ['run', '-f', dir]);
    assert.ok(line.startsWith(expected), `expected "${expected}"\n     got "${line}"`);
  }
  assert.equal(await failsWith(env, ['run', '-f', join(dir, 'a')]), `courier: ${join(dir, 'a')}: the directory has no dapr.yaml`);
});

test('courier stop, invoke and list errors', async (t) => {
  const env = testEnv(t);
  assert.equal(await failsWith(env, ['stop', '--app-id', 'ghost']), 'courier: no running app with id "ghost"');
  assert.equal(await failsWith(env, ['stop']), 'courier: courier stop: give --app-id or --run-file (see "courier stop --help")');
  assert.equal(await failsWith(env, ['invoke', '-a', 'x', '-m', 'y']), 'courier: no running Courier sidecar found; start one with courier run');
  assert.equal(await failsWith(env, ['invoke', '-m', 'y']), 'courier: courier invoke: --app-id is required (see "courier invoke --help")');
  assert.equal(await failsWith(env, ['list', '-o', 'xml']), 'courier: courier list: --output: "xml" is not one of table, json, yaml (see "courier list --help")');
  const empty = await runCli(env, ['list']);
  assert.equal(empty.code, 0);
  assert.equal(empty.stdout, 'No Courier instances found.\n');
  assert.equal((await runCli(env, ['list', '-o', 'json'])).stdout, '[]\n');
});

test('--help of run, list, stop and invoke', async (t) => {
  const env = testEnv(t);
  for (const command of ['run', 'list', 'stop', 'invoke']) {
    const res = await runCli(env, [command, '--help']);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, new RegExp(`^Usage: courier ${command}`));
    assert.match(res.stdout, /-h, --help/);
  }
});

/** A port held by a listener of the test's own until the test ends. */
async function busyPort(t: TestContext): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as AddressInfo).port;
}

test('courier run: a port already in use stops the run with one line naming the port and the flag', async (t) => {
  const env = testEnv(t);
  const port = await busyPort(t);
  for (const flag of ['--dapr-http-port', '--dapr-grpc-port', '--dapr-internal-grpc-port', '--metrics-port']) {
    assert.equal(await failsWith(env, ['run', '-a', 'clash', flag, String(port), '--', 'node', '-e', '']), `courier: courier run: port ${port} (${flag}) is already in use`);
  }
});

test('courier run -f: a port in use, or chosen twice, in a run file names the key and the app', async (t) => {
  const env = testEnv(t);
  const port = await busyPort(t);
  const free = await freePort();
  const dir = appDirectory(env, { 'a/.keep': '', 'b/.keep': '' });
  const file = join(dir, 'dapr.yaml');
  const run = async (yaml: string): Promise<string> => {
    writeFileSync(file, yaml);
    const res = await runCli(env, ['run', '-f', dir]);
    assert.equal(res.code, 1, res.stdout + res.stderr);
    assert.equal(res.stdout, `ℹ️  Starting 2 apps from ${file}\n`);
    const lines = res.stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, res.stderr);
    assert.ok(!existsSync(join(env.home, 'run')) || readdirSync(join(env.home, 'run')).length === 0, 'nothing was started');
    return lines[0] ?? '';
  };
  assert.equal(
    await run(`version: 1\napps:\n  - appDirPath: a\n    command: [node, -e, '']\n  - appDirPath: b\n    daprGRPCPort: ${port}\n    command: [node, -e, '']\n`),
    `courier: courier run: port ${port} (daprGRPCPort of app "b" in ${file}) is already in use`,
  );
  assert.equal(
    await run(`version: 1\napps:\n  - appDirPath: a\n    daprHTTPPort: ${free}\n  - appDirPath: b\n    metricsPort: ${free}\n`),
    `courier: courier run: port ${free} is chosen twice: daprHTTPPort of app "a" in ${file} and metricsPort of app "b" in ${file}`,
  );
});

test('courier sidecar: a listener whose port is in use fails with one line naming the port and the flag', async (t) => {
  const env = testEnv(t);
  const port = await busyPort(t);
  for (const flag of ['--dapr-http-port', '--dapr-grpc-port', '--dapr-internal-grpc-port']) {
    const args = ['sidecar', '--app-id', 'clash', '--dapr-http-port', '0', '--dapr-grpc-port', '0', flag, String(port)];
    const res = await runCli(env, args);
    assert.equal(res.code, 1, res.stdout + res.stderr);
    assert.equal(res.stderr, `courier sidecar: port ${port} (${flag}) is already in use\n`);
  }
});
