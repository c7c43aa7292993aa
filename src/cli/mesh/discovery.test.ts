import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MESH_PATHS } from '../../observability/mesh/contract.js';
import type { NameResolver, ResolvedAddress } from '../../nameresolution/index.js';
import { parseFlags } from '../flags.js';
import { discoverMesh, MeshNames, sampleMesh, namedSidecars, noSidecarsMessage, remoteMetricsUrl, type AppLookup, type ResolverMaker } from './collect.js';
import { describeRef, parseMeshFlags } from './command-options.js';
import { statFlags } from './stat-command.js';
import type { SidecarRef } from './view-types.js';

describe('sidecars found by name resolution: where their metrics are read', () => {
  test('the host of the internal address, at the remote metrics port: IPv4, IPv6 bracketed, host names', () => {
    assert.equal(remoteMetricsUrl('10.0.0.7:50002', 9090), 'http://10.0.0.7:9090');
    assert.equal(remoteMetricsUrl('127.0.0.1:41234', 9191), 'http://127.0.0.1:9191');
    assert.equal(remoteMetricsUrl('[::1]:50002', 9090), 'http://[::1]:9090');
    assert.equal(remoteMetricsUrl('[2001:DB8:0:0::7]:50002', 9090), 'http://[2001:db8::7]:9090');
    assert.equal(remoteMetricsUrl('orders-dapr.default.svc.cluster.local:50002', 9090), 'http://orders-dapr.default.svc.cluster.local:9090');
    assert.equal(remoteMetricsUrl('Host-A.Example:50002', 9090), 'http://host-a.example:9090');
    // Without a port: the host as it is (a bare IPv6 literal too).
    assert.equal(remoteMetricsUrl('host-a', 9090), 'http://host-a:9090');
    assert.equal(remoteMetricsUrl('2001:db8::7', 9090), 'http://[2001:db8::7]:9090');
    // Nothing HTTP can reach: an IPv6 zone, no host at all.
    for (const bad of ['[fe80::1%eth0]:50002', '', ':50002', '[]:50002']) assert.equal(remoteMetricsUrl(bad, 9090), undefined, bad);
  });

  test("an instance that is a known sidecar's own address is not added again, whatever its spelling", () => {
    const known: SidecarRef[] = [
      { appId: 'a', metricsUrl: 'http://127.0.0.1:40001', source: 'run-record' },
      { appId: '', metricsUrl: 'http://10.0.0.9:9090', source: 'address' },
    ];
    const { refs, warnings } = namedSidecars(
      [
        { appId: 'b', addresses: [{ address: '127.0.0.1:50001' }, { address: '[0:0:0:0:0:0:0:1]:50002' }, { address: 'Host-B:50003' }, { address: '10.0.0.8:50002' }] },
        // Another instance on a host already read: one reference per metrics URL.
        { appId: 'c', addresses: [{ address: '10.0.0.8:50004' }, { address: '10.0.0.9:50002' }, { address: '[2001:db8::c]:50002' }] },
      ],
      { refs: known, addresses: ['127.0.0.1:50001', '[::1]:50002', 'host-b:50003', ''] },
      9090,
      'the fake name resolver',
    );
    assert.deepEqual(refs, [
      { appId: 'b', metricsUrl: 'http://10.0.0.8:9090', source: 'name-resolution', address: '10.0.0.8:50002' },
      { appId: 'c', metricsUrl: 'http://[2001:db8::c]:9090', source: 'name-resolution', address: '[2001:db8::c]:50002' },
    ]);
    assert.deepEqual(warnings, []);
  });

  test('lookups that failed are warnings, one per reason; an address HTTP cannot reach is one too', () => {
    const { refs, warnings } = namedSidecars(
      [
        { appId: 'b', error: 'database is locked' },
        { appId: 'c', error: 'database is locked' },
        { appId: 'd', error: 'no answer within 3000 ms' },
        { appId: 'e', addresses: [{ address: '[fe80::1%eth0]:50002' }, { address: '10.0.0.5:50002' }] },
      ],
      { refs: [], addresses: [] },
      9090,
      'the sqlite name resolver (the default configuration, namespace default)',
    );
    assert.deepEqual(refs, [{ appId: 'e', metricsUrl: 'http://10.0.0.5:9090', source: 'name-resolution', address: '10.0.0.5:50002' }]);
    assert.deepEqual(warnings, [
      'cannot look up apps b, c with the sqlite name resolver (the default configuration, namespace default): database is locked',
      'cannot look up app d with the sqlite name resolver (the default configuration, namespace default): no answer within 3000 ms',
      'the sqlite name resolver (the default configuration, namespace default) gave app e the address "[fe80::1%eth0]:50002", whose host cannot be read over HTTP',
    ]);
  });
});

/** An AppLookup answering from a table; a function value may throw or wait. */
class FakeLookup implements AppLookup {
  readonly description = 'the fake name resolver';
  readonly asked: string[] = [];
  closed = 0;
  constructor(readonly table: Record<string, readonly string[] | (() => Promise<readonly ResolvedAddress[]>)>) {}
  resolve(appId: string): Promise<readonly ResolvedAddress[]> {
    this.asked.push(appId);
    const entry = this.table[appId] ?? [];
    return typeof entry === 'function' ? entry() : Promise.resolve(entry.map((address) => ({ address })));
  }
  close(): Promise<void> {
    this.closed++;
    return Promise.resolve();
  }
}

describe('discoverMesh', () => {
  let home: string;
  let server: Server;
  let metrics: string;
  const seen: IncomingMessage[] = [];

  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'courier-discovery-'));
    // A sidecar given by address: its own address, and the apps it calls (with the rows that are no app).
    server = createServer((req, res) => {
      seen.push(req);
      const body =
        req.url === MESH_PATHS.info
          ? { appId: 'front', pid: 7, startedAt: '2025-01-01T00:00:00.000Z', address: '127.0.0.1:50001' }
          : { appId: 'front', at: 1, outbound: [{ dstAppId: 'stock' }, { dstAppId: '_other' }, { dstAppId: '' }, { dstAppId: 'front' }], inbound: [] };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    metrics = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    rmSync(home, { recursive: true, force: true });
  });

  const env = (): NodeJS.ProcessEnv => ({ COURIER_HOME: home });

  test('the apps the sidecars call and --app, looked up; new instances read at the remote metrics port', async () => {
    const lookup = new FakeLookup({
      stock: ['10.0.0.8:50002', '[2001:db8::8]:50002'],
      front: ['127.0.0.1:50001'],
      billing: () => Promise.reject(new Error('database is locked')),
    });
    const found = await discoverMesh(env(), { addresses: [metrics], names: lookup, appIds: ['billing'], remoteMetricsPort: 9191, token: 'tok' });
    assert.deepEqual(lookup.asked, ['billing', 'stock', 'front']);
    assert.deepEqual(found.refs, [
      { appId: '', metricsUrl: `http://${metrics}`, source: 'address' },
      { appId: 'stock', metricsUrl: 'http://10.0.0.8:9191', source: 'name-resolution', address: '10.0.0.8:50002' },
      { appId: 'stock', metricsUrl: 'http://[2001:db8::8]:9191', source: 'name-resolution', address: '[2001:db8::8]:50002' },
    ]);
    assert.deepEqual(found.warnings, ['cannot look up app billing with the fake name resolver: database is locked']);
    assert.deepEqual(found.resolved, { appIds: ['billing', 'stock', 'front'], by: 'the fake name resolver' });
    // The known sidecar was read once (info and traffic), with the token.
    assert.deepEqual(seen.splice(0).map((r) => [r.url, r.headers['dapr-api-token']]).sort(), [
      [MESH_PATHS.info, 'tok'],
      [MESH_PATHS.traffic, 'tok'],
    ]);
    assert.equal(lookup.closed, 0, 'the caller owns the resolver');
  });

  test("with the previous window's sample, the known sidecars are not read again: whom they call comes from it", async () => {
    const lookup = new FakeLookup({ stock: ['10.0.0.8:50002'] });
    const first = await sampleMesh([{ appId: '', metricsUrl: `http://${metrics}`, source: 'address' }], {});
    seen.length = 0;
    const found = await discoverMesh(env(), { addresses: [metrics], names: lookup, previous: first });
    assert.equal(seen.length, 0, 'no request to a sidecar the previous sample has');
    assert.deepEqual(lookup.asked, ['stock', 'front']);
    assert.deepEqual(found.refs.map((r) => r.metricsUrl), [`http://${metrics}`, 'http://10.0.0.8:9090']);
    // A sidecar missing from the previous sample is read.
    await discoverMesh(env(), { addresses: [metrics], names: lookup, previous: { at: 0, sidecars: [] } });
    assert.deepEqual(seen.splice(0).map((r) => r.url).sort(), [MESH_PATHS.info, MESH_PATHS.traffic]);
  });

  test('with called: false only the app ids given are looked up; without any, nothing is', async () => {
    const lookup = new FakeLookup({ stock: ['10.0.0.8:50002'], tapped: ['10.0.0.3:50002'] });
    const tap = await discoverMesh(env(), { addresses: [metrics], names: lookup, appIds: ['tapped'], called: false });
    assert.deepEqual(lookup.asked, ['tapped']);
    assert.deepEqual(tap.refs.map((r) => r.metricsUrl), [`http://${metrics}`, 'http://10.0.0.3:9090']);
    const none = await discoverMesh(env(), { addresses: [metrics], names: lookup, called: false });
    assert.deepEqual(lookup.asked, ['tapped']);
    assert.deepEqual(none, { refs: [{ appId: '', metricsUrl: `http://${metrics}`, source: 'address' }], warnings: [], resolved: undefined });
  });

  test('without name resolution it is discoverSidecars, and reads nothing', async () => {
    seen.length = 0;
    const found = await discoverMesh(env(), { addresses: [metrics], appIds: ['stock'] });
    assert.deepEqual(found, { refs: [{ appId: '', metricsUrl: `http://${metrics}`, source: 'address' }], warnings: [], resolved: undefined });
    assert.equal(seen.length, 0);
  });

  test('no sidecar known: --app alone finds them; the message says what name resolution was asked', async () => {
    const lookup = new FakeLookup({ orders: ['10.0.0.4:50002'] });
    const found = await discoverMesh(env(), { addresses: [], names: lookup, appIds: ['orders'] });
    assert.deepEqual(found.refs, [{ appId: 'orders', metricsUrl: 'http://10.0.0.4:9090', source: 'name-resolution', address: '10.0.0.4:50002' }]);
    const empty = await discoverMesh(env(), { addresses: [], names: new FakeLookup({}), appIds: ['orders', 'stock'] });
    assert.deepEqual(empty.refs, []);
    assert.equal(
      noSidecarsMessage(env(), empty.resolved),
      `no Courier sidecars found: no running sidecar with metrics on in ${join(home, 'run')} (COURIER_HOME=${home}), none given with --sidecar <host:port of its metrics port>, and the fake name resolver found no instance of orders, stock`,
    );
    assert.equal(
      noSidecarsMessage(env()),
      `no Courier sidecars found: no running sidecar with metrics on in ${join(home, 'run')} (COURIER_HOME=${home}), and none given with --sidecar <host:port of its metrics port>`,
    );
  });
});

/** A resolver that answers from a table and counts what is done to it. */
class CountingResolver implements NameResolver {
  readonly component = 'fake';
  closed = 0;
  constructor(readonly answer: (appId: string) => Promise<readonly ResolvedAddress[]>) {}
  register(): Promise<void> {
    return Promise.resolve();
  }
  resolve(request: { appId: string }): Promise<readonly ResolvedAddress[]> {
    return this.answer(request.appId);
  }
  close(): Promise<void> {
    this.closed++;
    return Promise.resolve();
  }
}

describe('MeshNames', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'courier-names-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const configFile = (name: string, nameResolution: string): string => {
    const file = join(dir, name);
    writeFileSync(file, `apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: x\nspec:\n  nameResolution:\n${nameResolution}`);
    return file;
  };

  test('the resolver is made at the first lookup, once, with the namespace asked for, and closed once', async () => {
    const made: unknown[] = [];
    const resolvers: CountingResolver[] = [];
    const make: ResolverMaker = (spec, deps, where) => {
      made.push({ spec, startupWaitMs: deps.startupWaitMs, courierHome: deps.courierHome, where });
      const resolver = new CountingResolver((appId) => Promise.resolve([{ address: `${appId}:1` }]));
      resolvers.push(resolver);
      return resolver;
    };
    const names = new MeshNames({ COURIER_HOME: dir }, { namespace: 'shop' }, make);
    assert.equal(names.description, 'the sqlite name resolver (the default configuration, namespace shop)');
    assert.equal(made.length, 0, 'nothing is opened before a lookup');
    assert.deepEqual(await Promise.all([names.resolve('a', 500), names.resolve('b', 500)]), [[{ address: 'a:1' }], [{ address: 'b:1' }]]);
    assert.deepEqual(await names.resolve('c', 500), [{ address: 'c:1' }]);
    assert.deepEqual(made, [{ spec: {}, startupWaitMs: 500, courierHome: dir, where: 'the default configuration: spec.nameResolution' }]);
    await names.close();
    await names.close();
    assert.equal(resolvers[0]?.closed, 1);
    await assert.rejects(names.resolve('a', 500), /closed/);
  });

  test('a lookup that takes too long, and a resolver that cannot be made, reject (the views make warnings of them)', async () => {
    const slow = new MeshNames({ COURIER_HOME: dir }, { namespace: 'default' }, () => new CountingResolver(() => new Promise(() => undefined)));
    await assert.rejects(slow.resolve('a', 50), /no answer within 50 ms/);
    await slow.close();
    let attempts = 0;
    const broken = new MeshNames({ COURIER_HOME: dir }, { namespace: 'default' }, () => {
      attempts++;
      throw new Error('cannot open the database');
    });
    const results = await Promise.allSettled([broken.resolve('a', 500), broken.resolve('b', 500)]);
    assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected']);
    assert.equal(attempts, 1, 'not made again by every lookup of one discovery');
    await broken.close();
  });

  test('mDNS only when the Configuration says so, and even then nothing is sent without a lookup', async () => {
    let made = 0;
    const mdns = new MeshNames({ COURIER_HOME: dir }, { configFile: configFile('mdns.yaml', '    component: mdns\n'), namespace: 'default' }, () => {
      made++;
      return new CountingResolver(() => Promise.resolve([]));
    });
    assert.match(mdns.description, /^the mdns name resolver \(.*mdns\.yaml, namespace default\)$/);
    await mdns.close();
    assert.equal(made, 0);
  });

  test('by default, the SQLite database of COURIER_HOME, opened at the first lookup', async () => {
    const home = join(dir, 'home');
    const names = new MeshNames({ COURIER_HOME: home }, { namespace: 'default' });
    assert.equal(existsSync(join(home, 'nameresolution.db')), false);
    assert.deepEqual(await names.resolve('nobody', 2000), []);
    assert.equal(existsSync(join(home, 'nameresolution.db')), true);
    await names.close();
    // A Configuration naming another database: that one.
    const db = join(dir, 'shared.db');
    const shared = new MeshNames({ COURIER_HOME: home }, { configFile: configFile('sqlite.yaml', `    component: sqlite\n    configuration:\n      connectionString: ${db}\n`), namespace: 'default' });
    assert.deepEqual(await shared.resolve('nobody', 2000), []);
    assert.equal(existsSync(db), true);
    await shared.close();
  });

  test('a Configuration that names no usable resolver is an error at once', () => {
    assert.throws(() => new MeshNames({ COURIER_HOME: dir }, { configFile: configFile('bad.yaml', '    component: carrier-pigeon\n'), namespace: 'default' }), /unknown name resolution component "carrier-pigeon"/);
    assert.throws(
      () => new MeshNames({ COURIER_HOME: dir }, { configFile: configFile('badkey.yaml', '    component: sqlite\n    configuration:\n      nosuchkey: 1\n'), namespace: 'default' }),
      (err: Error & { code?: string }) => err.code === 'ERR_INVALID_CONFIG' && /nosuchkey/.test(err.message),
    );
    assert.throws(() => new MeshNames({ COURIER_HOME: dir }, { configFile: join(dir, 'missing.yaml'), namespace: 'default' }), (err: Error & { code?: string }) => err.code === 'ERR_INVALID_CONFIG');
  });
});

describe('the name resolution flags of the views', () => {
  test('--app is checked and repeatable, --remote-metrics-port is a port, the namespace comes from the flag, $NAMESPACE or "default"', async () => {
    const parse = (argv: string[], env: NodeJS.ProcessEnv = { COURIER_HOME: tmpdir() }) => parseMeshFlags('stat', parseFlags('stat', argv, statFlags).values, env);
    const flags = parse(['--app', 'orders', '--app=stock', '--app', 'orders', '--remote-metrics-port', '9191', '--sidecar', 'h:1']);
    assert.deepEqual([flags.appIds, flags.remoteMetricsPort, flags.addresses, flags.names.namespace], [['orders', 'stock'], 9191, ['h:1'], 'default']);
    const defaults = parse([], { COURIER_HOME: tmpdir(), NAMESPACE: 'shop' });
    assert.deepEqual([defaults.appIds, defaults.remoteMetricsPort, defaults.names.namespace], [[], 9090, 'shop']);
    assert.equal(parse(['-n', 'prod'], { COURIER_HOME: tmpdir(), NAMESPACE: 'shop' }).names.namespace, 'prod');
    assert.throws(() => parse(['--app', 'a.b']), /courier stat: --app: the app id "a\.b" must not contain dots/);
    assert.throws(() => parse(['--app', '']), /courier stat: --app: the app id must not be empty/);
    assert.throws(() => parse(['--remote-metrics-port', '0']), /courier stat: --remote-metrics-port: 0 is not a port/);
    assert.throws(() => parse(['--remote-metrics-port', '70000']), /--remote-metrics-port: 70000 is not a port/);
    await Promise.all([flags.names.close(), defaults.names.close()]);
  });

  test('a sidecar found by name resolution is named with the address it was found at', () => {
    assert.equal(describeRef({ appId: 'b', metricsUrl: 'http://10.0.0.8:9090', source: 'name-resolution', address: '10.0.0.8:50002' }), 'b at http://10.0.0.8:9090 (found by name resolution at 10.0.0.8:50002)');
    assert.equal(describeRef({ appId: 'b', metricsUrl: 'http://127.0.0.1:9090', source: 'run-record' }), 'b at http://127.0.0.1:9090');
  });
});
