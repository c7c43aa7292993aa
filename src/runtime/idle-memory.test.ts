import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { forTests, IdleMemoryReclaimer } from './idle-memory.js';

/** What the collection after start-up asks V8 for: its last-resort kind where V8 has it (V8 12+), a plain full one on V8 11. */
const settle = { thorough: forTests.thoroughGc };

type Call = { thorough: boolean };

/**
 * A reclaimer that looks every `everyMs` and records the collections it asks for instead of making
 * them; it settles after start-up unless `settle` says otherwise (`'default'`: as the runtime decides).
 */
function watch(everyMs: number, minGapMs = 60_000, settle: boolean | 'default' = true): { reclaimer: IdleMemoryReclaimer; calls: Call[] } {
  const calls: Call[] = [];
  const reclaimer = IdleMemoryReclaimer.start({
    checkEveryMs: everyMs,
    minGapMs,
    ...(settle === 'default' ? {} : { settle }),
    gc: (options) => calls.push({ thorough: options?.flavor === 'last-resort' }),
  });
  assert.ok(reclaimer !== undefined);
  return { reclaimer, calls };
}

async function until(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Keeps the event loop busy (well over 2 % of the time) for `ms`. */
async function busyFor(ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const slice = Date.now() + 5;
    while (Date.now() < slice) {
      // spin: work on the event loop, as calls being served would be
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
}

test('once idle after start-up, one thorough collection, and no other while the heap stays small', async () => {
  const { reclaimer, calls } = watch(20);
  try {
    await until(() => calls.length > 0, 'the first collection');
    assert.deepEqual(calls, [settle]);
    await sleep(300); // some 15 more looks at an idle, small heap
    assert.deepEqual(calls, [settle]);
  } finally {
    reclaimer.close();
  }
});

test('nothing is collected while the event loop is busy; the collection waits for the first idle interval', async () => {
  const { reclaimer, calls } = watch(50);
  try {
    await busyFor(600);
    assert.deepEqual(calls, [], 'no collection while busy');
    await until(() => calls.length > 0, 'the collection once idle');
    assert.deepEqual(calls, [settle]);
  } finally {
    reclaimer.close();
  }
});

test('after a burst that leaves the heap well over what it needs when quiet, one full collection once idle', async () => {
  const { reclaimer, calls } = watch(20, 0);
  let kept: unknown[] = [];
  try {
    await until(() => calls.length > 0, 'the start-up collection');
    // The burst: 60 MB or so of objects on the heap (the fake collector frees nothing, so the heap stays
    // large and every later look sees the slack; the real one would give it back).
    for (let i = 0; i < 64; i++) kept.push(Array.from({ length: 1024 * 16 }, (_, j) => ({ j })));
    await until(() => calls.length > 1, 'the collection after the burst');
    assert.deepEqual(calls.slice(0, 2), [settle, { thorough: false }]);
  } finally {
    kept = [];
    reclaimer.close();
  }
});

test('closed, it looks no more', async () => {
  const { reclaimer, calls } = watch(10);
  reclaimer.close();
  await sleep(200);
  assert.deepEqual(calls, []);
});

test('by default a process settles after start-up only where V8 collects thoroughly when asked (V8 12 and later)', async () => {
  const { reclaimer, calls } = watch(20, 60_000, 'default');
  try {
    if (forTests.thoroughGc) await until(() => calls.length > 0, 'the start-up collection');
    else await sleep(300); // some 15 looks at an idle, small heap
    assert.deepEqual(calls, forTests.thoroughGc ? [{ thorough: true }] : []);
  } finally {
    reclaimer.close();
  }
});
