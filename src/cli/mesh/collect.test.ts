import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processStartTime, writeRunRecord, type RunRecord } from '../../runtime/run-registry.js';
import { MESH_PATHS, TRAFFIC_BUCKETS_MS } from '../../observability/mesh/contract.js';
import { discoverSidecars, noSidecarsMessage, parseSidecarAddress, sampleMesh } from './collect.js';
import type { SidecarRef } from './view-types.js';

function record(appId: string, pid: number, metricsPort: number, extra: Partial<RunRecord> = {}): RunRecord {
  return {
    appId,
    namespace: 'default',
    pid,
    startTime: processStartTime(pid),
    httpPort: 3500,
    grpcPort: 50001,
    internalGrpcPort: 47000,
    appPort: null,
    metricsPort,
    metricsEnabled: true,
    listenAddresses: ['127.0.0.1'],
    startedAt: new Date().toISOString(),
    command: [],
    cwd: '/',
    ...extra,
  };
}

describe('discoverSidecars', () => {
  let home: string;
  before(() => {
    home = mkdtempSync(join(tmpdir(), 'courier-mesh-'));
  });
  after(() => rmSync(home, { recursive: true, force: true }));

  test('run records with metrics on, then addresses; one reference per metrics URL', () => {
    const env = { COURIER_HOME: home };
    assert.deepEqual(discoverSidecars(env, []), []);
    assert.match(noSidecarsMessage(env), new RegExp(`no Courier sidecars found: no running sidecar with metrics on in ${join(home, 'run')}`));
    // Records are only trusted for live processes: this test's own pid stands in for a sidecar.
    writeRunRecord(home, record('orders', process.pid, 9101));
    writeRunRecord(home, record('quiet', process.ppid, 9102, { metricsEnabled: false }));
    const refs = discoverSidecars(env, ['127.0.0.1:9101', 'localhost:9200', 'http://10.0.0.7:9090', '[::1]:9300', '10.0.0.7:9090']);
    assert.deepEqual(refs, [
      { appId: 'orders', metricsUrl: 'http://127.0.0.1:9101', source: 'run-record' },
      { appId: '', metricsUrl: 'http://localhost:9200', source: 'address' },
      { appId: '', metricsUrl: 'http://10.0.0.7:9090', source: 'address' },
      { appId: '', metricsUrl: 'http://[::1]:9300', source: 'address' },
    ]);
    assert.match(noSidecarsMessage(env), /1 running with --enable-metrics=false/);
    assert.throws(() => discoverSidecars(env, ['nohost']), /--sidecar "nohost" is not the host:port/);
  });

  test('addresses: host:port, [v6]:port or an http URL of the port itself', () => {
    assert.equal(parseSidecarAddress('127.0.0.1:9090'), 'http://127.0.0.1:9090');
    assert.equal(parseSidecarAddress(' HOST.example:9090 '), 'http://host.example:9090');
    assert.equal(parseSidecarAddress('http://127.0.0.1:9090/'), 'http://127.0.0.1:9090');
    for (const bad of ['127.0.0.1', ':9090', '127.0.0.1:99999', 'https://h:9090', 'h:9090/metrics', 'h:9090?x', 'u@h:9090', '']) {
      assert.equal(parseSidecarAddress(bad), undefined, bad);
    }
  });
});

describe('sampleMesh', () => {
  const seen: IncomingMessage[] = [];
  let handler: (req: IncomingMessage, res: ServerResponse) => void = () => undefined;
  let server: Server;
  let base: string;
  const held: ServerResponse[] = [];

  before(async () => {
    server = createServer((req, res) => {
      seen.push(req);
      handler(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    for (const res of held) res.destroy();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const ref = (): SidecarRef => ({ appId: '', metricsUrl: base, source: 'address' });
  const json = (res: ServerResponse, body: unknown): void => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));

  test('info and traffic of each sidecar, with the API token; a sidecar that cannot be read has its error', async () => {
    seen.length = 0;
    handler = (req, res) => {
      if (req.url === MESH_PATHS.info) json(res, { appId: 'orders', pid: 42, startedAt: '2025-01-01T00:00:00.000Z', version: '0.1.0' });
      else if (req.url === MESH_PATHS.traffic) {
        // Rows with odd or missing numbers are made safe to add up.
        json(res, { appId: 'orders', at: 5, outbound: [{ dstAppId: 'stock', calls: 3, failures: 'x', buckets: [1, 2] }], inbound: [{ calls: 1 }, 'junk'] });
      } else res.writeHead(404).end();
    };
    const gone: SidecarRef = { appId: 'gone', metricsUrl: 'http://127.0.0.1:1', source: 'run-record' };
    const startedAt = Date.now();
    const sample = await sampleMesh([ref(), gone], { token: 's3cret' });
    assert.ok(sample.at >= startedAt && sample.at <= Date.now());
    const [ok, failed] = sample.sidecars;
    assert.equal(ok?.error, undefined);
    assert.equal(ok?.info?.appId, 'orders');
    assert.deepEqual(ok?.traffic, {
      appId: 'orders',
      at: 5,
      outbound: [{ dstAppId: 'stock', calls: 3, failures: 0, buckets: [1, 2], latencySumMs: 0 }],
      inbound: [{ srcAppId: '', srcIdentity: '', verb: '', route: '', calls: 1, failures: 0, buckets: [], latencySumMs: 0 }],
    });
    assert.deepEqual(
      seen.map((r) => r.headers['dapr-api-token']),
      ['s3cret', 's3cret'],
    );
    assert.equal(failed?.info, null);
    assert.equal(failed?.traffic, null);
    assert.match(failed?.error ?? '', /connection refused/);
    assert.equal(TRAFFIC_BUCKETS_MS.length, 19);
  });

  test('a refused token, a missing endpoint and a body that is not JSON each say so', async () => {
    handler = (req, res) => {
      if (req.url === MESH_PATHS.info) res.writeHead(401).end('{"errorCode":"ERR_API_TOKEN"}');
      else res.writeHead(200).end('<html>');
    };
    const [tokenRefused] = (await sampleMesh([ref()], {})).sidecars;
    assert.match(tokenRefused?.error ?? '', /HTTP 401 on \/courier\/v1\/info: the API token was refused \(set DAPR_API_TOKEN/);
    assert.match(tokenRefused?.error ?? '', /\/courier\/v1\/traffic: the answer is not JSON/);
    handler = (_req, res) => void res.writeHead(503).end('too many clients\nsecond line');
    const [busy] = (await sampleMesh([ref()], {})).sidecars;
    assert.equal(busy?.error, 'HTTP 503 on /courier/v1/info: too many clients');
    handler = (_req, res) => void res.writeHead(404).end('not found');
    const [old] = (await sampleMesh([ref()], {})).sidecars;
    // Both requests failed the same way: said once.
    assert.equal(old?.error, 'HTTP 404 on /courier/v1/info: the sidecar does not serve the mesh endpoints (not Courier, or an older version)');
  });

  test('a sidecar that does not answer in time is given up on, and the others are not held up', async () => {
    handler = (_req, res) => void held.push(res);
    const started = Date.now();
    const [slow] = (await sampleMesh([ref()], { timeoutMs: 200 })).sidecars;
    assert.equal(slow?.error, 'no answer within 200 ms');
    assert.ok(Date.now() - started < 5000);
  });
});
