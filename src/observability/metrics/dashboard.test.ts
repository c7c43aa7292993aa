import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CounterFamily, HistogramFamily } from './family.js';
import { metricsSettings, SidecarMetrics } from './sidecar-metrics.js';

/**
 * The Grafana dashboard shipped in examples/grafana must only query what a Courier sidecar exposes:
 * a panel on a misspelt metric or label shows "No data" without any error, so users would not notice.
 */

interface Target {
  readonly refId?: string;
  readonly expr?: string;
}
interface Panel {
  readonly id?: number;
  readonly type?: string;
  readonly title?: string;
  readonly targets?: readonly Target[];
  readonly panels?: readonly Panel[];
  readonly fieldConfig?: { readonly defaults?: { readonly unit?: string } };
}
interface Variable {
  readonly name: string;
  readonly type: string;
  readonly query?: string | { readonly query?: string };
}
interface Dashboard {
  readonly uid: string;
  readonly title: string;
  readonly schemaVersion: number;
  readonly panels: readonly Panel[];
  readonly templating: { readonly list: readonly Variable[] };
}

const dashboard = JSON.parse(readFileSync(new URL('../../../examples/grafana/courier-dashboard.json', import.meta.url), 'utf8')) as Dashboard;

/** Every panel, those inside collapsed rows included. */
const panels: Panel[] = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);

interface MetricDefinition {
  readonly labels: ReadonlySet<string>;
  readonly histogram: boolean;
}

/** Labels Prometheus adds to every series it scrapes (the sidecar's metrics endpoint is the target). */
const SCRAPE_LABELS = ['instance', 'job'];

/** What a sidecar exposes: the metric families of SidecarMetrics, and the gauges the sidecar adds at start. */
function definedMetrics(): Map<string, MetricDefinition> {
  const defined = new Map<string, MetricDefinition>();
  for (const family of new SidecarMetrics(metricsSettings('x', {})).families) {
    const labels = family instanceof CounterFamily || family instanceof HistogramFamily ? family.labelNames : [];
    defined.set(family.name, { labels: new Set(labels), histogram: family.type === 'histogram' });
  }
  // Added by the sidecar at start (Sidecar#createMetrics in src/runtime/sidecar.ts), not by SidecarMetrics itself.
  defined.set('process_cpu_seconds_total', { labels: new Set(), histogram: false });
  defined.set('process_resident_memory_bytes', { labels: new Set(), histogram: false });
  defined.set('process_start_time_seconds', { labels: new Set(), histogram: false });
  defined.set('courier_mtls_certificate_expiry_timestamp_seconds', { labels: new Set(['app_id']), histogram: false });
  return defined;
}

const defined = definedMetrics();

interface Reference {
  /** The name as written in the query (a histogram's `_bucket`, `_sum` or `_count` series included). */
  readonly name: string;
  /** Where the name starts in the query. */
  readonly index: number;
  /** The metric it belongs to, or undefined when the sidecar exposes no such series. */
  readonly metric: string | undefined;
  /** The labels the series has: the metric's, `le` on a histogram's buckets, and the scrape labels. */
  readonly labels: ReadonlySet<string>;
  /** The label matchers of its `{...}` selector, as [label, operator, value]. */
  readonly matchers: ReadonlyArray<readonly [string, string, string]>;
}

/** A series name as written in a query, resolved to the metric that exposes it. */
function resolve(name: string): { metric: string; labels: Set<string> } | undefined {
  const direct = defined.get(name);
  if (direct !== undefined) return { metric: name, labels: new Set([...direct.labels, ...SCRAPE_LABELS]) };
  const suffix = /_(bucket|sum|count)$/.exec(name);
  if (suffix === null) return undefined;
  const base = name.slice(0, suffix.index);
  const histogram = defined.get(base);
  if (histogram === undefined || !histogram.histogram) return undefined;
  return { metric: base, labels: new Set([...histogram.labels, ...SCRAPE_LABELS, ...(suffix[1] === 'bucket' ? ['le'] : [])]) };
}

const MATCHER = /([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g;

/** The Courier and Dapr metrics a query reads, each with its selector's matchers. */
function references(expr: string): Reference[] {
  const found: Reference[] = [];
  for (const m of expr.matchAll(/\b(?:dapr_|courier_|process_)[a-z0-9_]+/g)) {
    const after = m.index + m[0].length;
    const open = /^\s*\{/.exec(expr.slice(after));
    const matchers: Array<readonly [string, string, string]> = [];
    if (open !== null) {
      const start = after + open[0].length;
      const end = expr.indexOf('}', start);
      assert.ok(end > 0, `unclosed selector after ${m[0]} in: ${expr}`);
      const body = expr.slice(start, end);
      for (const matcher of body.matchAll(MATCHER)) matchers.push([matcher[1] as string, matcher[2] as string, matcher[3] as string]);
      assert.equal(body.replace(MATCHER, '').replace(/[\s,]/g, ''), '', `selector of ${m[0]} not understood: {${body}}`);
    }
    const resolved = resolve(m[0]);
    found.push({ name: m[0], index: m.index, metric: resolved?.metric, labels: resolved?.labels ?? new Set(), matchers });
  }
  return found;
}

/** The text of the parenthesised group that opens at `open` (an index of `(`). */
function group(expr: string, open: number): string {
  let depth = 0;
  for (let i = open; i < expr.length; i++) {
    if (expr[i] === '(') depth++;
    else if (expr[i] === ')' && --depth === 0) return expr.slice(open + 1, i);
  }
  assert.fail(`unbalanced parentheses in: ${expr}`);
}

const split = (list: string): string[] =>
  list
    .split(',')
    .map((l) => l.trim())
    .filter((l) => l !== '');

/** Every label a query groups or joins by that is missing on the series it applies to, as messages. */
function unknownGroupingLabels(expr: string): string[] {
  const problems: string[] = [];
  // `agg by (labels) (argument)`: each label must be on every series the argument reads.
  for (const m of expr.matchAll(/\b(by|without)\s*\(([^)]*)\)\s*/g)) {
    const next = m.index + m[0].length;
    if (expr[next] !== '(') {
      problems.push(`write the aggregation as \`sum ${m[1] ?? 'by'} (...) (...)\` so its argument is known: ${expr}`);
      continue;
    }
    const argument = references(group(expr, next));
    assert.ok(argument.length > 0, `aggregation over no Courier metric in: ${expr}`);
    for (const label of split(m[2] as string)) {
      for (const ref of argument) if (!ref.labels.has(label)) problems.push(`${m[1] ?? 'by'} (${label}): ${ref.name} has no label ${label}`);
    }
  }
  // Vector matching (`on`, `ignoring`, `group_left`, `group_right`): each label must be on some series of the query.
  const all = references(expr);
  for (const m of expr.matchAll(/\b(on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g)) {
    for (const label of split(m[2] as string)) {
      if (!all.some((ref) => ref.labels.has(label))) problems.push(`${m[1] ?? 'on'} (${label}): no series of the query has label ${label}`);
    }
  }
  return problems;
}

function queries(): Array<{ where: string; expr: string }> {
  const list: Array<{ where: string; expr: string }> = [];
  for (const panel of panels) {
    for (const target of panel.targets ?? []) list.push({ where: `panel "${panel.title ?? '?'}" target ${target.refId ?? '?'}`, expr: target.expr ?? '' });
  }
  for (const variable of dashboard.templating.list) {
    if (variable.type !== 'query') continue;
    const query = typeof variable.query === 'string' ? variable.query : (variable.query?.query ?? '');
    list.push({ where: `variable $${variable.name}`, expr: query });
  }
  return list;
}

test('the dashboard is a Grafana dashboard with its data-source and app variables', () => {
  assert.equal(dashboard.uid, 'courier-overview');
  assert.equal(dashboard.title, 'Courier');
  assert.equal(dashboard.schemaVersion, 39);
  const variables = new Map(dashboard.templating.list.map((v) => [v.name, v]));
  assert.equal(variables.get('datasource')?.type, 'datasource');
  assert.equal(variables.get('datasource')?.query, 'prometheus');
  assert.equal(variables.get('app_id')?.type, 'query');
});

test('every panel has a unique id, a title, and (rows aside) a query and a unit', () => {
  const ids = new Set<number>();
  for (const panel of panels) {
    assert.equal(typeof panel.id, 'number', `panel "${panel.title ?? '?'}" has no id`);
    assert.ok(!ids.has(panel.id as number), `panel id ${String(panel.id)} is used twice`);
    ids.add(panel.id as number);
    assert.ok((panel.title ?? '').trim() !== '', `panel ${String(panel.id)} has no title`);
    if (panel.type === 'row') continue;
    assert.ok((panel.targets ?? []).length > 0, `panel "${panel.title ?? '?'}" has no target`);
    for (const target of panel.targets ?? []) assert.ok((target.expr ?? '').trim() !== '', `panel "${panel.title ?? '?'}" has an empty query`);
    assert.ok((panel.fieldConfig?.defaults?.unit ?? '') !== '', `panel "${panel.title ?? '?'}" has no unit`);
  }
  assert.ok(ids.size > 0);
});

test('every metric the dashboard queries is one a sidecar exposes', () => {
  const used = new Set<string>();
  const unknown: string[] = [];
  for (const { where, expr } of queries()) {
    const refs = references(expr);
    assert.ok(refs.length > 0, `${where} reads no Courier metric: ${expr}`);
    for (const ref of refs) {
      if (ref.metric === undefined) unknown.push(`${where}: ${ref.name}`);
      else used.add(ref.metric);
    }
  }
  assert.deepEqual(unknown, []);
  // The sections the dashboard is meant to cover, so that a query dropped by mistake is noticed too.
  for (const name of [
    'dapr_runtime_service_invocation_req_sent_total',
    'dapr_runtime_service_invocation_res_recv_total',
    'dapr_runtime_service_invocation_res_recv_latency_ms',
    'dapr_runtime_service_invocation_req_recv_total',
    'dapr_http_server_request_count',
    'dapr_http_server_latency',
    'dapr_http_client_completed_count',
    'dapr_http_client_roundtrip_latency',
    'dapr_grpc_io_server_completed_rpcs',
    'dapr_grpc_io_client_completed_rpcs',
    'dapr_runtime_acl_app_policy_action_allowed_total',
    'dapr_runtime_acl_global_policy_action_allowed_total',
    'dapr_runtime_acl_app_policy_action_blocked_total',
    'dapr_runtime_acl_global_policy_action_blocked_total',
    'courier_service_invocation_retries_total',
    'courier_nameresolution_lookups_total',
    'process_resident_memory_bytes',
    'process_cpu_seconds_total',
    'courier_mtls_certificate_expiry_timestamp_seconds',
  ]) {
    assert.ok(used.has(name), `no panel shows ${name}`);
  }
});

test('every label the dashboard matches, groups or joins on is one its metric has', () => {
  const problems: string[] = [];
  for (const { where, expr } of queries()) {
    for (const ref of references(expr)) {
      if (ref.metric === undefined) continue; // reported by the test above
      for (const [label] of ref.matchers) if (!ref.labels.has(label)) problems.push(`${where}: ${ref.name} has no label ${label}`);
    }
    for (const problem of unknownGroupingLabels(expr)) problems.push(`${where}: ${problem}`);
  }
  assert.deepEqual(problems, []);
});

test('every panel query follows the App selection on metrics labelled app_id', () => {
  const unfiltered: string[] = [];
  for (const panel of panels) {
    for (const target of panel.targets ?? []) {
      for (const ref of references(target.expr ?? '')) {
        if (!ref.labels.has('app_id')) continue;
        if (!ref.matchers.some(([label, op, value]) => label === 'app_id' && op === '=~' && value === '$app_id')) unfiltered.push(`panel "${panel.title ?? '?'}": ${ref.name}`);
      }
    }
  }
  assert.deepEqual(unfiltered, []);
});

test('the checks catch a misspelt metric, an unknown label, and a label missing on a grouped series', () => {
  assert.equal(references('rate(dapr_http_server_request_total{app_id=~"$app_id"}[5m])')[0]?.metric, undefined);
  assert.equal(references('dapr_http_server_request_count')[0]?.metric, 'dapr_http_server_request_count');
  assert.equal(references('dapr_http_server_latency_bucket')[0]?.metric, 'dapr_http_server_latency');
  // `_count` is only a histogram's series: a counter named without it is not a match.
  assert.equal(references('dapr_runtime_service_invocation_req_sent_total_count')[0]?.metric, undefined);
  assert.equal(references('dapr_http_server_request_count{route="/x"}')[0]?.labels.has('route'), false);
  assert.deepEqual(unknownGroupingLabels('sum by (le, path) (rate(dapr_http_server_latency_bucket[5m]))'), []);
  assert.equal(unknownGroupingLabels('sum by (le, path) (rate(dapr_http_server_latency_count[5m]))').length, 1);
  assert.equal(unknownGroupingLabels('sum by (dst_app_id) (rate(dapr_runtime_service_invocation_res_recv_total[5m]))').length, 1);
  assert.equal(unknownGroupingLabels('sum(rate(dapr_http_server_request_count[5m])) by (path)').length, 1);
});
