import { test } from 'node:test';
import assert from 'node:assert/strict';
import { genericCodec } from './codec.js';
import {
  decodeInternalInvokeRequestStream,
  decodeInternalInvokeResponseStream,
  encodeInternalInvokeRequestStream,
  encodeInternalInvokeResponseStream,
} from './fast-codec.js';
import type { InternalInvokeRequestStream, InternalInvokeResponseStream } from './types.js';

const generic = {
  request: genericCodec<InternalInvokeRequestStream>('dapr.proto.internals.v1.InternalInvokeRequestStream'),
  response: genericCodec<InternalInvokeResponseStream>('dapr.proto.internals.v1.InternalInvokeResponseStream'),
};

/** A decoded message as plain data: protobufjs's defaults (0, '', empty) and absent fields compare equal. */
function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return value.length === 0 ? undefined : Buffer.from(value).toString('hex');
  if (Array.isArray(value)) return value.length === 0 ? undefined : value.map(plain);
  if (value === null || value === undefined || value === '' || value === 0) return undefined;
  if (typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) {
    const v = plain((value as Record<string, unknown>)[key]);
    if (v !== undefined) out[key] = v;
  }
  return Object.keys(out).length === 0 ? undefined : out;
}

const requests: InternalInvokeRequestStream[] = [
  {
    request: {
      ver: 1,
      metadata: { 'Content-Type': { values: ['application/json'] }, 'X-Multi': { values: ['a', 'b', 'ünïcode ✓'] }, 'x-empty': { values: [] }, 'X-Long': { values: ['x'.repeat(64), 'é'.repeat(32), `${'y'.repeat(65)}é`, 'z'.repeat(300)] } },
      message: { method: 'orders/42', contentType: 'application/json', httpExtension: { verb: 3, querystring: 'a=1&b=%20' } },
    },
    payload: { data: Buffer.from('{"id":42}'), seq: 0 },
  },
  { request: { ver: 2, message: { method: 'm', data: { typeUrl: 'type.googleapis.com/x.Y', value: Buffer.from([0, 1, 2, 255]) } } } },
  { request: { message: { method: '', httpExtension: { verb: 0, querystring: '' } } } },
  { payload: { data: Buffer.alloc(70_000, 7), seq: 2 ** 40 + 5 } },
  { payload: { seq: 300 } },
  {},
];

const responses: InternalInvokeResponseStream[] = [
  {
    response: {
      status: { code: 200 },
      headers: { 'Content-Type': { values: ['text/plain'] }, 'Set-Cookie': { values: ['a=1', 'b=2'] } },
      message: { contentType: 'text/plain' },
    },
    payload: { data: Buffer.from('hi'), seq: 0 },
  },
  {
    response: {
      status: { code: 5, message: 'not found ✗', details: [{ typeUrl: 'type.googleapis.com/google.rpc.ErrorInfo', value: Buffer.from([8, 1]) }, { typeUrl: 'x' }] },
      trailers: { 'grpc-status-details-bin': { values: ['AAA='] } },
      message: { data: { typeUrl: 't', value: Buffer.from([1]) }, contentType: '' },
    },
  },
  { response: { status: { code: -1 } } },
  { response: { status: { code: -2147483648 } } },
  { payload: { data: Buffer.from([1, 2, 3]), seq: 1 } },
];

test('a request stream message written by the fast encoder reads the same with protobufjs, and back', () => {
  for (const message of requests) {
    const fast = encodeInternalInvokeRequestStream(message);
    assert.deepEqual(plain(generic.request.decode(fast)), plain(message));
    const slow = generic.request.encode(message);
    assert.deepEqual(plain(decodeInternalInvokeRequestStream(slow)), plain(message));
    assert.deepEqual(plain(decodeInternalInvokeRequestStream(fast)), plain(message));
  }
});

test('a response stream message written by the fast encoder reads the same with protobufjs, and back', () => {
  for (const message of responses) {
    const fast = encodeInternalInvokeResponseStream(message);
    assert.deepEqual(plain(generic.response.decode(fast)), plain(message));
    const slow = generic.response.encode(message);
    assert.deepEqual(plain(decodeInternalInvokeResponseStream(slow)), plain(message));
  }
});

test('unknown fields are skipped and fields may come in any order', () => {
  // field 9 (varint), field 10 (length-delimited), field 11 (fixed64), field 12 (fixed32), then payload before request.
  const unknown = Buffer.from([0x48, 0x96, 0x01, 0x52, 0x02, 0xaa, 0xbb, 0x59, 1, 2, 3, 4, 5, 6, 7, 8, 0x65, 1, 2, 3, 4]);
  const payload = Buffer.from(encodeInternalInvokeRequestStream({ payload: { data: Buffer.from('x'), seq: 3 } }));
  const request = Buffer.from(encodeInternalInvokeRequestStream({ request: { ver: 1, message: { method: 'm' } } }));
  const decoded = decodeInternalInvokeRequestStream(Buffer.concat([unknown, payload, request]));
  assert.equal(decoded.request?.message?.method, 'm');
  assert.equal(decoded.payload?.seq, 3);
  assert.equal(Buffer.from(decoded.payload?.data ?? []).toString(), 'x');
});

test('truncated or malformed bytes are refused, not misread', () => {
  const whole = Buffer.from(encodeInternalInvokeRequestStream(requests[0] as InternalInvokeRequestStream));
  for (const cut of [1, 5, whole.length - 1]) assert.throws(() => decodeInternalInvokeRequestStream(whole.subarray(0, cut)), RangeError);
  assert.throws(() => decodeInternalInvokeResponseStream(Buffer.from([0x0b])), /wire type/);
});

test('metadata keys decode to the names sent, however many and whatever their bytes, call after call', () => {
  const names = [
    ...Array.from({ length: 600 }, (_, i) => `X-Name-${i}`),
    'x-a', 'X-A', 'Ünïcode-Name', `X-${'l'.repeat(60)}`, '__proto__', '123', '',
  ];
  const metadata = Object.fromEntries(names.map((name, i) => [name, { values: [String(i)] }]));
  const bytes = encodeInternalInvokeRequestStream({ request: { ver: 1, metadata, message: { method: 'm' } } });
  for (let round = 0; round < 3; round++) {
    const decoded = decodeInternalInvokeRequestStream(bytes).request?.metadata ?? {};
    assert.equal(Object.getPrototypeOf(decoded), null);
    assert.deepEqual(Object.keys(decoded).sort(), [...names].sort());
    for (const [i, name] of names.entries()) assert.deepEqual(decoded[name]?.values, [String(i)], name);
  }
});
