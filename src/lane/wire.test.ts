// The lane's framing: what FrameBatch writes, FrameParser reads back the same however the bytes are
// split by the socket; frames over the limit are refused before any payload is buffered.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { emptyMetadata, FrameBatch, FrameParser, MESSAGE, OPEN, PayloadReader, TRAILERS, WINDOW, type FrameHandler } from './wire.js';

interface Seen {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

function parse(chunks: readonly Buffer[], maxFrameBytes = 1024 * 1024): { frames: Seen[]; oversized: number[] } {
  const frames: Seen[] = [];
  const oversized: number[] = [];
  const handler: FrameHandler = {
    frame: (type, flags, stream, payload) => {
      frames.push({ type, flags, stream, payload: Buffer.from(payload) });
      return true;
    },
    oversized: (length) => {
      oversized.push(length);
    },
  };
  const parser = new FrameParser(handler, maxFrameBytes);
  for (const chunk of chunks) parser.push(chunk);
  return { frames, oversized };
}

function sampleBytes(): Buffer {
  const batch = new FrameBatch();
  batch.open(1, 0, 2500, '/dapr.proto.internals.v1.ServiceInvocation/CallLocalStream', { 'x-one': 'a', 'x-many': ['b', 'ü €'] });
  batch.slice(MESSAGE, 0, 1, Buffer.from('small message'), 0, 13);
  batch.frame(MESSAGE, 0, 3, [Buffer.alloc(10_000, 7), Buffer.alloc(5, 8)], 10_005);
  batch.u32(WINDOW, 0, 1, 131_072);
  batch.trailers(1, 5, 'not found: ü', { 'grpc-status-details-bin': 'AAEC' });
  return Buffer.concat(batch.take());
}

function check(frames: readonly Seen[]): void {
  assert.deepEqual(
    frames.map((f) => [f.type, f.stream, f.payload.length]),
    [
      [OPEN, 1, frames[0]?.payload.length],
      [MESSAGE, 1, 13],
      [MESSAGE, 3, 10_005],
      [WINDOW, 1, 4],
      [TRAILERS, 1, frames[4]?.payload.length],
    ],
  );
  const open = new PayloadReader((frames[0] as Seen).payload);
  assert.equal(open.u32(), 2500);
  assert.equal(open.string(open.u16()), '/dapr.proto.internals.v1.ServiceInvocation/CallLocalStream');
  assert.deepEqual({ ...open.metadata(emptyMetadata()) }, { 'x-one': 'a', 'x-many': ['b', 'ü €'] });
  assert.equal((frames[1] as Seen).payload.toString(), 'small message');
  const big = (frames[2] as Seen).payload;
  assert.equal(big[0], 7);
  assert.equal(big[10_004], 8);
  assert.equal((frames[3] as Seen).payload.readUInt32BE(0), 131_072);
  const trailers = new PayloadReader((frames[4] as Seen).payload);
  assert.equal(trailers.u32(), 5);
  assert.equal(trailers.string(trailers.u32()), 'not found: ü');
  assert.deepEqual({ ...trailers.metadata(emptyMetadata()) }, { 'grpc-status-details-bin': 'AAEC' });
}

describe('lane framing', () => {
  test('frames written in one batch read back the same in one chunk', () => {
    const { frames, oversized } = parse([sampleBytes()]);
    assert.deepEqual(oversized, []);
    check(frames);
  });

  test('frames read back the same when every byte arrives alone, and at every two-piece split', () => {
    const bytes = sampleBytes();
    check(parse([...bytes].map((b) => Buffer.from([b]))).frames);
    for (let at = 1; at < bytes.length; at += 97) check(parse([bytes.subarray(0, at), bytes.subarray(at)]).frames);
  });

  test('a frame over the limit is refused from its head alone and nothing after it is read', () => {
    const batch = new FrameBatch();
    batch.slice(MESSAGE, 0, 1, Buffer.from('ok'), 0, 2);
    batch.frame(MESSAGE, 0, 3, [Buffer.alloc(2000)], 2000);
    batch.slice(MESSAGE, 0, 5, Buffer.from('after'), 0, 5);
    const bytes = Buffer.concat(batch.take());
    const { frames, oversized } = parse([bytes.subarray(0, 12 + 10)], 1024);
    assert.deepEqual(oversized, [2000]);
    assert.deepEqual(frames.map((f) => f.payload.toString()), ['ok']);
    const rest = parse([bytes], 1024);
    assert.deepEqual(rest.oversized, [2000]);
    assert.equal(rest.frames.length, 1);
  });

  test('a malformed payload throws a RangeError instead of reading past the frame', () => {
    const reader = new PayloadReader(Buffer.from([0, 9, 0x61]));
    assert.throws(() => reader.string(reader.u16()), RangeError);
  });
});
