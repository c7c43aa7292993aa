// The trace receivers decode what the official OpenTelemetry exporters send: a SERVER span and its
// CLIENT child, exported over OTLP/HTTP (protobuf), OTLP/gRPC and Zipkin, come back with the same ids,
// parentage, kinds, attributes and status. Also: hand-made OTLP/JSON (gzip-encoded too), failing and
// stalled receivers, and close().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { Metadata } from '@grpc/grpc-js';
import { context, SpanKind, SpanStatusCode, trace, type SpanContext } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter as OtlpGrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as OtlpProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { ZipkinExporter } from '@opentelemetry/exporter-zipkin';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { SimpleSpanProcessor, TracerProvider, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace';
import { startOtlpGrpcReceiver, startOtlpHttpReceiver, startZipkinReceiver, type ReceivedSpan, type TraceReceiver } from './trace-receivers.js';

/** Passes spans to an official exporter and keeps every result it reports. */
class RecordingExporter implements SpanExporter {
  readonly results: ExportResult[] = [];
  readonly #inner: SpanExporter;

  constructor(inner: SpanExporter) {
    this.#inner = inner;
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    this.#inner.export(spans, (result) => {
      this.results.push(result);
      resultCallback(result);
    });
  }

  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.#inner.forceFlush?.() ?? Promise.resolve();
  }
}

/** A provider for service 'probe' that exports each span as it ends; shut down when the test ends. */
function probeProvider(t: test.TestContext, exporter: SpanExporter): { provider: TracerProvider; exporter: RecordingExporter } {
  const recording = new RecordingExporter(exporter);
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'probe' }),
    spanProcessors: [new SimpleSpanProcessor({ exporter: recording })],
  });
  t.after(() => provider.shutdown());
  return { provider, exporter: recording };
}

async function startReceiver(t: test.TestContext, start: () => Promise<TraceReceiver>): Promise<TraceReceiver> {
  const receiver = await start();
  t.after(() => receiver.close());
  return receiver;
}

const parentAttributes = { 'http.route': '/orders/{id}', 'http.response.status_code': 200, 'probe.cached': true, 'probe.ratio': 0.25 };
const childAttributes = { 'peer.service': 'inventory', 'probe.retries': 3, 'probe.fallback': false, 'probe.load': 1.5 };

/** Ends a SERVER span and its CLIENT child (which fails), flushes, and returns their contexts. */
async function emitPair(provider: TracerProvider): Promise<{ parent: SpanContext; child: SpanContext }> {
  const tracer = provider.getTracer('trace-receivers-test');
  const parent = tracer.startSpan('GET /orders/{id}', { kind: SpanKind.SERVER, attributes: parentAttributes });
  const child = tracer.startSpan('inventory.reserve', { kind: SpanKind.CLIENT, attributes: childAttributes }, trace.setSpan(context.active(), parent));
  child.setStatus({ code: SpanStatusCode.ERROR, message: 'inventory unavailable' });
  child.end();
  parent.end();
  await provider.forceFlush();
  return { parent: parent.spanContext(), child: child.spanContext() };
}

function stringTags(attributes: Record<string, string | number | boolean>): Record<string, string> {
  return Object.fromEntries(Object.entries(attributes).map(([k, v]) => [k, String(v)]));
}

/** Checks the received pair against what `emitPair` ended; Zipkin carries tags as strings, among its own. */
function checkPair(spans: readonly ReceivedSpan[], sent: { parent: SpanContext; child: SpanContext }, zipkin: boolean): void {
  assert.equal(spans.length, 2, `two spans, got ${JSON.stringify(spans)}`);
  const parent = spans.find((s) => s.spanId === sent.parent.spanId);
  const child = spans.find((s) => s.spanId === sent.child.spanId);
  assert.ok(parent && child, `both span ids arrive: ${JSON.stringify(spans)}`);

  assert.match(parent.traceId, /^[0-9a-f]{32}$/);
  assert.equal(parent.traceId, sent.parent.traceId);
  assert.equal(child.traceId, parent.traceId);
  assert.equal(parent.parentSpanId, '');
  assert.equal(child.parentSpanId, parent.spanId);

  assert.equal(parent.name, 'GET /orders/{id}');
  assert.equal(child.name, 'inventory.reserve');
  assert.equal(parent.kind, 'SERVER');
  assert.equal(child.kind, 'CLIENT');
  assert.equal(parent.serviceName, 'probe');
  assert.equal(child.serviceName, 'probe');

  assert.deepEqual(parent.status, { code: 'UNSET', message: '' });
  assert.deepEqual(child.status, { code: 'ERROR', message: 'inventory unavailable' });

  if (zipkin) {
    assert.deepEqual(parent.attributes, { ...stringTags(parentAttributes), 'service.name': 'probe' });
    assert.deepEqual(child.attributes, { ...stringTags(childAttributes), 'service.name': 'probe', 'otel.status_code': 'ERROR', error: 'inventory unavailable' });
  } else {
    assert.deepEqual(parent.attributes, parentAttributes);
    assert.deepEqual(child.attributes, childAttributes);
  }

  // Both ended moments ago, the child inside the parent.
  for (const span of [parent, child]) {
    assert.ok(Math.abs(Date.now() - span.startMs) < 60_000, `start ${span.startMs} is recent`);
    assert.ok(span.durationMs >= 0 && span.durationMs < 60_000, `duration ${span.durationMs}`);
  }
  assert.ok(child.startMs >= parent.startMs - 1, 'the child starts within the parent');
}

test('OTLP/HTTP receiver decodes the protobuf export of the official OTLP exporter', async (t) => {
  const receiver = await startReceiver(t, startOtlpHttpReceiver);
  assert.equal(receiver.endpoint, `http://127.0.0.1:${receiver.port}/v1/traces`);
  const { provider, exporter } = probeProvider(t, new OtlpProtoExporter({ url: receiver.endpoint, headers: { 'x-probe': 'http' } }));

  const sent = await emitPair(provider);
  const spans = await receiver.waitFor((s) => s.length >= 2, 10_000);
  checkPair(spans, sent, false);
  assert.deepEqual(exporter.results.map((r) => r.code), [ExportResultCode.SUCCESS, ExportResultCode.SUCCESS]);
  assert.equal(receiver.requests, 2, 'SimpleSpanProcessor exports each span on its own');
  assert.equal(receiver.lastHeaders['x-probe'], 'http');
  assert.equal(receiver.lastHeaders['content-type'], 'application/x-protobuf');
});

test('OTLP/gRPC receiver decodes the export of the official OTLP/gRPC exporter', async (t) => {
  const receiver = await startReceiver(t, startOtlpGrpcReceiver);
  assert.equal(receiver.endpoint, `127.0.0.1:${receiver.port}`);
  const metadata = new Metadata();
  metadata.set('x-probe', 'grpc');
  const { provider, exporter } = probeProvider(t, new OtlpGrpcExporter({ url: `http://${receiver.endpoint}`, metadata }));

  const sent = await emitPair(provider);
  const spans = await receiver.waitFor((s) => s.length >= 2, 10_000);
  checkPair(spans, sent, false);
  assert.deepEqual(exporter.results.map((r) => r.code), [ExportResultCode.SUCCESS, ExportResultCode.SUCCESS]);
  assert.equal(receiver.requests, 2);
  assert.equal(receiver.lastHeaders['x-probe'], 'grpc');
});

test('Zipkin receiver decodes the export of the official Zipkin exporter', async (t) => {
  const receiver = await startReceiver(t, startZipkinReceiver);
  assert.equal(receiver.endpoint, `http://127.0.0.1:${receiver.port}/api/v2/spans`);
  const { provider, exporter } = probeProvider(t, new ZipkinExporter({ url: receiver.endpoint, serviceName: 'probe' }));

  const sent = await emitPair(provider);
  const spans = await receiver.waitFor((s) => s.length >= 2, 10_000);
  checkPair(spans, sent, true);
  assert.deepEqual(exporter.results.map((r) => r.code), [ExportResultCode.SUCCESS, ExportResultCode.SUCCESS]);
  assert.equal(receiver.lastHeaders['content-type'], 'application/json');
});

test('Zipkin receiver left-pads 64-bit trace ids and reads kind-less spans as INTERNAL', async (t) => {
  const receiver = await startReceiver(t, startZipkinReceiver);
  const res = await fetch(receiver.endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify([{ traceId: 'ABCDEF0123456789', id: '0123456789abcdef', name: 'local', timestamp: 1_700_000_000_000_000, duration: 1500, localEndpoint: { serviceName: 'z' }, tags: { error: '' } }]),
  });
  assert.equal(res.status, 202);
  assert.deepEqual(receiver.spans, [
    {
      traceId: '0000000000000000abcdef0123456789',
      spanId: '0123456789abcdef',
      parentSpanId: '',
      name: 'local',
      kind: 'INTERNAL',
      serviceName: 'z',
      attributes: { error: '' },
      status: { code: 'ERROR', message: '' },
      startMs: 1_700_000_000_000,
      durationMs: 1.5,
    },
  ]);
});

/** An OTLP/JSON request with one span of each attribute type, ids as hex and int64s as strings. */
function otlpJsonRequest(spanId: string): unknown {
  return {
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'json-probe' } }] },
        scopeSpans: [
          {
            scope: { name: 'hand-made' },
            spans: [
              {
                traceId: '5B8EFFF798038103D269B633813FC60C',
                spanId,
                parentSpanId: 'eee19b7ec3c1b174',
                name: 'json span',
                kind: 3,
                startTimeUnixNano: '1700000000000000000',
                endTimeUnixNano: '1700000000001500000',
                attributes: [
                  { key: 's', value: { stringValue: 'text' } },
                  { key: 'i', value: { intValue: '42' } },
                  { key: 'b', value: { boolValue: true } },
                  { key: 'd', value: { doubleValue: 1.5 } },
                ],
                status: { code: 1 },
              },
            ],
          },
        ],
      },
    ],
  };
}

test('OTLP/HTTP receiver decodes OTLP/JSON, plain and gzip-encoded, and answers in JSON', async (t) => {
  const receiver = await startReceiver(t, startOtlpHttpReceiver);
  const plain = await fetch(receiver.endpoint, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(otlpJsonRequest('eee19b7ec3c1b173')) });
  assert.equal(plain.status, 200);
  assert.equal(plain.headers.get('content-type'), 'application/json');
  assert.deepEqual(await plain.json(), {});

  const zipped = await promisify(gzip)(JSON.stringify(otlpJsonRequest('eee19b7ec3c1b175')));
  const compressed = await fetch(receiver.endpoint, { method: 'POST', headers: { 'Content-Type': 'application/json; charset=utf-8', 'Content-Encoding': 'gzip' }, body: zipped });
  assert.equal(compressed.status, 200);
  await compressed.arrayBuffer();

  const common = {
    traceId: '5b8efff798038103d269b633813fc60c',
    parentSpanId: 'eee19b7ec3c1b174',
    name: 'json span',
    kind: 'CLIENT',
    serviceName: 'json-probe',
    attributes: { s: 'text', i: 42, b: true, d: 1.5 },
    status: { code: 'OK', message: '' },
    startMs: 1_700_000_000_000,
    durationMs: 1.5,
  };
  assert.deepEqual(receiver.spans, [
    { ...common, spanId: 'eee19b7ec3c1b173' },
    { ...common, spanId: 'eee19b7ec3c1b175' },
  ]);
  assert.equal(receiver.requests, 2);
  assert.equal(receiver.lastHeaders['content-encoding'], 'gzip');

  const elsewhere = await fetch(`http://127.0.0.1:${receiver.port}/v1/metrics`, { method: 'POST', body: '{}' });
  assert.equal(elsewhere.status, 404);
  await elsewhere.arrayBuffer();
  const garbage = await fetch(receiver.endpoint, { method: 'POST', headers: { 'Content-Type': 'application/x-protobuf' }, body: new Uint8Array([0xff, 0xff, 0xff]) });
  assert.equal(garbage.status, 400);
  await garbage.arrayBuffer();
  assert.equal(receiver.spans.length, 2);
});

test('a failing OTLP/HTTP receiver records nothing and the exporter reports the failure', async (t) => {
  const receiver = await startReceiver(t, startOtlpHttpReceiver);
  // A short export timeout bounds the exporter's retries of the retryable 503.
  const { provider, exporter } = probeProvider(t, new OtlpProtoExporter({ url: receiver.endpoint, timeoutMillis: 1000 }));
  const tracer = provider.getTracer('trace-receivers-test');

  receiver.setFailing(503);
  tracer.startSpan('lost').end();
  // SimpleSpanProcessor's flush passes the failed export's error on.
  await assert.rejects(provider.forceFlush(), /retryable/);
  assert.equal(exporter.results.length, 1);
  assert.equal(exporter.results[0]?.code, ExportResultCode.FAILED);
  assert.ok(exporter.results[0]?.error, 'the result carries an error');
  assert.ok(receiver.requests >= 1, 'the export reached the receiver');
  assert.deepEqual(receiver.spans, []);

  receiver.setFailing(undefined);
  tracer.startSpan('kept').end();
  await provider.forceFlush();
  const spans = await receiver.waitFor((s) => s.length === 1, 10_000);
  assert.equal(spans[0]?.name, 'kept');
  assert.equal(spans[0]?.kind, 'INTERNAL');
  assert.equal(exporter.results[1]?.code, ExportResultCode.SUCCESS);
});

test('a failing OTLP/gRPC receiver answers UNAVAILABLE and records nothing', async (t) => {
  const receiver = await startReceiver(t, startOtlpGrpcReceiver);
  const { provider, exporter } = probeProvider(t, new OtlpGrpcExporter({ url: `http://${receiver.endpoint}`, timeoutMillis: 1000 }));
  const tracer = provider.getTracer('trace-receivers-test');

  receiver.setFailing(503);
  tracer.startSpan('lost').end();
  await assert.rejects(provider.forceFlush());
  assert.equal(exporter.results[0]?.code, ExportResultCode.FAILED);
  assert.match(String(exporter.results[0]?.error), /UNAVAILABLE|14/);
  assert.ok(receiver.requests >= 1);
  assert.deepEqual(receiver.spans, []);

  receiver.setFailing(undefined);
  tracer.startSpan('kept').end();
  await provider.forceFlush();
  assert.deepEqual((await receiver.waitFor((s) => s.length === 1, 10_000)).map((s) => s.name), ['kept']);
});

test('a stalled receiver holds requests until the stall is cleared', async (t) => {
  const receiver = await startReceiver(t, startOtlpHttpReceiver);
  receiver.setStalled(true);
  const pending = fetch(receiver.endpoint, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(otlpJsonRequest('eee19b7ec3c1b173')) });
  const early = await Promise.race([pending.then(() => 'answered'), sleep(300, 'held')]);
  assert.equal(early, 'held');
  assert.equal(receiver.requests, 1);
  assert.deepEqual(receiver.spans, []);

  const arrival = receiver.waitFor((s) => s.length === 1, 10_000);
  receiver.setStalled(false);
  const res = await pending;
  assert.equal(res.status, 200);
  await res.arrayBuffer();
  assert.equal((await arrival)[0]?.spanId, 'eee19b7ec3c1b173');
});

test('close() is idempotent, drops held requests and rejects pending waits', async () => {
  for (const start of [startOtlpHttpReceiver, startOtlpGrpcReceiver, startZipkinReceiver]) {
    const receiver = await start();
    const waiting = receiver.waitFor(() => false, 60_000);
    receiver.setStalled(true);
    const held = receiver.endpoint.startsWith('http:') ? fetch(receiver.endpoint, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '[]' }) : undefined;
    if (held) await Promise.race([held, sleep(100)]);

    await Promise.all([receiver.close(), receiver.close()]);
    await receiver.close();
    await assert.rejects(waiting, /closed/);
    await assert.rejects(receiver.waitFor(() => false), /closed/);
    if (held) await assert.rejects(held, 'a held request fails once its connection is dropped');
    await assert.rejects(fetch(`http://127.0.0.1:${receiver.port}/`), 'nothing listens any more');
  }
});
