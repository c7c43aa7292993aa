import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ResolvedAddress } from '../../nameresolution/index.js';
import type { AppLookup, DiscoverMeshOptions, MeshDiscovery } from '../mesh/collect.js';
import { dashboardFlags } from './command.js';
import { parseFlags } from '../flags.js';
import { DashboardServer } from './server.js';
import { FakeMesh } from './testing/fake-mesh.js';

/** A resolver the dashboard holds for its whole run. */
class HeldLookup implements AppLookup {
  readonly description = 'the fake name resolver';
  closed = 0;
  resolve(): Promise<readonly ResolvedAddress[]> {
    return Promise.resolve([]);
  }
  close(): Promise<void> {
    this.closed++;
    return Promise.resolve();
  }
}

/** The made-up mesh, discovered the way the real source does it when the dashboard has name resolution. */
class NamedMesh extends FakeMesh {
  readonly discoveries: DiscoverMeshOptions[] = [];
  warnings: string[] = [];

  discoverMesh(env: NodeJS.ProcessEnv, options: DiscoverMeshOptions): Promise<MeshDiscovery> {
    this.discoveries.push(options);
    const refs = this.discoverSidecars(env, options.addresses);
    return Promise.resolve({ refs, warnings: this.warnings, resolved: { appIds: options.appIds ?? [], by: options.names?.description ?? '' } });
  }

  noSidecarsMessage(_env: NodeJS.ProcessEnv, resolved?: MeshDiscovery['resolved']): string {
    return `no Courier sidecars found, and ${resolved?.by ?? 'nothing'} found no instance of ${resolved?.appIds.join(', ') ?? ''}`;
  }
}

test('the dashboard makes one resolver serve every refresh, says what it could not look up, and closes it when it stops', async () => {
  const mesh = new NamedMesh();
  mesh.addInstance('front');
  const lookup = new HeldLookup();
  const problems: Array<string | undefined> = [];
  const dashboard = await DashboardServer.start({
    source: mesh,
    host: '127.0.0.1',
    port: 0,
    windowMs: 60_000,
    token: 'tok',
    addresses: ['10.0.0.9:9090'],
    names: { lookup, appIds: ['orders'], remoteMetricsPort: 9191 },
    env: {},
    onProblem: (p) => problems.push(p),
  });
  try {
    await dashboard.refresh();
    mesh.warnings = ['cannot look up app orders with the fake name resolver: database is locked'];
    await dashboard.refresh();
    mesh.warnings = [];
    await dashboard.refresh();
    assert.ok(mesh.discoveries.length >= 3);
    for (const options of mesh.discoveries) {
      assert.equal(options.names, lookup, 'the same resolver every time');
      assert.deepEqual([options.addresses, options.appIds, options.remoteMetricsPort, options.token], [['10.0.0.9:9090'], ['orders'], 9191, 'tok']);
    }
    assert.deepEqual(problems, ['cannot look up app orders with the fake name resolver: database is locked', undefined]);
    // Nothing found at all: where the dashboard looked, name resolution included.
    mesh.removeInstance(mesh.instances[0] as (typeof mesh.instances)[number]);
    await dashboard.refresh();
    assert.equal(problems.at(-1), 'no Courier sidecars found, and the fake name resolver found no instance of orders');
    assert.equal(lookup.closed, 0);
  } finally {
    await dashboard.close();
  }
  assert.equal(lookup.closed, 1);
});

test('a source without name resolution is discovered as before, and the flags reach the options', async () => {
  const mesh = new FakeMesh();
  mesh.addInstance('front');
  const lookup = new HeldLookup();
  const dashboard = await DashboardServer.start({ source: mesh, host: '127.0.0.1', port: 0, windowMs: 60_000, names: { lookup, appIds: [], remoteMetricsPort: 9090 }, env: {} });
  try {
    while (dashboard.view === undefined) await dashboard.refresh();
    assert.deepEqual(
      dashboard.view.apps.map((a) => a.appId),
      ['front'],
    );
  } finally {
    await dashboard.close();
  }
  assert.equal(lookup.closed, 1);
  const { values } = parseFlags('dashboard', ['--config', 'c.yaml', '-n', 'shop', '--app', 'orders', '--remote-metrics-port', '9191'], dashboardFlags);
  assert.deepEqual([values.get('config'), values.get('namespace'), values.get('app'), values.get('remote-metrics-port')], ['c.yaml', 'shop', ['orders'], 9191]);
});
