import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MeshView, TappedCall } from '../mesh/view-types.js';
import { dashboardFlags, dashboardSettings } from './command.js';
import { parseFlags } from '../flags.js';
import { DashboardServer, type HistoryPoint } from './server.js';
import { matchesTap, parseTapFilters, type PageCall } from './tap.js';
import { FakeMesh } from './testing/fake-mesh.js';
import { SseReader } from './testing/sse-reader.js';

const TOKEN = 'secret-token-never-on-the-page';

async function startDashboard(t: TestContext, mesh: FakeMesh, windowMs = 60_000): Promise<DashboardServer> {
  const dashboard = await DashboardServer.start({ source: mesh, host: '127.0.0.1', port: 0, windowMs, token: TOKEN, addresses: ['10.0.0.9:9090'], env: {} });
  t.after(() => dashboard.close());
  return dashboard;
}

/** Two reads a window apart: the first view. */
async function firstView(dashboard: DashboardServer): Promise<MeshView> {
  while (dashboard.view === undefined) await dashboard.refresh();
  return dashboard.view;
}

interface Got {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

function get(port: number, path: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers ?? {}, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

function call(overrides: Partial<TappedCall>): TappedCall {
  return {
    at: Date.now(),
    direction: 'outbound',
    srcAppId: 'a',
    dstAppId: 'b',
    method: 'POST',
    path: '/orders/1',
    status: 200,
    latencyMs: 3.2,
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    headers: { authorization: 'Bearer abc', 'content-type': 'application/json' },
    errorCode: '',
    reportedBy: 'a',
    ...overrides,
  };
}

test('serves the page, its modules and the libraries from the package, nothing else', async (t) => {
  const dashboard = await startDashboard(t, new FakeMesh());
  const page = await get(dashboard.port, '/');
  assert.equal(page.status, 200);
  assert.match(String(page.headers['content-type']), /^text\/html/);
  assert.match(page.text, /<script type="module" src="main.js">/);
  assert.match(String(page.headers['content-security-policy']), /default-src 'self'/);
  for (const [path, type] of [
    ['/main.js', /^text\/javascript/],
    ['/style.css', /^text\/css/],
    ['/vendor/cytoscape.js', /^text\/javascript/],
    ['/vendor/cytoscape-dagre.js', /^text\/javascript/],
    ['/vendor/uplot.js', /^text\/javascript/],
    ['/vendor/uplot.css', /^text\/css/],
  ] as const) {
    const res = await get(dashboard.port, path);
    assert.equal(res.status, 200, path);
    assert.match(String(res.headers['content-type']), type, path);
    // A reload with the validator costs nothing.
    const again = await get(dashboard.port, path, { headers: { 'if-none-match': String(res.headers.etag) } });
    assert.equal(again.status, 304, path);
  }
  // The libraries are ES modules with a default export, as the page imports them.
  assert.match((await get(dashboard.port, '/vendor/cytoscape.js')).text, /export\s*\{[^}]*as default/);
  for (const path of ['/../package.json', '/vendor/../../package.json', '/%2e%2e/package.json', '/vendor/cytoscape.min.js', '/nothing']) {
    assert.equal((await get(dashboard.port, path)).status, 404, path);
  }
  assert.equal((await get(dashboard.port, '/', { method: 'POST' })).status, 405);
});

test('on loopback, a request naming another host (DNS rebinding) is refused', async (t) => {
  const dashboard = await startDashboard(t, new FakeMesh());
  assert.equal((await get(dashboard.port, '/', { headers: { host: 'evil.example:8080' } })).status, 403);
  assert.equal((await get(dashboard.port, '/api/view', { headers: { host: `attacker.test:${dashboard.port}` } })).status, 403);
  assert.equal((await get(dashboard.port, '/', { headers: { host: `localhost:${dashboard.port}` } })).status, 200);
  assert.equal((await get(dashboard.port, '/', { headers: { host: `[::1]:${dashboard.port}` } })).status, 200);
});

test('/api/view: 503 until a window has passed, then the view; the token goes to the sidecars, never to the page', async (t) => {
  const mesh = new FakeMesh();
  mesh.addInstance('checkout');
  mesh.addInstance('orders');
  mesh.addEdge('checkout', 'orders', 12);
  const dashboard = await startDashboard(t, mesh);
  const early = await get(dashboard.port, '/api/view');
  if (dashboard.view === undefined) assert.equal(early.status, 503);
  await firstView(dashboard);
  const res = await get(dashboard.port, '/api/view');
  assert.equal(res.status, 200);
  const view = JSON.parse(res.text) as MeshView;
  assert.deepEqual(view.apps.map((a) => a.appId).sort(), ['checkout', 'orders']);
  assert.equal(view.edges[0]?.src, 'checkout');
  assert.ok(mesh.sampleOptions.length >= 2);
  assert.ok(mesh.sampleOptions.every((o) => o.token === TOKEN));
  assert.deepEqual(mesh.lastAddresses, ['10.0.0.9:9090']);
  assert.ok(!res.text.includes(TOKEN));
});

test('/api/events: the history, then a view every window; instances that come and go are found again', async (t) => {
  const mesh = new FakeMesh();
  mesh.addInstance('a');
  const b1 = mesh.addInstance('b');
  mesh.addEdge('a', 'b', 5);
  const dashboard = await startDashboard(t, mesh, 300);
  await firstView(dashboard);
  const events = await SseReader.open(dashboard.port, '/api/events');
  t.after(() => events.close());
  assert.match(String(events.response.headers['content-type']), /^text\/event-stream/);
  const history = await events.next<HistoryPoint[]>('history');
  assert.ok(history.length >= 1);
  assert.ok(history.at(-1)?.apps.b !== undefined);
  await events.next<MeshView>('view', (v) => v.apps.some((a) => a.appId === 'b'));
  // A second instance of b appears; the first goes.
  mesh.addInstance('b');
  await events.next<MeshView>('view', (v) => v.apps.find((a) => a.appId === 'b')?.instances.length === 2);
  mesh.removeInstance(b1);
  await events.next<MeshView>('view', (v) => v.apps.find((a) => a.appId === 'b')?.instances.length === 1);
  // The loop goes on by itself, about once a window.
  const before = events.events.filter((e) => e.event === 'view').length;
  await sleep(1000);
  assert.ok(events.events.filter((e) => e.event === 'view').length >= before + 2);
  assert.ok(!events.events.some((e) => e.data.includes(TOKEN)));
});

test('with no sidecar found, the page is told so; the message goes once sidecars are found', async (t) => {
  const mesh = new FakeMesh();
  const dashboard = await startDashboard(t, mesh, 200);
  const events = await SseReader.open(dashboard.port, '/api/events');
  t.after(() => events.close());
  assert.match((await events.next<{ message: string | null }>('problem', (p) => p.message !== null)).message ?? '', /no Courier sidecars found/);
  mesh.addInstance('a');
  await events.next<{ message: string | null }>('problem', (p) => p.message === null);
  await events.next<MeshView>('view', (v) => v.apps.length === 1);
});

test('/api/tap: one upstream per sidecar for each page, filtered, header values hidden; closed when the page goes', async (t) => {
  const mesh = new FakeMesh();
  mesh.addInstance('a');
  mesh.addInstance('b');
  const dashboard = await startDashboard(t, mesh);
  await firstView(dashboard);
  const tap = await SseReader.open(dashboard.port, '/api/tap?app=b&status=5xx');
  t.after(() => tap.close());
  assert.deepEqual(await tap.next('filters'), { app: 'b', status: '5xx' });
  assert.equal(mesh.openTaps.length, 2);
  assert.ok(mesh.openTaps.every((open) => open.options.token === TOKEN && open.filters.app === 'b'));
  mesh.emit(call({ status: 200 }));
  mesh.emit(call({ srcAppId: 'a', dstAppId: 'c', status: 503 }));
  mesh.emit(call({ status: 503, path: '/orders/9', reportedBy: 'b', direction: 'inbound' }));
  const got = await tap.next<PageCall>('call');
  assert.equal(got.status, 503);
  assert.equal(got.path, '/orders/9');
  assert.equal(got.direction, 'inbound');
  assert.equal(got.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
  assert.deepEqual(got.headers, ['authorization', 'content-type']);
  assert.ok(!JSON.stringify(tap.events).includes('Bearer'));
  assert.equal(tap.events.filter((e) => e.event === 'call').length, 1, 'only the call that passes the filter');

  // A new instance is tapped once discovery finds it; a second page has taps of its own.
  mesh.addInstance('c');
  await dashboard.refresh();
  assert.equal(mesh.openTaps.length, 3);
  const second = await SseReader.open(dashboard.port, '/api/tap');
  await second.next('filters');
  assert.equal(mesh.openTaps.length, 6);
  assert.equal(dashboard.tapSessions, 2);
  second.close();
  tap.close();
  for (let i = 0; i < 100 && (mesh.openTaps.length > 0 || dashboard.tapSessions > 0); i++) await sleep(20);
  assert.equal(mesh.openTaps.length, 0, 'every upstream tap closed with its page');
  assert.equal(dashboard.tapSessions, 0);
});

test('/api/tap: a sidecar stream that fails is opened again at the next read', async (t) => {
  const mesh = new FakeMesh();
  mesh.addInstance('a');
  const dashboard = await startDashboard(t, mesh);
  await firstView(dashboard);
  const tap = await SseReader.open(dashboard.port, '/api/tap');
  t.after(() => tap.close());
  await tap.next('filters');
  const [first] = mesh.openTaps;
  assert.ok(first);
  mesh.failTap(first);
  await dashboard.refresh();
  assert.equal(mesh.taps.length, 2);
  assert.equal(mesh.openTaps.length, 1);
  assert.notEqual(mesh.openTaps[0], first);
  mesh.emit(call({ reportedBy: 'a' }));
  assert.equal((await tap.next<PageCall>('call')).reportedBy, 'a');
});

test('/api/tap refuses a malformed filter', async (t) => {
  const dashboard = await startDashboard(t, new FakeMesh());
  const res = await get(dashboard.port, '/api/tap?status=abc');
  assert.equal(res.status, 400);
  assert.match(res.text, /status/);
});

test('close() ends open streams and upstream taps at once', async (t) => {
  const mesh = new FakeMesh();
  mesh.addInstance('a');
  const dashboard = await startDashboard(t, mesh);
  await firstView(dashboard);
  const events = await SseReader.open(dashboard.port, '/api/events');
  const tap = await SseReader.open(dashboard.port, '/api/tap');
  await tap.next('filters');
  await dashboard.close();
  await events.closedByServer();
  await tap.closedByServer();
  assert.equal(mesh.openTaps.length, 0);
});

test('tap filters: app is either end, path a prefix, status exact or a class', () => {
  const filters = parseTapFilters(new URLSearchParams('app=b&path=orders&status=5XX'));
  assert.deepEqual(filters, { app: 'b', path: '/orders', status: '5xx' });
  assert.ok(matchesTap(filters, call({ dstAppId: 'b', path: '/orders/1', status: 502 })));
  assert.ok(matchesTap(filters, call({ srcAppId: 'b', dstAppId: 'x', path: '/orders', status: 500 })));
  assert.ok(!matchesTap(filters, call({ dstAppId: 'b', path: '/orders/1', status: 404 })));
  assert.ok(!matchesTap(filters, call({ dstAppId: 'b', path: '/items', status: 500 })));
  assert.ok(!matchesTap(filters, call({ srcAppId: 'x', dstAppId: 'y', status: 500, path: '/orders' })));
  assert.ok(matchesTap({ status: '0' }, call({ status: 0 })));
  assert.ok(!matchesTap({ status: '200' }, call({ status: 201 })));
  assert.throws(() => parseTapFilters(new URLSearchParams('status=6xx')), /status/);
  assert.throws(() => parseTapFilters(new URLSearchParams('app=a b')), /app/);
});

test('flags: loopback and 8080 by default, a 2 s window, --sidecar host:port repeatable', () => {
  const parse = (argv: string[]) => dashboardSettings(parseFlags('dashboard', argv, dashboardFlags).values);
  assert.deepEqual(parse([]), { host: '127.0.0.1', port: 8080, windowMs: 2000, addresses: [] });
  assert.deepEqual(parse(['--port', '0', '--window', '500ms', '--sidecar', '10.1.2.3:9090', '--sidecar=[::1]:9091', '--address', '::1']), {
    host: '::1',
    port: 0,
    windowMs: 500,
    addresses: ['10.1.2.3:9090', '[::1]:9091'],
  });
  assert.throws(() => parse(['--window', '10ms']), /--window/);
  assert.throws(() => parse(['--port', '70000']), /--port/);
  assert.throws(() => parse(['--sidecar', 'nohost']), /--sidecar/);
  assert.throws(() => parse(['--address', 'example.com']), /--address/);
});
