// `--config` and `--resources-path`: Dapr's YAML selects name resolution; mistakes are one clear line.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { courierBin, TestEnv } from '../framework/env.js';
import { startSidecar } from '../framework/sidecar-process.js';
import { startApp } from '../framework/test-app.js';
import { send } from '../framework/http-client.js';

function testEnv(t: TestContext): TestEnv {
  const env = new TestEnv();
  t.after(() => env.close());
  return env;
}

function sidecarFails(env: TestEnv, args: string[]): { status: number | null; output: string } {
  const r = spawnSync(process.execPath, [courierBin, 'sidecar', '--app-id', 'x', '--dapr-http-port', '0', ...args], {
    env: { ...process.env, COURIER_HOME: env.home },
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

test('a Configuration choosing the SQLite resolver and its database file is honoured by every sidecar using it', async (t) => {
  const env = testEnv(t);
  const db = join(env.home, 'shared', 'hosts.db');
  mkdirSync(join(env.home, 'shared'));
  const config = join(env.home, 'config.yaml');
  writeFileSync(
    config,
    `apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: appconfig
spec:
  nameResolution:
    component: sqlite
    version: v1
    configuration:
      connectionString: "\${SHARED_DB}"
      updateInterval: 3s
  secrets:
    scopes: []
`,
  );
  const app = await startApp(env, (a) => a.route('/hi', (_req, res) => res.end('hi')));
  const common = { args: ['--config', config], env: { SHARED_DB: db } };
  const a = await startSidecar(env, { appId: 'a', ...common });
  await startSidecar(env, { appId: 'b', appPort: app.port, waitForApp: true, ...common });
  assert.equal(existsSync(db), true, 'the configured database was used');
  assert.equal((await send(a.httpPort, { path: '/v1.0/invoke/b/method/hi' })).text, 'hi');
  assert.match(a.output, /spec\.secrets in the configuration is not applied/);
});

test('configuration mistakes stop the sidecar with one line naming the file, key and reason', (t) => {
  const env = testEnv(t);
  const write = (name: string, text: string): string => {
    const path = join(env.home, name);
    writeFileSync(path, text);
    return path;
  };
  const cases: Array<[string[], RegExp]> = [
    [['--config', write('bad-yaml.yaml', 'kind: Configuration\nspec: [unclosed\n')], /bad-yaml\.yaml:\d+:\d+: invalid YAML/],
    [['--config', write('unknown-key.yaml', 'kind: Configuration\nspec:\n  nameResolutoin: {}\n')], /unknown-key\.yaml: spec: unknown key "nameResolutoin"/],
    [['--config', write('wrong-kind.yaml', 'kind: Component\n')], /wrong-kind\.yaml: kind must be "Configuration"/],
    [['--config', write('no-resolver.yaml', 'kind: Configuration\nspec:\n  nameResolution:\n    component: consul\n')], /unknown name resolution component "consul" \(available: kubernetes, mdns, sqlite\)/],
    [['--config', write('bad-interval.yaml', 'kind: Configuration\nspec:\n  nameResolution:\n    component: sqlite\n    configuration:\n      updateInterval: 1500ms\n')], /updateInterval/],
    [['--config', join(env.home, 'missing.yaml')], /missing\.yaml: cannot be read/],
    [['--config', write('bad-otel.yaml', 'kind: Configuration\nspec:\n  tracing:\n    otel:\n      endpointAddress: localhost:4317\n      protocol: carrier-pigeon\n')], /bad-otel\.yaml: spec\.tracing.*protocol.*must be "http" or "grpc"/],
    [['--config', write('bad-otel-header.yaml', 'kind: Configuration\nspec:\n  tracing:\n    otel:\n      endpointAddress: localhost:4318\n      protocol: http\n      headers: ["novalue"]\n')], /OTLP header "novalue" is not written key=value/],
    [['--resources-path', join(env.home, 'no-such-dir')], /--resources-path .*no-such-dir/],
    [['--app-port', 'abc'], /--app-port: "abc" is not a whole number/],
    [['--max-body-size', 'lots'], /--max-body-size: "lots" is not a size/],
    [['--no-such-flag'], /unknown flag --no-such-flag/],
    [['--app-protocol', 'websocket'], /--app-protocol websocket is not supported/],
  ];
  for (const [args, pattern] of cases) {
    const { status, output } = sidecarFails(env, args);
    assert.equal(status, 1, `${args.join(' ')}\n${output}`);
    assert.match(output, pattern, args.join(' '));
    assert.doesNotMatch(output, /\n\s+at /, 'no stack trace');
  }
  const resources = join(env.home, 'resources');
  mkdirSync(resources);
  writeFileSync(join(resources, 'broken.yaml'), 'apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {}\n');
  const { status, output } = sidecarFails(env, ['--resources-path', resources]);
  assert.equal(status, 1);
  assert.match(output, /broken\.yaml: metadata\.name is required/);
});
