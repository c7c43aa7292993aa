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
  record: { ...record('nodeapp', 11, 3000), maxBodyBytes: 20 * 1024 * 1024, readBufferBytes: 64 * 1024, metricsEnabled: false },
  metadata: { id: 'nodeapp', extended: { cliPID: '10', appPID: '12', appCommand: 'node app.js', runTemplatePath: '/work/dapr.yaml' } },
  cli: { pid: 10 },
  app: { pid: 12 },
  appCommand: 'node app.js',
  runTemplatePath: '/work/dapr.yaml',
  runTemplateName: 'work',
  appLogPath: '/work/a/.dapr/logs/nodeapp_app_20240131154502.log',
  daprdLogPath: '/work/a/.dapr/logs/nodeapp_daprd_20240131154502.log',
};

/** A record written before sizes were recorded, by a sidecar that does not answer. */
const bare: Instance = {
  record: record('lonely-sidecar', 21, null),
  metadata: undefined,
  cli: undefined,
  app: undefined,
  appCommand: '',
  runTemplatePath: '',
  runTemplateName: '',
  appLogPath: '',
  daprdLogPath: '',
};

const now = new Date(started.getTime() + 5 * 60_000 + 7000);
const rows: ListRow[] = [toRow(withMetadata, now), toRow(bare, now)];

test("rows: Dapr's keys, then Courier's; unknown numbers 0 and strings empty", () => {
  assert.deepEqual(rows[0], {
    appId: 'nodeapp',
    httpPort: 3511,
    grpcPort: 50001,
    appPort: 3000,
    metricsEnabled: false,
    command: 'node app.js',
    age: '5m',
    created: '2024-01-31 15:45.02',
    daprdPid: 11,
    cliPid: 10,
    appPid: 12,
    maxRequestBodySize: 20,
    httpReadBufferSize: 64,
    runTemplatePath: '/work/dapr.yaml',
    appLogPath: '/work/a/.dapr/logs/nodeapp_app_20240131154502.log',
    daprdLogPath: '/work/a/.dapr/logs/nodeapp_daprd_20240131154502.log',
    runTemplateName: 'work',
    courierPid: 11,
    namespace: 'default',
    internalGrpcPort: 47011,
  });
  assert.deepEqual(rows[1], {
    appId: 'lonely-sidecar',
    httpPort: 3521,
    grpcPort: 50001,
    appPort: 0,
    metricsEnabled: true,
    command: '',
    age: '5m',
    created: '2024-01-31 15:45.02',
    daprdPid: 21,
    cliPid: 0,
    appPid: 0,
    maxRequestBodySize: 4,
    httpReadBufferSize: 16,
    runTemplatePath: '',
    appLogPath: '',
    daprdLogPath: '',
    runTemplateName: '',
    courierPid: 21,
    namespace: 'default',
    internalGrpcPort: 47021,
  });
});

test('sizes in Dapr units are rounded up', () => {
  const odd: Instance = { ...bare, record: { ...bare.record, maxBodyBytes: 512 * 1024, readBufferBytes: 1536 } };
  assert.deepEqual([toRow(odd, now).maxRequestBodySize, toRow(odd, now).httpReadBufferSize], [1, 2]);
});

test("table: dapr list's columns in its order", () => {
  const app = '/work/a/.dapr/logs/nodeapp_app_20240131154502.log';
  const daprd = '/work/a/.dapr/logs/nodeapp_daprd_20240131154502.log';
  assert.equal(
    formatTable(rows),
    [
      `APP ID          HTTP PORT  GRPC PORT  APP PORT  COMMAND      AGE  CREATED              DAPRD PID  CLI PID  APP PID  RUN_TEMPLATE_PATH  APP_LOG_PATH${' '.repeat(app.length - 12)}  DAPRD_LOG_PATH`,
      `nodeapp         3511       50001      3000      node app.js  5m   2024-01-31 15:45.02  11         10       12       /work/dapr.yaml    ${app}  ${daprd}`,
      'lonely-sidecar  3521       50001      0                      5m   2024-01-31 15:45.02  21         0        0',
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
    'metricsEnabled',
    'command',
    'age',
    'created',
    'daprdPid',
    'cliPid',
    'appPid',
    'maxRequestBodySize',
    'httpReadBufferSize',
    'runTemplatePath',
    'appLogPath',
    'daprdLogPath',
    'runTemplateName',
    'courierPid',
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
