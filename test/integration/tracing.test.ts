// Distributed tracing as a user sees it in Zipkin, Jaeger or an OpenTelemetry Collector: real
// receivers (OTLP/HTTP, OTLP/gRPC, Zipkin) decode what the sidecars export, and a call through three
// apps (front → middle → back, the middle app forwarding the trace headers as Dapr's docs ask) must
// make one trace with the right parent/child links. Then the propagation rules (W3C traceparent and
// tracestate, grpc-trace-bin, a traceparent on every HTTP API response, sampling), and that a collector
// that is down or stalled costs no call.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { TestEnv } from '../framework/env.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { startApp, type TestApp } from '../framework/test-app.js';
import { send } from '../framework/http-client.js';
import { refusedPort } from '../framework/ports.js';
import { startOtlpGrpcReceiver, startOtlpHttpReceiver, startZipkinReceiver, type ReceivedSpan, type TraceReceiver } from '../framework/trace-receivers.js';
import * as grpc from '@grpc/grpc-js';
import { daprClient, echoClient, echoUnary, invokeService, md, startGrpcApp } from '../framework/grpc-apps.js';

const configFile = (env: TestEnv, name: string, spec: string): string => {
  const file = join(env.home, `${name}.yaml`);
  writeFileSync(file, `apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: ${name}\nspec:\n${spec}`);
  return file;
};

/** Export quickly so the test waits for spans, not for the default 5-second batch delay. */
const FAST_EXPORT = { OTEL_BSP_SCHEDULE_DELAY: '100' };

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';

function traceparentOf(value: string | string[] | undefined): { traceId: string; parentId: string; flags: string } {
  const text = Array.isArray(value) ? value[0] : value;
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(text ?? '');
  assert.ok(m, `a valid traceparent: ${String(text)}`);
  return { traceId: m[1] as string, parentId: m[2] as string, flags: m[3] as string };
}

function spanNamed(spans: readonly ReceivedSpan[], name: string, kind: string, traceId: string): ReceivedSpan | undefined {
  return spans.find((s) => s.name === name && s.kind === kind && s.traceId === traceId);
}

describe('traces exported to real OTLP and Zipkin receivers', () => {
  const env = new TestEnv();
  let otlpHttp: TraceReceiver;
  let otlpGrpc: TraceReceiver;
  let zipkin: TraceReceiver;
  let front: SidecarProcess;
  let middle: SidecarProcess;
  let back: SidecarProcess;
  let backApp: TestApp;

  before(async () => {
    [otlpHttp, otlpGrpc, zipkin] = await Promise.all([startOtlpHttpReceiver(), startOtlpGrpcReceiver(), startZipkinReceiver()]);
    env.track(otlpHttp);
    env.track(otlpGrpc);
    env.track(zipkin);
    backApp = await startApp(env, (a) =>
      a.fallback((req, res) => {
        res.statusCode = (req.url ?? '').startsWith('/fail') ? 500 : 200;
        res.end('from back');
      }),
    );
    // The middle app calls the back app through its own sidecar, passing on the trace headers it got.
    const middleApp = await startApp(env, (a) =>
      a.fallback(async (req, res) => {
        const headers: Record<string, string> = {};
        for (const name of ['traceparent', 'tracestate']) {
          const value = req.headers[name];
          if (typeof value === 'string') headers[name] = value;
        }
        const onward = await send(middle.httpPort, { method: 'POST', path: `/v1.0/invoke/back/method${req.url ?? '/'}`, headers, body: 'onward' });
        res.statusCode = onward.status;
        res.end(`middle+${onward.text}`);
      }),
    );
    const frontConfig = configFile(
      env,
      'front',
      `  tracing:\n    samplingRate: "1"\n    otel:\n      endpointAddress: "127.0.0.1:${otlpHttp.port}"\n      protocol: http\n      isSecure: false\n      headers:\n        - "x-tenant=blue"\n`,
    );
    const middleConfig = configFile(env, 'middle', `  tracing:\n    samplingRate: "1"\n    zipkin:\n      endpointAddress: "${zipkin.endpoint}"\n`);
    const backConfig = configFile(env, 'back', `  tracing:\n    samplingRate: "1"\n    otel:\n      endpointAddress: "${otlpGrpc.endpoint}"\n      protocol: grpc\n      isSecure: false\n`);
    [back, middle] = await Promise.all([
      startSidecar(env, { appId: 'back', appPort: backApp.port, waitForApp: true, args: ['--config', backConfig], env: FAST_EXPORT }),
      startSidecar(env, { appId: 'middle', appPort: middleApp.port, waitForApp: true, args: ['--config', middleConfig], env: FAST_EXPORT }),
    ]);
    front = await startSidecar(env, { appId: 'front', args: ['--config', frontConfig], env: FAST_EXPORT });
  });
  after(() => env.close());

  test('a call front → middle → back is one trace, each span the child of the hop before it', async () => {
    const res = await send(front.httpPort, {
      method: 'POST',
      path: '/v1.0/invoke/middle/method/orders',
      headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`, tracestate: 'vendor=opaque', 'dapr-example': 'yes' },
      body: 'start',
    });
    assert.equal(res.status, 200);
    assert.equal(res.text, 'middle+from back');

    const frontClient = (await otlpHttp.waitFor((s) => spanNamed(s, 'CallLocal/middle/orders', 'CLIENT', TRACE_ID) !== undefined)).find((s) => s.traceId === TRACE_ID);
    const zipkinSpans = await zipkin.waitFor(
      (s) => spanNamed(s, 'CallLocal/middle/orders', 'SERVER', TRACE_ID) !== undefined && spanNamed(s, 'CallLocal/back/orders', 'CLIENT', TRACE_ID) !== undefined,
    );
    const middleServer = spanNamed(zipkinSpans, 'CallLocal/middle/orders', 'SERVER', TRACE_ID);
    const middleClient = spanNamed(zipkinSpans, 'CallLocal/back/orders', 'CLIENT', TRACE_ID);
    const backServer = spanNamed(await otlpGrpc.waitFor((s) => spanNamed(s, 'CallLocal/back/orders', 'SERVER', TRACE_ID) !== undefined), 'CallLocal/back/orders', 'SERVER', TRACE_ID);
    assert.ok(frontClient && middleServer && middleClient && backServer);

    // The parent chain: the caller's app → front → middle (callee) → middle (caller) → back.
    assert.equal(frontClient.parentSpanId, PARENT_ID);
    assert.equal(middleServer.parentSpanId, frontClient.spanId);
    assert.equal(middleClient.parentSpanId, middleServer.spanId);
    assert.equal(backServer.parentSpanId, middleClient.spanId);
    assert.equal(new Set([frontClient.spanId, middleServer.spanId, middleClient.spanId, backServer.spanId]).size, 4);
    // The back app saw the back sidecar's span as its parent, and the tracestate passed along.
    const seen = backApp.seen.find((r) => r.url === '/orders');
    const atBack = traceparentOf(seen?.headers.traceparent);
    assert.deepEqual(atBack, { traceId: TRACE_ID, parentId: backServer.spanId, flags: '01' });
    assert.equal(seen?.headers.tracestate, 'vendor=opaque');
    // The caller's response names the front sidecar's span.
    assert.deepEqual(traceparentOf(res.headers.traceparent), { traceId: TRACE_ID, parentId: frontClient.spanId, flags: '01' });

    // Dapr's names and attributes, and the service of each span.
    assert.equal(frontClient.serviceName, 'front');
    assert.equal(middleServer.serviceName, 'middle');
    assert.equal(backServer.serviceName, 'back');
    assert.equal(frontClient.attributes['rpc.service'], 'ServiceInvocation');
    assert.equal(frontClient.attributes['net.peer.name'], 'middle');
    assert.equal(frontClient.attributes['http.request.method'], 'POST');
    assert.equal(frontClient.attributes['http.response.status_code'], 200);
    assert.equal(frontClient.attributes['dapr-example'], 'yes', 'dapr-* request headers are span attributes');
    assert.equal(backServer.attributes['net.peer.name'], 'middle', 'the callee names its caller');
    assert.equal(backServer.attributes['http.response.status_code'], 200);
    assert.equal(middleServer.attributes['rpc.service'], 'ServiceInvocation');
    for (const span of [frontClient, middleServer, middleClient, backServer]) assert.equal(span.status.code, 'UNSET', span.name);
    assert.ok(backServer.durationMs >= 0 && frontClient.durationMs >= backServer.durationMs - 1, 'the caller span lasts at least as long as the callee span');
    // OTLP headers from spec.tracing.otel.headers reach the collector.
    assert.equal(otlpHttp.lastHeaders['x-tenant'], 'blue');
    assert.equal(back.running, true);
  });

  test('a call without trace headers starts a trace at the caller sidecar; the failure of an app marks its spans', async () => {
    const res = await send(front.httpPort, { method: 'POST', path: '/v1.0/invoke/middle/method/fail/now', body: 'x' });
    assert.equal(res.status, 500);
    const { traceId, parentId } = traceparentOf(res.headers.traceparent);
    assert.notEqual(traceId, TRACE_ID);
    const frontSpans = await otlpHttp.waitFor((s) => s.some((x) => x.traceId === traceId));
    const root = frontSpans.find((s) => s.traceId === traceId);
    assert.equal(root?.parentSpanId, '', 'the front sidecar span is the root');
    assert.equal(root?.spanId, parentId);
    assert.equal(root?.status.code, 'ERROR');
    assert.equal(root?.attributes['http.response.status_code'], 500);
    const backSpans = await otlpGrpc.waitFor((s) => s.some((x) => x.traceId === traceId));
    const backServer = backSpans.find((s) => s.traceId === traceId);
    assert.equal(backServer?.status.code, 'ERROR');
    assert.equal(backServer?.attributes['http.response.status_code'], 500);
  });

  test('a parent that is not sampled is followed: nothing is exported, and the flags travel on', async () => {
    const unsampledTrace = 'aaaabbbbccccddddeeeeffff00001111';
    const before = backApp.seen.length;
    const res = await send(front.httpPort, { method: 'POST', path: '/v1.0/invoke/middle/method/quiet', headers: { traceparent: `00-${unsampledTrace}-${PARENT_ID}-00` }, body: 'x' });
    assert.equal(res.status, 200);
    assert.equal(traceparentOf(res.headers.traceparent).flags, '00');
    const atBack = traceparentOf(backApp.seen.slice(before).find((r) => r.url === '/quiet')?.headers.traceparent);
    assert.equal(atBack.traceId, unsampledTrace);
    assert.equal(atBack.flags, '00');
    // A sampled call made afterwards arrives; the unsampled one never does.
    const marker = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
    assert.equal((await send(front.httpPort, { method: 'POST', path: '/v1.0/invoke/middle/method/marker', headers: { traceparent: `00-${marker}-${PARENT_ID}-01` }, body: 'x' })).status, 200);
    await otlpGrpc.waitFor((s) => s.some((x) => x.traceId === marker));
    await otlpHttp.waitFor((s) => s.some((x) => x.traceId === marker));
    for (const receiver of [otlpHttp, otlpGrpc, zipkin]) assert.equal(receiver.spans.filter((s) => s.traceId === unsampledTrace).length, 0);
  });

  test('over gRPC between the sidecars (as with a daprd peer) the callee reads grpc-trace-bin from the call', async () => {
    const config = configFile(env, 'front-h2', `  tracing:\n    samplingRate: "1"\n    otel:\n      endpointAddress: "127.0.0.1:${otlpHttp.port}"\n      protocol: http\n      isSecure: false\n`);
    const viaGrpc = await startSidecar(env, { appId: 'front-h2', args: ['--config', config, '--internal-lane=false'], env: FAST_EXPORT });
    const traceId = 'c0ffee00c0ffee00c0ffee00c0ffee00';
    const res = await send(viaGrpc.httpPort, { method: 'POST', path: '/v1.0/invoke/back/method/direct', headers: { traceparent: `00-${traceId}-${PARENT_ID}-01` }, body: 'x' });
    assert.equal(res.status, 200);
    const client = (await otlpHttp.waitFor((s) => s.some((x) => x.traceId === traceId))).find((x) => x.traceId === traceId);
    const server = (await otlpGrpc.waitFor((s) => s.some((x) => x.traceId === traceId))).find((x) => x.traceId === traceId);
    assert.equal(client?.serviceName, 'front-h2');
    assert.equal(client?.parentSpanId, PARENT_ID);
    assert.equal(server?.parentSpanId, client?.spanId);
  });

  test('every HTTP API response carries a traceparent, a child of the one sent', async () => {
    const health = await send(front.httpPort, { method: 'GET', path: '/v1.0/healthz', headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` } });
    assert.equal(health.status, 204);
    const tp = traceparentOf(health.headers.traceparent);
    assert.equal(tp.traceId, TRACE_ID);
    assert.notEqual(tp.parentId, PARENT_ID);
    const metadata = await send(front.httpPort, { method: 'GET', path: '/v1.0/metadata' });
    traceparentOf(metadata.headers.traceparent);
    const refused = await send(front.httpPort, { method: 'POST', path: '/v1.0/invoke/nobody-here/method/x', body: 'x' });
    assert.ok(refused.status >= 400);
    traceparentOf(refused.headers.traceparent);
  });

  test('a trace passes through the gRPC API: grpc-trace-bin in, traceparent and grpc-trace-bin to a gRPC app', async () => {
    const grpcApp = await startGrpcApp(env);
    const grpcConfig = configFile(env, 'grpc-back', `  tracing:\n    samplingRate: "1"\n    otel:\n      endpointAddress: "${otlpGrpc.endpoint}"\n      protocol: grpc\n      isSecure: false\n`);
    await startSidecar(env, { appId: 'grpc-back', appPort: grpcApp.port, waitForApp: true, args: ['--app-protocol', 'grpc', '--config', grpcConfig], env: FAST_EXPORT });
    const metadata = new grpc.Metadata();
    metadata.add('grpc-trace-bin', Buffer.from(`0000${'cd'.repeat(16)}01${'ef'.repeat(8)}0201`, 'hex'));
    const client = daprClient(front.grpcPort);
    try {
      const { err } = await invokeService(client, { id: 'grpc-back', message: { method: 'hello', data: { typeUrl: '', value: Buffer.from('hi') } } }, metadata);
      assert.equal(err, null);
    } finally {
      client.close();
    }
    const seen = grpcApp.seen.at(-1);
    assert.ok(seen, 'the gRPC app was called');
    const traceparent = traceparentOf(String(seen.metadata.traceparent?.[0]));
    assert.equal(traceparent.traceId, 'cd'.repeat(16));
    const bin = Buffer.from(seen.metadata['grpc-trace-bin']?.[0] as Buffer);
    assert.equal(bin.length, 29);
    assert.equal(bin.toString('hex', 2, 18), 'cd'.repeat(16));
    assert.equal(bin.toString('hex', 19, 27), traceparent.parentId);
    const spans = await otlpGrpc.waitFor((s) => s.some((x) => x.traceId === 'cd'.repeat(16) && x.kind === 'SERVER'));
    const server = spans.find((x) => x.traceId === 'cd'.repeat(16) && x.kind === 'SERVER');
    assert.equal(server?.spanId, traceparent.parentId);
    const client2 = (await otlpHttp.waitFor((s) => s.some((x) => x.traceId === 'cd'.repeat(16)))).find((x) => x.traceId === 'cd'.repeat(16));
    assert.equal(client2?.parentSpanId, 'ef'.repeat(8), 'the gRPC API read the caller context from grpc-trace-bin');
    assert.equal(server?.parentSpanId, client2?.spanId);
  });

  test('a proxied gRPC call (dapr-app-id) gets a span at each sidecar, named by its method, and the app sees the callee span', async () => {
    const grpcApp = await startGrpcApp(env);
    grpcApp.echo.Unary = (call, cb) => (call.request.toString() === 'x' ? cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' }) : cb(null, call.request));
    const config = configFile(env, 'grpc-proxied', `  tracing:\n    samplingRate: "1"\n    otel:\n      endpointAddress: "${otlpGrpc.endpoint}"\n      protocol: grpc\n      isSecure: false\n`);
    await startSidecar(env, { appId: 'proxied', appPort: grpcApp.port, waitForApp: true, args: ['--app-protocol', 'grpc', '--config', config], env: FAST_EXPORT });
    const traceId = '5e'.repeat(16);
    const client = echoClient(front.grpcPort);
    try {
      const answer = await echoUnary(client, Buffer.from('hi'), md({ 'dapr-app-id': 'proxied', traceparent: `00-${traceId}-${'a1'.repeat(8)}-01` }));
      assert.equal(answer.toString(), 'hi');
      await assert.rejects(echoUnary(client, Buffer.from('x'), md({ 'dapr-app-id': 'proxied', traceparent: `00-${'6f'.repeat(16)}-${'a1'.repeat(8)}-01` })));
    } finally {
      client.close();
    }
    const seen = grpcApp.seen.find((c) => c.method === 'Unary' && traceparentOf(String(c.metadata.traceparent?.[0])).traceId === traceId);
    assert.ok(seen, 'the gRPC app got the trace');
    const atApp = traceparentOf(String(seen.metadata.traceparent?.[0]));
    const bin = Buffer.from(seen.metadata['grpc-trace-bin']?.[0] as Buffer);
    assert.equal(bin.toString('hex', 19, 27), atApp.parentId, 'grpc-trace-bin names the same parent');
    const callee = (await otlpGrpc.waitFor((s) => s.some((x) => x.traceId === traceId && x.kind === 'SERVER'))).find((x) => x.traceId === traceId && x.kind === 'SERVER');
    const caller = (await otlpHttp.waitFor((s) => s.some((x) => x.traceId === traceId && x.kind === 'CLIENT'))).find((x) => x.traceId === traceId && x.kind === 'CLIENT');
    assert.equal(caller?.name, 'courier.test.Echo/Unary');
    assert.equal(caller?.parentSpanId, 'a1'.repeat(8), "the caller's span is a child of the app's context");
    assert.equal(caller?.attributes['net.peer.name'], 'proxied');
    assert.equal(caller?.attributes['rpc.system'], 'grpc');
    assert.equal(callee?.name, 'courier.test.Echo/Unary');
    assert.equal(callee?.parentSpanId, caller?.spanId);
    assert.equal(callee?.spanId, atApp.parentId, "the app's parent is the callee's span");
    assert.equal(callee?.attributes['net.peer.name'], 'front');
    const failed = (await otlpGrpc.waitFor((s) => s.some((x) => x.traceId === '6f'.repeat(16)))).find((x) => x.traceId === '6f'.repeat(16));
    assert.equal(failed?.status.code, 'ERROR');
    assert.equal(failed?.attributes['rpc.grpc.status_code'], grpc.status.NOT_FOUND);
  });
});

describe('tracing defaults and a collector that is down', () => {
  const env = new TestEnv();
  after(() => env.close());

  test('by default (sampling 1e-4, no exporter) the context is propagated: the app sees the trace with a new parent', async () => {
    const app = await startApp(env, (a) => a.fallback((_req, res) => res.end('ok')));
    const callee = await startSidecar(env, { appId: 'plain-callee', appPort: app.port, waitForApp: true });
    const caller = await startSidecar(env, { appId: 'plain-caller' });
    const res = await send(caller.httpPort, { method: 'POST', path: '/v1.0/invoke/plain-callee/method/x', headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` }, body: 'x' });
    assert.equal(res.status, 200);
    const seen = traceparentOf(app.seen.at(-1)?.headers.traceparent);
    assert.equal(seen.traceId, TRACE_ID);
    assert.equal(seen.flags, '01');
    assert.notEqual(seen.parentId, PARENT_ID, "the callee sidecar's span is the app's parent");
    assert.equal(app.seen.at(-1)?.headers['grpc-trace-bin'], undefined, 'an HTTP app gets no binary trace header');
    // Without a traceparent, the caller sidecar starts a trace (mostly unsampled at 1e-4).
    await send(caller.httpPort, { method: 'POST', path: '/v1.0/invoke/plain-callee/method/y', body: 'x' });
    assert.match(String(app.seen.at(-1)?.headers.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    assert.equal(callee.running, true);
  });

  test('samplingRate "0" turns tracing off: trace headers pass through exactly as sent', async () => {
    const app = await startApp(env, (a) => a.fallback((_req, res) => res.end('ok')));
    const off = configFile(env, 'off', '  tracing:\n    samplingRate: "0"\n');
    await startSidecar(env, { appId: 'off-callee', appPort: app.port, waitForApp: true, args: ['--config', off] });
    const caller = await startSidecar(env, { appId: 'off-caller', args: ['--config', off] });
    const sent = `00-${TRACE_ID}-${PARENT_ID}-01`;
    const res = await send(caller.httpPort, { method: 'POST', path: '/v1.0/invoke/off-callee/method/x', headers: { traceparent: sent }, body: 'x' });
    assert.equal(res.status, 200);
    assert.equal(app.seen.at(-1)?.headers.traceparent, sent);
    assert.equal(res.headers.traceparent, undefined);
  });

  test('a collector that refuses connections, or never answers, costs no call', async () => {
    const stalled = env.track(await startZipkinReceiver());
    stalled.setStalled(true);
    const app = await startApp(env, (a) => a.fallback((_req, res) => res.end('ok')));
    const down = configFile(
      env,
      'down',
      `  tracing:\n    samplingRate: "1"\n    otel:\n      endpointAddress: "127.0.0.1:${await refusedPort()}"\n      protocol: http\n      isSecure: false\n    zipkin:\n      endpointAddress: "${stalled.endpoint}"\n`,
    );
    await startSidecar(env, { appId: 'down-callee', appPort: app.port, waitForApp: true, args: ['--config', down], env: FAST_EXPORT });
    const caller = await startSidecar(env, { appId: 'down-caller', args: ['--config', down], env: FAST_EXPORT });
    // Enough calls to fill the export queues (2048 spans each) several times over.
    let ok = 0;
    const worker = async (): Promise<void> => {
      for (let i = 0; i < 600; i++) if ((await send(caller.httpPort, { method: 'POST', path: '/v1.0/invoke/down-callee/method/x', body: 'x' })).status === 200) ok++;
    };
    await Promise.all([worker(), worker(), worker(), worker(), worker(), worker(), worker(), worker()]);
    assert.equal(ok, 4800);
    assert.ok(stalled.requests >= 1, 'the stalled collector was tried');
    // The operator is told, once (not once per span or per batch).
    const warned = Date.now();
    const warning = /span export is failing or falling behind/g;
    while (!warning.test(caller.output) && Date.now() - warned < 60_000) await sleep(100);
    assert.equal(caller.output.match(warning)?.length, 1, 'one warning about the failing export');
    console.log(`export failure reported after ${Date.now() - warned} ms`);
    // The sidecar still stops promptly, though its collectors never took a span.
    const started = Date.now();
    await caller.stop();
    assert.ok(Date.now() - started < 20_000, `stopped in ${Date.now() - started} ms`);
  });
});
