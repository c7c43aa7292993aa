import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import type { RunRecord } from '../runtime/run-registry.js';
import { formatAge, formatCreated, formatList, formatTable, toRow, type ListRow } from './list-command.js';
import type { Instance } from './run/sidecar-api.js';

const started = new Date(2024, 0, 31, 15, 45, 2);

function record(appId: string, pid: number, appPort: number | null): RunRecord {
  return {
    appId,
    namespace: 'default',
    pid,
    httpPort: 3500 + pid,
    grpcPort: 50001,
    internalGrpcPort: 47000 + pid,
    appPort,
    metricsPort: 9090,
    listenAddresses: ['127.0.0.1'],
    startedAt: started.toISOString(),
    command: ['dist/cli/main.js', 'sidecar'],
    cwd: '/work',
  };
}

const withMetadata: Instance = {
  record: record('nodeapp', 11, 3000),
  metadata: { id: 'nodeapp', extended: { cliPID: '10', appPID: '12', appCommand: 'node app.js', runTemplatePath: '/work/dapr.yaml' } },
  cliPid: 10,
  appPid: 12,
  appCommand: 'node app.js',
  runTemplatePath: '/work/dapr.yaml',
  runTemplateName: 'work',
};

const bare: Instance = {
  record: record('lonely-sidecar', 21, null),
  metadata: undefined,
  cliPid: undefined,
  appPid: undefined,
  appCommand: '',
  runTemplatePath: '',
  runTemplateName: '',
};

const now = new Date(started.getTime() + 5 * 60_000 + 7000);
const rows: ListRow[] = [toRow(withMetadata, now), toRow(bare, now)];

test('rows: record fields, metadata fields, missing values empty', () => {
  assert.deepEqual(rows[0], {
    appId: 'nodeapp',
    httpPort: 3511,
    grpcPort: 50001,
    appPort: 3000,
    command: 'node app.js',
    age: '5m',
    created: '2024-01-31 15:45.02',
    courierPid: 11,
    cliPid: 10,
    appPid: 12,
    runTemplatePath: '/work/dapr.yaml',
    namespace: 'default',
    internalGrpcPort: 47011,
  });
  assert.deepEqual(rows[1], {
    appId: 'lonely-sidecar',
    httpPort: 3521,
    grpcPort: 50001,
    appPort: null,
    command: '',
    age: '5m',
    created: '2024-01-31 15:45.02',
    courierPid: 21,
    cliPid: null,
    appPid: null,
    runTemplatePath: '',
    namespace: 'default',
    internalGrpcPort: 47021,
  });
});

test('table: aligned columns in dapr list order, empty cells for missing values', () => {
  assert.equal(
    formatTable(rows),
    [
      'APP ID          HTTP PORT  GRPC PORT  APP PORT  COMMAND      AGE  CREATED              COURIER PID  CLI PID  APP PID',
      'nodeapp         3511       50001      3000      node app.js  5m   2024-01-31 15:45.02  11           10       12',
      'lonely-sidecar  3521       50001                             5m   2024-01-31 15:45.02  21',
      '',
    ].join('\n'),
  );
  assert.equal(formatList(rows, 'table'), formatTable(rows));
});

test('table: nothing running', () => {
  assert.equal(formatTable([]), 'No Courier instances found.\n');
});

test('json: an array of objects with camelCase keys', () => {
  const parsed = JSON.parse(formatList(rows, 'json')) as Array<Record<string, unknown>>;
  assert.equal(parsed.length, 2);
  assert.deepEqual(Object.keys(parsed[0] ?? {}), [
    'appId',
    'httpPort',
    'grpcPort',
    'appPort',
    'command',
    'age',
    'created',
    'courierPid',
    'cliPid',
    'appPid',
    'runTemplatePath',
    'namespace',
    'internalGrpcPort',
  ]);
  assert.deepEqual(parsed, rows);
  assert.equal(formatList([], 'json'), '[]\n');
});

test('yaml: the same objects', () => {
  assert.deepEqual(parse(formatList(rows, 'yaml')), rows);
  assert.deepEqual(parse(formatList([], 'yaml')), []);
});

test('ages and creation times', () => {
  assert.equal(formatAge(0), '0s');
  assert.equal(formatAge(59_999), '59s');
  assert.equal(formatAge(60_000), '1m');
  assert.equal(formatAge(3_599_000), '59m');
  assert.equal(formatAge(3_600_000), '1h');
  assert.equal(formatAge(49 * 3_600_000), '2d');
  assert.equal(formatAge(-5000), '0s');
  assert.equal(formatCreated(new Date(2024, 11, 1, 9, 5, 0)), '2024-12-01 09:05.00');
});
