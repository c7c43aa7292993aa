import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSpanExport } from './export.js';
import { Span, SpanKind } from './tracer.js';
import { SAMPLED_FLAG } from './context.js';
import { silentLogger } from '../logging/index.js';
import { startOtlpHttpReceiver, startZipkinReceiver } from '../../../test/framework/trace-receivers.js';

test('with OTLP/HTTP and Zipkin configured together, each receives every span, with its attributes and status', async () => {
  const [otlp, zipkin] = await Promise.all([startOtlpHttpReceiver(), startZipkinReceiver()]);
  try {
    const sink = await createSpanExport(
      [
        { kind: 'otlp', protocol: 'http', url: otlp.endpoint, headers: { 'x-tenant': 'blue' }, timeoutMs: 10_000 },
        { kind: 'zipkin', url: zipkin.endpoint },
      ],
      'orders',
      silentLogger(),
      {},
    );
    const spans: Span[] = [];
    for (let i = 0; i < 3; i++) {
      const span = new Span(SpanKind.SERVER, '4bf92f3577b34da6a3ce929d0e0e4736', { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', flags: SAMPLED_FLAG, traceState: undefined }, SAMPLED_FLAG, sink);
      span.name = `CallLocal/orders/m${i}`;
      span.set('rpc.service', 'ServiceInvocation');
      span.set('http.response.status_code', i === 2 ? 503 : 200);
      span.end(i === 2 ? 'HTTP 503' : undefined);
      spans.push(span);
    }
    await sink.close();
    for (const receiver of [otlp, zipkin]) {
      const got = await receiver.waitFor((s) => s.length >= 3);
      assert.deepEqual(
        got.map((s) => [s.name, s.spanId, s.parentSpanId, s.kind, s.serviceName, s.status.code]),
        spans.map((s, i) => [s.name, s.spanId, '00f067aa0ba902b7', 'SERVER', 'orders', i === 2 ? 'ERROR' : 'UNSET']),
      );
      assert.equal(String(got[2]?.attributes['http.response.status_code']), '503');
      assert.ok(Math.abs((got[0]?.startMs ?? 0) - (spans[0]?.startMs ?? 0)) < 0.01);
    }
    assert.equal(otlp.lastHeaders['x-tenant'], 'blue');
  } finally {
    await Promise.all([otlp.close(), zipkin.close()]);
  }
});
