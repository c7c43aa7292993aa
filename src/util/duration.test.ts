import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDuration, formatDuration } from './duration.js';
import { parseQuantity, formatQuantity } from './quantity.js';

test('parseDuration reads Go durations and bare numbers', () => {
  assert.equal(parseDuration('5s'), 5000);
  assert.equal(parseDuration('800ms'), 800);
  assert.equal(parseDuration('1h'), 3_600_000);
  assert.equal(parseDuration('2h45m'), 9_900_000);
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('0'), 0);
  assert.equal(parseDuration('10'), 10_000);
  assert.equal(parseDuration('500', 'ms'), 500);
  assert.equal(parseDuration(3), 3000);
  assert.equal(parseDuration('-1s'), -1000);
  assert.equal(parseDuration('1500us'), 1.5);
});

test('parseDuration rejects malformed input', () => {
  for (const bad of ['', 's', '5 s', '5x', '1h-2m', 'five', '1..5s']) assert.equal(parseDuration(bad), undefined, bad);
});

test('formatDuration prints like Go', () => {
  assert.equal(formatDuration(1500), '1.5s');
  assert.equal(formatDuration(60_000), '1m0s');
  assert.equal(formatDuration(250), '250ms');
  assert.equal(formatDuration(3_723_000), '1h2m3s');
});

test('parseQuantity reads binary and decimal suffixes', () => {
  assert.equal(parseQuantity('4Mi'), 4 * 1024 * 1024);
  assert.equal(parseQuantity('200Mi'), 200 * 1024 * 1024);
  assert.equal(parseQuantity('4Ki'), 4096);
  assert.equal(parseQuantity('1G'), 1e9);
  assert.equal(parseQuantity('2048'), 2048);
  assert.equal(parseQuantity('1.5Ki'), 1536);
  for (const bad of ['', 'Mi', '4 Mb', '-1', '0.5']) assert.equal(parseQuantity(bad), undefined, bad);
  assert.equal(formatQuantity(4 * 1024 * 1024), '4Mi');
  assert.equal(formatQuantity(1000), '1000B');
});
