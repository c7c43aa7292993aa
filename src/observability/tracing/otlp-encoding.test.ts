import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { EncodedSpanBatch, OtlpHeaders, putEpochNanos, utf8Length } from './otlp-encoding.js';
import { Span, SpanKind, type SpanSink } from './tracer.js';
import { SAMPLED_FLAG } from './context.js';

// The official definitions (protobufjs code generated from opentelemetry-proto) decode what Courier encodes.
interface Long {
  toString(): string;
}
interface AnyValue {
  stringValue?: string | null;
  boolValue?: boolean | null;
  intValue?: Long | number | null;
  doubleValue?: number | null;
}
interface DecodedSpan {
  traceId: Uint8Array;
  spanId: Uint8Array;
  parentSpanId?: Uint8Array | null;
  traceState?: string | null;
  name: string;
  kind: number;
  startTimeUnixNano: Long;
  endTimeUnixNano: Long;
  attributes: { key: string; value: AnyValue }[];
  status?: { code: number; message: string } | null;
}
interface DecodedRequest {
  resourceSpans: {
    resource: { attributes: { key: string; value: AnyValue }[] };
    scopeSpans: { scope: { name: string; version: string }; spans: DecodedSpan[] }[];
  }[];
}
const root = createRequire(import.meta.url)('otlp-transformer-generated/build/src/generated/root.js') as {
  opentelemetry: { proto: { collector: { trace: { v1: { ExportTraceServiceRequest: { decode(b: Uint8Array): DecodedRequest } } } } } };
};
const decode = (bytes: Uint8Array): DecodedRequest => root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest.decode(bytes);

/** The value of every field-16 fixed32 (tag bytes 0x85 0x01) in the request, in order. */
function spanFlags(bytes: Buffer): number[] {
  const out: number[] = [];
  for (let i = bytes.indexOf(Buffer.from([0x85, 0x01])); i >= 0; i = bytes.indexOf(Buffer.from([0x85, 0x01]), i + 6)) out.push(bytes.readUInt32LE(i + 2));
  return out;
}

const headers = new OtlpHeaders({ resource: { 'service.name': 'checkout', 'telemetry.sdk.name': 'courier' }, scopeName: 'courier', scopeVersion: '1.2.3' });
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const noSink: SpanSink = { add: () => {}, close: () => Promise.resolve() };

function endedSpan(kind: SpanKind, parent: { traceId: string; spanId: string; traceState?: string } | undefined, fill: (span: Span) => void, error?: string): Span {
  const traceId = parent?.traceId ?? '0af7651916cd43dd8448eb211c80319c';
  const span = new Span(kind, traceId, parent === undefined ? undefined : { traceId, spanId: parent.spanId, flags: SAMPLED_FLAG, traceState: parent.traceState }, SAMPLED_FLAG, noSink);
  fill(span);
  span.end(error);
  return span;
}

test('epoch milliseconds become exact fixed64 nanoseconds', () => {
  const buf = Buffer.alloc(8);
  for (const ms of [0, 1, 999.999999, 1_764_950_400_123.456, 1_799_999_999_999.999, 4_102_444_800_000.5]) {
    putEpochNanos(buf, 0, ms);
    const seconds = Math.floor(ms / 1000);
    const expected = BigInt(seconds) * 1_000_000_000n + BigInt(Math.round((ms - seconds * 1000) * 1e6));
    assert.equal(buf.readBigUInt64LE(0), expected, `${ms} ms`);
  }
});

test('a batch decodes as one ResourceSpans with the resource, the scope and every span field', () => {
  const batch = new EncodedSpanBatch(headers, 64);
  const server = endedSpan(SpanKind.SERVER, { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceState: 'congo=t61rcWkgMzE' }, (span) => {
    span.name = 'CallLocal/checkout/orders';
    span.set('rpc.service', 'ServiceInvocation');
    span.set('http.response.status_code', 200);
    span.set('ratio', 0.25);
    span.set('retried', true);
    span.set('offset', -3);
    span.set('dapr-note', 'é'.repeat(100)); // longer than one length byte, and not ASCII
  });
  const client = endedSpan(SpanKind.CLIENT, undefined, (span) => {
    span.name = `CallLocal/${'x'.repeat(300)}/method`;
  }, 'HTTP 503');
  batch.add(server);
  batch.add(client);
  assert.equal(batch.count, 2);
  const request = decode(batch.request());
  assert.equal(request.resourceSpans.length, 1);
  const [resourceSpans] = request.resourceSpans;
  assert.ok(resourceSpans);
  assert.deepEqual(
    resourceSpans.resource.attributes.map((kv) => [kv.key, kv.value.stringValue]),
    [
      ['service.name', 'checkout'],
      ['telemetry.sdk.name', 'courier'],
    ],
  );
  const [scopeSpans] = resourceSpans.scopeSpans;
  assert.ok(scopeSpans);
  assert.deepEqual([scopeSpans.scope.name, scopeSpans.scope.version], ['courier', '1.2.3']);
  const [first, second] = scopeSpans.spans;
  assert.ok(first && second);

  assert.equal(hex(first.traceId), '4bf92f3577b34da6a3ce929d0e0e4736');
  assert.equal(hex(first.spanId), server.spanId);
  assert.equal(hex(first.parentSpanId ?? new Uint8Array()), '00f067aa0ba902b7');
  assert.equal(first.traceState, 'congo=t61rcWkgMzE');
  assert.equal(first.name, 'CallLocal/checkout/orders');
  assert.equal(first.kind, 2); // SPAN_KIND_SERVER
  const nanos = (ms: number): string => {
    const s = Math.floor(ms / 1000);
    return (BigInt(s) * 1_000_000_000n + BigInt(Math.round((ms - s * 1000) * 1e6))).toString();
  };
  assert.equal(first.startTimeUnixNano.toString(), nanos(server.startMs));
  assert.equal(first.endTimeUnixNano.toString(), nanos(server.endMs));
  const attrs = Object.fromEntries(first.attributes.map((kv) => [kv.key, kv.value]));
  assert.equal(attrs['rpc.service']?.stringValue, 'ServiceInvocation');
  assert.equal(String(attrs['http.response.status_code']?.intValue), '200');
  assert.equal(attrs.ratio?.doubleValue, 0.25);
  assert.equal(attrs.retried?.boolValue, true);
  assert.equal(String(attrs.offset?.intValue), '-3');
  assert.equal(attrs['dapr-note']?.stringValue, 'é'.repeat(100));
  assert.equal(first.status?.code ?? 0, 0); // UNSET
  // Span.flags (field 16, fixed32) is newer than these definitions: read from the bytes, in span order.
  assert.deepEqual(spanFlags(batch.request()), [0x301, 0x101]); // sampled; the first span's parent was remote

  assert.equal(hex(second.traceId), '0af7651916cd43dd8448eb211c80319c');
  assert.equal(second.parentSpanId?.length ?? 0, 0);
  assert.equal(second.traceState ?? "", "");
  assert.equal(second.name, `CallLocal/${'x'.repeat(300)}/method`);
  assert.equal(second.kind, 3); // SPAN_KIND_CLIENT
  assert.equal(second.attributes.length, 0);
  assert.deepEqual([second.status?.code, second.status?.message], [2, 'HTTP 503']); // ERROR
});

test('a batch grows past its starting size and keeps every span', () => {
  const batch = new EncodedSpanBatch(headers, 1);
  const ids: string[] = [];
  const values: string[] = [];
  for (let i = 0; i < 600; i++) {
    const value = i % 3 === 0 ? 'v'.repeat(i % 200) : `${'ü'.repeat(i % 50)}😀${i}`;
    values.push(value);
    const span = endedSpan(SpanKind.CLIENT, undefined, (s) => {
      s.name = `CallLocal/app/m${i}`;
      s.set('dapr-header', value);
    });
    ids.push(span.spanId);
    batch.add(span);
  }
  const spans = decode(batch.request()).resourceSpans[0]?.scopeSpans[0]?.spans ?? [];
  assert.deepEqual(
    spans.map((s) => hex(s.spanId)),
    ids,
  );
  assert.equal(spans[599]?.name, 'CallLocal/app/m599');
  assert.deepEqual(
    spans.map((s) => s.attributes[0]?.value.stringValue),
    values,
  );
});

test('UTF-8 lengths match what Buffer writes, lone surrogates included', () => {
  for (const text of ['', 'ascii', 'é', '€uro', '😀', 'a😀b', '\ud800', 'x\udc00y', '\ud83d\ud83d', 'ü'.repeat(50)]) {
    assert.equal(utf8Length(text), Buffer.byteLength(text, 'utf8'), JSON.stringify(text));
  }
});
