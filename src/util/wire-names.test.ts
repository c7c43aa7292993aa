import assert from 'node:assert/strict';
import { test } from 'node:test';
import { forTests, readName } from './wire-names.js';

const at = (text: string): [Buffer, number, number] => {
  // The name in the middle of a larger buffer, as it sits in a frame.
  const bytes = Buffer.from(`xx${text}yy`, 'utf8');
  return [bytes, 2, bytes.length - 4];
};

test('reads names as UTF-8, whatever their length or characters', () => {
  for (const name of ['content-type', 'x', '', 'grüße', 'x-'.repeat(40), 'é'.repeat(30)]) {
    assert.equal(readName(...at(name)), name);
    assert.equal(readName(...at(name)), name, 'the same bytes again');
  }
});

test('two names in the same slot each read as themselves, in any order', () => {
  // Find two short ASCII names of the same length that share a slot.
  const bySlot = new Map<number, string>();
  let pair: [string, string] | undefined;
  for (let i = 0; pair === undefined; i++) {
    const name = `x-h${i.toString(36).padStart(4, '0')}`;
    const other = bySlot.get(forTests.slotOf(name));
    if (other !== undefined) pair = [other, name];
    else bySlot.set(forTests.slotOf(name), name);
  }
  const [a, b] = pair;
  assert.equal(a.length, b.length);
  for (const name of [a, b, b, a, a, b]) assert.equal(readName(...at(name)), name);
});
