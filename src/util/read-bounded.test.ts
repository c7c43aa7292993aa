import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { readAtMost } from './read-bounded.js';

test('readAtMost: the whole stream up to the limit, undefined past it, the stream error otherwise', async () => {
  assert.deepEqual(await readAtMost(Readable.from([Buffer.from('ab'), Buffer.from('cd')]), 4), Buffer.from('abcd'));
  assert.equal(await readAtMost(Readable.from([Buffer.from('ab'), Buffer.from('cde')]), 4), undefined);
  const failing = new Readable({ read() {} });
  const read = readAtMost(failing, 10);
  failing.destroy(new Error('reset'));
  await assert.rejects(read, /reset/);
});
