import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CourierError } from '../errors/index.js';
import { randomAppId } from './run/app-names.js';
import { appEnvironment, sidecarArgs, type AppLaunch } from './run/launch.js';
import { parseRunArgs, runUsage, type RunRequest } from './run/run-args.js';

const cwd = '/work/shop';
const context = { cwd, env: {}, randomId: () => 'brisk-otter' };

function app(argv: string[]): { launch: AppLaunch; warnings: readonly string[] } {
  const request = parseRunArgs(argv, context);
  assert.equal(request.kind, 'app');
  return request;
}

function refused(argv: string[]): string {
  try {
    parseRunArgs(argv, context);
  } catch (err) {
    assert.ok(err instanceof CourierError, String(err));
    assert.equal(err.code, 'ERR_INVALID_FLAG');
    return err.message;
  }
  assert.fail(`expected ${argv.join(' ')} to be refused`);
}

test('the app command is everything from the first positional argument on', () => {
  const { launch } = app(['-a', 'nodeapp', '-p', '3000', 'node', 'app.js', '--app-flag', '-p', '9']);
  assert.equal(launch.appId, 'nodeapp');
  assert.equal(launch.appPort, 3000);
  assert.deepEqual(launch.command, ['node', 'app.js', '--app-flag', '-p', '9']);
});

test('-- ends the flags, and the app command may then start with a dash', () => {
  assert.deepEqual(app(['--app-id', 'nodeapp', '--app-port', '3000', '--', 'node', 'app.js']).launch.command, ['node', 'app.js']);
  assert.deepEqual(app(['--app-id=x', '--', '-weird', 'arg']).launch.command, ['-weird', 'arg']);
});

test('defaults: a random id, http, no ports (chosen at start), console output, no app command', () => {
  const { launch, warnings } = app([]);
  assert.deepEqual(launch, {
    appId: 'brisk-otter',
    appPort: undefined,
    appProtocol: 'http',
    appChannelAddress: undefined,
    httpPort: undefined,
    grpcPort: undefined,
    internalGrpcPort: undefined,
    metricsPort: undefined,
    sidecarFlags: [],
    command: [],
    cwd,
    env: {},
    appLogDestination: 'console',
    sidecarLogDestination: 'console',
    logDirectory: undefined,
    runTemplate: undefined,
  });
  assert.deepEqual(warnings, []);
});

test('random app ids are lower-case adjective-noun names', () => {
  for (let i = 0; i < 50; i++) assert.match(randomAppId(), /^[a-z]+-[a-z]+$/);
  assert.equal(randomAppId(() => 0), 'amber-badger');
});

test('short and long flags map to the sidecar flags', (t: TestContext) => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'courier-runargs-')));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'components'));
  mkdirSync(join(dir, 'more'));
  writeFileSync(join(dir, 'config.yaml'), 'kind: Configuration\n');
  const request = parseRunArgs(
    [
      '-a', 'shop', '-p', '3000', '-P', 'HTTP', '-H', '3500', '-G', '50001', '-I', '50002', '-M', '9091',
      '-c', 'config.yaml', '-d', 'components', '--resources-path', join(dir, 'more'),
      '--app-max-concurrency', '8', '--app-channel-address', '10.0.0.5', '--log-level', 'debug',
      '--max-body-size', '8Mi', '--read-buffer-size', '64Ki', '--enable-app-health-check',
      '--app-health-check-path', '/ready', '--app-health-probe-interval', '3', '--app-health-probe-timeout', '250',
      '--app-health-threshold', '2', '--dapr-listen-addresses', '127.0.0.1', 'node', 'app.js',
    ],
    { cwd: dir, env: {} },
  );
  assert.equal(request.kind, 'app');
  const { launch } = request;
  assert.equal(launch.appProtocol, 'http');
  assert.equal(launch.appChannelAddress, '10.0.0.5');
  assert.deepEqual(sidecarArgs(launch, { httpPort: 3500, grpcPort: 50001, metricsPort: 9091 }), [
    '--app-id', 'shop',
    '--app-port', '3000',
    '--app-protocol', 'http',
    '--app-channel-address', '10.0.0.5',
    '--dapr-http-port', '3500',
    '--dapr-grpc-port', '50001',
    '--metrics-port', '9091',
    '--dapr-internal-grpc-port', '50002',
    '--config', join(dir, 'config.yaml'),
    '--resources-path', join(dir, 'components'),
    '--resources-path', join(dir, 'more'),
    '--app-max-concurrency', '8',
    '--log-level', 'debug',
    '--max-body-size', '8Mi',
    '--read-buffer-size', '64Ki',
    '--app-health-check-path', '/ready',
    '--app-health-probe-interval', '3',
    '--app-health-probe-timeout', '250',
    '--app-health-threshold', '2',
    '--dapr-listen-addresses', '127.0.0.1',
    '--enable-app-health-check',
  ]);
  // --components-path is the old name of --resources-path.
  const old = parseRunArgs(['--components-path', 'components'], { cwd: dir, env: {} }) as Extract<RunRequest, { kind: 'app' }>;
  assert.deepEqual(old.launch.sidecarFlags, ['--resources-path', join(dir, 'components')]);
});

test("the app's environment: Dapr's variables over the inherited ones", () => {
  const { launch } = app(['-a', 'shop', '-p', '3000', '--app-channel-address', '10.0.0.5', 'node', 'app.js']);
  const env = appEnvironment(launch, { httpPort: 3500, grpcPort: 50001, metricsPort: 9090 }, { PATH: '/bin', APP_ID: 'old', DAPR_HTTP_PORT: '1' });
  assert.deepEqual(env, {
    PATH: '/bin',
    APP_ID: 'shop',
    APP_PORT: '3000',
    APP_PROTOCOL: 'http',
    APP_CHANNEL_ADDRESS: '10.0.0.5',
    DAPR_HTTP_PORT: '3500',
    DAPR_GRPC_PORT: '50001',
    DAPR_METRICS_PORT: '9090',
  });
  const plain = appEnvironment(app(['-a', 'shop', 'node', 'app.js']).launch, { httpPort: 1, grpcPort: 2, metricsPort: 3 }, { APP_PORT: '9', APP_CHANNEL_ADDRESS: 'x' });
  assert.equal(plain.APP_PORT, undefined);
  assert.equal(plain.APP_CHANNEL_ADDRESS, undefined);
  const loopback = appEnvironment(app(['-a', 'shop', '--app-channel-address', '127.0.0.1']).launch, { httpPort: 1, grpcPort: 2, metricsPort: 3 }, {});
  assert.equal(loopback.APP_CHANNEL_ADDRESS, undefined);
});

test('port 0 means "pick one"', () => {
  const { launch } = app(['-p', '0', '-H', '0']);
  assert.equal(launch.appPort, undefined);
  assert.equal(launch.httpPort, undefined);
});

test('flags for features Courier lacks are accepted with a warning and not passed on', () => {
  const { launch, warnings } = app([
    '--placement-host-address', 'localhost:50005',
    '--scheduler-host-address', 'localhost:50006',
    'node', 'app.js',
  ]);
  assert.deepEqual(launch.sidecarFlags, []);
  assert.deepEqual(launch.command, ['node', 'app.js']);
  // In the order of the flag table.
  assert.deepEqual(warnings, [
    '--placement-host-address is ignored: Courier has no actors',
    '--scheduler-host-address is ignored: Courier has no scheduler',
  ]);
});

test('--kubernetes is refused', () => {
  assert.equal(
    refused(['-k', 'node', 'app.js']),
    'courier run: --kubernetes is not supported: Courier runs apps on this machine only; there is no Kubernetes mode (see "courier run --help")',
  );
});

test('--unix-domain-socket, --enable-api-logging and --enable-profiling are passed to the sidecar', () => {
  const dir = mkdtempSync(join(tmpdir(), 'courier-uds-'));
  try {
    const { launch } = app(['-u', dir, '--enable-api-logging', '--enable-profiling', '--profile-port', '7788', 'node', 'app.js']);
    assert.deepEqual(launch.sidecarFlags, ['--unix-domain-socket', dir, '--enable-api-logging=true', '--enable-profiling', '--profile-port', '7788']);
    assert.match(refused(['-u', join(dir, 'missing')]), /^courier run: --unix-domain-socket .*missing: /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad values are refused before anything starts, in terms of courier run', () => {
  assert.equal(refused(['--app-port', 'abc']), 'courier run: flag --app-port: "abc" is not a whole number (see "courier run --help")');
  assert.equal(refused(['--app-port', '70000']), 'courier run: --app-port: 70000 is not a port number (see "courier run --help")');
  assert.equal(refused(['--app-id', 'a.b']), `courier run: --app-id: the app id "a.b" must not contain dots (a dot separates a target's namespace) (see "courier run --help")`);
  assert.equal(refused(['--bogus']), 'courier run: unknown flag --bogus (see "courier run --help")');
  assert.equal(refused(['--app-id']), 'courier run: flag --app-id needs a value (see "courier run --help")');
  assert.equal(
    refused(['-P', 'http3']),
    'courier run: --app-protocol http3 is not supported (supported: http, https, h2c, grpc, grpcs) (see "courier run --help")',
  );
  assert.match(refused(['--log-level', 'loud']), /^courier run: --log-level: "loud" is not one of debug, info, warn, error, fatal \(see "courier run --help"\)$/);
  assert.match(refused(['--max-body-size', 'big']), /^courier run: --max-body-size: "big" is not a size/);
  assert.equal(refused(['--config', 'nope.yaml']), 'courier run: --config nope.yaml: does not exist (see "courier run --help")');
  assert.equal(refused(['-d', 'nope']), 'courier run: --resources-path nope: does not exist (see "courier run --help")');
});

test('-f takes a run file, alone', () => {
  assert.deepEqual(parseRunArgs(['-f', 'apps'], context), { kind: 'file', path: '/work/shop/apps', warnings: [] });
  assert.deepEqual(parseRunArgs(['--run-file=/x/dapr.yaml'], context), { kind: 'file', path: '/x/dapr.yaml', warnings: [] });
  assert.equal(
    refused(['-f', '.', '--app-id', 'x']),
    'courier run: --app-id cannot be combined with --run-file: set it in the run file instead (see "courier run --help")',
  );
  assert.equal(
    refused(['-f', '.', 'node', 'app.js']),
    `courier run: an app command cannot be combined with --run-file: give each app's command in the run file (see "courier run --help")`,
  );
});

test('--help', () => {
  assert.deepEqual(parseRunArgs(['--help'], context), { kind: 'help' });
  assert.deepEqual(parseRunArgs(['-h'], context), { kind: 'help' });
  assert.match(runUsage, /-a, --app-id <id>/);
  assert.match(runUsage, /-f, --run-file <dir\|file>/);
  assert.doesNotMatch(runUsage, /--kubernetes/);
  assert.match(runUsage, /-u, --unix-domain-socket <dir>/);
});

test('--app-ssl (deprecated) turns http into https and grpc into grpcs, for the sidecar and APP_PROTOCOL, with a warning', () => {
  const deprecation = '--app-ssl is deprecated: use --app-protocol https or grpcs instead';
  const ports = { httpPort: 1, grpcPort: 2, metricsPort: 3 };
  const cases: Array<[string[], string]> = [
    [['--app-ssl'], 'https'],
    [['-P', 'grpc', '--app-ssl'], 'grpcs'],
    [['--app-ssl', '-P', 'h2c'], 'h2c'],
    [['-P', 'https', '--app-ssl'], 'https'],
    [['-P', 'grpc', '--app-ssl=false'], 'grpc'],
  ];
  for (const [flags, protocol] of cases) {
    const { launch, warnings } = app(['-a', 'shop', '-p', '3000', ...flags, 'node', 'app.js']);
    assert.equal(launch.appProtocol, protocol, flags.join(' '));
    assert.deepEqual(warnings, [deprecation], flags.join(' '));
    assert.equal(appEnvironment(launch, ports, {}).APP_PROTOCOL, protocol);
    const args = sidecarArgs(launch, ports);
    assert.equal(args[args.indexOf('--app-protocol') + 1], protocol);
    assert.ok(!args.includes('--app-ssl'));
  }
  for (const protocol of ['http', 'https', 'h2c', 'grpc', 'grpcs']) assert.equal(app(['-P', protocol.toUpperCase()]).launch.appProtocol, protocol);
});

test('the load-balancing, ejection and retry-budget flags are passed to the sidecar as given', () => {
  const { launch } = app(['--load-balancing', 'round-robin', '--outlier-ejection', '0', '--retry-budget', 'off', '--retry-budget-min', '3']);
  assert.deepEqual(launch.sidecarFlags, ['--load-balancing', 'round-robin', '--outlier-ejection', '0', '--retry-budget', 'off', '--retry-budget-min', '3']);
  assert.match(runUsage, /--load-balancing <policy>/);
});
