import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatGrpcTraceBin,
  formatTraceparent,
  newSpanId,
  newTraceId,
  parseGrpcTraceBin,
  parseTraceparent,
  RatioSampler,
  validTraceState,
} from './context.js';
import { grpcTraceHeaders, setGrpcTraceMetadata, setTraceMetadata, traceFromGrpcMetadata, traceFromInvokeMetadata } from './propagation.js';
import { forGrpcPeersOnly, metadataToSend } from '../../grpc/metadata.js';
import { tracingSettings, otlpUrl } from './settings.js';
import { Tracer, SpanKind, type Span } from './tracer.js';

const TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

test('traceparent: valid values parse, and format back to the same text', () => {
  const ctx = parseTraceparent(TP, 'congo=t61rcWkgMzE');
  assert.deepEqual(ctx, { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', flags: 1, traceState: 'congo=t61rcWkgMzE' });
  assert.equal(formatTraceparent(ctx), TP);
  assert.equal(parseTraceparent(`  ${TP} `)?.spanId, '00f067aa0ba902b7');
  assert.equal(formatTraceparent({ ...ctx, flags: 0 }), TP.replace(/01$/, '00'));
  // Every flags byte reads back as written (bit 0 is "sampled"; the others are kept).
  for (const flags of [0x00, 0x01, 0x09, 0x0a, 0x10, 0xa5, 0xff]) {
    const text = `${TP.slice(0, 53)}${flags.toString(16).padStart(2, '0')}`;
    assert.equal(parseTraceparent(text)?.flags, flags, text);
    assert.equal(parseTraceparent(` ${text}`)?.flags, flags, `padded ${text}`);
  }
  // A future version may carry more fields after the flags.
  assert.equal(parseTraceparent(`cc${TP.slice(2)}-what-the-future-holds`)?.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
});

test('traceparent: invalid values are refused', () => {
  for (const bad of [
    undefined,
    '',
    'garbage',
    TP.toUpperCase(),
    TP.replace('4bf92f3577b34da6a3ce929d0e0e4736', '0'.repeat(32)),
    TP.replace('00f067aa0ba902b7', '0'.repeat(16)),
    `ff${TP.slice(2)}`,
    `${TP}-extra`, // version 00 has exactly four fields
    TP.replace(/-/g, '_'),
    TP.slice(0, 54),
  ]) {
    assert.equal(parseTraceparent(bad), undefined, String(bad));
  }
});

test('tracestate longer than 512 characters, or empty, is dropped', () => {
  assert.equal(validTraceState('a=1'), 'a=1');
  assert.equal(validTraceState(`a=${'x'.repeat(510)}`), `a=${'x'.repeat(510)}`);
  assert.equal(validTraceState(`a=${'x'.repeat(511)}`), undefined);
  assert.equal(validTraceState('  '), undefined);
});

test('grpc-trace-bin: 29 bytes in OpenCensus order, and back', () => {
  const ctx = parseTraceparent(TP)!;
  const b64 = formatGrpcTraceBin(ctx);
  // Dapr's own test vector for this context.
  assert.equal(b64, 'AABL+S81d7NNpqPOkp0ODkc2AQDwZ6oLqQK3AgE=');
  const bytes = Buffer.from(b64, 'base64');
  assert.equal(bytes.length, 29);
  assert.deepEqual([bytes[0], bytes[1], bytes[18], bytes[27], bytes[28]], [0, 0, 1, 2, 1]);
  assert.deepEqual(parseGrpcTraceBin(b64, 'k=v'), { ...ctx, traceState: 'k=v' });
  assert.deepEqual(parseGrpcTraceBin(b64.replace(/=+$/, '')), ctx, 'unpadded base64');
  assert.deepEqual(parseGrpcTraceBin(`${b64},${b64}`), ctx, 'joined repeated values');
  // Without the flags field: not sampled.
  assert.equal(parseGrpcTraceBin(bytes.subarray(0, 27).toString('base64'))?.flags, 0);
  assert.equal(parseGrpcTraceBin(Buffer.from([1, ...bytes.subarray(1)]).toString('base64')), undefined, 'unknown version');
  assert.equal(parseGrpcTraceBin('AAAA'), undefined);
  assert.equal(parseGrpcTraceBin(''), undefined);
});

test('new ids are random hex of the right length, never repeated', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 5000; i++) {
    const span = newSpanId();
    assert.match(span, /^[0-9a-f]{16}$/);
    seen.add(span);
  }
  assert.equal(seen.size, 5000);
  assert.match(newTraceId(), /^[0-9a-f]{32}$/);
  assert.notEqual(newTraceId(), newTraceId());
});

test('sampler: a parent decides; a root is sampled by its trace id as Dapr (OpenTelemetry Go) decides', () => {
  const half = new RatioSampler(0.5);
  const parent = parseTraceparent(TP)!;
  assert.equal(half.flagsFor(parent, parent.traceId), 1);
  assert.equal(half.flagsFor({ ...parent, flags: 0 }, parent.traceId), 0);
  // Lower 8 bytes >> 1 compared with rate × 2^63: 0x7fff… >> 1 is just under 2^62 (sampled at 0.5).
  assert.equal(half.sampled('ffffffffffffffff7fffffffffffffff'), true);
  assert.equal(half.sampled('00000000000000008000000000000000'), false); // exactly 2^62 is not below the bound
  assert.equal(half.sampled('0000000000000000fffffffffffffffe'), false);
  assert.equal(new RatioSampler(1).sampled('0000000000000000ffffffffffffffff'), true);
  assert.equal(new RatioSampler(0).sampled('00000000000000000000000000000001'), false);
  let sampled = 0;
  const rate = new RatioSampler(0.25);
  for (let i = 0; i < 20_000; i++) if (rate.sampled(newTraceId())) sampled++;
  assert.ok(sampled > 4000 && sampled < 6000, `about a quarter of random trace ids are sampled (${sampled} of 20000)`);
});

test('propagation: metadata gets the span as the next parent, under one name whatever the casing', () => {
  const md = Object.create(null) as Record<string, { values?: string[] }>;
  md.Traceparent = { values: [TP] };
  md.TRACESTATE = { values: ['old=1'] };
  md['Grpc-Trace-Bin'] = { values: ['xx'] };
  md['X-Other'] = { values: ['1'] };
  const span = { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '1111111111111111', flags: 1, traceState: 'new=2' };
  const tp = setTraceMetadata(md, span, false);
  assert.equal(tp, '00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01');
  assert.deepEqual(Object.keys(md).sort(), ['X-Other', 'traceparent', 'tracestate']);
  assert.deepEqual(md.tracestate?.values, ['new=2']);
  setTraceMetadata(md, span, true);
  assert.deepEqual(md['grpc-trace-bin']?.values, [formatGrpcTraceBin(span)]);
  const headers = grpcTraceHeaders(span);
  // The lane leaves these out (its callee reads the request's metadata): nothing is built for it, and
  // the marker is no header. An HTTP/2 call sends what it builds.
  assert.deepEqual(Object.keys(headers), []);
  assert.equal(forGrpcPeersOnly(headers), true);
  assert.equal(forGrpcPeersOnly({ traceparent: 'x' }), false);
  const sent = metadataToSend(headers) ?? {};
  assert.deepEqual(Object.keys(sent).sort(), ['grpc-trace-bin', 'traceparent', 'tracestate']);
  assert.equal(sent.traceparent, '00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01');
  assert.equal(sent['grpc-trace-bin'], formatGrpcTraceBin(span));
  const plain = { traceparent: 'x' };
  assert.equal(metadataToSend(plain), plain);
  // A relayed call's own metadata: its trace context is replaced, a tracestate the span lacks removed.
  const relayed: Record<string, string | string[]> = { traceparent: TP, tracestate: 'old=1', 'grpc-trace-bin': 'x', 'x-app': 'kept' };
  setGrpcTraceMetadata(relayed, { ...span, traceState: undefined });
  assert.deepEqual(relayed, { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01', 'grpc-trace-bin': formatGrpcTraceBin(span), 'x-app': 'kept' });
  assert.deepEqual(traceFromInvokeMetadata(md), { ...span });
  assert.equal(traceFromInvokeMetadata({ Traceparent: { values: [TP] } })?.spanId, '00f067aa0ba902b7', 'an older Courier forwards the canonical name');
  assert.equal(traceFromInvokeMetadata(undefined), undefined);
  // Without other trace keys the search for other casings can be skipped.
  const clean = Object.create(null) as Record<string, { values?: string[] }>;
  setTraceMetadata(clean, span, false, false);
  assert.deepEqual(clean.traceparent?.values, ['00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01']);
  // Received metadata: grpc-trace-bin first, traceparent otherwise.
  const other = parseTraceparent('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00')!;
  assert.equal(traceFromGrpcMetadata({ 'grpc-trace-bin': String(sent['grpc-trace-bin']), traceparent: formatTraceparent(other) })?.spanId, '1111111111111111');
  assert.equal(traceFromGrpcMetadata({ traceparent: formatTraceparent(other), tracestate: 'a=b' })?.traceState, 'a=b');
  assert.equal(traceFromGrpcMetadata({ 'grpc-trace-bin': 'bad', traceparent: formatTraceparent(other) })?.spanId, 'b7ad6b7169203331');
  assert.equal(traceFromGrpcMetadata({}), undefined);
});

test('tracer: children keep the trace and the parent, record only when sampled with an exporter', async () => {
  const ended: Span[] = [];
  const sink = { add: (s: Span) => ended.push(s), close: async () => {} };
  const parent = parseTraceparent(TP)!;
  const always = new Tracer(1, sink);
  const child = always.start(SpanKind.SERVER, parent);
  assert.equal(child.traceId, parent.traceId);
  assert.equal(child.parentSpanId, parent.spanId);
  assert.notEqual(child.spanId, parent.spanId);
  assert.equal(child.recording, true);
  child.set('k', 1);
  child.end('boom');
  child.end();
  assert.equal(ended.length, 1, 'a span ends once');
  assert.equal(ended[0]?.errorMessage, 'boom');
  assert.deepEqual({ ...ended[0]?.attributes }, { k: 1 });
  // The parent said "not sampled": nothing is recorded, but the flags carry on.
  const unsampled = always.start(SpanKind.SERVER, { ...parent, flags: 0 });
  assert.equal(unsampled.recording, false);
  assert.equal(unsampled.flags, 0);
  unsampled.end();
  assert.equal(ended.length, 1);
  // Without an exporter nothing is recorded, whatever the sampling says.
  const noExport = new Tracer(1, undefined).start(SpanKind.CLIENT, undefined);
  assert.equal(noExport.recording, false);
  assert.equal(noExport.flags, 1);
  assert.equal(noExport.parentSpanId, undefined);
  await always.close();
});

test('settings: Dapr defaults, spec.tracing and the OTEL_EXPORTER_OTLP_* variables', () => {
  assert.deepEqual(tracingSettings({}, {}), { samplingRate: 1e-4, exporters: [] });
  assert.equal(tracingSettings({ samplingRate: '0' }, {}).samplingRate, 0);
  assert.equal(tracingSettings({ samplingRate: '1' }, {}).samplingRate, 1);
  assert.equal(tracingSettings({ samplingRate: '7' }, {}).samplingRate, 1);
  const unreadable = tracingSettings({ samplingRate: 'often' }, {});
  assert.equal(unreadable.samplingRate, 1e-4);
  assert.match(unreadable.warning ?? '', /not a number/);
  const all = tracingSettings(
    {
      stdout: true,
      zipkin: { endpointAddress: 'http://localhost:9411/api/v2/spans' },
      otel: { endpointAddress: 'collector:4317', protocol: 'grpc', isSecure: false, headers: ['x-key=abc', { name: 'X-Team', value: 'pay' }], timeout: '3s' },
    },
    {},
  );
  assert.deepEqual(all.exporters, [
    { kind: 'stdout' },
    { kind: 'zipkin', url: 'http://localhost:9411/api/v2/spans' },
    { kind: 'otlp', protocol: 'grpc', url: 'http://collector:4317', headers: { 'x-key': 'abc', 'x-team': 'pay' }, timeoutMs: 3000 },
  ]);
  // Dapr registers OTLP only with both an endpoint and a protocol.
  assert.deepEqual(tracingSettings({ otel: { endpointAddress: 'collector:4318' } }, {}).exporters, []);
  // The variables alone turn OTLP on (OTLP/HTTP by default) and win over the file.
  const fromEnv = tracingSettings(
    { otel: { endpointAddress: 'file:4317', protocol: 'grpc' } },
    { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_EXPORTER_OTLP_HEADERS: 'api-key=s3cret,b=2', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' },
  );
  assert.deepEqual(fromEnv.exporters, [{ kind: 'otlp', protocol: 'http', url: 'http://127.0.0.1:4318/v1/traces', headers: { 'api-key': 's3cret', b: '2' }, timeoutMs: 10_000 }]);
  assert.equal(
    (tracingSettings({}, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'otel:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_EXPORTER_OTLP_INSECURE: 'true' }).exporters[0] as { url: string }).url,
    'http://otel:4317',
  );
  assert.throws(() => tracingSettings({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'x:1', OTEL_EXPORTER_OTLP_PROTOCOL: 'carrier-pigeon' }), /OTEL_EXPORTER_OTLP_PROTOCOL/);
  assert.throws(() => tracingSettings({ otel: { endpointAddress: 'x:1', protocol: 'http', headers: ['novalue'] } }, {}), /key=value/);
  assert.equal(otlpUrl('localhost:4318', 'http', true), 'https://localhost:4318/v1/traces');
  assert.equal(otlpUrl('http://localhost:4318/custom/path', 'http', true), 'http://localhost:4318/custom/path');
  assert.equal(otlpUrl('https://collector:4317/ignored', 'grpc', false), 'https://collector:4317');
  // An endpoint that would silently go somewhere else is refused.
  assert.throws(() => otlpUrl('127.0.0.1:', 'http', false), /"127\.0\.0\.1:" has a ":" but no port/);
  assert.throws(() => otlpUrl('http://127.0.0.1:/v1/traces', 'http', false), /but no port/);
  assert.throws(() => otlpUrl('[::1]:', 'grpc', false), /but no port/);
  assert.throws(() => otlpUrl('ftp://collector:21', 'http', false), /must be http or https/);
  assert.throws(() => otlpUrl('collector:port', 'http', false), /not a valid address/);
  assert.equal(otlpUrl('[::1]:4318', 'http', false), 'http://[::1]:4318/v1/traces');
  assert.throws(() => tracingSettings({ zipkin: { endpointAddress: 'localhost:' } }, {}), /ERR_INVALID_CONFIG|not a valid address|no host|no port|http or https/);
  assert.equal(tracingSettings({ zipkin: { endpointAddress: 'http://localhost:9411/api/v2/spans' } }, {}).exporters[0]?.kind, 'zipkin');
});
