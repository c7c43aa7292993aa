import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CourierError } from '../errors/index.js';
import { silentLogger } from '../observability/logging/index.js';
import type { NameResolver, NameResolverFactory, ResolverDeps } from './name-resolver.js';
import { NameResolverRegistry, defaultRegistry } from './registry.js';
import { SqliteNameResolver } from './sqlite/index.js';

const where = 'config.yaml: spec.nameResolution';

function tempDeps(t: { after(fn: () => void): void }): ResolverDeps {
  const dir = mkdtempSync(join(tmpdir(), 'courier-nr-registry-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return { logger: silentLogger(), courierHome: dir };
}

/** A plug-in with a fixed address list, to exercise aliases and versions without a database. */
const staticFactory: NameResolverFactory<{ addresses: string[] }> = {
  component: 'static',
  aliases: ['fixed'],
  versions: ['v1', 'v2'],
  parseMetadata(configuration) {
    return { addresses: (configuration as { addresses?: string[] } | undefined)?.addresses ?? [] };
  },
  create(metadata): NameResolver {
    return {
      component: 'static',
      register: () => Promise.resolve(),
      resolve: () => Promise.resolve(metadata.addresses.map((address) => ({ address }))),
      close: () => Promise.resolve(),
    };
  },
};

function invalidConfig(message: string) {
  return (error: unknown) => error instanceof CourierError && error.code === 'ERR_INVALID_CONFIG' && error.message === message;
}

test('the default registry knows sqlite, mdns and kubernetes, and uses sqlite when no component is named', async (t) => {
  const registry = defaultRegistry();
  assert.deepEqual(registry.components(), ['kubernetes', 'mdns', 'sqlite']);
  assert.equal(registry.defaultComponent, 'sqlite');
  const deps = tempDeps(t);
  for (const spec of [{}, { component: '' }, { component: undefined, version: undefined, configuration: undefined }]) {
    const resolver = registry.create(spec, deps, where);
    assert.ok(resolver instanceof SqliteNameResolver);
    assert.equal(resolver.databasePath, join(deps.courierHome, 'nameresolution.db'));
    await resolver.close();
  }
});

test('component names and versions match case-insensitively; configuration reaches the plug-in', async (t) => {
  const deps = tempDeps(t);
  const resolver = defaultRegistry().create({ component: 'SQLite', version: 'V1', configuration: { connectionString: join(deps.courierHome, 'x.db') } }, deps, where);
  assert.equal((resolver as SqliteNameResolver).databasePath, join(deps.courierHome, 'x.db'));
  await resolver.close();
});

test('unknown components and versions list the known ones', (t) => {
  const deps = tempDeps(t);
  const registry = defaultRegistry();
  assert.throws(() => registry.create({ component: 'consul' }, deps, where), invalidConfig(`${where}.component: unknown name resolution component "consul" (available: kubernetes, mdns, sqlite)`));
  assert.throws(
    () => registry.create({ component: 'sqlite', version: 'v2' }, deps, where),
    invalidConfig(`${where}.version: unknown version "v2" of name resolution component "sqlite" (available: v1)`),
  );
  const empty = new NameResolverRegistry();
  assert.throws(() => empty.create({}, deps, where), invalidConfig(`${where}.component: unknown name resolution component "sqlite" (available: none)`));
});

test('configuration errors carry the configuration path', (t) => {
  assert.throws(
    () => defaultRegistry().create({ configuration: { updateInterval: '1500ms' } }, tempDeps(t), where),
    (error: unknown) => error instanceof CourierError && error.message.startsWith(`${where}.configuration.updateInterval: `),
  );
});

test('plug-ins are found by alias, and names cannot be registered twice', async (t) => {
  const registry = defaultRegistry().register(staticFactory);
  assert.deepEqual(registry.components(), ['kubernetes', 'mdns', 'sqlite', 'static']);
  assert.equal(registry.get('FIXED'), registry.get('static'));
  const resolver = registry.create({ component: 'fixed', version: 'v2', configuration: { addresses: ['10.0.0.1:50002'] } }, tempDeps(t), where);
  assert.deepEqual(await resolver.resolve({ appId: 'any', namespace: 'default' }), [{ address: '10.0.0.1:50002' }]);
  assert.throws(() => registry.register({ ...staticFactory, component: 'other', aliases: ['Fixed'] }), /"fixed" is registered twice/);
  assert.throws(() => new NameResolverRegistry().register({ ...staticFactory, versions: [] }), /declares no versions/);
});

test('the default component can be changed per registry', (t) => {
  const registry = new NameResolverRegistry({ defaultComponent: 'static' }).register(staticFactory);
  assert.equal(registry.create({}, tempDeps(t), where).component, 'static');
});
