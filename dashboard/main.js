// The dashboard page: one EventSource for the views (a MeshView every window), one for the tap.
// Everything shown is rebuilt from the latest view; nothing is fetched from anywhere but this server.
import { AppCharts, pointOf } from './charts.js';
import { el, formatMs, formatRps, formatSuccess, formatUptime, successClass } from './format.js';
import { CallGraph } from './graph.js';
import { SortableTable } from './table.js';
import { TapView } from './tap.js';

const $ = (selector) => document.querySelector(selector);

let view = null;
let selectedApp = '';

const graph = new CallGraph($('#graph'), { onSelect: (appId) => selectApp(appId) });
const charts = new AppCharts($('#charts'));
const tap = new TapView($('#tap'));

const stats = (get) => [
  { label: 'rps', numeric: true, value: (r) => get(r).rps, text: (r) => formatRps(get(r).rps) },
  { label: 'success', numeric: true, value: (r) => get(r).successRate, text: (r) => formatSuccess(get(r).successRate), cls: (r) => `success-${successClass(get(r).successRate)}` },
  { label: 'p50', numeric: true, value: (r) => get(r).p50, text: (r) => formatMs(get(r).p50) },
  { label: 'p95', numeric: true, value: (r) => get(r).p95, text: (r) => formatMs(get(r).p95) },
  { label: 'p99', numeric: true, value: (r) => get(r).p99, text: (r) => formatMs(get(r).p99) },
];

const appsTable = new SortableTable(
  $('#apps-table'),
  [
    { label: 'app', value: (a) => a.appId, text: (a) => a.appId, cls: () => 'name' },
    { label: 'instances', numeric: true, value: (a) => a.instances.length, text: (a) => instancesText(a), cls: (a) => `health-${appHealth(a)}` },
    ...stats((a) => a.inbound),
    { label: 'out rps', numeric: true, value: (a) => a.outbound.rps, text: (a) => formatRps(a.outbound.rps) },
  ],
  { key: (a) => a.appId, rowData: (a) => ({ app: a.appId }), sort: { column: 0, descending: false }, empty: 'No sidecars found yet.', onRowClick: (a) => selectApp(a.appId), selected: () => selectedApp, selectKey: (a) => a.appId },
);

const instancesTable = new SortableTable(
  $('#instances-table'),
  [
    { label: 'app', value: (i) => i.appId, text: (i) => i.appId, cls: () => 'name' },
    { label: 'address', value: (i) => i.address, text: (i) => i.address || i.metricsUrl, cls: () => 'mono', title: (i) => `metrics: ${i.metricsUrl}` },
    { label: 'protocol', value: (i) => i.protocol, text: (i) => i.protocol || '–' },
    { label: 'mTLS identity', value: (i) => i.identity, text: (i) => i.identity ?? 'off', cls: (i) => (i.identity ? 'mono identity' : 'muted'), title: (i) => i.identity ?? '' },
    { label: 'health', value: (i) => i.health, text: (i) => i.health, cls: (i) => `health-${i.health}`, title: (i) => i.error ?? '' },
    { label: 'uptime', numeric: true, value: (i) => i.uptimeSeconds, text: (i) => formatUptime(i.uptimeSeconds) },
    { label: 'version', value: (i) => i.version, text: (i) => i.version || '–' },
    { label: 'pid', numeric: true, value: (i) => i.pid, text: (i) => (i.pid == null ? '–' : String(i.pid)) },
  ],
  { key: (i) => `${i.appId} ${i.metricsUrl}`, sort: { column: 0, descending: false }, empty: 'No instances.', rowClass: (i) => `instance health-${i.health}`, rowData: (i) => ({ app: i.appId, metrics: i.metricsUrl, health: i.health }), selected: () => selectedApp, selectKey: (i) => i.appId },
);

const edgesTable = new SortableTable(
  $('#edges-table'),
  [
    { label: 'caller → callee', value: (e) => `${e.src} ${e.dst}`, text: (e) => `${e.src} → ${e.dst}`, cls: () => 'name' },
    ...stats((e) => e.stats),
  ],
  { key: (e) => `${e.src} ${e.dst}`, rowData: (e) => ({ src: e.src, dst: e.dst, rps: String(e.stats.rps) }), sort: { column: 0, descending: false }, empty: 'No calls between apps in this window.' },
);

const routesTable = new SortableTable(
  $('#routes-table'),
  [
    { label: 'app', value: (r) => r.appId, text: (r) => r.appId, cls: () => 'name' },
    { label: 'verb', value: (r) => r.verb, text: (r) => r.verb, cls: () => 'mono' },
    { label: 'route', value: (r) => r.route, text: (r) => r.route, cls: () => 'mono path', title: (r) => r.route },
    ...stats((r) => r.stats),
  ],
  { key: (r) => `${r.appId} ${r.verb} ${r.route}`, sort: { column: 0, descending: false }, empty: 'No calls received in this window.', limit: 200 },
);

const configTable = new SortableTable(
  $('#config-table'),
  [
    { label: 'app', value: (i) => i.appId, text: (i) => i.appId, cls: () => 'name' },
    { label: 'instance', value: (i) => i.address, text: (i) => i.address, cls: () => 'mono' },
    { label: 'resolver', value: (i) => i.info.resolver, text: (i) => i.info.resolver || '–' },
    { label: 'mTLS', value: (i) => i.info.mtls, text: (i) => mtlsText(i.info), cls: (i) => (i.info.mtls ? '' : 'muted') },
    { label: 'access control', value: (i) => i.info.accessControl.defaultAction, text: (i) => aclText(i.info) },
    { label: 'resiliency', value: (i) => i.info.resiliency.resources.length, text: (i) => resiliencyText(i.info) },
    { label: 'tracing', value: (i) => i.info.tracing.samplingRate, text: (i) => tracingText(i.info) },
    { label: 'config', value: (i) => i.info.config, text: (i) => i.info.config || '–' },
  ],
  { key: (i) => `${i.appId} ${i.metricsUrl}`, sort: { column: 0, descending: false }, empty: 'No sidecar has answered yet.' },
);

function instancesText(app) {
  const healthy = app.instances.filter((i) => i.health === 'healthy').length;
  return `${healthy}/${app.instances.length}`;
}

function appHealth(app) {
  const healthy = app.instances.filter((i) => i.health === 'healthy').length;
  return healthy === app.instances.length ? 'healthy' : healthy === 0 ? 'unreachable' : 'unhealthy';
}

function mtlsText(info) {
  if (!info.mtls) return 'off';
  if (!info.certificateExpiry) return 'on';
  const left = (Date.parse(info.certificateExpiry) - Date.now()) / 1000;
  return left > 0 ? `on · certificate for ${formatUptime(left)} more` : 'on · certificate expired';
}

function aclText(info) {
  const { defaultAction, policies } = info.accessControl;
  return policies.length === 0 ? `default ${defaultAction}` : `default ${defaultAction}; policies for ${policies.join(', ')}`;
}

function resiliencyText(info) {
  const { resources, targets } = info.resiliency;
  if (resources.length === 0) return 'built-in only';
  return `${resources.join(', ')}${targets.length ? ` → ${targets.join(', ')}` : ''}`;
}

function tracingText(info) {
  const { samplingRate, exporter } = info.tracing;
  if (samplingRate === 0) return 'off';
  return `${Number((samplingRate * 100).toPrecision(3))}% sampled${exporter ? `, to ${exporter}` : ''}`;
}

/** Selects an app in the graph and the tables, and charts it; '' clears the selection (the chart stays). */
function selectApp(appId) {
  selectedApp = appId;
  if (appId) {
    charts.show(appId);
    $('#chart-app').value = appId;
  }
  graph.select(appId);
  appsTable.refresh();
  instancesTable.refresh();
}

function render(next) {
  view = next;
  const instances = view.apps.flatMap((a) => a.instances);
  graph.update(view);
  appsTable.update(view.apps);
  instancesTable.update(instances);
  edgesTable.update(view.edges);
  routesTable.update(view.routes);
  configTable.update(instances.filter((i) => i.info != null));
  tap.setApps(view.apps.map((a) => a.appId));
  renderSummary(instances);
  renderAppChoice();
  renderA11yGraph();
  charts.add(pointOf(view));
}

function renderSummary(instances) {
  const healthy = instances.filter((i) => i.health === 'healthy').length;
  const rps = view.apps.reduce((sum, a) => sum + a.inbound.rps, 0);
  const calls = view.apps.reduce((sum, a) => sum + a.inbound.calls, 0);
  const failures = view.apps.reduce((sum, a) => sum + a.inbound.failures, 0);
  const items = [
    ['apps', String(view.apps.length)],
    ['instances', `${healthy}/${instances.length} healthy`],
    ['received', `${formatRps(rps)} rps`],
    ['success', calls === 0 ? '–' : formatSuccess((calls - failures) / calls)],
    ['window', `${view.windowSeconds.toFixed(1)} s`],
    ['updated', new Date(view.at).toLocaleTimeString()],
  ];
  $('#summary').replaceChildren(...items.map(([k, v]) => {
    const item = el('span', 'summary-item');
    item.append(el('span', 'k', k), el('span', 'v', v));
    return item;
  }));
}

function renderAppChoice() {
  const select = $('#chart-app');
  const ids = view.apps.map((a) => a.appId).sort();
  if (charts.appId === '' && ids.length > 0) {
    // The busiest app first, so the charts show something moving.
    const busiest = [...view.apps].sort((a, b) => b.inbound.rps - a.inbound.rps || a.appId.localeCompare(b.appId))[0];
    charts.show(busiest.appId);
  }
  const wanted = [...new Set([...ids, ...(charts.appId ? [charts.appId] : [])])].sort();
  if ([...select.options].map((o) => o.value).join('\n') !== wanted.join('\n')) {
    select.replaceChildren(...wanted.map((id) => new Option(id, id)));
  }
  select.value = charts.appId;
}

/** The graph as text for screen readers (the canvas itself says nothing). */
function renderA11yGraph() {
  const { nodes, edges } = graph.snapshot();
  const list = $('#graph-text');
  list.replaceChildren(
    ...nodes.map((n) => el('li', 'graph-node', `app ${n.id}: ${n.detail}`)),
    ...edges.map((e) => {
      const li = el('li', 'graph-edge', `${e.src} calls ${e.dst}: ${e.label.replace('\n', ', ')}`);
      li.dataset.src = e.src;
      li.dataset.dst = e.dst;
      li.dataset.rps = String(e.rps);
      return li;
    }),
  );
}

function setStatus(state, text) {
  const status = $('#status');
  status.dataset.state = state;
  status.textContent = text;
}

function connectViews() {
  const source = new EventSource('api/events');
  setStatus('connecting', 'connecting…');
  source.addEventListener('open', () => setStatus('live', 'live'));
  source.addEventListener('error', () => setStatus('connecting', 'reconnecting…'));
  source.addEventListener('history', (e) => charts.setHistory(JSON.parse(e.data)));
  source.addEventListener('view', (e) => render(JSON.parse(e.data)));
  source.addEventListener('problem', (e) => {
    const { message } = JSON.parse(e.data);
    const banner = $('#problem');
    banner.hidden = message == null;
    banner.textContent = message ?? '';
  });
}

$('#chart-app').addEventListener('change', (e) => selectApp(e.target.value));
$('#fit').addEventListener('click', () => graph.fit());
connectViews();
tap.connect();

// For a look from the browser's console: the latest view and what the graph draws.
window.courierDashboard = { get view() { return view; }, graph: () => graph.snapshot() };
