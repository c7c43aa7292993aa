import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { OtlpHttpSpanSink, type OtlpHttpSinkOptions } from './otlp-http-export.js';
import { Span, SpanKind, type SpanSink } from './tracer.js';
import { SAMPLED_FLAG } from './context.js';

const root = createRequire(import.meta.url)('otlp-transformer-generated/build/src/generated/root.js') as {
  opentelemetry: {
    proto: { collector: { trace: { v1: { ExportTraceServiceRequest: { decode(b: Uint8Array): { resourceSpans: { scopeSpans: { spans: { name: string }[] }[] }[] } } } } } };
  };
};

/** A local OTLP/HTTP collector recording the span names of each request; `hold` keeps requests unanswered. */
async function collector(): Promise<{ url: string; batches: string[][]; headers: Record<string, string | string[] | undefined>[]; received: number; hold: boolean; waitFor(n: number, what?: 'recorded' | 'received'): Promise<void>; close(): Promise<void> }> {
  const held: ServerResponse[] = [];
  const waiters: Array<() => void> = [];
  const state = {
    url: '',
    batches: [] as string[][],
    headers: [] as Record<string, string | string[] | undefined>[],
    received: 0,
    hold: false,
    waitFor(n: number, what: 'recorded' | 'received' = 'recorded'): Promise<void> {
      const count = (): number => (what === 'recorded' ? state.batches.length : state.received);
      if (count() >= n) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const check = (): void => {
          if (count() >= n) resolve();
          else waiters.push(check);
        };
        waiters.push(check);
      });
    },
    async close(): Promise<void> {
      for (const res of held) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      state.received++;
      if (state.hold) {
        held.push(res);
        for (const check of waiters.splice(0)) check();
        return;
      }
      const body = Buffer.concat(chunks);
      state.headers.push(req.headers);
      const request = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest.decode(req.headers['content-encoding'] === 'gzip' ? gunzipSync(body) : body);
      state.batches.push(request.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans.map((span) => span.name))));
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      for (const check of waiters.splice(0)) check();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
  return state;
}

const noSink: SpanSink = { add: () => {}, close: () => Promise.resolve() };
function span(name: string): Span {
  const s = new Span(SpanKind.CLIENT, '4bf92f3577b34da6a3ce929d0e0e4736', undefined, SAMPLED_FLAG, noSink);
  s.name = name;
  s.end();
  return s;
}

function sink(url: string, options: Partial<OtlpHttpSinkOptions>): OtlpHttpSpanSink {
  return new OtlpHttpSpanSink({
    url,
    headers: {},
    timeoutMs: 10_000,
    preamble: { resource: { 'service.name': 'test' }, scopeName: 'courier', scopeVersion: '0' },
    maxQueuedSpans: 2048,
    maxBatch: 512,
    delayMs: 60_000,
    exportTimeoutMs: 30_000,
    warn: () => {},
    ...options,
  });
}

test('full batches are sent at once, in order, and closing sends the rest', async () => {
  const c = await collector();
  try {
    const s = sink(c.url, { maxBatch: 3 });
    for (let i = 0; i < 7; i++) s.add(span(`s${i}`));
    await c.waitFor(2);
    assert.deepEqual(c.batches, [
      ['s0', 's1', 's2'],
      ['s3', 's4', 's5'],
    ]);
    await s.close();
    assert.deepEqual(c.batches[2], ['s6']);
    s.add(span('after close'));
    assert.equal(c.batches.length, 3);
  } finally {
    await c.close();
  }
});

test('a batch that does not fill up is sent after the delay', async () => {
  const c = await collector();
  try {
    const s = sink(c.url, { delayMs: 20 });
    s.add(span('lonely'));
    await c.waitFor(1);
    assert.deepEqual(c.batches, [['lonely']]);
    await s.close();
    assert.equal(c.batches.length, 1);
  } finally {
    await c.close();
  }
});

test('while the collector does not answer, at most maxQueuedSpans wait and the rest are dropped and reported', async () => {
  const c = await collector();
  const warnings: string[] = [];
  try {
    c.hold = true;
    const s = sink(c.url, { maxBatch: 2, maxQueuedSpans: 4, exportTimeoutMs: 100, timeoutMs: 60_000, warn: (m) => warnings.push(m) });
    for (let i = 0; i < 10; i++) s.add(span(`s${i}`));
    assert.equal(s.dropped, 6);
    assert.match(warnings.join('\n'), /queue is full \(4 spans\)/);
    // The held export stops counting after exportTimeoutMs; the next batch goes out and the queue has room again.
    await c.waitFor(1, 'received');
    c.hold = false;
    await c.waitFor(1);
    assert.deepEqual(c.batches[0], ['s2', 's3']);
    assert.match(warnings.join('\n'), /export of 2 spans failed: no answer within 100 ms/);
    s.add(span('room again'));
    const closed = s.close();
    await c.waitFor(2);
    assert.deepEqual(c.batches[1], ['room again']);
    await c.close(); // drops the held request, which the sink's transport still waits for
    await closed;
  } finally {
    await c.close();
  }
});

test('the settings of the SDK transport apply: the configured headers, and gzip from OTEL_EXPORTER_OTLP_TRACES_COMPRESSION', async () => {
  const c = await collector();
  const before = process.env.OTEL_EXPORTER_OTLP_TRACES_COMPRESSION;
  process.env.OTEL_EXPORTER_OTLP_TRACES_COMPRESSION = 'gzip';
  try {
    const s = sink(c.url, { headers: { 'x-tenant': 'blue' } });
    for (let i = 0; i < 3; i++) s.add(span(`g${i}`));
    await s.close();
    assert.deepEqual(c.batches, [['g0', 'g1', 'g2']]);
    assert.equal(c.headers[0]?.['content-encoding'], 'gzip');
    assert.equal(c.headers[0]?.['content-type'], 'application/x-protobuf');
    assert.equal(c.headers[0]?.['x-tenant'], 'blue');
  } finally {
    if (before === undefined) delete process.env.OTEL_EXPORTER_OTLP_TRACES_COMPRESSION;
    else process.env.OTEL_EXPORTER_OTLP_TRACES_COMPRESSION = before;
    await c.close();
  }
});
