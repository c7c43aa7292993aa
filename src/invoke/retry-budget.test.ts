import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RetryBudget } from './retry-budget.js';

test('the floor allows minPerSecond × 10 retries in a window with no calls', () => {
  let now = 0;
  const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 2 }, () => now);
  let allowed = 0;
  for (let i = 0; i < 100; i++) if (budget.tryRetry()) allowed++;
  assert.equal(allowed, 20);
  now += 10_000;
  assert.equal(budget.tryRetry(), true, 'a new window starts the count again');
});

test('with every call failing, retries stay within ratio × calls + floor over the window', () => {
  let now = 0;
  const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 10 }, () => now);
  let calls = 0;
  let retries = 0;
  // 1000 calls per second for 30 s, each wanting 3 retries.
  for (let ms = 0; ms < 30_000; ms++) {
    now = ms;
    budget.called();
    calls++;
    for (let r = 0; r < 3; r++) if (budget.tryRetry()) retries++;
  }
  // Per 10 s window: 100 + 0.2 × 10 000 = 2100 at most; over 30 s about three windows' worth.
  assert.ok(retries <= 3 * 2100 + 100, `retries ${retries}`);
  assert.ok(retries >= 0.19 * calls, `the ratio is usable: ${retries} retries for ${calls} calls`);
  assert.deepEqual(budget.window.calls, 10_000);
  assert.ok(budget.window.retries <= 2100);
});

test('ratio 0 and floor 0: no retry at all', () => {
  const budget = new RetryBudget({ ratio: 0, minPerSecond: 0 }, () => 5);
  budget.called();
  assert.equal(budget.tryRetry(), false);
});

test('buckets older than the window are forgotten one second at a time', () => {
  let now = 0;
  const budget = new RetryBudget({ ratio: 1, minPerSecond: 0 }, () => now);
  for (let i = 0; i < 10; i++) budget.called();
  now = 5_000;
  for (let i = 0; i < 10; i++) budget.called();
  assert.equal(budget.window.calls, 20);
  now = 10_500;
  assert.equal(budget.window.calls, 10, 'the calls of second 0 left the window');
  now = 15_500;
  assert.equal(budget.window.calls, 0);
});
