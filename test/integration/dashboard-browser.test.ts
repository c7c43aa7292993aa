// `courier dashboard` as a person uses it: real sidecars and apps (the hello-world demo, and a chain
// frontend → orders → stock under load), the dashboard started from the CLI, the page opened in
// Debian's Chromium. It checks what the page shows: the apps, edges with live rates, an instance
// that starts and one that stops, calls in the tap; and saves a screenshot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse, stringify } from 'yaml';
import type { Page } from 'playwright-core';
import { repoRoot, TestEnv } from '../framework/env.js';
import { CliProcess, freePort, waitForListed, waitGone } from '../framework/cli-process.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { startApp, type TestApp } from '../framework/test-app.js';
import { browserMissing, graphOf, launchChromium, screenshot, waitUntil, watchPage } from '../framework/browser.js';

interface RunFile {
  apps: Array<{ appID: string; appPort?: number; env?: Record<string, string> }>;
}

/** Generous: a busy machine runs many suites at once. */
const WAIT = { timeout: 60_000 };

/** The hello-world example, copied into the test's home with nodeapp on a free port. */
async function helloWorld(env: TestEnv): Promise<CliProcess> {
  const dir = join(env.home, 'hello-world');
  cpSync(join(repoRoot, 'examples', 'hello-world'), dir, { recursive: true });
  const file = parse(readFileSync(join(dir, 'dapr.yaml'), 'utf8')) as RunFile;
  const node = file.apps.find((a) => a.appID === 'nodeapp');
  assert.ok(node);
  node.appPort = await freePort();
  writeFileSync(join(dir, 'dapr.yaml'), stringify(file));
  return new CliProcess(env, ['run', '-f', dir]);
}

/** An app that answers `/reserve`: 200, and 503 for one call in 25 (so success is not always 100%). */
async function stockInstance(env: TestEnv): Promise<{ app: TestApp; sidecar: SidecarProcess }> {
  let n = 0;
  const app = await startApp(env, (a) =>
    a.route('/reserve', (_req, res) => {
      n++;
      res.writeHead(n % 25 === 0 ? 503 : 200, { 'content-type': 'application/json' });
      res.end('{"reserved":true}');
    }),
  );
  app.checkConnectionsOnClose = false;
  const sidecar = await startSidecar(env, { appId: 'stock', appPort: app.port, waitForApp: true });
  return { app, sidecar };
}

/**
 * Calls frontend's sidecar → orders, with a few callers at once, until stopped (or two minutes
 * passed): bounded in time, loopback only.
 */
function load(port: number): { stop(): Promise<void>; sent(): number } {
  let stopped = false;
  let sent = 0;
  const until = Date.now() + 120_000;
  const worker = async (id: number): Promise<void> => {
    while (!stopped && Date.now() < until) {
      const post = (sent + id) % 3 !== 0;
      try {
        const res = await fetch(`http://127.0.0.1:${port}/v1.0/invoke/orders/method/${post ? 'orders' : 'orders/status'}`, {
          method: post ? 'POST' : 'GET',
          headers: post ? { 'content-type': 'application/json', authorization: 'Bearer not-for-the-page' } : {},
          ...(post ? { body: '{"item":"book","count":1}' } : {}),
        });
        await res.arrayBuffer();
      } catch {
        // an instance going away mid-call: the load goes on
      }
      sent++;
      await sleep(25);
    }
  };
  const workers = [0, 1, 2, 3].map(worker);
  return {
    stop: async () => {
      stopped = true;
      await Promise.all(workers);
    },
    sent: () => sent,
  };
}

interface Dashboard {
  readonly cli: CliProcess;
  readonly url: string;
}

async function startDashboard(env: TestEnv): Promise<Dashboard> {
  const cli = new CliProcess(env, ['dashboard', '--port', '0']);
  const [, url] = await cli.waitFor(/Courier dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/);
  assert.ok(url);
  return { cli, url };
}

/** Waits until the page's table of calls between apps lists src → dst with a rate above zero. */
async function edgeWithTraffic(page: Page, src: string, dst: string): Promise<void> {
  const row = page.locator(`#edges-table tr[data-src="${src}"][data-dst="${dst}"]`);
  await waitUntil(`${src} → ${dst} with calls per second above 0`, async () => Number(await row.getAttribute('data-rps', { timeout: 1000 })) > 0);
}

test('courier dashboard shows the demo and a chain under load, live, in a browser', { timeout: 300_000, skip: browserMissing() }, async (t) => {
  const env = new TestEnv();
  let stopLoad = async (): Promise<void> => {};
  let closeBrowser = async (): Promise<void> => {};
  t.after(async () => {
    try {
      await stopLoad();
      await closeBrowser();
    } finally {
      await env.close();
    }
  });

  // The hello-world demo: pythonapp posts an order to nodeapp every second.
  const demo = await helloWorld(env);
  await demo.waitFor(/== APP - pythonapp == Sent order 1: HTTP 200/, 90_000);
  const demoPids = (await waitForListed(env, ['nodeapp', 'pythonapp'])).flatMap((e) => [e.daprdPid, e.appPid].filter((pid) => pid > 0));

  // The chain: the test calls frontend's sidecar, orders' app calls stock through its own sidecar.
  const stock = await stockInstance(env);
  const orders: { sidecar?: SidecarProcess } = {};
  const ordersApp = await startApp(env, (a) =>
    a.fallback(async (req, res) => {
      assert.ok(orders.sidecar);
      const answer = await fetch(`http://127.0.0.1:${orders.sidecar.httpPort}/v1.0/invoke/stock/method/reserve`, { method: 'POST', body: '{}' });
      await answer.arrayBuffer();
      res.writeHead(answer.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ path: req.url, stock: answer.status }));
    }),
  );
  ordersApp.checkConnectionsOnClose = false;
  orders.sidecar = await startSidecar(env, { appId: 'orders', appPort: ordersApp.port, waitForApp: true });
  const frontend = await startSidecar(env, { appId: 'frontend' });
  const traffic = load(frontend.httpPort);
  stopLoad = () => traffic.stop();

  const dashboard = await startDashboard(env);
  const browser = await launchChromium();
  closeBrowser = () => browser.close();
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  const problems = watchPage(page);
  await page.goto(dashboard.url);

  // Every app appears, in the graph and in the apps table.
  const apps = ['frontend', 'nodeapp', 'orders', 'pythonapp', 'stock'];
  for (const app of apps) await page.locator(`#apps-table tr[data-app="${app}"]`).waitFor(WAIT);
  await waitUntil(`the graph draws ${apps.join(', ')}`, async () => {
    const { nodes } = await graphOf(page);
    return apps.every((id) => nodes.some((n) => n.id === id));
  });

  // The edges carry traffic: the demo's and the chain's.
  await edgeWithTraffic(page, 'pythonapp', 'nodeapp');
  await edgeWithTraffic(page, 'frontend', 'orders');
  await edgeWithTraffic(page, 'orders', 'stock');
  const graph = await graphOf(page);
  for (const [src, dst] of [['pythonapp', 'nodeapp'], ['frontend', 'orders'], ['orders', 'stock']]) {
    assert.ok(graph.edges.some((e) => e.src === src && e.dst === dst), `${src} → ${dst} drawn`);
  }
  // The routes table has the chain's routes.
  await page.locator('#routes-table tbody tr', { hasText: '/reserve' }).first().waitFor(WAIT);

  // A new instance of stock appears; the first one, stopped, goes away (or shows unreachable).
  const second = await stockInstance(env);
  const instanceRow = (sidecar: SidecarProcess): string => `#instances-table tr[data-app="stock"][data-metrics="http://127.0.0.1:${sidecar.metricsPort}"]`;
  await page.locator(instanceRow(second.sidecar)).waitFor(WAIT);
  await waitUntil('the new stock instance is healthy', async () => (await page.locator(instanceRow(second.sidecar)).getAttribute('data-health', { timeout: 1000 })) === 'healthy');
  await stock.sidecar.stop();
  await waitUntil('the stopped stock instance is gone or unreachable', async () => {
    const row = page.locator(instanceRow(stock.sidecar));
    return (await row.count()) === 0 || (await row.getAttribute('data-health', { timeout: 1000 })) === 'unreachable';
  });
  // Calls go on through the second instance.
  await edgeWithTraffic(page, 'orders', 'stock');

  // The tap shows calls, with a trace id, and never a header value.
  const tapRow = page.locator('#tap tbody tr', { hasText: 'frontend → orders' }).first();
  await tapRow.waitFor(WAIT);
  assert.match((await tapRow.locator('td.trace').textContent()) ?? '', /^[0-9a-f]{32}$/);
  await page.locator('#tap tbody tr', { hasText: 'pythonapp → nodeapp' }).first().waitFor(WAIT);
  assert.ok(!(await page.locator('#tap').innerText()).includes('not-for-the-page'));
  // And narrows to one app.
  await page.locator('#tap select[name=app]').selectOption('stock');
  await waitUntil('the tap shows only calls of stock', async () => {
    const rows = await page.locator('#tap tbody tr').allTextContents();
    return rows.length > 0 && rows.every((text) => text.includes('stock'));
  });
  await page.locator('#tap select[name=app]').selectOption('');
  await page.locator('#tap tbody tr', { hasText: 'pythonapp → nodeapp' }).first().waitFor(WAIT);

  // The picture: the demo's and the chain's call graph, with nothing selected.
  await page.locator('#config summary').click();
  await page.locator('#config-table tbody tr[data-key]').first().waitFor(WAIT);
  await page.waitForTimeout(1000); // lets the charts and the tap's rows paint; nothing is checked after it
  const path = await screenshot(page, 'dashboard.png');
  console.log(`screenshot: ${path}`);

  assert.ok(traffic.sent() > 0);
  assert.deepEqual(problems.offLoopback, [], 'the page loads nothing from outside this machine');
  assert.deepEqual(problems.errors, []);
  await stopLoad();
  stopLoad = async () => {};
  // Ctrl-C ends the dashboard cleanly, and the demo with its apps and sidecars.
  dashboard.cli.child.kill('SIGINT');
  assert.equal((await dashboard.cli.waitForExit()).code, 0, dashboard.cli.output);
  demo.child.kill('SIGINT');
  assert.equal((await demo.waitForExit()).code, 0, demo.output);
  assert.deepEqual(await waitGone(demoPids), [], "the demo's apps and sidecars stopped");
});
