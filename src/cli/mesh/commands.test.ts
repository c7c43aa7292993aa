import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFlags } from '../flags.js';
import { parseOutput, parseSidecarFlags, parseWindow, reportUnreadable } from './command-options.js';
import { formatEdges } from './edges-command.js';
import { formatClock, formatIdentities, formatLatency, formatRps, formatSuccess, formatTapLine, renderTable, shortIdentity } from './format.js';
import { formatApps, formatRoutes, statFlags, statResult } from './stat-command.js';
import { parseTapArgs, tapFlags } from './tap-command.js';
import { formatTop, topResult } from './top-command.js';
import type { AppView, InstanceView, MeshSample, MeshView, WindowStats } from './view-types.js';

const stats = (calls: number, failures: number, rps: number, p50: number | null = null, p95: number | null = null, p99: number | null = null): WindowStats => ({
  calls,
  failures,
  rps,
  successRate: calls === 0 ? null : (calls - failures) / calls,
  p50,
  p95,
  p99,
});

const instance = (appId: string, health: InstanceView['health']): InstanceView => ({
  appId,
  address: '127.0.0.1:40000',
  metricsUrl: 'http://127.0.0.1:9090',
  protocol: 'http',
  identity: null,
  health,
  uptimeSeconds: health === 'unreachable' ? null : 10,
  version: '0.1.0',
  pid: health === 'unreachable' ? null : 1,
  info: null,
});

const app = (appId: string, healths: Array<InstanceView['health']>, inbound: WindowStats): AppView => ({
  appId,
  instances: healths.map((h) => instance(appId, h)),
  inbound,
  outbound: stats(0, 0, 0),
});

const view: MeshView = {
  at: new Date(2025, 0, 1, 9, 30, 5).getTime(),
  windowSeconds: 5,
  apps: [app('a', ['healthy'], stats(0, 0, 0)), app('b', ['healthy', 'unhealthy'], stats(50, 10, 10, 3.25, 9.5, 48.2)), app('c', ['unreachable'], stats(0, 0, 0))],
  edges: [
    {
      src: 'a',
      dst: 'b',
      srcIdentities: ['spiffe://public/ns/default/a'],
      dstIdentities: ['spiffe://public/ns/default/b', 'spiffe://public/ns/default/b2'],
      stats: stats(50, 10, 10, 3.25, 9.5, 48.2),
    },
    { src: 'b', dst: 'c', srcIdentities: [], dstIdentities: [], stats: stats(5, 0, 1, 1, 2, 2) },
  ],
  routes: [
    { appId: 'b', verb: 'POST', route: '/orders', stats: stats(40, 10, 8, 3, 9, 40) },
    { appId: 'b', verb: 'GET', route: '/orders/{id}', stats: stats(10, 0, 2, 1.5, 2, 2) },
    { appId: 'c', verb: 'GET', route: '/idle', stats: stats(0, 0, 0) },
  ],
};

describe('flags of the mesh views', () => {
  test('--window takes Go durations or seconds, more than 0 and at most an hour', () => {
    assert.equal(parseWindow('stat', undefined, 5000), 5000);
    assert.equal(parseWindow('stat', '1s', 5000), 1000);
    assert.equal(parseWindow('stat', '500ms', 5000), 500);
    assert.equal(parseWindow('stat', '1m30s', 5000), 90_000);
    assert.equal(parseWindow('stat', '2', 5000), 2000);
    for (const bad of ['0', '-1s', 'soon', '2h', '']) {
      assert.throws(() => parseWindow('stat', bad, 5000), (err: Error) => /^courier stat: --window: ".*" is not a duration/.test(err.message) && (err as { code?: string }).code === 'ERR_INVALID_FLAG', bad);
    }
  });

  test('-o is table or json; --sidecar is checked and repeatable', () => {
    assert.equal(parseOutput('top', undefined), 'table');
    assert.equal(parseOutput('top', 'JSON'), 'json');
    assert.throws(() => parseOutput('top', 'yaml'), /courier top: --output: "yaml" is not one of table, json/);
    const { values, rest } = parseFlags('stat', ['orders', '--routes', '-t', '1s', '--sidecar', '10.0.0.1:9090', '--sidecar=h:9091', '-o', 'json'], statFlags, { allowPositionals: true });
    assert.deepEqual(rest, ['orders']);
    assert.equal(values.get('routes'), true);
    assert.equal(values.get('window'), '1s');
    assert.deepEqual(parseSidecarFlags('stat', values), ['10.0.0.1:9090', 'h:9091']);
    const bad = parseFlags('stat', ['--sidecar', 'h'], statFlags).values;
    assert.throws(() => parseSidecarFlags('stat', bad), /courier stat: --sidecar: "h" is not the host:port/);
  });

  test('tap: the app id and the filters, checked', () => {
    const parse = (argv: string[]) => {
      const { values, rest } = parseFlags('tap', argv, tapFlags, { allowPositionals: true });
      return parseTapArgs('tap', values, rest);
    };
    assert.deepEqual(parse(['b']), { appId: 'b', filters: {}, max: undefined, headers: false });
    assert.deepEqual(parse(['b', '--path', 'orders', '--method', 'get', '--status', '5XX', '--direction', 'Inbound', '--max', '3', '--headers']), {
      appId: 'b',
      filters: { path: '/orders', method: 'GET', status: '5xx', direction: 'inbound', headers: true },
      max: 3,
      headers: true,
    });
    assert.equal(parse(['b', '--status', '503']).filters.status, '503');
    assert.throws(() => parse([]), /courier tap: needs the app id to tap/);
    assert.throws(() => parse(['a', 'b']), /takes one app id/);
    assert.throws(() => parse(['b', '--status', '6xx']), /--status: "6xx" is not a status/);
    assert.throws(() => parse(['b', '--direction', 'both']), /--direction: "both" is not inbound or outbound/);
    assert.throws(() => parse(['b', '--method', 'PO ST']), /--method/);
    assert.throws(() => parse(['b', '--path', '/a?b']), /--path/);
    assert.throws(() => parse(['b', '--max', '0']), /--max: 0/);
  });
});

describe('tables', () => {
  test('figures are spelled the same in every view', () => {
    assert.equal(formatSuccess(null), '-');
    assert.equal(formatSuccess(0.995), '99.50%');
    assert.equal(formatSuccess(1), '100.00%');
    assert.equal(formatRps(12.44), '12.4rps');
    assert.equal(formatLatency(null), '-');
    assert.equal(formatLatency(0.84), '0.8ms');
    assert.equal(formatLatency(9.96), '10ms');
    assert.equal(formatLatency(37.4), '37ms');
    assert.equal(formatLatency(10000), '10000ms');
    assert.equal(shortIdentity('spiffe://public/ns/default/orders'), 'public/default/orders');
    assert.equal(shortIdentity('spiffe://example.org/workload'), 'spiffe://example.org/workload');
    assert.equal(formatIdentities([]), '-');
    assert.equal(formatIdentities(['spiffe://td/ns/prod/a', 'spiffe://td/ns/prod/b']), 'td/prod/a (+1)');
    assert.equal(formatClock(new Date(2025, 0, 1, 9, 3, 7, 45).getTime()), '09:03:07.045');
    assert.equal(renderTable(['A', 'BB'], [['xxx', 'y'], ['', 'zz']]), 'A    BB\nxxx  y\n     zz\n');
  });

  test('courier stat: one line per app, INSTANCES healthy/total, - where nothing can be said', () => {
    assert.equal(
      formatApps(view.apps),
      [
        'NAME  INSTANCES  SUCCESS  RPS      LATENCY_P50  LATENCY_P95  LATENCY_P99',
        'a     1/1        -        0.0rps   -            -            -',
        'b     1/2        80.00%   10.0rps  3.3ms        9.5ms        48ms',
        'c     0/1        -        -        -            -            -',
        '',
      ].join('\n'),
    );
    assert.equal(
      formatRoutes(statResult(view, 'b').routes),
      [
        'APP  VERB  ROUTE         SUCCESS  RPS     LATENCY_P50  LATENCY_P95  LATENCY_P99',
        'b    POST  /orders       75.00%   8.0rps  3ms          9ms          40ms',
        'b    GET   /orders/{id}  100.00%  2.0rps  1.5ms        2ms          2ms',
        '',
      ].join('\n'),
    );
    assert.deepEqual(
      statResult(view, 'b').apps.map((a) => a.appId),
      ['b'],
    );
    assert.equal(formatApps([]), 'No apps found.\n');
  });

  test('courier edges: shortened identities, - without mTLS', () => {
    assert.equal(
      formatEdges(view.edges),
      [
        'SRC  DST  SRC_IDENTITY      DST_IDENTITY           SUCCESS  RPS      P50    P99',
        'a    b    public/default/a  public/default/b (+1)  80.00%   10.0rps  3.3ms  48ms',
        'b    c    -                 -                      100.00%  1.0rps   1ms    2ms',
        '',
      ].join('\n'),
    );
    assert.equal(formatEdges([]), 'No calls between apps in the window.\n');
  });

  test('courier top: routes with calls, busiest first, cut to the screen; unreadable sidecars named', () => {
    const after: MeshSample = {
      at: view.at,
      sidecars: [{ ref: { appId: 'c', metricsUrl: 'http://127.0.0.1:9', source: 'run-record' }, info: null, traffic: null, error: 'connection refused' }],
    };
    const result = topResult(view);
    assert.deepEqual(
      result.routes.map((r) => r.route),
      ['/orders', '/orders/{id}'],
    );
    const screen = formatTop(result, after, 1);
    assert.equal(
      screen,
      [
        'courier top: busiest routes over 5.0s at 09:30:05, 0/1 sidecars read',
        '',
        'APP  VERB  ROUTE    CALLS  SUCCESS  RPS     LATENCY_P50  LATENCY_P95  LATENCY_P99',
        'b    POST  /orders  40     75.00%   8.0rps  3ms          9ms          40ms',
        '… and 1 more',
        'cannot read the sidecar of c at http://127.0.0.1:9: connection refused',
        '',
      ].join('\n'),
    );
    assert.match(formatTop({ ...result, routes: [] }, { at: 0, sidecars: [] }), /No calls in the window\.\n$/);
  });

  test('courier tap: one line per call, headers below it when asked', () => {
    const at = new Date(2025, 0, 1, 9, 30, 5, 120).getTime();
    const base = {
      at,
      direction: 'inbound' as const,
      srcAppId: 'a',
      dstAppId: 'b',
      method: 'POST',
      path: '/orders/1',
      status: 500,
      latencyMs: 12.3,
      traceId: '0af7651916cd43dd8448eb211c80319c',
      headers: { 'x-b': '[redacted]', 'content-type': 'application/json' },
      errorCode: '',
      reportedBy: 'b',
    };
    assert.equal(formatTapLine(base), '09:30:05.120  inbound   a → b             POST    /orders/1                 500    12ms  trace=0af7651916cd43dd8448eb211c80319c\n');
    assert.equal(
      formatTapLine({ ...base, direction: 'outbound', status: 0, errorCode: 'ERR_DIRECT_INVOKE', traceId: '', latencyMs: 1.25 }, true),
      '09:30:05.120  outbound  a → b             POST    /orders/1                 no-answer ERR_DIRECT_INVOKE   1.3ms\n    content-type: application/json\n    x-b: [redacted]\n',
    );
  });

  test('unreadable sidecars go to stderr; none readable at all is an error', () => {
    const lines: string[] = [];
    const sink = { write: (t: string) => lines.push(t) };
    const ok = { ref: { appId: 'a', metricsUrl: 'http://127.0.0.1:1', source: 'run-record' as const }, info: null, traffic: null };
    const bad = { ref: { appId: '', metricsUrl: 'http://10.0.0.1:9090', source: 'address' as const }, info: null, traffic: null, error: 'no answer within 1500 ms' };
    reportUnreadable('stat', { at: 0, sidecars: [ok, bad] }, sink);
    assert.deepEqual(lines, ['courier stat: cannot read the sidecar of http://10.0.0.1:9090: no answer within 1500 ms\n']);
    assert.throws(() => reportUnreadable('edges', { at: 0, sidecars: [bad] }, sink), /: no sidecar could be read: http:\/\/10\.0\.0\.1:9090: no answer within 1500 ms/);
  });
});
