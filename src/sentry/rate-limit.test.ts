import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { clientKey, ConnectionCounter, RateLimiter } from './rate-limit.js';

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

describe('RateLimiter', () => {
  test('allows a burst, then refills at the rate, never beyond the burst', () => {
    const c = clock();
    const limiter = new RateLimiter({ perSecond: 2, burst: 3 }, { maxEntries: 10, now: c.now });
    assert.deepEqual([1, 2, 3, 4].map(() => limiter.take('a')), [true, true, true, false]);
    c.advance(499);
    assert.equal(limiter.take('a'), false, 'not a whole request yet');
    c.advance(1);
    assert.equal(limiter.take('a'), true, 'one request after 500 ms at 2/s');
    assert.equal(limiter.take('a'), false);
    c.advance(60_000);
    assert.deepEqual([1, 2, 3, 4].map(() => limiter.take('a')), [true, true, true, false], 'a long pause gives one burst, no more');
  });

  test('keys are independent', () => {
    const c = clock();
    const limiter = new RateLimiter({ perSecond: 1, burst: 1 }, { maxEntries: 10, now: c.now });
    assert.equal(limiter.take('a'), true);
    assert.equal(limiter.take('a'), false);
    assert.equal(limiter.take('b'), true);
  });

  test('allows() looks without spending and creates nothing', () => {
    const c = clock();
    const limiter = new RateLimiter({ perSecond: 1, burst: 1 }, { maxEntries: 10, now: c.now });
    for (let i = 0; i < 5; i++) assert.equal(limiter.allows('a'), true);
    assert.equal(limiter.size, 0);
    assert.equal(limiter.take('a'), true);
    assert.equal(limiter.allows('a'), false);
    c.advance(1000);
    assert.equal(limiter.allows('a'), true);
  });

  test('a rate of 0 is no limit and keeps no state', () => {
    const limiter = new RateLimiter({ perSecond: 0, burst: 1 }, { maxEntries: 1 });
    for (let i = 0; i < 1000; i++) assert.equal(limiter.take(`k${i}`), true);
    assert.equal(limiter.enabled, false);
    assert.equal(limiter.size, 0);
  });

  test('holds at most maxEntries buckets: full ones go first, then the least recently used', () => {
    const c = clock();
    const limiter = new RateLimiter({ perSecond: 1, burst: 2 }, { maxEntries: 3, now: c.now });
    limiter.take('a');
    limiter.take('a');
    limiter.take('b');
    c.advance(10);
    limiter.take('c');
    limiter.take('a'); // refused, but 'a' is now the most recently seen
    limiter.take('d'); // over the cap: 'b' is the least recently used
    assert.equal(limiter.size, 3);
    assert.equal(limiter.take('a'), false, "the active client's empty bucket was kept");
    assert.equal(limiter.take('b'), true, 'b was forgotten: a fresh bucket');
    for (let i = 0; i < 10_000; i++) limiter.take(`spread-${i}`);
    assert.equal(limiter.size, 3, 'many addresses do not grow it');
  });

  test('sweep() forgets buckets idle long enough to be full again, and only those', () => {
    const c = clock();
    const limiter = new RateLimiter({ perSecond: 10, burst: 20 }, { maxEntries: 100, now: c.now });
    limiter.take('old');
    c.advance(1500);
    limiter.take('recent');
    c.advance(600); // 'old' idle 2.1 s (a burst of 20 refills in 2 s), 'recent' 0.6 s
    limiter.sweep();
    assert.equal(limiter.size, 1);
    c.advance(2000);
    limiter.sweep();
    assert.equal(limiter.size, 0);
  });

  test('refuses nonsense limits', () => {
    assert.throws(() => new RateLimiter({ perSecond: -1, burst: 1 }, { maxEntries: 1 }), RangeError);
    assert.throws(() => new RateLimiter({ perSecond: 1, burst: 0 }, { maxEntries: 1 }), RangeError);
    assert.throws(() => new RateLimiter({ perSecond: 1, burst: 1.5 }, { maxEntries: 1 }), RangeError);
    assert.throws(() => new RateLimiter({ perSecond: Number.NaN, burst: 1 }, { maxEntries: 1 }), RangeError);
    assert.throws(() => new RateLimiter({ perSecond: 1, burst: 1 }, { maxEntries: 0 }), RangeError);
  });
});

describe('ConnectionCounter', () => {
  test('counts open connections per key up to the maximum; 0 is no limit', () => {
    const counter = new ConnectionCounter(2);
    assert.equal(counter.open('a'), true);
    assert.equal(counter.open('a'), true);
    assert.equal(counter.open('a'), false);
    assert.equal(counter.open('b'), true);
    counter.close('a');
    assert.equal(counter.open('a'), true);
    counter.close('a');
    counter.close('a');
    counter.close('b');
    assert.equal(counter.size, 0, 'keys without connections are forgotten');
    const unlimited = new ConnectionCounter(0);
    for (let i = 0; i < 100; i++) assert.equal(unlimited.open('a'), true);
  });
});

describe('clientKey', () => {
  test('IPv4 addresses as they are; IPv4-mapped IPv6 as IPv4', () => {
    assert.equal(clientKey('10.1.2.3'), '10.1.2.3');
    assert.equal(clientKey('::ffff:10.1.2.3'), '10.1.2.3');
    assert.equal(clientKey(''), '');
  });

  test('IPv6 addresses by their /64, however they are written', () => {
    assert.equal(clientKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd'), '2001:db8:1:2::/64');
    assert.equal(clientKey('2001:db8:1:2::1'), '2001:db8:1:2::/64');
    assert.equal(clientKey('2001:0db8:0001:0002:0000:0000:0000:0009'), '2001:db8:1:2::/64');
    assert.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(clientKey('::1'), '0:0:0:0::/64');
    assert.equal(clientKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
    assert.equal(clientKey('64:ff9b::10.0.0.1'), '64:ff9b:0:0::/64');
    assert.notEqual(clientKey('2001:db8:1:2::1'), clientKey('2001:db8:1:3::1'));
  });
});
