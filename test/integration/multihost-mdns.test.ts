// mDNS discovery across machines, on three test hosts in network namespaces (see framework/netlab.ts):
// h1 runs the caller, h2 and h3 run instances of "svc". Nothing is sent outside the namespaces.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { courierBin } from '../framework/env.js';
import { NetLab, netlabUnavailable } from '../framework/netlab.js';
import { startDriver, startHostApp, startHostSidecar, tally, writeConfig, type Driver, type HostSidecar, FAILOVER_BOUND_MS, silentConnectionDrops } from '../framework/netlab/fleet.js';

const unavailable = netlabUnavailable();

describe('mDNS across hosts', { skip: unavailable }, () => {
  const lab = new NetLab(3, mkdtempSync(join(tmpdir(), 'courier-netlab-')));
  let config: string;
  let driver: Driver;
  let caller: HostSidecar;
  const svc = new Map<number, HostSidecar>();
  const appPorts = new Map<number, number>();
  const url = (): string => `http://127.0.0.1:${caller.httpPort}/v1.0/invoke/svc/method/whoami`;

  before(async () => {
    lab.create();
    // Short timings so the test sees refreshes and expiry; Dapr's defaults are 30 s and 60 s.
    config = writeConfig(lab, 'mdns', 'mdns', { interfaces: ['cv0'], refreshInterval: '1s', addressTTL: '4s' });
    for (const h of [2, 3]) {
      const app = await startHostApp(lab, h, `h${h}`);
      appPorts.set(h, app.port);
      svc.set(h, await startHostSidecar(lab, h, { appId: 'svc', appPort: app.port, config, internalPort: 50010 }));
    }
    // Round robin: these tests are about discovery and failover, and count calls per host (the balancer has its own tests).
    caller = await startHostSidecar(lab, 1, { appId: 'caller', config, args: ['--load-balancing', 'round-robin'] });
    driver = await startDriver(lab, 1);
    await driver.healthy(caller.httpPort);
  });
  after(async () => {
    await lab.close();
  });

  test('a caller on h1 finds the instances on h2 and h3 and round-robins across them', async () => {
    const { byHost, failures } = tally(await driver.calls(url(), 60));
    assert.deepEqual(failures, []);
    assert.equal((byHost.h2 ?? 0) + (byHost.h3 ?? 0), 60);
    assert.ok(Math.abs((byHost.h2 ?? 0) - (byHost.h3 ?? 0)) <= 2, `uneven: ${JSON.stringify(byHost)}`);
  });

  test('an instance that stops leaves rotation at once (goodbye), and its restart on a new port is used at once', async () => {
    const old = svc.get(3);
    assert.ok(old !== undefined);
    await old.proc.stop();
    const stoppedAt = Date.now();
    const afterStop = tally(await driver.calls(url(), 10));
    assert.deepEqual(afterStop.failures, [], 'no call fails after the instance said goodbye');
    assert.deepEqual(afterStop.byHost, { h2: 10 });
    const leftWithinMs = Date.now() - stoppedAt;

    const restarted = await startHostSidecar(lab, 3, { appId: 'svc', appPort: appPorts.get(3) ?? 0, config, internalPort: 50011 });
    svc.set(3, restarted);
    assert.notEqual(restarted.internalPort, old.internalPort, 'the new instance listens on a new port');
    const startedAt = Date.now();
    let firstUseMs: number | undefined;
    const results = [];
    while (Date.now() - startedAt < 5000) {
      const [r] = await driver.calls(url(), 1);
      assert.ok(r !== undefined);
      results.push(r);
      if (r.host === 'h3') {
        firstUseMs = Date.now() - startedAt;
        break;
      }
    }
    assert.deepEqual(tally(results).failures, []);
    assert.ok(firstUseMs !== undefined, 'the restarted instance was not called within 5 s');
    console.log(`# mDNS: after a graceful stop, the next 10 calls (${leftWithinMs} ms) all went to the other instance; a restarted one was called ${firstUseMs} ms after it registered`);
    const both = tally(await driver.calls(url(), 20));
    assert.deepEqual(both.failures, []);
    assert.deepEqual(both.byHost, { h2: 10, h3: 10 });
  });

  test('an instance that crashes (no goodbye) costs no failed call, and its restart is used', async () => {
    const old = svc.get(3);
    assert.ok(old !== undefined);
    old.proc.child.kill('SIGKILL');
    await old.proc.exited;
    // Its address still answers mDNS caches for up to addressTTL, but the port is closed: a refused
    // connection is retried on another instance, and the address is skipped after that.
    const afterCrash = tally(await driver.calls(url(), 10));
    assert.deepEqual(afterCrash.failures, []);
    assert.deepEqual(afterCrash.byHost, { h2: 10 });
    const restarted = await startHostSidecar(lab, 3, { appId: 'svc', appPort: appPorts.get(3) ?? 0, config, internalPort: 50012 });
    svc.set(3, restarted);
    const deadline = Date.now() + 8000;
    let seen = false;
    while (!seen && Date.now() < deadline) {
      const [r] = await driver.calls(url(), 1);
      assert.equal(r?.error, undefined);
      seen = r?.host === 'h3';
    }
    assert.ok(seen, 'the restarted instance was not called within 8 s');
  });

  test('a host cut off during steady load: calls move to the other host with no failure and none waits long, and the host rejoins when it is back', async () => {
    const rate = 20;
    const seconds = 30;
    const load = driver.load(url(), rate, seconds);
    await sleep(3000);
    const cutWall = Date.now();
    lab.cut(3);
    const cutAt = 3000;
    await sleep(17_000);
    lab.restore(3);
    const restoredAt = 20_000;
    const results = await load;
    const { byHost, failures } = tally(results);
    const during = results.filter((r) => (r.t ?? 0) > cutAt + 16_000 && (r.t ?? 0) < restoredAt);
    const rejoined = results.filter((r) => (r.t ?? 0) > restoredAt && r.host === 'h3');
    const firstBack = Math.min(...rejoined.map((r) => r.t ?? Infinity)) - restoredAt;
    // Fast failover: a call already sent to the dead host fails once its connection has been silent
    // for 0.3 s and a PING then goes unanswered for 0.7 s (1.0-1.15 s after the last byte from h3),
    // and is retried on h2 at once. No call waits for the 10 s keepalive.
    const drops = silentConnectionDrops(caller.proc.output, cutWall);
    const delayed = results.filter((r) => (r.t ?? 0) >= cutAt - 1000 && r.ms > 1000);
    const slowest = Math.max(...results.map((r) => r.ms));
    const leftAfter = delayed.length === 0 ? 0 : Math.max(...delayed.map((r) => r.t ?? 0)) - cutAt;
    console.log(
      `# mDNS: the caller dropped the connection to the cut-off host ${drops.map((d) => `${d.ms} ms after the cut (${d.calls} calls waiting on it)`).join(', ') || 'never'}; ` +
        `${delayed.length} calls took over 1 s (${delayed.map((r) => r.ms).join(', ')} ms), the slowest ${slowest} ms; the last of them was sent ${leftAfter} ms after the cut; ` +
        `h3 was called again ${firstBack} ms after it came back`,
    );
    assert.deepEqual(failures, [], 'every idempotent call succeeds (built-in retries move it to a live instance)');
    assert.ok(drops.length > 0 && drops.every((d) => d.ms < 2000), `the dead connection was dropped late (or not at all): ${JSON.stringify(drops)}`);
    assert.ok(slowest < FAILOVER_BOUND_MS, `a call waited ${slowest} ms`);
    assert.equal(results.length, rate * seconds);
    assert.ok((byHost.h3 ?? 0) > 0 && (byHost.h2 ?? 0) > 0, JSON.stringify(byHost));
    // While h3 is cut off (after the dead connection is noticed and its entry expires), h2 serves.
    assert.ok(during.length > 0 && during.every((r) => r.host === 'h2'), `calls during the cut: ${JSON.stringify(tally(during))}`);
    // Back on the network, h3 is found again by the next refresh and called.
    assert.ok(rejoined.length > 0, `h3 was not called again after it came back: ${JSON.stringify(tally(results.filter((r) => (r.t ?? 0) > restoredAt)))}`);
  });

  test('courier resolve shows what the mDNS resolver sees', async () => {
    // The command browses once and waits browseTimeout (1 s by default) for answers: on a busy machine
    // the answering sidecar may take longer, so the command is given a wide margin.
    const cliConfig = writeConfig(lab, 'mdns6-cli', 'mdns', { interfaces: ['cv0'], ipv6: true, browseTimeout: '10s' });
    const cli = lab.spawn(1, process.execPath, [courierBin, 'resolve', 'svc', '--config', cliConfig], { COURIER_HOME: join(lab.dir, 'home-h1') });
    await cli.exited;
    assert.equal(cli.child.exitCode, 0, cli.output);
    assert.match(cli.output, /mdns/);
    assert.match(cli.output, /10\.77\.0\.2:\d+/);
    assert.match(cli.output, /10\.77\.0\.3:\d+/);
  });

  test('a call to an app id nobody announces names the resolver and what it tried', async () => {
    const [r] = await driver.calls(`http://127.0.0.1:${caller.httpPort}/v1.0/invoke/nobody/method/x`, 1);
    assert.match(r?.error ?? '', /HTTP 500/);
    assert.match(r?.error ?? '', /no instance of app \\"nobody\\".*mdns name resolver \(browsed for nobody\.local with mDNS on cv0 \(IPv4\), port 5353; no answer\)/);
  });
});

describe('mDNS defaults on one host', { skip: unavailable }, () => {
  const lab = new NetLab(1, mkdtempSync(join(tmpdir(), 'courier-netlab-')));
  before(() => {
    lab.create();
    // No IPv6 on the test host, so the kernel itself sends nothing on cv0 and its counter stays still.
    return lab.spawn(1, 'sysctl', ['-w', 'net.ipv6.conf.all.disable_ipv6=1']).exited;
  });
  after(async () => {
    await lab.close();
  });

  test('sidecars on 127.0.0.1 (the default) find each other on the loopback interface, and send nothing on the network', async () => {
    const sentOnCv0 = async (): Promise<number> => {
      const p = lab.spawn(1, 'cat', ['/sys/class/net/cv0/statistics/tx_packets']);
      await p.waitFor(/\d+\n/);
      return Number(p.output.trim());
    };
    const config = writeConfig(lab, 'mdns-default', 'mdns', {});
    const before = await sentOnCv0();
    const app = await startHostApp(lab, 1, 'h1');
    const callee = await startLoopbackSidecar(lab, 'svc', config, app.port);
    const caller = await startLoopbackSidecar(lab, 'caller', config);
    const driver = await startDriver(lab, 1);
    await driver.healthy(caller.httpPort);
    await driver.healthy(callee.httpPort);
    const { byHost, failures } = tally(await driver.calls(`http://127.0.0.1:${caller.httpPort}/v1.0/invoke/svc/method/whoami`, 5));
    assert.deepEqual(failures, []);
    assert.deepEqual(byHost, { h1: 5 });
    assert.equal(await sentOnCv0(), before, 'no packet left through the network interface');
  });
});

/** A sidecar on the lab's only host, with Courier's default listen address (127.0.0.1). */
async function startLoopbackSidecar(lab: NetLab, appId: string, config: string, appPort?: number): Promise<HostSidecar> {
  return startHostSidecar(lab, 1, { appId, config, ...(appPort === undefined ? {} : { appPort }), listenAddress: '127.0.0.1' });
}

describe('mDNS over IPv6', { skip: unavailable }, () => {
  const lab = new NetLab(2, mkdtempSync(join(tmpdir(), 'courier-netlab-')));
  after(async () => {
    await lab.close();
  });

  test('with ipv6 on, a sidecar listening on an IPv6 address is announced (AAAA) and called over IPv6', async () => {
    lab.create();
    const config = writeConfig(lab, 'mdns6', 'mdns', { interfaces: ['cv0'], ipv6: true });
    const app = await startHostApp(lab, 2, 'h2');
    await startHostSidecar(lab, 2, { appId: 'svc', appPort: app.port, config, internalPort: 50010, listenAddress: lab.address6(2) });
    const caller = await startHostSidecar(lab, 1, { appId: 'caller', config, listenAddress: lab.address6(1) });
    const driver = await startDriver(lab, 1);
    await driver.healthy(caller.httpPort);
    const { byHost, failures } = tally(await driver.calls(`http://127.0.0.1:${caller.httpPort}/v1.0/invoke/svc/method/whoami`, 5));
    assert.deepEqual(failures, []);
    assert.deepEqual(byHost, { h2: 5 });
    // The command browses once and waits browseTimeout (1 s by default) for answers: on a busy machine
    // the answering sidecar may take longer, so the command is given a wide margin.
    const cliConfig = writeConfig(lab, 'mdns6-cli', 'mdns', { interfaces: ['cv0'], ipv6: true, browseTimeout: '10s' });
    const cli = lab.spawn(1, process.execPath, [courierBin, 'resolve', 'svc', '--config', cliConfig], { COURIER_HOME: join(lab.dir, 'home-h1') });
    await cli.exited;
    assert.match(cli.output, /\[fd77::2\]:50010/);
  });
});
