import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { requestSchedulerSlice } from './scheduler-slice.js';

/** The calling thread's slice as the kernel shows it (`se.slice` in /proc, Linux 6.6 and newer), in ns. */
function shownSlice(): number | undefined {
  const line = /^se\.slice\s*:\s*(\d+)/m.exec(readFileSync('/proc/thread-self/sched', 'utf8'));
  return line?.[1] === undefined ? undefined : Number(line[1]);
}

/** Linux 6.12 and newer keep a slice asked for with sched_setattr. */
function kernelKeepsSlices(): boolean {
  const [major = 0, minor = 0] = (/^(\d+)\.(\d+)/.exec(readFileSync('/proc/sys/kernel/osrelease', 'utf8')) ?? []).slice(1).map(Number);
  return major > 6 || (major === 6 && minor >= 12);
}

test('the event loop thread gets the slice it asks for, keeping its nice value', { skip: process.platform !== 'linux' }, () => {
  setPriority(0, 3); // raising one's own nice value needs no privilege
  const outcome = requestSchedulerSlice(300);
  if (!kernelKeepsSlices()) {
    assert.deepEqual(outcome, { kind: 'ignored' });
    return;
  }
  assert.deepEqual(outcome, { kind: 'set', sliceUs: 300 });
  assert.equal(shownSlice(), 300_000);
  assert.equal(getPriority(0), 3, 'the nice value is kept');

  assert.deepEqual(requestSchedulerSlice(2000), { kind: 'set', sliceUs: 2000 });
  assert.equal(shownSlice(), 2_000_000);
  // The kernel clamps what it is asked for to 0.1–100 ms and says what it keeps.
  assert.deepEqual(requestSchedulerSlice(20), { kind: 'set', sliceUs: 100 });
  assert.equal(shownSlice(), 100_000);
});
