import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CourierError } from '../errors/index.js';
import type { ProcessRef, RunRecord } from '../runtime/run-registry.js';
import { chooseSidecar, parseInvokeArgs } from './invoke-command.js';
import { liveProcess, type Instance } from './run/sidecar-api.js';
import { appTargets, runFileTargets } from './stop-command.js';

/** A sidecar with pid `pid`; `cli` and `app` are processes that still run (list drops those that are gone). */
function instance(appId: string, pid: number, extra: { cli?: number; app?: number; template?: string } = {}): Instance {
  const record: RunRecord = {
    appId,
    namespace: 'default',
    pid,
    startTime: `${pid}0@boot`,
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
    cli: extra.cli === undefined ? undefined : { pid: extra.cli, startTime: `${extra.cli}0@boot` },
    app: extra.app === undefined ? undefined : { pid: extra.app, startTime: `${extra.app}0@boot` },
    appCommand: '',
    runTemplatePath: extra.template ?? '',
    runTemplateName: '',
    appLogPath: '',
    daprdLogPath: '',
  };
}

const ref = (pid: number): ProcessRef => ({ pid, startTime: `${pid}0@boot` });

test('stop --app-id: the CLI of a single app, the sidecar of one app out of several', () => {
  const instances = [
    instance('solo', 100, { cli: 1, app: 101 }),
    instance('front', 200, { cli: 2, app: 201, template: '/w/dapr.yaml' }),
    instance('back', 300, { cli: 2, app: 301, template: '/w/dapr.yaml' }),
    instance('bare', 400),
    instance('orphan', 500, { app: 501 }),
  ];
  assert.deepEqual(appTargets(instances, ['solo']), {
    targets: [{ appId: 'solo', via: 'cli', signal: ref(1), app: undefined, waitFor: [ref(100), ref(101), ref(1)] }],
    unknown: [],
  });
  // One app of several: its sidecar; the CLI, which runs, then stops the app.
  assert.deepEqual(appTargets(instances, ['front']).targets, [{ appId: 'front', via: 'sidecar', signal: ref(200), app: undefined, waitFor: [ref(200), ref(201)] }]);
  // Every app of that CLI is being stopped: stop the CLI.
  assert.deepEqual(
    appTargets(instances, ['front', 'back']).targets.map((t) => [t.appId, t.signal.pid, t.via]),
    [
      ['front', 2, 'cli'],
      ['back', 2, 'cli'],
    ],
  );
  // No CLI (a plain `courier sidecar`): stop the sidecar.
  assert.deepEqual(appTargets(instances, ['bare']).targets, [{ appId: 'bare', via: 'sidecar', signal: ref(400), app: undefined, waitFor: [ref(400)] }]);
  // Its CLI is gone: the app is stopped directly, then the sidecar.
  assert.deepEqual(appTargets(instances, ['orphan']).targets, [{ appId: 'orphan', via: 'sidecar', signal: ref(500), app: ref(501), waitFor: [ref(500), ref(501)] }]);
  assert.deepEqual(appTargets(instances, ['solo', 'ghost']).unknown, ['ghost']);
});

test('stop -f: the CLI of every app started from that file, or each app and sidecar when the CLI is gone', () => {
  const instances = [
    instance('solo', 100, { cli: 1 }),
    instance('front', 200, { cli: 2, app: 201, template: '/w/dapr.yaml' }),
    instance('back', 300, { cli: 2, template: '/w/dapr.yaml' }),
    instance('left', 400, { app: 401, template: '/x/dapr.yaml' }),
  ];
  assert.deepEqual(runFileTargets(instances, '/w/dapr.yaml'), [
    { appId: 'front', via: 'cli', signal: ref(2), app: undefined, waitFor: [ref(200), ref(201), ref(2)] },
    { appId: 'back', via: 'cli', signal: ref(2), app: undefined, waitFor: [ref(300), ref(2)] },
  ]);
  assert.deepEqual(runFileTargets(instances, '/x/dapr.yaml'), [{ appId: 'left', via: 'sidecar', signal: ref(400), app: ref(401), waitFor: [ref(400), ref(401)] }]);
  assert.deepEqual(runFileTargets(instances, '/other/dapr.yaml'), []);
});

test('a metadata pid counts only while its process runs and, with a start time, is the same process', () => {
  const running = new Map([[42, '4200@boot']]);
  const same = (r: ProcessRef): boolean => running.has(r.pid) && (r.startTime === undefined || running.get(r.pid) === r.startTime);
  assert.deepEqual(liveProcess('42', '4200@boot', same), { pid: 42, startTime: '4200@boot' });
  assert.equal(liveProcess('42', '9999@boot', same), undefined, 'the pid now belongs to another process');
  assert.deepEqual(liveProcess('42', undefined, same), { pid: 42, startTime: undefined });
  assert.equal(liveProcess('43', undefined, same), undefined);
  assert.equal(liveProcess('', undefined, same), undefined);
  assert.equal(liveProcess('0', undefined, same), undefined);
  assert.equal(liveProcess('-1', undefined, same), undefined);
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
