import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AddressBook, type AddressSource } from './address-book.js';
import { CourierError } from '../errors/index.js';

function source(entries: Array<{ address: string; expiresAtMs?: number }>): AddressSource & { calls: number; entries: typeof entries } {
  const s = {
    component: 'test',
    calls: 0,
    entries,
    resolve() {
      s.calls++;
      return Promise.resolve(s.entries);
    },
  };
  return s;
}

const target = { appId: 'b', namespace: 'default' };

test('round robin across every live instance', async () => {
  const src = source([{ address: 'a:1' }, { address: 'b:1' }, { address: 'c:1' }]);
  const book = new AddressBook(src, { cacheTtlMs: 60_000, ejectMs: 5000, balancer: 'round-robin' });
  const counts = new Map<string, number>();
  for (let i = 0; i < 300; i++) {
    const a = await book.pick(target, new Set());
    counts.set(a, (counts.get(a) ?? 0) + 1);
  }
  assert.deepEqual([...counts.values()], [100, 100, 100]);
  assert.equal(src.calls, 1, 'answers are cached');
});

test('an instance whose liveness lapsed is dropped at its deadline', async () => {
  let now = 1000;
  const src = source([{ address: 'old:1', expiresAtMs: 2000 }, { address: 'new:1', expiresAtMs: 9000 }]);
  const book = new AddressBook(src, { cacheTtlMs: 60_000, ejectMs: 5000, balancer: 'round-robin', now: () => now });
  const before = new Set<string>();
  for (let i = 0; i < 4; i++) before.add(await book.pick(target, new Set()));
  assert.deepEqual([...before].sort(), ['new:1', 'old:1']);
  now = 2000;
  for (let i = 0; i < 4; i++) assert.equal(await book.pick(target, new Set()), 'new:1');
});

test('an ejected instance is skipped while others remain, and tried addresses are avoided', async () => {
  let now = 0;
  const book = new AddressBook(source([{ address: 'a:1' }, { address: 'b:1' }]), { cacheTtlMs: 60_000, ejectMs: 5000, balancer: 'round-robin', now: () => now });
  book.eject('a:1');
  for (let i = 0; i < 4; i++) assert.equal(await book.pick(target, new Set()), 'b:1');
  assert.equal(await book.pick(target, new Set(['b:1'])), 'a:1', 'when everything else was tried, an ejected one is used');
  now = 5000;
  const seen = new Set<string>();
  for (let i = 0; i < 4; i++) seen.add(await book.pick(target, new Set()));
  assert.equal(seen.size, 2, 'back in rotation after the ejection period');
});

test('no instance gives ERR_DIRECT_INVOKE naming the app and the resolver', async () => {
  const book = new AddressBook(source([]), { cacheTtlMs: 1000, ejectMs: 5000 });
  await assert.rejects(book.pick(target, new Set()), (err: unknown) => {
    assert.ok(err instanceof CourierError);
    assert.match(err.message, /app "b".*test name resolver/);
    return true;
  });
});

test('a cached empty answer is checked again, so a newly registered instance is found', async () => {
  let now = 0;
  const src = source([]);
  const book = new AddressBook(src, { cacheTtlMs: 1000, ejectMs: 5000, now: () => now });
  await assert.rejects(book.pick(target, new Set()));
  src.entries.push({ address: 'late:1' });
  now = 10;
  assert.equal(await book.pick(target, new Set()), 'late:1');
});

test('concurrent picks share one resolver query', async () => {
  const src = source([{ address: 'a:1' }]);
  const book = new AddressBook(src, { cacheTtlMs: 1000, ejectMs: 5000 });
  await Promise.all(Array.from({ length: 20 }, () => book.pick(target, new Set())));
  assert.equal(src.calls, 1);
});

test('an empty answer is asked again every 100 ms within emptyRetryMs, so an app that is just registering is found', async () => {
  const src = source([]);
  const book = new AddressBook(src, { cacheTtlMs: 1000, ejectMs: 5000, emptyRetryMs: 500 });
  setTimeout(() => src.entries.push({ address: 'late:1' }), 150);
  assert.equal(await book.pick(target, new Set()), 'late:1');
  assert.ok(src.calls >= 2 && src.calls <= 4, `${src.calls} resolver calls`);
});

test('with nobody registering, the call fails once emptyRetryMs is spent (about five more questions)', async () => {
  const src = source([]);
  const book = new AddressBook(src, { cacheTtlMs: 1000, ejectMs: 5000, emptyRetryMs: 500 });
  const started = Date.now();
  await assert.rejects(book.pick(target, new Set()), /no instance of app "b"/);
  const took = Date.now() - started;
  assert.ok(took >= 400 && took < 1500, `${took} ms`);
  assert.ok(src.calls >= 5 && src.calls <= 7, `${src.calls} resolver calls`);
});

/** A deterministic random sequence (a small LCG), so P2C's draws are the same on every run. */
function seeded(seed = 42): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/**
 * Simulated time: `concurrency` callers each send one call after another to the instances `book`
 * picks (with the feedback the invoker gives), each taking the latency `latencyOf` says. Returns the
 * calls each address got.
 */
async function simulate(book: AddressBook, clock: { now: number }, calls: number, concurrency: number, latencyOf: (address: string) => number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  const pending: Array<{ address: string; sentAt: number; doneAt: number }> = [];
  const send = async (): Promise<void> => {
    const address = book.pickCached(target, new Set()) ?? (await book.pick(target, new Set()));
    book.started(address);
    counts.set(address, (counts.get(address) ?? 0) + 1);
    pending.push({ address, sentAt: clock.now, doneAt: clock.now + latencyOf(address) });
  };
  for (let i = 0; i < concurrency; i++) await send();
  for (let sent = concurrency; sent < calls; sent++) {
    pending.sort((x, y) => x.doneAt - y.doneAt);
    const done = pending.shift() as { address: string; sentAt: number; doneAt: number };
    clock.now = done.doneAt;
    book.finished(done.address, done.doneAt - done.sentAt, 'success');
    await send();
  }
  return counts;
}

test('p2c (the default): of three instances, the one ten times slower gets few calls; round robin gives it a third', async () => {
  const latency = (a: string): number => (a === 'slow:1' ? 50 : 5);
  const addresses = [{ address: 'fast:1' }, { address: 'slow:1' }, { address: 'fast:2' }];
  for (const concurrency of [1, 8]) {
    const clock = { now: 1_000_000 };
    const book = new AddressBook(source(addresses), { cacheTtlMs: 3_600_000, ejectMs: 5000, now: () => clock.now, random: seeded(concurrency) });
    const counts = await simulate(book, clock, 3000, concurrency, latency);
    const share = (counts.get('slow:1') ?? 0) / 3000;
    assert.ok(share < 0.05, `concurrency ${concurrency}: the slow instance got ${(share * 100).toFixed(1)} %`);
    assert.ok((counts.get('fast:1') ?? 0) > 1000 && (counts.get('fast:2') ?? 0) > 1000, JSON.stringify([...counts]));
  }
  const clock = { now: 1_000_000 };
  const rr = new AddressBook(source(addresses), { cacheTtlMs: 3_600_000, ejectMs: 5000, balancer: 'round-robin', now: () => clock.now });
  const counts = await simulate(rr, clock, 3000, 8, latency);
  assert.deepEqual([...counts.values()], [1000, 1000, 1000]);
});

test('p2c: an instance that has not answered yet gets calls; one with many calls in flight is avoided', async () => {
  let now = 0;
  const src = source([{ address: 'a:1' }, { address: 'b:1' }]);
  const book = new AddressBook(src, { cacheTtlMs: 3_600_000, ejectMs: 5000, now: () => now, random: seeded() });
  await book.pick(target, new Set());
  book.started('a:1');
  book.finished('a:1', 20, 'success');
  src.entries.push({ address: 'new:1' });
  now = 2 * 3_600_000;
  const seen = new Map<string, number>();
  for (let i = 0; i < 100; i++) {
    const a = book.pickCached(target, new Set()) ?? (await book.pick(target, new Set()));
    seen.set(a, (seen.get(a) ?? 0) + 1);
  }
  assert.ok((seen.get('new:1') ?? 0) > 0, `a new instance is chosen: ${JSON.stringify([...seen])}`);
  // Once it has a call in flight, it counts the default cost (30 ms) per call until it answers.
  book.started('new:1');
  assert.equal(book.instance('new:1')?.load(now, 10_000), 60);
  // a:1 answers in 20 ms but has 9 calls in flight: 200 against b's 30.
  for (const [address, ms] of [['a:1', 20], ['b:1', 30]] as const) {
    book.started(address);
    book.finished(address, ms, 'success');
  }
  for (let i = 0; i < 9; i++) book.started('a:1');
  for (let i = 0; i < 50; i++) assert.notEqual(book.pickCached(target, new Set()), 'a:1');
});

test('outlier ejection: 5 failures in a row eject an instance for about 10 s, for every app id served there', async () => {
  let now = 0;
  const shared = [{ address: 'a:1' }, { address: 'b:1' }, { address: 'c:1' }];
  const book = new AddressBook(source(shared), { cacheTtlMs: 3_600_000, ejectMs: 5000, now: () => now, random: seeded() });
  const other = { appId: 'other', namespace: 'default' };
  await book.pick(target, new Set());
  await book.pick(other, new Set());
  for (let i = 0; i < 4; i++) {
    book.started('b:1');
    book.finished('b:1', 1, i % 2 === 0 ? 'failure' : 'overload');
  }
  book.started('b:1');
  book.finished('b:1', 1, 'success');
  for (let i = 0; i < 4; i++) {
    book.started('b:1');
    book.finished('b:1', 1, 'failure');
  }
  assert.equal(book.instance('b:1')?.ejections, 0, 'a success reset the count');
  book.started('b:1');
  book.finished('b:1', 1, 'failure');
  const until = book.instance('b:1')?.ejectedUntil ?? 0;
  assert.ok(until >= 8500 && until <= 11_500, `ejected until ${until}`);
  // However busy the others are, b:1 is not a candidate while it is ejected, for either app id.
  for (let i = 0; i < 50; i++) {
    book.started('a:1');
    book.started('c:1');
  }
  for (let i = 0; i < 100; i++) {
    assert.notEqual(book.pickCached(target, new Set()), 'b:1');
    assert.notEqual(book.pickCached(other, new Set()), 'b:1', 'the ejection is per address');
  }
  now = until;
  const seen = new Set<string | undefined>();
  for (let i = 0; i < 100; i++) seen.add(book.pickCached(target, new Set()));
  assert.ok(seen.has('b:1'), 'a candidate again once the penalty is over');
});

test('the last instance is never taken away, and ejection: false turns ejection off', async () => {
  const now = 0;
  const single = new AddressBook(source([{ address: 'only:1' }]), { cacheTtlMs: 3_600_000, ejectMs: 5000, now: () => now });
  assert.equal(await single.pick(target, new Set()), 'only:1');
  for (let i = 0; i < 10; i++) {
    single.started('only:1');
    single.finished('only:1', 1, 'failure');
  }
  assert.ok((single.instance('only:1')?.ejectedUntil ?? 0) > now);
  assert.equal(single.pickCached(target, new Set()), 'only:1');
  assert.equal(await single.pick(target, new Set(['only:1'])), 'only:1');

  const off = new AddressBook(source([{ address: 'a:1' }, { address: 'b:1' }]), { cacheTtlMs: 3_600_000, ejectMs: 5000, balancer: 'round-robin', ejection: false, now: () => now });
  await off.pick(target, new Set());
  for (let i = 0; i < 20; i++) {
    off.started('b:1');
    off.finished('b:1', 1, 'failure');
  }
  const picks = Array.from({ length: 4 }, () => off.pickCached(target, new Set()));
  assert.deepEqual(picks.filter((a) => a === 'b:1').length, 2, 'still in the rotation');
  assert.equal(off.instance('b:1')?.ejectedUntil, 0);
});

test('ejection and cost settings are checked', () => {
  const src = source([]);
  assert.throws(() => new AddressBook(src, { cacheTtlMs: 1000, ejectMs: 5000, ejection: { consecutiveFailures: 0 } }), /consecutiveFailures/);
  assert.throws(() => new AddressBook(src, { cacheTtlMs: 1000, ejectMs: 5000, ejection: { baseMs: 10_000, maxMs: 5000 } }), /baseMs/);
  assert.throws(() => new AddressBook(src, { cacheTtlMs: 1000, ejectMs: 5000, decayMs: 0 }), /decayMs/);
  new AddressBook(src, { cacheTtlMs: 1000, ejectMs: 5000, ejection: { baseMs: 600_000 } });
});

test('the figures of an address no answer has named for a while are dropped, unless calls are in flight there', async () => {
  let now = 0;
  const src = source([{ address: 'a:1' }, { address: 'b:1' }, { address: 'c:1' }]);
  const book = new AddressBook(src, { cacheTtlMs: 1000, ejectMs: 5000, now: () => now });
  await book.pick(target, new Set());
  book.started('c:1');
  book.started('b:1');
  book.finished('b:1', 3, 'success');
  assert.equal(book.instancesKnown, 3);
  src.entries = [{ address: 'a:1' }];
  for (now = 10_000; now <= 400_000; now += 10_000) await book.pick(target, new Set());
  assert.equal(book.instance('b:1'), undefined);
  assert.ok(book.instance('c:1') !== undefined, 'a call is in flight there');
  assert.equal(book.instancesKnown, 2);
  book.finished('c:1', 1, 'cancelled');
  for (; now <= 500_000; now += 10_000) await book.pick(target, new Set());
  assert.equal(book.instancesKnown, 1);
});

test('eject after a retry still only skips the address for ejectMs and drops the cached answer', async () => {
  let now = 100_000;
  const src = source([{ address: 'a:1' }, { address: 'b:1' }]);
  const book = new AddressBook(src, { cacheTtlMs: 60_000, ejectMs: 5000, now: () => now, random: seeded() });
  await book.pick(target, new Set());
  assert.equal(src.calls, 1);
  book.eject('a:1', target);
  assert.equal(book.pickCached(target, new Set()), undefined, 'the answer must be asked for again');
  for (let i = 0; i < 10; i++) assert.equal(await book.pick(target, new Set()), 'b:1');
  assert.equal(src.calls, 2);
  assert.equal(book.instance('a:1')?.ejections, 0, 'not an outlier ejection');
  now = 105_000;
  const seen = new Set<string>();
  for (let i = 0; i < 40; i++) seen.add(book.pickCached(target, new Set()) ?? (await book.pick(target, new Set())));
  assert.equal(seen.size, 2);
});

test('hasUntried: a live instance outside the tried ones and the one just failed', async () => {
  let now = 1000;
  const src = source([{ address: 'a:1' }, { address: 'b:1', expiresAtMs: 5000 }]);
  const book = new AddressBook(src, { cacheTtlMs: 60_000, ejectMs: 5000, now: () => now });
  assert.equal(book.hasUntried(target, new Set()), false, 'nothing known before the resolver was asked');
  await book.pick(target, new Set());
  assert.equal(book.hasUntried(target, new Set(), 'a:1'), true);
  assert.equal(book.hasUntried(target, new Set(['b:1']), 'a:1'), false);
  now = 6000;
  await book.pick(target, new Set());
  assert.equal(book.hasUntried(target, new Set(), 'a:1'), false, 'an instance whose liveness lapsed does not count');
});
