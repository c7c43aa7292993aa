import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { InvokeRequest } from '../../invoke/types.js';
import type { Metadata } from '../../invoke/headers.js';
import type { TapEvent } from './contract.js';
import { grpcHeaders, invokeHeaders, MAX_TAP_CLIENTS, parseTapFilter, REDACTED, TAP_QUEUE_LIMIT, TapHub, tapMatches, type TapFilter, type TapOutput } from './tap.js';

const filter = (query: string, valuesAllowed = false): TapFilter => {
  const parsed = parseTapFilter(new URLSearchParams(query), valuesAllowed);
  if (typeof parsed === 'string') throw new Error(parsed);
  return parsed;
};

const event = (over: Partial<TapEvent> = {}): TapEvent => ({
  at: 1,
  direction: 'inbound',
  srcAppId: 'a',
  dstAppId: 'b',
  method: 'POST',
  path: '/orders/7',
  status: 503,
  latencyMs: 1.5,
  traceId: '',
  headers: { 'x-user': 'alice' },
  errorCode: '',
  ...over,
});

/** A stream that takes `room` writes before it says it is behind, then waits for `drain()`. */
class FakeOutput implements TapOutput {
  readonly chunks: string[] = [];
  ended = false;
  #drain: (() => void) | undefined;
  constructor(public room = Infinity) {}
  write(chunk: string): boolean {
    this.chunks.push(chunk);
    return --this.room > 0;
  }
  once(_event: 'drain', listener: () => void): this {
    this.#drain = listener;
    return this;
  }
  end(): this {
    this.ended = true;
    return this;
  }
  drain(room = Infinity): void {
    this.room = room;
    const listener = this.#drain;
    this.#drain = undefined;
    listener?.();
  }
  get events(): TapEvent[] {
    return this.chunks.filter((c) => c.startsWith('event: call\n')).map((c) => JSON.parse(c.slice('event: call\ndata: '.length)) as TapEvent);
  }
}

test('a tap query is parsed: every parameter optional, verbs and classes in any case', () => {
  assert.deepEqual(filter(''), { path: undefined, method: undefined, status: undefined, statusClass: undefined, direction: undefined, app: undefined, headerValues: false });
  assert.deepEqual(filter('path=/orders&method=post&status=5XX&direction=Inbound&app=a'), {
    path: '/orders',
    method: 'POST',
    status: undefined,
    statusClass: 5,
    direction: 'inbound',
    app: 'a',
    headerValues: false,
  });
  assert.equal(filter('status=404').status, 404);
  for (const bad of ['status=6xx', 'status=abc', 'status=1000', 'direction=sideways', 'method=G%20T', 'headers=all']) {
    assert.equal(typeof parseTapFilter(new URLSearchParams(bad), true), 'string', bad);
  }
});

test('header values are shown only when the sidecar allows it and the client asks', () => {
  assert.equal(filter('headers=show', false).headerValues, false);
  assert.equal(filter('', true).headerValues, false);
  assert.equal(filter('headers=redact', true).headerValues, false);
  assert.equal(filter('headers=show', true).headerValues, true);
});

test('a filter matches on every field it sets: path prefix, verb, exact status or class, direction, peer app', () => {
  const e = event();
  assert.ok(tapMatches(filter(''), e));
  assert.ok(tapMatches(filter('path=/orders'), e));
  assert.ok(!tapMatches(filter('path=/items'), e));
  assert.ok(tapMatches(filter('method=post'), e));
  assert.ok(!tapMatches(filter('method=GET'), e));
  assert.ok(tapMatches(filter('status=503'), e));
  assert.ok(!tapMatches(filter('status=500'), e));
  assert.ok(tapMatches(filter('status=5xx'), e));
  assert.ok(!tapMatches(filter('status=2xx'), e));
  assert.ok(!tapMatches(filter('status=5xx'), event({ status: 0 })), 'no answer is no class');
  assert.ok(tapMatches(filter('direction=inbound'), e));
  assert.ok(!tapMatches(filter('direction=outbound'), e));
  // The peer: the caller of an inbound call, the destination of an outbound one.
  assert.ok(tapMatches(filter('app=a'), e));
  assert.ok(!tapMatches(filter('app=b'), e));
  assert.ok(tapMatches(filter('app=b'), event({ direction: 'outbound' })));
  assert.ok(!tapMatches(filter('path=/orders&status=2xx'), e), 'conditions combine with AND');
});

test('header values are redacted unless shown, and credentials always are', () => {
  const md = Object.assign(Object.create(null) as Metadata, {
    'X-User': { values: ['alice'] },
    Accept: { values: ['a', 'b'] },
    Authorization: { values: ['Bearer secret'] },
    traceparent: { values: ['00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'] },
  });
  assert.deepEqual(invokeHeaders(md, 'application/json', false), {
    'content-type': REDACTED,
    'x-user': REDACTED,
    accept: REDACTED,
    authorization: REDACTED,
    traceparent: REDACTED,
  });
  assert.deepEqual(invokeHeaders(md, '', true), {
    'x-user': 'alice',
    accept: 'a, b',
    authorization: REDACTED,
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  });
  const grpc = { ':path': '/x.Y/Z', 'x-user': 'bob', cookie: 'c=1', 'dapr-api-token': 't', many: ['1', '2'] };
  assert.deepEqual(grpcHeaders(grpc, true), { 'x-user': 'bob', cookie: REDACTED, 'dapr-api-token': REDACTED, many: '1, 2' });
  assert.deepEqual(grpcHeaders(grpc, false), { 'x-user': REDACTED, cookie: REDACTED, 'dapr-api-token': REDACTED, many: REDACTED });
});

test('nobody taps: not active, and publishing does nothing', () => {
  const hub = new TapHub();
  assert.equal(hub.active, false);
  hub.publish(event());
  const out = new FakeOutput();
  const client = hub.add(out, filter(''));
  assert.ok(client !== undefined);
  assert.equal(hub.active, true);
  hub.remove(client);
  assert.equal(hub.active, false);
  assert.equal(out.ended, true);
});

test('events go to the clients whose filter matches, as server-sent events named call', () => {
  const hub = new TapHub();
  const all = new FakeOutput();
  const errors = new FakeOutput();
  hub.add(all, filter(''));
  hub.add(errors, filter('status=5xx'));
  hub.publish(event({ status: 200 }));
  hub.publish(event({ status: 503 }));
  assert.deepEqual(
    all.events.map((e) => e.status),
    [200, 503],
  );
  assert.deepEqual(
    errors.events.map((e) => e.status),
    [503],
  );
  assert.match(all.chunks[0] ?? '', /^event: call\ndata: \{.*\}\n\n$/);
  hub.closeAll();
});

test('one client may see header values while another sees them redacted', () => {
  const hub = new TapHub();
  const shown = new FakeOutput();
  const redacted = new FakeOutput();
  hub.add(shown, filter('headers=show', true));
  hub.add(redacted, filter('headers=show', false));
  const request = {
    target: { appId: 'b', namespace: 'default' },
    caller: { appId: 'a', namespace: 'default' },
    method: 'orders/7',
    verb: 'POST',
    query: 'x=1',
    contentType: '',
    metadata: Object.assign(Object.create(null) as Metadata, {
      'X-User': { values: ['alice'] },
      traceparent: { values: ['00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'] },
    }),
  } as unknown as InvokeRequest;
  hub.invocation('outbound', request, 'POST', 201, 2.25, '');
  const [seen] = shown.events;
  const [hidden] = redacted.events;
  assert.deepEqual(seen?.headers['x-user'], 'alice');
  assert.deepEqual(hidden?.headers['x-user'], REDACTED);
  assert.deepEqual({ ...hidden, headers: undefined }, { ...seen, headers: undefined });
  assert.equal(seen?.traceId, '0af7651916cd43dd8448eb211c80319c');
  assert.equal(seen?.path, '/orders/7', 'the query is left out');
  assert.equal(seen?.srcAppId, 'a');
  assert.equal(seen?.dstAppId, 'b');
  hub.closeAll();
});

test(`at most ${MAX_TAP_CLIENTS} clients at once`, () => {
  const hub = new TapHub();
  for (let i = 0; i < MAX_TAP_CLIENTS; i++) assert.ok(hub.add(new FakeOutput(), filter('')) !== undefined);
  assert.equal(hub.add(new FakeOutput(), filter('')), undefined);
  assert.equal(hub.clients, MAX_TAP_CLIENTS);
  hub.closeAll();
  assert.equal(hub.clients, 0);
  assert.ok(hub.add(new FakeOutput(), filter('')) !== undefined);
  hub.closeAll();
});

test('a slow reader: events wait up to the queue limit, later ones are dropped, counted and reported when it drains', () => {
  const hub = new TapHub();
  const out = new FakeOutput(1); // the first write fills the socket's buffer
  const client = hub.add(out, filter(''));
  assert.ok(client !== undefined);
  const extra = 25;
  for (let i = 0; i < 1 + TAP_QUEUE_LIMIT + extra; i++) hub.publish(event({ at: i }));
  assert.equal(out.chunks.length, 1);
  assert.equal(client.queued, TAP_QUEUE_LIMIT);
  assert.equal(client.dropped, extra);
  // The socket catches up part of the way: the queue is written until it is behind again.
  out.drain(10);
  assert.equal(out.chunks.length, 11);
  assert.equal(client.dropped, extra);
  out.drain();
  assert.equal(client.queued, 0);
  assert.equal(client.dropped, 0);
  assert.equal(out.events.length, 1 + TAP_QUEUE_LIMIT);
  assert.deepEqual(
    out.events.map((e) => e.at),
    Array.from({ length: 1 + TAP_QUEUE_LIMIT }, (_, i) => i),
    'in order',
  );
  assert.equal(out.chunks.at(-1), `: dropped ${extra}\n\n`);
  // Keeping up again: events are written straight away.
  hub.publish(event({ at: 5000 }));
  assert.equal(out.events.at(-1)?.at, 5000);
  hub.closeAll();
  assert.equal(out.ended, true);
});
