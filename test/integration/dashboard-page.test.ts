// The dashboard's page in a real browser (Debian's Chromium), fed by a made-up mesh of thirty apps:
// it draws every app and edge, fills its tables, keeps nodes where they are between updates, shows
// tapped calls, follows instances that go, and loads nothing from outside this machine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DashboardServer } from '../../src/cli/dashboard/server.js';
import { thirtyAppMesh } from '../../src/cli/dashboard/testing/fake-mesh.js';
import { browserMissing, graphOf, launchChromium, screenshot, waitUntil, watchPage } from '../framework/browser.js';

test('the page draws a thirty-app mesh, keeps it still between updates, and taps calls', { timeout: 120_000, skip: browserMissing() }, async (t) => {
  const mesh = thirtyAppMesh();
  const dashboard = await DashboardServer.start({ source: mesh, host: '127.0.0.1', port: 0, windowMs: 500, env: {} });
  t.after(() => dashboard.close());
  // Calls for the tap, as the sidecars would report them.
  let n = 0;
  const feeder = setInterval(() => {
    for (const edge of mesh.edges.slice(0, 10)) {
      n++;
      mesh.emit({
        at: Date.now(),
        direction: 'outbound',
        srcAppId: edge.src,
        dstAppId: edge.dst,
        method: n % 3 === 0 ? 'GET' : 'POST',
        path: `/orders/${n}`,
        status: n % 17 === 0 ? 503 : 200,
        latencyMs: 1 + (n % 40),
        traceId: n.toString(16).padStart(32, '0'),
        headers: { 'content-type': 'application/json' },
        errorCode: '',
        reportedBy: edge.src,
      });
    }
  }, 100);
  feeder.unref();
  t.after(() => clearInterval(feeder));

  const browser = await launchChromium();
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  const problems = watchPage(page);
  await page.goto(dashboard.url);

  const appCount = new Set(mesh.instances.map((i) => i.appId)).size;
  assert.equal(appCount, 30);
  const edgeCount = mesh.edges.length;
  await waitUntil(`${appCount} apps and ${edgeCount} edges drawn`, async () => {
    const { nodes, edges } = await graphOf(page);
    return nodes.length === appCount && edges.length === edgeCount;
  });
  await page.locator('#apps-table tbody tr').nth(appCount - 1).waitFor({ timeout: 20_000 });
  assert.equal(await page.locator('#apps-table tbody tr').count(), appCount);
  assert.equal(await page.locator('#instances-table tbody tr').count(), mesh.instances.length);
  await page.locator('#routes-table tbody tr').first().waitFor();
  assert.ok((await page.locator('#edges-table tbody tr').count()) === edgeCount);

  // Nodes stay where they are while the apps and edges stay the same (a few updates later).
  await page.waitForTimeout(600); // the first layout's animation
  const before = await graphOf(page);
  // Two more views come (the summary's time changes), and nothing moved.
  for (let i = 0; i < 2; i++) {
    const stamp = await page.locator('#summary').textContent();
    await waitUntil('a new view', async () => (await page.locator('#summary').textContent()) !== stamp, 10_000);
  }
  const after = await graphOf(page);
  assert.deepEqual(after.nodes.map((x) => [x.id, x.position]), before.nodes.map((x) => [x.id, x.position]));
  // No two nodes overlap: the layout keeps thirty apps apart.
  for (const a of after.nodes) {
    for (const b of after.nodes) {
      if (a.id < b.id) assert.ok(Math.abs(a.position.x - b.position.x) > 40 || Math.abs(a.position.y - b.position.y) > 40, `${a.id} and ${b.id} overlap`);
    }
  }
  assert.ok(after.edges.every((e) => e.rps > 0), 'every edge has a rate');

  // The tap shows calls, and narrows to a status class.
  await page.locator('#tap tbody tr').first().waitFor({ timeout: 20_000 });
  await page.locator('#tap input[name=status]').fill('5xx');
  await waitUntil('the tap shows only 503s', async () => {
    const rows = await page.locator('#tap tbody tr').count();
    return rows > 0 && (await page.locator('#tap tbody tr:not([data-status="503"])').count()) === 0;
  }, 20_000);
  await page.locator('#tap .tap-clear').click();
  await page.locator('#tap input[name=status]').fill('');

  // An instance goes: its row leaves the instances table.
  const gone = mesh.instances.find((i) => i.appId === 'payments');
  assert.ok(gone);
  mesh.removeInstance(gone);
  await waitUntil('the instance leaves the table', async () => (await page.locator('#instances-table tbody tr').count()) === mesh.instances.length, 20_000);

  await page.locator('#config summary').click();
  await page.locator('#tap tbody tr').nth(5).waitFor({ timeout: 20_000 });
  await page.waitForTimeout(500); // let the tap's rows and the charts paint before the picture
  const path = await screenshot(page, 'dashboard-30-apps.png');
  console.log(`screenshot: ${path}`);
  assert.deepEqual(problems.offLoopback, []);
  assert.deepEqual(problems.errors, []);
});
