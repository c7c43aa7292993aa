import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CourierError } from '../../errors/index.js';
import { parseMdnsMetadata } from './metadata.js';

const where = 'config.yaml: spec.nameResolution.configuration';

test("mDNS metadata: Dapr's timings by default, no interface chosen (the listen address decides)", () => {
  assert.deepEqual(parseMdnsMetadata(undefined, where), { interfaces: undefined, ipv6: false, refreshIntervalMs: 30_000, addressTtlMs: 60_000, browseTimeoutMs: 1000, port: 5353 });
});

test('mDNS metadata: interfaces as a list or a comma-separated string, durations, ipv6, port; keys in any case', () => {
  const meta = parseMdnsMetadata({ Interfaces: 'eth1, eth2', IPv6: true, refreshInterval: '5s', addressTTL: '15s', browseTimeout: '500ms', port: 5454 }, where);
  assert.deepEqual(meta, { interfaces: ['eth1', 'eth2'], ipv6: true, refreshIntervalMs: 5000, addressTtlMs: 15_000, browseTimeoutMs: 500, port: 5454 });
  assert.deepEqual(parseMdnsMetadata({ interfaces: ['cv0'] }, where).interfaces, ['cv0']);
});

test('mDNS metadata: clear errors naming the key', () => {
  const refused = (configuration: unknown, pattern: RegExp): void =>
    assert.throws(() => parseMdnsMetadata(configuration, where), (err: unknown) => err instanceof CourierError && err.code === 'ERR_INVALID_CONFIG' && pattern.test(err.message));
  refused({ interfaces: [] }, /configuration\.interfaces: must be a list of interface names/);
  refused({ interfaces: [1] }, /interfaces: must be a list/);
  refused({ refreshInterval: 'soon' }, /refreshInterval: "soon" is not a positive duration/);
  refused({ port: 70000 }, /port: "70000" is not a port number/);
  refused({ ipv6: 'maybe' }, /ipv6: "maybe" is not true or false/);
  refused({ refreshInterval: '60s', addressTTL: '30s' }, /addressTTL: must be longer than refreshInterval/);
  refused({ colour: 'blue' }, /colour: unknown setting/);
  refused(['eth0'], /must be a map of settings/);
});
