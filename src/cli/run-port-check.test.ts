import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CourierError } from '../errors/index.js';
import type { AppLaunch } from './run/launch.js';
import { checkPortsFree, portClaims, portInUseMessage, portOrigin, sidecarPortInUse } from './run/port-check.js';
import { parseRunArgs } from './run/run-args.js';

function fromFlags(argv: string[]): AppLaunch {
  const request = parseRunArgs(argv, { cwd: '/work', env: {}, randomId: () => 'brisk-otter' });
  assert.equal(request.kind, 'app');
  return request.launch;
}

test('only ports the user chose are claims, each with the flag that chose it and the addresses it is bound on', () => {
  assert.deepEqual(portClaims(fromFlags(['-a', 'x', '-p', '3000'])), [], 'free ports are picked at start; the app port is the app\'s');
  assert.deepEqual(portClaims(fromFlags(['-a', 'x', '-H', '3500', '-G', '50001', '-I', '50002', '--metrics-port', '9090'])), [
    { port: 3500, origin: '--dapr-http-port', hosts: ['127.0.0.1', '::1'] },
    { port: 50001, origin: '--dapr-grpc-port', hosts: ['127.0.0.1', '::1'] },
    { port: 50002, origin: '--dapr-internal-grpc-port', hosts: ['127.0.0.1'] },
    { port: 9090, origin: '--metrics-port', hosts: ['127.0.0.1'] },
  ]);
  assert.deepEqual(portClaims(fromFlags(['-a', 'x', '-H', '3500', '--dapr-listen-addresses', '0.0.0.0,[::]'])), [
    { port: 3500, origin: '--dapr-http-port', hosts: ['0.0.0.0', '::'] },
  ]);
});

test('a run file names its key and app', () => {
  const launch: AppLaunch = { ...fromFlags(['-a', 'backend', '-G', '50007']), runTemplate: { path: '/work/dapr.yaml', name: 'work' } };
  assert.equal(portOrigin(launch, '--dapr-grpc-port'), 'daprGRPCPort of app "backend" in /work/dapr.yaml');
  assert.equal(portOrigin(launch, '--dapr-http-port'), 'daprHTTPPort of app "backend" in /work/dapr.yaml');
  assert.equal(portOrigin(launch, '--dapr-internal-grpc-port'), 'daprInternalGRPCPort of app "backend" in /work/dapr.yaml');
  assert.equal(portOrigin(launch, '--metrics-port'), 'metricsPort of app "backend" in /work/dapr.yaml');
  assert.equal(portOrigin(fromFlags(['-a', 'x']), '--metrics-port'), '--metrics-port');
  assert.equal(portInUseMessage(3500, '--dapr-http-port'), 'courier run: port 3500 (--dapr-http-port) is already in use');
});

test("the sidecar's own line for a port in use is recognised in its output", () => {
  assert.deepEqual(sidecarPortInUse(['time=… level=info msg="starting"', 'courier sidecar: port 3500 (--dapr-http-port) is already in use']), {
    port: 3500,
    flag: '--dapr-http-port',
  });
  assert.equal(sidecarPortInUse(['courier sidecar: --app-port: 70000 is not a port number']), undefined);
});

test('a port chosen twice is refused before anything is probed', async () => {
  const a: AppLaunch = { ...fromFlags(['-a', 'a', '-H', '41001']), runTemplate: { path: '/w/dapr.yaml', name: 'w' } };
  const b: AppLaunch = { ...fromFlags(['-a', 'b', '--metrics-port', '41001']), runTemplate: { path: '/w/dapr.yaml', name: 'w' } };
  await assert.rejects(checkPortsFree([a, b]), (err: unknown) => {
    assert.ok(err instanceof CourierError);
    assert.equal(err.code, 'ERR_INVALID_FLAG');
    assert.equal(err.message, 'courier run: port 41001 is chosen twice: daprHTTPPort of app "a" in /w/dapr.yaml and metricsPort of app "b" in /w/dapr.yaml');
    return true;
  });
});
