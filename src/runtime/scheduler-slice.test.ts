import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getPriority, setPriority } from 'node:os';
import { requestSchedulerSlice } from './scheduler-slice.js';
import { kernelKeepsSlices, shownSlice } from '../../test/framework/scheduler.js';

test('the event loop thread gets the slice it asks for, keeping its nice value', { skip: process.platform !== 'linux' }, () => {
  setPriority(0, 3); // raising one's own nice value needs no privilege
  const outcome = requestSchedulerSlice(300);
  if (!kernelKeepsSlices()) {
    assert.deepEqual(outcome, { kind: 'ignored' });
    return;
  }
  assert.deepEqual(outcome, { kind: 'set', sliceUs: 300 });
  assert.equal(shownSlice('thread-self'), 300_000);
  assert.equal(getPriority(0), 3, 'the nice value is kept');

  assert.deepEqual(requestSchedulerSlice(2000), { kind: 'set', sliceUs: 2000 });
  assert.equal(shownSlice('thread-self'), 2_000_000);
  // The kernel clamps what it is asked for to 0.1–100 ms and says what it keeps.
  assert.deepEqual(requestSchedulerSlice(20), { kind: 'set', sliceUs: 100 });
  assert.equal(shownSlice('thread-self'), 100_000);
});
