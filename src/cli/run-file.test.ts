import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CourierError } from '../errors/index.js';
import { appEnvironment } from './run/launch.js';
import { keyPath, loadRunFile, logTimestamp, resolveRunFilePath } from './run/run-file.js';

/** A temporary directory (symlinks resolved) with an app directory `a` and `b`, removed after the test. */
function workspace(t: TestContext): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'courier-runfile-')));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'a'));
  mkdirSync(join(dir, 'b'));
  return dir;
}

function write(dir: string, yaml: string, name = 'dapr.yaml'): string {
  const file = join(dir, name);
  writeFileSync(file, yaml);
  return file;
}

/** The message of the ERR_INVALID_CONFIG error loading `yaml` throws. */
function failure(dir: string, yaml: string): string {
  const file = write(dir, yaml);
  try {
    loadRunFile(file, { env: {} });
  } catch (err) {
    assert.ok(err instanceof CourierError, String(err));
    assert.equal(err.code, 'ERR_INVALID_CONFIG');
    assert.ok(!err.message.includes('\n'), `one line: ${err.message}`);
    return err.message;
  }
  assert.fail('expected the run file to be refused');
}

const minimal = `version: 1
apps:
  - appDirPath: ./a
    command: ["node", "app.js"]
`;

test('a minimal run file: app id from the directory name, Dapr defaults, paths resolved', (t) => {
  const dir = workspace(t);
  const file = write(dir, minimal);
  const runFile = loadRunFile(dir, { env: {} });
  assert.equal(runFile.file, file);
  assert.equal(runFile.name, dir.split('/').pop());
  assert.equal(runFile.apps.length, 1);
  const app = runFile.apps[0];
  assert.ok(app !== undefined);
  assert.equal(app.appId, 'a');
  assert.equal(app.cwd, join(dir, 'a'));
  assert.deepEqual(app.command, ['node', 'app.js']);
  assert.equal(app.appProtocol, 'http');
  assert.equal(app.appPort, undefined);
  assert.equal(app.httpPort, undefined);
  assert.equal(app.appLogDestination, 'fileAndConsole');
  assert.equal(app.sidecarLogDestination, 'file');
  assert.equal(app.logDirectory, join(dir, 'a', '.dapr', 'logs'));
  assert.deepEqual(app.runTemplate, { path: file, name: dir.split('/').pop() });
  assert.deepEqual(app.sidecarFlags, []);
  assert.deepEqual(runFile.warnings, []);
});

test('a directory argument means its dapr.yaml; a file argument is used as is', (t) => {
  const dir = workspace(t);
  const file = write(dir, minimal, 'apps.yaml');
  assert.equal(resolveRunFilePath(file), file);
  assert.throws(() => resolveRunFilePath(dir), { message: `${dir}: the directory has no dapr.yaml` });
  assert.throws(() => resolveRunFilePath(join(dir, 'nope.yaml')), { message: `${join(dir, 'nope.yaml')}: no such file or directory` });
  write(dir, minimal);
  assert.equal(resolveRunFilePath(dir), join(dir, 'dapr.yaml'));
  assert.equal(resolveRunFilePath('.', dir), join(dir, 'dapr.yaml'));
});

test('every key: common values apply to every app, an app value wins, env maps merge per variable', (t) => {
  const dir = workspace(t);
  mkdirSync(join(dir, 'shared-resources'));
  mkdirSync(join(dir, 'b', 'own-resources'));
  writeFileSync(join(dir, 'config.yaml'), 'kind: Configuration\n');
  writeFileSync(join(dir, 'b', 'config.yaml'), 'kind: Configuration\n');
  write(
    dir,
    `version: 1
name: shop
common:
  resourcesPath: ./shared-resources
  configFilePath: config.yaml
  appProtocol: http
  apiListenAddresses: 127.0.0.1
  logLevel: debug
  appMaxConcurrency: 4
  maxBodySize: 8Mi
  readBufferSize: 32Ki
  enableAppHealthCheck: true
  appHealthCheckPath: /health
  appHealthProbeInterval: 2
  appHealthProbeTimeout: 300
  appHealthThreshold: 5
  env:
    SHARED: one
    OVERRIDDEN: common
    NUMBER: 42
  daprdLogDestination: console
  appLogDestination: file
apps:
  - appID: first
    appDirPath: ./a
    appPort: 3000
    daprHTTPPort: 3500
    daprGRPCPort: 50001
    daprInternalGRPCPort: 50002
    metricsPort: 9091
    appChannelAddress: localhost
    command: [node, app.js, --flag]
  - appID: second
    appDirPath: b
    resourcesPaths: [own-resources]
    configFilePath: ./config.yaml
    logLevel: warn
    appMaxConcurrency: -1
    apiListenAddresses: ["127.0.0.1", "[::1]"]
    enableAppHealthCheck: false
    env:
      OVERRIDDEN: app
    daprdLogDestination: fileAndConsole
`,
  );
  const { apps, name } = loadRunFile(dir, { env: {} });
  assert.equal(name, 'shop');
  const [first, second] = apps;
  assert.ok(first !== undefined && second !== undefined);

  assert.equal(first.appId, 'first');
  assert.equal(first.appPort, 3000);
  assert.equal(first.httpPort, 3500);
  assert.equal(first.grpcPort, 50001);
  assert.equal(first.internalGrpcPort, 50002);
  assert.equal(first.metricsPort, 9091);
  assert.equal(first.appChannelAddress, 'localhost');
  assert.deepEqual(first.command, ['node', 'app.js', '--flag']);
  assert.deepEqual(first.sidecarFlags, [
    '--config', join(dir, 'config.yaml'),
    '--resources-path', join(dir, 'shared-resources'),
    '--dapr-listen-addresses', '127.0.0.1',
    '--log-level', 'debug',
    '--app-max-concurrency', '4',
    '--max-body-size', '8Mi',
    '--read-buffer-size', '32Ki',
    '--app-health-check-path', '/health',
    '--app-health-probe-interval', '2',
    '--app-health-probe-timeout', '300',
    '--app-health-threshold', '5',
    '--enable-app-health-check',
  ]);
  assert.deepEqual(first.env, { SHARED: 'one', OVERRIDDEN: 'common', NUMBER: '42' });
  assert.equal(first.appLogDestination, 'file');
  assert.equal(first.sidecarLogDestination, 'console');

  // The app's own paths are relative to its appDirPath; its values win over common's.
  assert.equal(second.cwd, join(dir, 'b'));
  assert.deepEqual(second.sidecarFlags, [
    '--config', join(dir, 'b', 'config.yaml'),
    '--resources-path', join(dir, 'shared-resources'),
    '--resources-path', join(dir, 'b', 'own-resources'),
    '--dapr-listen-addresses', '127.0.0.1,[::1]',
    '--log-level', 'warn',
    '--app-max-concurrency', '-1',
    '--max-body-size', '8Mi',
    '--read-buffer-size', '32Ki',
    '--app-health-check-path', '/health',
    '--app-health-probe-interval', '2',
    '--app-health-probe-timeout', '300',
    '--app-health-threshold', '5',
  ]);
  assert.deepEqual(second.env, { SHARED: 'one', OVERRIDDEN: 'app', NUMBER: '42' });
  assert.deepEqual(second.command, []);
  assert.equal(second.appLogDestination, 'file');
  assert.equal(second.sidecarLogDestination, 'fileAndConsole');
});

test('port 0 means "pick one", like leaving the port out', (t) => {
  const dir = workspace(t);
  write(dir, 'version: 1\napps:\n  - appDirPath: a\n    appPort: 0\n    daprHTTPPort: 0\n');
  const app = loadRunFile(dir, { env: {} }).apps[0];
  assert.equal(app?.appPort, undefined);
  assert.equal(app?.httpPort, undefined);
});

test('enableApiLogging, enableProfiling, profilePort and unixDomainSocket reach the sidecar; with a socket the app gets no DAPR_HTTP_PORT', (t) => {
  const dir = workspace(t);
  mkdirSync(join(dir, 'a', 'sockets'), { recursive: true });
  write(dir, 'version: 1\ncommon:\n  enableApiLogging: true\n  enableProfiling: true\napps:\n  - appDirPath: a\n    profilePort: 7788\n    unixDomainSocket: ./sockets\n    command: [node, app.js]\n');
  const app = loadRunFile(dir, { env: {} }).apps[0];
  assert.ok(app !== undefined);
  assert.deepEqual(app.sidecarFlags, ['--enable-profiling', '--profile-port', '7788', '--enable-api-logging=true', '--unix-domain-socket', join(dir, 'a', 'sockets')]);
  const env = appEnvironment(app, { httpPort: 3500, grpcPort: 50001, metricsPort: 9090 }, { DAPR_HTTP_PORT: 'inherited' });
  assert.equal(env.DAPR_HTTP_PORT, undefined);
  assert.equal(env.DAPR_GRPC_PORT, undefined);
  assert.equal(env.DAPR_METRICS_PORT, '9090');
});

test('keys Courier accepts but ignores produce warnings, not errors', (t) => {
  const dir = workspace(t);
  write(
    dir,
    `version: 1
common:
  placementHostAddress: localhost:50005
  runtimePath: /opt/dapr
apps:
  - appDirPath: a
    schedulerHostAddress: localhost:50006
`,
  );
  const file = join(dir, 'dapr.yaml');
  assert.deepEqual(loadRunFile(dir, { env: {} }).warnings, [
    `${file}: common.placementHostAddress is ignored: Courier has no actors`,
    `${file}: common.runtimePath is ignored: Courier needs no Dapr installation`,
    `${file}: apps[0].schedulerHostAddress is ignored: Courier has no scheduler`,
  ]);
});

test('environment variables in the file are expanded', (t) => {
  const dir = workspace(t);
  const previous = process.env.COURIER_TEST_APP_DIR;
  process.env.COURIER_TEST_APP_DIR = 'b';
  t.after(() => {
    if (previous === undefined) delete process.env.COURIER_TEST_APP_DIR;
    else process.env.COURIER_TEST_APP_DIR = previous;
  });
  write(dir, 'version: 1\napps:\n  - appDirPath: ./${COURIER_TEST_APP_DIR}\n');
  assert.equal(loadRunFile(dir, { env: {} }).apps[0]?.cwd, join(dir, 'b'));
});

test('errors name the file, the key path and the reason on one line', async (t) => {
  const dir = workspace(t);
  const f = join(dir, 'dapr.yaml');
  const app = (extra: string): string => `version: 1\napps:\n  - appDirPath: ./a\n${extra}`;
  const cases: Array<[string, string, string]> = [
    ['bad YAML', 'version: 1\napps: [\n', `${f}:3:1: invalid YAML:`],
    ['duplicate key', 'version: 1\nversion: 1\napps: []\n', `${f}:2:1: invalid YAML: Map keys must be unique`],
    ['not a mapping', '- one\n- two\n', `${f}: must be a mapping with version: 1 and apps, not a list`],
    ['two documents', `${minimal}---\n${minimal}`, `${f}: holds 2 YAML documents; a run file has one`],
    ['empty file', '# nothing\n', `${f}: the file is empty (expected version: 1 and apps)`],
    ['missing version', 'apps:\n  - appDirPath: a\n', `${f}: version: is required (version: 1)`],
    ['wrong version', 'version: 2\napps:\n  - appDirPath: a\n', `${f}: version: must be 1, not 2`],
    ['string version', 'version: "1"\napps:\n  - appDirPath: a\n', `${f}: version: must be 1, not the string "1"`],
    ['missing apps', 'version: 1\n', `${f}: apps: is required`],
    ['empty apps', 'version: 1\napps: []\n', `${f}: apps: must list at least one app`],
    ['apps not a list', 'version: 1\napps:\n  appDirPath: a\n', `${f}: apps: must be a list, not a mapping`],
    ['unknown top-level key', `${minimal}comon:\n  logLevel: debug\n`, `${f}: comon: unknown key (did you mean common?)`],
    ['unknown app key', `version: 1\napps:\n  - appDirPath: a\n  - appDirPath: b\n    appPrt: 3000\n`, `${f}: apps[1].appPrt: unknown key (did you mean appPort?)`],
    ['unknown common key', `version: 1\ncommon:\n  colour: blue\napps:\n  - appDirPath: a\n`, `${f}: common.colour: unknown key`],
    ['app-only key in common', `version: 1\ncommon:\n  appPort: 3000\napps:\n  - appDirPath: a\n`, `${f}: common.appPort: unknown key`],
    ['missing appDirPath', 'version: 1\napps:\n  - appID: x\n', `${f}: apps[0].appDirPath: is required`],
    ['appDirPath missing on disk', 'version: 1\napps:\n  - appDirPath: ./nope\n', `${f}: apps[0].appDirPath: ./nope does not exist (resolved to ${join(dir, 'nope')})`],
    ['appDirPath a file', 'version: 1\napps:\n  - appDirPath: ./dapr.yaml\n', `${f}: apps[0].appDirPath: ./dapr.yaml is not a directory (resolved to ${f})`],
    ['port as string', app('    appPort: "3000"\n'), `${f}: apps[0].appPort: must be a whole number, not the string "3000"`],
    ['port fraction', app('    daprHTTPPort: 3500.5\n'), `${f}: apps[0].daprHTTPPort: must be a whole number, not 3500.5`],
    ['port out of range', app('    metricsPort: 70000\n'), `${f}: apps[0].metricsPort: must be a port number from 0 to 65535`],
    ['empty value', app('    appPort:\n'), `${f}: apps[0].appPort: must be a whole number, not an empty value`],
    ['command a string', app('    command: node app.js\n'), `${f}: apps[0].command: must be a list, not the string "node app.js"`],
    ['command empty', app('    command: []\n'), `${f}: apps[0].command: must name the program to run, e.g. ["node", "app.js"]`],
    ['command item', app('    command: [node, 3]\n'), `${f}: apps[0].command[1]: must be a string, not 3`],
    ['bool as string', app('    enableAppHealthCheck: "yes"\n'), `${f}: apps[0].enableAppHealthCheck: must be true or false, not the string "yes"`],
    ['log level', `version: 1\ncommon:\n  logLevel: loud\napps:\n  - appDirPath: a\n`, `${f}: common.logLevel: must be one of "debug", "info", "warn", "error", "fatal", not the string "loud"`],
    ['log destination', app('    appLogDestination: screen\n'), `${f}: apps[0].appLogDestination: must be one of "file", "console", "fileAndConsole", not the string "screen"`],
    ['size', app('    maxBodySize: lots\n'), `${f}: apps[0].maxBodySize: must be a size such as 4Mi or 16Ki`],
    ['concurrency', app('    appMaxConcurrency: 0\n'), `${f}: apps[0].appMaxConcurrency: must be a positive number, or -1 for unlimited`],
    ['threshold', app('    appHealthThreshold: 0\n'), `${f}: apps[0].appHealthThreshold: must be at least 1`],
    ['env not a map', app('    env: [A=1]\n'), `${f}: apps[0].env: must be a mapping, not a list`],
    ['env value', app('    env:\n      A: [1]\n'), `${f}: apps[0].env.A: must be a string, a number or true/false`],
    ['listen addresses', app('    apiListenAddresses: 5\n'), `${f}: apps[0].apiListenAddresses: must be a comma-separated string or a list of addresses`],
    ['kubernetes key', app('    containerImage: shop:1\n'), `${f}: apps[0].containerImage: is for Kubernetes; Courier runs apps as processes on this machine`],
    ['kubernetes key in common', `version: 1\ncommon:\n  createService: true\napps:\n  - appDirPath: a\n`, `${f}: common.createService: is for Kubernetes; Courier runs apps as processes on this machine`],
    ['pull policy', app('    containerImagePullPolicy: Always\n'), `${f}: apps[0].containerImagePullPolicy: is for Kubernetes; Courier runs apps as processes on this machine`],
    ['unix socket directory', app('    unixDomainSocket: ./nowhere\n'), `${f}: apps[0].unixDomainSocket: ./nowhere does not exist (resolved to ${join(dir, 'a', 'nowhere')})`],
    ['bad app id', app('    appID: my.app\n'), `${f}: apps[0].appID: the app id "my.app" must not contain dots (a dot separates a target's namespace)`],
    ['duplicate app id', 'version: 1\napps:\n  - appDirPath: a\n  - appDirPath: b\n    appID: a\n', `${f}: apps[1].appID: "a" is already the id of apps[0]; app ids must be unique`],
    ['missing config', app('    configFilePath: ./nope.yaml\n'), `${f}: apps[0].configFilePath: ./nope.yaml does not exist (resolved to ${join(dir, 'a', 'nope.yaml')})`],
    ['missing common resources', `version: 1\ncommon:\n  resourcesPaths: [./r]\napps:\n  - appDirPath: a\n`, `${f}: common.resourcesPaths[0]: ./r does not exist (resolved to ${join(dir, 'r')})`],
    ['protocol', app('    appProtocol: http3\n'), `${f}: apps[0] (a): --app-protocol http3 is not supported (supported: http, https, h2c, grpc, grpcs)`],
  ];
  for (const [name, yaml, expected] of cases) {
    await t.test(name, () => {
      const message = failure(dir, yaml);
      assert.ok(message.startsWith(expected), `expected "${expected}"\n     got "${message}"`);
    });
  }
});

test('an app id taken from a directory name must be a valid id', (t) => {
  const dir = workspace(t);
  mkdirSync(join(dir, 'my.app'));
  const message = failure(dir, 'version: 1\napps:\n  - appDirPath: ./my.app\n');
  assert.equal(
    message,
    `${join(dir, 'dapr.yaml')}: apps[0].appDirPath (no appID is given, so the directory name is used): the app id "my.app" must not contain dots (a dot separates a target's namespace)`,
  );
});

test('keyPath and logTimestamp', () => {
  assert.equal(keyPath(['apps', 1, 'appPrt']), 'apps[1].appPrt');
  assert.equal(keyPath(['apps', 0, 'command', 2]), 'apps[0].command[2]');
  assert.equal(keyPath([]), '');
  assert.equal(logTimestamp(new Date(2024, 0, 31, 5, 4, 3)), '20240131050403');
});

test('appProtocol takes every protocol of --app-protocol, in common or per app, in any case', (t) => {
  const dir = workspace(t);
  mkdirSync(join(dir, 'c'));
  mkdirSync(join(dir, 'd'));
  mkdirSync(join(dir, 'e'));
  write(
    dir,
    `version: 1
common:
  appProtocol: h2c
apps:
  - appDirPath: a
  - appDirPath: b
    appProtocol: HTTPS
  - appDirPath: c
    appProtocol: grpcs
  - appDirPath: d
    appProtocol: grpc
  - appDirPath: e
    appProtocol: http
`,
  );
  const runFile = loadRunFile(dir, { env: {} });
  assert.deepEqual(
    runFile.apps.map((a) => [a.appId, a.appProtocol]),
    [
      ['a', 'h2c'],
      ['b', 'https'],
      ['c', 'grpcs'],
      ['d', 'grpc'],
      ['e', 'http'],
    ],
  );
});
