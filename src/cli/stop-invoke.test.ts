import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CourierError } from '../errors/index.js';
import type { RunRecord } from '../runtime/run-registry.js';
import { chooseSidecar, parseInvokeArgs } from './invoke-command.js';
import type { Instance } from './run/sidecar-api.js';
import { appTargets, runFileTargets } from './stop-command.js';

function instance(appId: string, pid: number, extra: { cli?: number; app?: number; template?: string } = {}): Instance {
  const record: RunRecord = {
    appId,
    namespace: 'default',
    pid,
    httpPort: 3500,
    grpcPort: 50001,
    internalGrpcPort: 47000,
    appPort: null,
    metricsPort: 9090,
    listenAddresses: ['127.0.0.1'],
    startedAt: new Date().toISOString(),
    command: [],
    cwd: '/',
  };
  return {
    record,
    metadata: { id: appId, extended: {} },
    cliPid: extra.cli,
    appPid: extra.app,
    appCommand: '',
    runTemplatePath: extra.template ?? '',
    runTemplateName: '',
  };
}

const alive = (): boolean => true;

test('stop --app-id: the CLI of a single app, the sidecar of one app out of several', () => {
  const instances = [
    instance('solo', 100, { cli: 1, app: 101 }),
    instance('front', 200, { cli: 2, app: 201, template: '/w/dapr.yaml' }),
    instance('back', 300, { cli: 2, app: 301, template: '/w/dapr.yaml' }),
    instance('bare', 400),
  ];
  assert.deepEqual(appTargets(instances, ['solo'], alive), {
    targets: [{ appId: 'solo', pid: 1, via: 'cli', waitFor: [100, 101, 1] }],
    unknown: [],
  });
  assert.deepEqual(appTargets(instances, ['front'], alive).targets, [{ appId: 'front', pid: 200, via: 'sidecar', waitFor: [200, 201] }]);
  // Every app of that CLI is being stopped: stop the CLI.
  assert.deepEqual(
    appTargets(instances, ['front', 'back'], alive).targets.map((t) => [t.appId, t.pid, t.via]),
    [
      ['front', 2, 'cli'],
      ['back', 2, 'cli'],
    ],
  );
  // No CLI (a plain `courier sidecar`), or its CLI is gone: stop the sidecar.
  assert.deepEqual(appTargets(instances, ['bare'], alive).targets, [{ appId: 'bare', pid: 400, via: 'sidecar', waitFor: [400] }]);
  assert.deepEqual(appTargets(instances, ['solo'], () => false).targets, [{ appId: 'solo', pid: 100, via: 'sidecar', waitFor: [100, 101] }]);
  assert.deepEqual(appTargets(instances, ['solo', 'ghost'], alive).unknown, ['ghost']);
});

test('stop -f: the CLI of every app started from that file', () => {
  const instances = [
    instance('solo', 100, { cli: 1 }),
    instance('front', 200, { cli: 2, app: 201, template: '/w/dapr.yaml' }),
    instance('back', 300, { cli: 2, template: '/w/dapr.yaml' }),
  ];
  assert.deepEqual(runFileTargets(instances, '/w/dapr.yaml'), [
    { appId: 'front', pid: 2, via: 'cli', waitFor: [200, 201, 2] },
    { appId: 'back', pid: 2, via: 'cli', waitFor: [300, 2] },
  ]);
  assert.deepEqual(runFileTargets(instances, '/other/dapr.yaml'), []);
});

test('invoke: flags to a request', () => {
  assert.deepEqual(parseInvokeArgs(['--app-id', 'nodeapp', '--method', 'neworder', '--data', '{"a":1}']), {
    appId: 'nodeapp',
    method: 'neworder',
    verb: 'POST',
    body: Buffer.from('{"a":1}'),
    headers: { 'content-type': 'application/json' },
  });
  assert.deepEqual(parseInvokeArgs(['-a', 'nodeapp', '-m', '/orders/1?x=y', '-v', 'get', '-H', 'X-Trace: abc', '-H', 'content-type:text/plain']), {
    appId: 'nodeapp',
    method: 'orders/1?x=y',
    verb: 'GET',
    body: undefined,
    headers: { 'x-trace': 'abc', 'content-type': 'text/plain' },
  });
  assert.deepEqual(parseInvokeArgs(['-a', 'x', '-m', 'y', '--data-file', 'body.json'], () => Buffer.from('{}'))?.body, Buffer.from('{}'));
  assert.equal(parseInvokeArgs(['--help']), undefined);
});

test('invoke: refused flags', () => {
  const refused = (argv: string[], message: string): void => {
    assert.throws(() => parseInvokeArgs(argv, () => Buffer.alloc(0)), (err: unknown) => err instanceof CourierError && err.message === message);
  };
  refused(['-m', 'x'], 'courier invoke: --app-id is required (see "courier invoke --help")');
  refused(['-a', 'x'], 'courier invoke: --method is required (see "courier invoke --help")');
  refused(['-a', 'x', '-m', 'y', '-d', '1', '--data-file', 'f'], 'courier invoke: --data and --data-file cannot both be given (see "courier invoke --help")');
  refused(['-a', 'x', '-m', 'y', '-H', 'novalue'], 'courier invoke: --header "novalue" is not of the form name:value (see "courier invoke --help")');
  refused(['-a', 'x', '-m', 'y', '-v', 'GE T'], 'courier invoke: --verb: "GE T" is not an HTTP verb (see "courier invoke --help")');
  refused(['-a', 'x', '-m', 'y', '-k'], 'courier invoke: --kubernetes is not supported: Courier runs apps on this machine only (see "courier invoke --help")');
});

test("invoke: the target's own sidecar, else any", () => {
  const a = instance('a', 1).record;
  const b = instance('b', 2).record;
  assert.equal(chooseSidecar([a, b], 'b'), b);
  assert.equal(chooseSidecar([a, b], 'elsewhere'), a);
  assert.equal(chooseSidecar([], 'b'), undefined);
});
