import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BreakerCache, CircuitBreaker, compileTrip, type BreakerCounts, type BreakerState, type CircuitBreakerOptions } from './circuit-breaker.js';

/** A clock the test moves by hand. */
function clock(start = 1_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

function counts(c: Partial<BreakerCounts>): BreakerCounts {
  return { requests: 0, totalSuccesses: 0, totalFailures: 0, consecutiveSuccesses: 0, consecutiveFailures: 0, ...c };
}

interface Harness {
  readonly breaker: CircuitBreaker;
  readonly advance: (ms: number) => void;
  readonly changes: string[];
  /** Admits one call and reports it failed; throws when it is refused. */
  readonly fail: () => void;
  /** Admits one call and reports it succeeded; throws when it is refused. */
  readonly succeed: () => void;
}

function harness(options: Partial<CircuitBreakerOptions> & { tripExpression?: string } = {}): Harness {
  const c = clock();
  const changes: string[] = [];
  const { tripExpression, ...rest } = options;
  const breaker = new CircuitBreaker({
    maxRequests: 1,
    intervalMs: 0,
    timeoutMs: 60_000,
    trip: compileTrip(tripExpression ?? 'consecutiveFailures > 5'),
    now: c.now,
    onStateChange: (from: BreakerState, to: BreakerState) => changes.push(`${from}->${to}`),
    ...rest,
  });
  const admitted = (): number => {
    const token = breaker.admit();
    if (typeof token !== 'number') throw new Error(`refused: ${token}`);
    return token;
  };
  return {
    breaker,
    advance: c.advance,
    changes,
    fail: () => breaker.failed(admitted()),
    succeed: () => breaker.succeeded(admitted()),
  };
}

test("the default trip opens the breaker on the 6th consecutive failure, not the 5th", () => {
  const h = harness();
  for (let i = 0; i < 5; i++) h.fail();
  assert.equal(h.breaker.state, 'closed');
  assert.deepEqual(h.breaker.counts, counts({ requests: 5, totalFailures: 5, consecutiveFailures: 5 }));
  h.fail();
  assert.equal(h.breaker.state, 'open');
  assert.equal(h.breaker.admit(), 'open');
  assert.deepEqual(h.changes, ['closed->open']);
  assert.deepEqual(h.breaker.counts, counts({}), 'a change of state clears the counts');
});

test('a success resets the consecutive failures (but not the totals)', () => {
  const h = harness();
  for (let i = 0; i < 5; i++) h.fail();
  h.succeed();
  assert.deepEqual(h.breaker.counts, counts({ requests: 6, totalSuccesses: 1, totalFailures: 5, consecutiveSuccesses: 1 }));
  for (let i = 0; i < 5; i++) h.fail();
  assert.equal(h.breaker.state, 'closed');
  assert.equal(h.breaker.counts.consecutiveSuccesses, 0, 'a failure resets the consecutive successes');
  h.fail();
  assert.equal(h.breaker.state, 'open');
});

test('open refuses every call until the timeout, then half-open admits exactly maxRequests calls', () => {
  const h = harness({ maxRequests: 3, timeoutMs: 10_000, tripExpression: 'consecutiveFailures >= 1' });
  h.fail();
  assert.equal(h.breaker.state, 'open');
  h.advance(9_999);
  assert.equal(h.breaker.admit(), 'open');
  assert.equal(h.breaker.admit(), 'open');
  assert.equal(h.breaker.counts.requests, 0, 'refused calls are not counted');
  h.advance(1);
  assert.equal(h.breaker.state, 'half-open');
  const tokens = [h.breaker.admit(), h.breaker.admit(), h.breaker.admit()];
  for (const token of tokens) assert.equal(typeof token, 'number');
  assert.equal(h.breaker.admit(), 'too-many-requests');
  assert.equal(h.breaker.admit(), 'too-many-requests');
  assert.equal(h.breaker.counts.requests, 3);
  assert.deepEqual(h.changes, ['closed->open', 'open->half-open']);
});

test('the timeout to half-open is noticed by admit() alone, without reading the state', () => {
  const h = harness({ timeoutMs: 5_000, tripExpression: 'true' });
  h.fail();
  h.advance(5_000);
  assert.equal(typeof h.breaker.admit(), 'number');
  assert.deepEqual(h.changes, ['closed->open', 'open->half-open']);
});

test('maxRequests successes in a row close a half-open breaker, with its counts cleared', () => {
  const h = harness({ maxRequests: 2, timeoutMs: 1_000, tripExpression: 'consecutiveFailures > 0' });
  h.fail();
  h.advance(1_000);
  const a = h.breaker.admit();
  const b = h.breaker.admit();
  assert.ok(typeof a === 'number' && typeof b === 'number');
  h.breaker.succeeded(a);
  assert.equal(h.breaker.state, 'half-open', 'one success of two is not enough');
  h.breaker.succeeded(b);
  assert.equal(h.breaker.state, 'closed');
  assert.deepEqual(h.breaker.counts, counts({}));
  assert.deepEqual(h.changes, ['closed->open', 'open->half-open', 'half-open->closed']);
  // Closed again: calls pass freely.
  for (let i = 0; i < 10; i++) h.succeed();
});

test('a failure in half-open re-opens the breaker and restarts the timeout', () => {
  const h = harness({ maxRequests: 3, timeoutMs: 1_000, tripExpression: 'consecutiveFailures > 0' });
  h.fail();
  h.advance(1_000);
  h.succeed();
  h.succeed();
  h.fail();
  assert.equal(h.breaker.state, 'open');
  h.advance(999);
  assert.equal(h.breaker.admit(), 'open', 'the timeout counts from the re-opening');
  h.advance(1);
  assert.equal(h.breaker.state, 'half-open');
  assert.deepEqual(h.changes, ['closed->open', 'open->half-open', 'half-open->open', 'open->half-open']);
});

test('a trip expression is not consulted in half-open: the first failure opens it whatever the expression says', () => {
  const h = harness({ maxRequests: 2, timeoutMs: 1_000, tripExpression: 'consecutiveFailures > 2' });
  for (let i = 0; i < 3; i++) h.fail();
  h.advance(1_000);
  h.fail();
  assert.equal(h.breaker.state, 'open');
});

test('with an interval, the closed counts are cleared at the end of each interval', () => {
  const h = harness({ intervalMs: 10_000 });
  for (let i = 0; i < 5; i++) h.fail();
  h.advance(9_999);
  assert.equal(h.breaker.counts.consecutiveFailures, 5);
  h.advance(1);
  assert.deepEqual(h.breaker.counts, counts({}), 'the interval ended');
  for (let i = 0; i < 5; i++) h.fail();
  assert.equal(h.breaker.state, 'closed', '5 failures in the new interval do not trip');
  h.advance(10_000);
  for (let i = 0; i < 6; i++) h.fail();
  assert.equal(h.breaker.state, 'open');
  assert.deepEqual(h.changes, ['closed->open'], 'a new interval is not a change of state');
});

test('without an interval the closed counts are never cleared', () => {
  const h = harness({ intervalMs: 0 });
  for (let i = 0; i < 5; i++) h.fail();
  h.advance(365 * 24 * 3600_000);
  h.fail();
  assert.equal(h.breaker.state, 'open');
});

test('outcomes of calls admitted before a change of state are ignored', () => {
  const h = harness({ maxRequests: 1, timeoutMs: 1_000, tripExpression: 'consecutiveFailures > 1' });
  const early = h.breaker.admit();
  const late = h.breaker.admit();
  assert.ok(typeof early === 'number' && typeof late === 'number');
  h.fail();
  h.fail();
  assert.equal(h.breaker.state, 'open');
  h.breaker.failed(early);
  h.breaker.succeeded(late);
  assert.deepEqual(h.breaker.counts, counts({}), 'the open state counted nothing');
  h.advance(1_000);
  assert.equal(h.breaker.state, 'half-open');
  const probe = h.breaker.admit();
  assert.equal(typeof probe, 'number');
  h.breaker.failed(early);
  assert.equal(h.breaker.state, 'half-open', 'a failure from the closed state does not re-open a half-open breaker');
  h.breaker.succeeded(late);
  assert.equal(h.breaker.state, 'half-open', 'a success from the closed state does not close it');
  assert.deepEqual(h.breaker.counts, counts({ requests: 1 }));
  assert.ok(typeof probe === 'number');
  h.breaker.succeeded(probe);
  assert.equal(h.breaker.state, 'closed');
});

test('outcomes of calls admitted in an earlier interval are ignored', () => {
  const h = harness({ intervalMs: 1_000, tripExpression: 'totalFailures >= 2' });
  const old = h.breaker.admit();
  assert.equal(typeof old, 'number');
  h.fail();
  h.advance(1_000);
  if (typeof old === 'number') h.breaker.failed(old);
  assert.equal(h.breaker.state, 'closed');
  assert.deepEqual(h.breaker.counts, counts({}));
  const before = h.breaker.admit();
  h.advance(1_000);
  if (typeof before === 'number') h.breaker.succeeded(before);
  const now = h.breaker.admit();
  assert.equal(typeof now, 'number');
  assert.deepEqual(h.breaker.counts, counts({ requests: 1 }), 'a success from the last interval does not count in this one');
  if (typeof now === 'number') h.breaker.failed(now);
  if (typeof before === 'number') h.breaker.failed(before);
  assert.deepEqual(h.breaker.counts, counts({ requests: 1, totalFailures: 1, consecutiveFailures: 1 }));
});

test('onStateChange sees each transition once, and the breaker is already in its new state', () => {
  const seen: string[] = [];
  const c = clock();
  const breaker: CircuitBreaker = new CircuitBreaker({
    maxRequests: 1,
    intervalMs: 0,
    timeoutMs: 100,
    trip: compileTrip('consecutiveFailures > 0'),
    now: c.now,
    onStateChange: (from, to) => seen.push(`${from}->${to} (state ${breaker.state})`),
  });
  const t1 = breaker.admit();
  assert.ok(typeof t1 === 'number');
  breaker.failed(t1);
  c.advance(100);
  assert.equal(breaker.state, 'half-open');
  assert.equal(breaker.state, 'half-open');
  const t2 = breaker.admit();
  assert.ok(typeof t2 === 'number');
  breaker.succeeded(t2);
  assert.deepEqual(seen, ['closed->open (state open)', 'open->half-open (state half-open)', 'half-open->closed (state closed)']);
});

test('maxRequests below 1 counts as 1, and a timeout of 0 as the default 60 s', () => {
  const h = harness({ maxRequests: 0, timeoutMs: 0, tripExpression: 'true' });
  h.fail();
  h.advance(59_999);
  assert.equal(h.breaker.state, 'open');
  h.advance(1);
  assert.equal(typeof h.breaker.admit(), 'number');
  assert.equal(h.breaker.admit(), 'too-many-requests');
});

test('without an interval the closed state never reads the clock', () => {
  let reads = 0;
  const breaker = new CircuitBreaker({ maxRequests: 1, intervalMs: 0, timeoutMs: 1_000, trip: compileTrip('consecutiveFailures > 5'), now: () => ++reads });
  for (let i = 0; i < 1000; i++) {
    const token = breaker.admit();
    assert.ok(typeof token === 'number');
    if (i % 2 === 0) breaker.succeeded(token);
    else breaker.failed(token);
  }
  assert.equal(breaker.state, 'closed');
  assert.equal(reads, 0);
});

test('trip expressions: combinations of the counts', () => {
  const and = compileTrip('consecutiveFailures > 2 && requests > 3');
  assert.equal(and(counts({ consecutiveFailures: 3, requests: 3 })), false);
  assert.equal(and(counts({ consecutiveFailures: 3, requests: 4 })), true);
  assert.equal(and(counts({ consecutiveFailures: 2, requests: 40 })), false);

  const total = compileTrip('totalFailures >= 3');
  assert.equal(total(counts({ totalFailures: 2 })), false);
  assert.equal(total(counts({ totalFailures: 3 })), true);

  const or = compileTrip('consecutiveFailures > 5 || totalFailures > 100');
  assert.equal(or(counts({ consecutiveFailures: 6 })), true);
  assert.equal(or(counts({ totalFailures: 101 })), true);
  assert.equal(or(counts({ consecutiveFailures: 5, totalFailures: 100 })), false);

  const ratio = compileTrip('requests >= 10 && double(totalFailures) / double(requests) > 0.5');
  assert.equal(ratio(counts({ requests: 10, totalFailures: 6 })), true);
  assert.equal(ratio(counts({ requests: 10, totalFailures: 5 })), false);
  assert.equal(ratio(counts({ requests: 9, totalFailures: 9 })), false);

  assert.equal(compileTrip('totalSuccesses == 0 && consecutiveSuccesses == 0')(counts({})), true);
  assert.equal(compileTrip('  consecutiveFailures>5  ')(counts({ consecutiveFailures: 6 })), true);
});

test('a trip expression used in a breaker opens it on its own terms', () => {
  const h = harness({ tripExpression: 'consecutiveFailures > 2 && requests > 3' });
  h.succeed();
  h.fail();
  h.fail();
  h.fail();
  assert.equal(h.breaker.state, 'open', '3 consecutive failures in 4 requests');
  const g = harness({ tripExpression: 'totalFailures >= 3' });
  g.fail();
  g.succeed();
  g.fail();
  g.succeed();
  assert.equal(g.breaker.state, 'closed');
  g.fail();
  assert.equal(g.breaker.state, 'open');
});

test('an evaluation error at run time does not trip', () => {
  const trip = compileTrip('requests / totalSuccesses > 1');
  assert.equal(trip(counts({ requests: 5, totalSuccesses: 0 })), false, 'division by zero');
  assert.equal(trip(counts({ requests: 5, totalSuccesses: 2 })), true);
});

test('bad trip expressions are refused with the expression in the message', () => {
  const cases: [string, RegExp][] = [
    ['consecutiveFailures >', /Unexpected token/],
    ['foo > 1', /Unknown variable: foo/],
    ['requests + 1', /yields int, not bool/],
    ['"open"', /yields string, not bool/],
    ['dyn(requests)', /yields int, not bool/],
    ['dyn(1.5)', /yields double, not bool/],
    ['Requests > 1', /Unknown variable/],
    ['requests > "1"', /.+/],
    ['unknownFn(requests)', /.+/],
    ['', /.+/],
  ];
  for (const [expression, reason] of cases) {
    assert.throws(
      () => compileTrip(expression),
      (err: unknown) => {
        assert.ok(err instanceof Error, expression);
        assert.ok(err.message.startsWith(`trip expression ${JSON.stringify(expression)} is not valid: `), err.message);
        assert.match(err.message, reason, expression);
        assert.ok(!err.message.includes('\n'), `one line: ${JSON.stringify(err.message)}`);
        return true;
      },
      expression,
    );
  }
});

test('a dyn expression that yields a bool is accepted', () => {
  const trip = compileTrip('dyn(consecutiveFailures) > 1');
  assert.equal(trip(counts({ consecutiveFailures: 2 })), true);
});

test('counts is a copy, not the live object', () => {
  const h = harness();
  h.fail();
  const snapshot = h.breaker.counts;
  h.fail();
  assert.equal(snapshot.totalFailures, 1);
  assert.equal(h.breaker.counts.totalFailures, 2);
});

test('BreakerCache: one breaker per key, made once', () => {
  const made: string[] = [];
  const cache = new BreakerCache(3, (key) => {
    made.push(key);
    return new CircuitBreaker({ maxRequests: 1, intervalMs: 0, timeoutMs: 1_000, trip: () => true });
  });
  const a = cache.get('app:a');
  assert.equal(cache.get('app:a'), a);
  assert.notEqual(cache.get('app:b'), a);
  assert.deepEqual(made, ['app:a', 'app:b']);
  assert.equal(cache.size, 2);
});

test('BreakerCache evicts the least recently used key', () => {
  const made: string[] = [];
  const cache = new BreakerCache(3, (key) => {
    made.push(key);
    return new CircuitBreaker({ maxRequests: 1, intervalMs: 0, timeoutMs: 1_000, trip: () => true });
  });
  const a = cache.get('a');
  cache.get('b');
  cache.get('c');
  assert.equal(cache.get('a'), a, 'a is now the most recently used');
  cache.get('d');
  assert.equal(cache.size, 3);
  assert.equal(cache.peek('b'), undefined, 'b was the least recently used');
  assert.equal(cache.peek('a'), a);
  assert.ok(cache.peek('c') !== undefined && cache.peek('d') !== undefined);
  cache.get('a');
  cache.get('a');
  cache.get('e');
  assert.equal(cache.peek('c'), undefined, 'then c');
  cache.get('b');
  assert.deepEqual(made, ['a', 'b', 'c', 'd', 'e', 'b'], 'an evicted key gets a new breaker');
});

test('BreakerCache: an evicted breaker comes back closed', () => {
  const cache = new BreakerCache(1, () => new CircuitBreaker({ maxRequests: 1, intervalMs: 0, timeoutMs: 1_000, trip: () => true }));
  const a = cache.get('a');
  const token = a.admit();
  assert.ok(typeof token === 'number');
  a.failed(token);
  assert.equal(a.state, 'open');
  cache.get('b');
  assert.equal(cache.get('a').state, 'closed');
});

test('BreakerCache: the capacity defaults to 100 and must be at least 1', () => {
  const cache = new BreakerCache(undefined, () => new CircuitBreaker({ maxRequests: 1, intervalMs: 0, timeoutMs: 1_000, trip: () => false }));
  for (let i = 0; i < 150; i++) cache.get(`k${i}`);
  assert.equal(cache.size, 100);
  assert.equal(cache.peek('k49'), undefined);
  assert.ok(cache.peek('k50') !== undefined);
  assert.throws(() => new BreakerCache(0, () => new CircuitBreaker({ maxRequests: 1, intervalMs: 0, timeoutMs: 1, trip: () => false })), RangeError);
  assert.throws(() => new BreakerCache(1.5, () => new CircuitBreaker({ maxRequests: 1, intervalMs: 0, timeoutMs: 1, trip: () => false })), RangeError);
});
