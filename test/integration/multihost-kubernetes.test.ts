// Kubernetes DNS name resolution across test hosts: dnsmasq on h1 plays the cluster DNS and serves the
// headless Service name `svc-dapr.default.svc.cluster.local` with the addresses of h2 and h3, as
// Kubernetes does for the pods behind it. Every sidecar uses the same internal port, as in a cluster.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { NetLab, netlabUnavailable, type HostProcess } from '../framework/netlab.js';
import { startDriver, startHostApp, startHostSidecar, tally, writeConfig, type Driver, type HostSidecar, FAILOVER_BOUND_MS, silentConnectionDrops } from '../framework/netlab/fleet.js';

const dnsmasq = ['/usr/sbin/dnsmasq', '/usr/bin/dnsmasq'].find((p) => spawnSync('test', ['-x', p]).status === 0);
const unavailable = netlabUnavailable() ?? (dnsmasq === undefined ? 'dnsmasq (Debian package dnsmasq-base) is not installed' : undefined);
const INTERNAL_PORT = 50002;
const NAME = 'svc-dapr.default.svc.cluster.local';

describe('Kubernetes DNS across hosts', { skip: unavailable }, () => {
  const lab = new NetLab(3, mkdtempSync(join(tmpdir(), 'courier-netlab-')));
  let driver: Driver;
  let caller: HostSidecar;
  let dns: HostProcess;
  const hostsFile = (): string => join(lab.dir, 'cluster-hosts');
  const url = (app = 'svc'): string => `http://127.0.0.1:${caller.httpPort}/v1.0/invoke/${app}/method/whoami`;

  before(async () => {
    lab.create();
    writeFileSync(hostsFile(), `${lab.address(2)} ${NAME}\n${lab.address(3)} ${NAME}\n`);
    dns = lab.spawn(1, dnsmasq ?? 'dnsmasq', [
      '--keep-in-foreground',
      '--user=root', // the hosts file is in the test's private directory
      '--no-resolv',
      '--no-hosts',
      `--addn-hosts=${hostsFile()}`,
      `--listen-address=${lab.address(1)}`,
      '--bind-interfaces',
      '--local=/cluster.local/',
      '--local-ttl=1',
      '--log-facility=-',
      '--pid-file',
    ]);
    await dns.waitFor(/started, version/);
    lab.setResolvConf(1, `nameserver ${lab.address(1)}\noptions timeout:1 attempts:1\n`);
    const config = writeConfig(lab, 'k8s', 'kubernetes', { clusterDomain: 'cluster.local', cacheTTL: '2s' });
    for (const h of [2, 3]) {
      const app = await startHostApp(lab, h, `h${h}`);
      await startHostSidecar(lab, h, { appId: 'svc', appPort: app.port, config, internalPort: INTERNAL_PORT });
    }
    // Round robin: these tests are about discovery and failover, and count calls per host (the balancer has its own tests).
    caller = await startHostSidecar(lab, 1, { appId: 'caller', config, internalPort: INTERNAL_PORT, args: ['--load-balancing', 'round-robin'] });
    driver = await startDriver(lab, 1);
    await driver.healthy(caller.httpPort);
  });
  after(async () => {
    await lab.close();
  });

  test('every address of the headless Service is an instance: calls spread over h2 and h3', async () => {
    const { byHost, failures } = tally(await driver.calls(url(), 40));
    assert.deepEqual(failures, []);
    assert.ok((byHost.h2 ?? 0) >= 15 && (byHost.h3 ?? 0) >= 15, `uneven: ${JSON.stringify(byHost)}`);
  });

  test('addresses are cached for a bounded time: a pod gone from DNS leaves rotation after cacheTTL', async () => {
    writeFileSync(hostsFile(), `${lab.address(2)} ${NAME}\n`);
    dns.child.kill('SIGHUP'); // dnsmasq re-reads its hosts files
    await sleep(3500); // cacheTTL 2s (+ dnsmasq's 1 s TTL)
    const { byHost, failures } = tally(await driver.calls(url(), 10));
    assert.deepEqual(failures, []);
    assert.deepEqual(byHost, { h2: 10 });
    writeFileSync(hostsFile(), `${lab.address(2)} ${NAME}\n${lab.address(3)} ${NAME}\n`);
    dns.child.kill('SIGHUP');
    await sleep(3500);
    const back = tally(await driver.calls(url(), 20));
    assert.deepEqual(back.failures, []);
    assert.ok((back.byHost.h3 ?? 0) > 0, JSON.stringify(back.byHost));
  });

  test('an address that DNS lists but cannot be reached costs no failed call and no long wait: calls are retried on another instance', async () => {
    // DNS still lists h3, but its sidecar is unreachable: calls must still succeed (on h2). The
    // caller's connection to h3 (from the tests before) looks alive until it goes silent with a call
    // waiting on it: then it is dropped and the call retried, well before the 10 s keepalive.
    const cutWall = Date.now();
    lab.cut(3);
    try {
      const results = await driver.calls(url(), 10);
      const { byHost, failures } = tally(results);
      const drops = silentConnectionDrops(caller.proc.output, cutWall);
      const slowest = Math.max(...results.map((r) => r.ms));
      console.log(
        `# Kubernetes: with h3 cut off, 10 calls in a row took ${results.map((r) => r.ms).join(', ')} ms (the slowest ${slowest} ms); ` +
          `the caller dropped its connection to h3 ${drops.map((d) => `${d.ms} ms after the cut (${d.calls} calls waiting on it)`).join(', ') || 'never (no call went to it)'}`,
      );
      assert.deepEqual(failures, []);
      assert.equal(byHost.h2, 10, JSON.stringify(byHost));
      assert.ok(slowest < FAILOVER_BOUND_MS, `a call waited ${slowest} ms`);
    } finally {
      lab.restore(3);
    }
  });

  test('an app id with no Service names the resolver and the lookup it made', async () => {
    const [r] = await driver.calls(url('nobody'), 1);
    assert.match(r?.error ?? '', /kubernetes name resolver \(looked up nobody-dapr\.default\.svc\.cluster\.local: ENOTFOUND\)/);
  });
});
