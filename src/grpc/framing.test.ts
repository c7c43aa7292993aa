import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GrpcStatus } from '../errors/index.js';
import { MessageDecoder, messageHead, totalLength } from './framing.js';

function frame(payload: Buffer, flag = 0): Buffer {
  const head = messageHead(payload.length);
  head[0] = flag;
  return Buffer.concat([head, payload]);
}

function drain(decoder: MessageDecoder): Buffer[] {
  const out: Buffer[] = [];
  for (let m = decoder.read(); m !== undefined; m = decoder.read()) out.push(Buffer.from(m));
  return out;
}

describe('messageHead', () => {
  test('writes flag 0 and a big-endian length', () => {
    assert.deepEqual([...messageHead(0x01020304)], [0, 1, 2, 3, 4]);
    assert.deepEqual([...messageHead(0)], [0, 0, 0, 0, 0]);
  });

  test('totalLength sums the parts of a message', () => {
    assert.equal(totalLength([Buffer.alloc(3), new Uint8Array(4), Buffer.alloc(0)]), 7);
  });
});

describe('MessageDecoder', () => {
  test('many messages packed in one chunk come out as views of it (no copy)', () => {
    const payloads = Array.from({ length: 50 }, (_, i) => Buffer.alloc(i, i));
    const chunk = Buffer.concat(payloads.map((p) => frame(p)));
    const decoder = new MessageDecoder(1024);
    decoder.push(chunk);
    const views: Buffer[] = [];
    for (let m = decoder.read(); m !== undefined; m = decoder.read()) views.push(m);
    assert.equal(views.length, 50);
    views.forEach((view, i) => {
      assert.deepEqual(view, payloads[i]);
      assert.equal(view.buffer, chunk.buffer, 'a message within one chunk is a subarray of it');
    });
    assert.equal(decoder.atBoundary, true);
  });

  test('a message split byte by byte across chunks is reassembled once', () => {
    const payload = Buffer.from('split across many DATA frames');
    const wire = Buffer.concat([frame(payload), frame(Buffer.from('next'))]);
    const decoder = new MessageDecoder(1024);
    const out: Buffer[] = [];
    for (let i = 0; i < wire.length; i++) {
      decoder.push(wire.subarray(i, i + 1));
      out.push(...drain(decoder));
    }
    assert.deepEqual(
      out.map((b) => b.toString()),
      ['split across many DATA frames', 'next'],
    );
    assert.equal(decoder.atBoundary, true);
  });

  test('every split point of a three-message stream yields the same messages', () => {
    const payloads = [Buffer.from('alpha'), Buffer.alloc(0), Buffer.alloc(300, 7)];
    const wire = Buffer.concat(payloads.map((p) => frame(p)));
    for (let a = 0; a <= wire.length; a++) {
      for (const b of [a, Math.min(wire.length, a + 1), Math.min(wire.length, a + 6), wire.length]) {
        const decoder = new MessageDecoder(1024);
        const out: Buffer[] = [];
        for (const piece of [wire.subarray(0, a), wire.subarray(a, b), wire.subarray(b)]) {
          decoder.push(piece);
          out.push(...drain(decoder));
        }
        assert.deepEqual(out, payloads, `split at ${a}/${b}`);
        assert.equal(decoder.atBoundary, true);
      }
    }
  });

  test('chunks pushed while the reader is not pulling are kept in order', () => {
    const decoder = new MessageDecoder(1024);
    decoder.push(frame(Buffer.from('one')));
    decoder.push(frame(Buffer.from('two')).subarray(0, 6));
    decoder.push(frame(Buffer.from('two')).subarray(6));
    decoder.push(frame(Buffer.from('three')));
    assert.deepEqual(
      drain(decoder).map((b) => b.toString()),
      ['one', 'two', 'three'],
    );
  });

  test('a stream that stops inside a message is not at a boundary', () => {
    const decoder = new MessageDecoder(1024);
    decoder.push(frame(Buffer.from('whole')));
    decoder.push(frame(Buffer.from('partial')).subarray(0, 8));
    assert.equal(drain(decoder).length, 1);
    assert.equal(decoder.atBoundary, false);
    const headOnly = new MessageDecoder(1024);
    headOnly.push(Buffer.from([0, 0]));
    assert.equal(headOnly.read(), undefined);
    assert.equal(headOnly.atBoundary, false);
  });

  test('a declared length over the limit fails with RESOURCE_EXHAUSTED before buffering', () => {
    const decoder = new MessageDecoder(10);
    decoder.push(frame(Buffer.alloc(10)));
    decoder.push(messageHead(11));
    assert.equal(drain(decoder).length, 1);
    assert.deepEqual(decoder.failure, { code: GrpcStatus.RESOURCE_EXHAUSTED, message: 'received message larger than max (11 vs. 10)' });
    // Declaring 4 GiB costs nothing: nothing is allocated for it.
    const huge = new MessageDecoder(4 * 1024 * 1024);
    huge.push(Buffer.from([0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
    assert.equal(huge.read(), undefined);
    assert.equal(huge.failure?.code, GrpcStatus.RESOURCE_EXHAUSTED);
    assert.match(huge.failure?.message ?? '', /\(4294967295 vs\. 4194304\)/);
  });

  test('a set compressed flag is a protocol error (INTERNAL), as is any other flag', () => {
    const decoder = new MessageDecoder(1024);
    decoder.push(frame(Buffer.from('x'), 1));
    assert.equal(decoder.read(), undefined);
    assert.equal(decoder.failure?.code, GrpcStatus.INTERNAL);
    const odd = new MessageDecoder(1024);
    odd.push(frame(Buffer.from('x'), 2));
    assert.equal(odd.read(), undefined);
    assert.equal(odd.failure?.code, GrpcStatus.INTERNAL);
    // Also when the flag byte arrives on its own.
    const split = new MessageDecoder(1024);
    split.push(Buffer.from([1]));
    split.push(Buffer.from([0, 0, 0, 1, 9]));
    assert.equal(split.read(), undefined);
    assert.equal(split.failure?.code, GrpcStatus.INTERNAL);
  });

  test('a spanning message whose head is split is copied into an exact-size buffer', () => {
    const payload = Buffer.alloc(1000, 3);
    const wire = frame(payload);
    const decoder = new MessageDecoder(2000);
    decoder.push(wire.subarray(0, 3));
    decoder.push(wire.subarray(3, 500));
    assert.equal(decoder.read(), undefined);
    decoder.push(wire.subarray(500));
    const message = decoder.read();
    assert.ok(message !== undefined);
    assert.equal(message.length, 1000);
    assert.equal(message.buffer.byteLength >= 1000, true);
    assert.deepEqual(message, payload);
  });
});
