import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GrpcStatus } from '../errors/index.js';
import { MessageParser, framedParts, messageHead } from './framing.js';
import { decodeGrpcMessage, encodeGrpcMessage, encodeTimeout, parseTimeout } from './wire.js';

function frame(body: string): Buffer {
  return Buffer.concat([messageHead(Buffer.byteLength(body)), Buffer.from(body)]);
}

test('messages packed in one chunk, split across chunks, and empty', () => {
  const parser = new MessageParser(1024);
  const out: string[] = [];
  const all = Buffer.concat([frame('one'), frame(''), frame('two'), frame('three')]);
  assert.equal(parser.push(all.subarray(0, 2), (m) => out.push(m.toString())), undefined);
  for (let i = 2; i < all.length; i += 3) parser.push(all.subarray(i, Math.min(all.length, i + 3)), (m) => out.push(m.toString()));
  assert.deepEqual(out, ['one', '', 'two', 'three']);
  assert.equal(parser.idle, true);
  const single: string[] = [];
  parser.push(all, (m) => single.push(m.toString()));
  assert.deepEqual(single, ['one', '', 'two', 'three']);
});

test('a message inside one chunk is a view of it, not a copy', () => {
  const chunk = frame('hello');
  let message: Buffer | undefined;
  new MessageParser(1024).push(chunk, (m) => (message = m));
  assert.equal(message?.buffer, chunk.buffer);
});

test('a message over the limit fails before being buffered; a compressed one is refused', () => {
  const big = new MessageParser(10).push(messageHead(11), () => assert.fail('no message'));
  assert.equal(big?.code, GrpcStatus.RESOURCE_EXHAUSTED);
  assert.match(big?.message ?? '', /larger than max \(11 vs\. 10\)/);
  const compressed = Buffer.concat([Buffer.from([1, 0, 0, 0, 1]), Buffer.from('x')]);
  assert.equal(new MessageParser(10).push(compressed, () => {})?.code, GrpcStatus.INTERNAL);
});

test('a partial message leaves the parser busy', () => {
  const parser = new MessageParser(100);
  parser.push(frame('abcdef').subarray(0, 7), () => {});
  assert.equal(parser.idle, false);
});

test('framedParts writes small messages as one buffer and large ones without copying', () => {
  const small = framedParts([Buffer.from('ab'), Buffer.from('cd')]);
  assert.equal(small.length, 1);
  assert.deepEqual([...(small[0] as Buffer)], [0, 0, 0, 0, 4, 0x61, 0x62, 0x63, 0x64]);
  const chunk = Buffer.alloc(64 * 1024, 1);
  const large = framedParts([Buffer.from('h'), chunk]);
  assert.equal(large.length, 3);
  assert.equal(large[2], chunk);
  assert.equal((large[0] as Buffer).readUInt32BE(1), 64 * 1024 + 1);
});

test('grpc-message percent-encoding round-trips', () => {
  for (const text of ['plain', '100% sure', 'line\nbreak', 'café ☕', '']) {
    const encoded = encodeGrpcMessage(text);
    assert.match(encoded, /^[\x20-\x7e]*$/);
    assert.equal(decodeGrpcMessage(encoded), text);
  }
  assert.equal(encodeGrpcMessage('100% sure'), '100%25 sure');
  assert.equal(decodeGrpcMessage('bad %zz escape'), 'bad %zz escape');
});

test('grpc-timeout encoding and parsing', () => {
  assert.equal(encodeTimeout(1500), '1500m');
  assert.equal(parseTimeout('1500m'), 1500);
  assert.equal(parseTimeout('2S'), 2000);
  assert.equal(parseTimeout('1H'), 3_600_000);
  assert.equal(parseTimeout('100u'), 0.1);
  assert.equal(parseTimeout('123456789S'), undefined);
  assert.equal(parseTimeout('5x'), undefined);
  assert.equal(parseTimeout(encodeTimeout(3 * 24 * 3_600_000)), 3 * 24 * 3_600_000);
});
