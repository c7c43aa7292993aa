import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SseParser, type SseEvent } from './sse.js';

function parseAll(chunks: ReadonlyArray<string | Uint8Array>): { events: SseEvent[]; comments: string[] } {
  const events: SseEvent[] = [];
  const comments: string[] = [];
  const parser = new SseParser({ onEvent: (e) => events.push(e), onComment: (c) => comments.push(c) });
  for (const chunk of chunks) parser.push(chunk);
  return { events, comments };
}

const stream = ': tap open\n\nevent: call\ndata: {"a":1}\n\n: dropped 3\nevent: call\ndata: {"b":"é→"}\n\ndata: first\ndata: second\nid: 7\n\n';

const expected: SseEvent[] = [
  { event: 'call', data: '{"a":1}', id: '' },
  { event: 'call', data: '{"b":"é→"}', id: '' },
  { event: 'message', data: 'first\nsecond', id: '7' },
];

test('events, comments and multi-line data in one chunk', () => {
  const { events, comments } = parseAll([stream]);
  assert.deepEqual(events, expected);
  assert.deepEqual(comments, ['tap open', 'dropped 3']);
});

test('the same stream split at every byte, UTF-8 characters included', () => {
  const bytes = Buffer.from(stream, 'utf8');
  const { events, comments } = parseAll([...bytes].map((b) => Uint8Array.of(b)));
  assert.deepEqual(events, expected);
  assert.deepEqual(comments, ['tap open', 'dropped 3']);
});

test('the same stream split at every pair of positions', () => {
  const bytes = Buffer.from(stream, 'utf8');
  for (let i = 1; i < bytes.length; i += 3) {
    for (let j = i + 1; j < bytes.length; j += 5) {
      const { events } = parseAll([bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)]);
      assert.deepEqual(events, expected, `split at ${i} and ${j}`);
    }
  }
});

test('CRLF and CR line ends, a CRLF split across chunks counted once', () => {
  const crlf = stream.replace(/\n/g, '\r\n');
  assert.deepEqual(parseAll([crlf]).events, expected);
  for (let i = 1; i < crlf.length; i++) assert.deepEqual(parseAll([crlf.slice(0, i), crlf.slice(i)]).events, expected, `split at ${i}`);
  assert.deepEqual(parseAll([stream.replace(/\n/g, '\r')]).events, expected);
  // An empty chunk between CR and LF does not turn them into two line ends.
  assert.deepEqual(parseAll(['data: x\r', '', '\n\r\n']).events, [{ event: 'message', data: 'x', id: '' }]);
});

test('an event is dispatched only at its blank line; one without data is none', () => {
  const { events } = parseAll(['event: call\ndata: {"x":', '1}\n']);
  assert.deepEqual(events, []);
  assert.deepEqual(parseAll(['event: call\ndata: {"x":', '1}\n', '\n']).events, [{ event: 'call', data: '{"x":1}', id: '' }]);
  assert.deepEqual(parseAll(['event: call\n\ndata:no-space\n\n']).events, [{ event: 'message', data: 'no-space', id: '' }]);
});
