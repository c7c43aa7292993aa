import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseInstance, DEFAULT_EJECTION, InstanceStats, type CostModel, type EjectionSettings, type Slot } from './balancer.js';

function model(overrides: Partial<CostModel> = {}): CostModel {
  const random = overrides.random ?? Math.random;
  return { decayMs: 10_000, defaultCostMs: 30, ejection: DEFAULT_EJECTION, random, randomIndex: (n) => Math.floor(random() * n), ...overrides };
}

/** A deterministic random sequence (a small LCG), so P2C's draws are the same on every run. */
function seeded(seed = 42): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/** The estimate, read through a function (the assertions before would narrow `s.cost` to a literal). */
function costOf(s: InstanceStats): number {
  return s.cost;
}

function slots(...stats: InstanceStats[]): Slot[] {
  return stats.map((s) => ({ stats: s, expiresAtMs: Infinity }));
}

/** One attempt on `s` that ended at `now` after `ms` (started at `now` too, so no idle decay comes into it). */
function answer(s: InstanceStats, now: number, ms: number, m: CostModel, outcome: 'success' | 'failure' | 'overload' = 'success'): void {
  s.started(now, m.decayMs);
  s.finished(now, ms, outcome, m);
}

test('peak-EWMA: a slower answer is taken at once; faster ones pull the estimate down with the time constant', () => {
  const m = model();
  const s = new InstanceStats('a:1', 0, m.defaultCostMs);
  assert.equal(s.cost, 30, 'the default cost before any answer');
  assert.equal(s.load(0, m.decayMs), 0, 'never answered, nothing in flight: tried first');
  s.started(0, m.decayMs);
  assert.equal(s.load(0, m.decayMs), 60, 'then the default cost per call in flight');
  s.finished(0, 0, 'cancelled', m);
  answer(s, 100, 5, m);
  assert.equal(s.cost, 5, 'the first answer replaces the default');
  answer(s, 200, 80, m);
  assert.equal(s.cost, 80, 'a peak is taken at once');
  // One time constant later (busy all along: a long call is in flight) a 5 ms answer has moved the
  // estimate 1 - 1/e of the way down.
  s.started(200, m.decayMs);
  answer(s, 10_200, 5, m);
  assert.ok(Math.abs(costOf(s) - (5 + 75 / Math.E)) < 1e-9, `${costOf(s)}`);
  // Answers close together barely move it: the decay is in time, not in number of answers.
  const before = costOf(s);
  for (let i = 1; i <= 100; i++) answer(s, 10_200 + i, 1, m);
  assert.ok(costOf(s) > before * 0.98, `${costOf(s)} after 100 fast answers within 100 ms`);
});

test('load is the estimate times (in flight + 1); an idle estimate decays, a stalled instance looks ever slower', () => {
  const m = model();
  const s = new InstanceStats('a:1', 0, m.defaultCostMs);
  answer(s, 0, 10, m);
  assert.equal(s.load(0, m.decayMs), 10);
  s.started(0, m.decayMs);
  s.started(0, m.decayMs);
  assert.equal(s.load(0, m.decayMs), 30, '2 in flight');
  assert.equal(s.load(5, m.decayMs), 30, 'no answer for 5 ms: within the estimate');
  assert.equal(s.load(1000, m.decayMs), 3000, 'no answer for 1 s while 2 calls wait: at least 1 s each');
  s.finished(1000, 1000, 'success', m);
  s.finished(1000, 1000, 'success', m);
  assert.equal(s.inFlight, 0);
  assert.equal(s.cost, 1000, 'the slow answers are the new peak');
  assert.ok(Math.abs(s.load(11_000, m.decayMs) - 1000 / Math.E) < 1e-9, 'idle: decays toward zero, so the instance is tried again');
  s.started(11_000, m.decayMs);
  assert.ok(Math.abs(s.cost - 1000 / Math.E) < 1e-9, 'the decay is kept when a call starts');
});

test('a failure counts as at least twice the estimate (a fast failure does not attract calls); cancelled has no verdict', () => {
  const m = model({ ejection: undefined });
  const s = new InstanceStats('a:1', 0, m.defaultCostMs);
  answer(s, 0, 4, m);
  answer(s, 10, 1, m, 'failure');
  assert.equal(s.cost, 30, 'at least the default cost');
  answer(s, 10, 1, m, 'overload');
  assert.equal(s.cost, 60);
  for (let i = 0; i < 20; i++) answer(s, 10, 1, m, 'failure');
  assert.equal(s.cost, 10_000, 'capped');
  const c = new InstanceStats('c:1', 0, m.defaultCostMs);
  answer(c, 0, 4, m);
  c.started(0, m.decayMs);
  c.finished(5000, 4990, 'cancelled', m);
  assert.equal(c.cost, 4);
  assert.equal(c.inFlight, 0);
  assert.equal(c.consecutiveFailures, 0);
  c.finished(5000, 1, 'cancelled', m);
  assert.equal(c.inFlight, 0, 'never below zero');
});

test('ejection after N failures in a row; the penalty grows with each ejection, up to the maximum, ±15 %', () => {
  const ejection: EjectionSettings = { consecutiveFailures: 3, baseMs: 10_000, maxMs: 35_000 };
  const m = model({ ejection, random: () => 0.5 });
  const s = new InstanceStats('a:1', 0, m.defaultCostMs);
  let now = 0;
  const fail = (): void => answer(s, ++now, 1, m, 'failure');
  fail();
  fail();
  answer(s, ++now, 1, m, 'success');
  fail();
  fail();
  assert.ok(s.available(now), 'a success reset the count');
  fail();
  assert.equal(s.ejections, 1);
  assert.equal(s.ejectedUntil, now + 10_000);
  assert.ok(!s.available(now));
  // Probation: once the penalty is over, the next failure ejects it again, for longer.
  now = s.ejectedUntil;
  assert.ok(s.available(now));
  fail();
  assert.equal(s.ejectedUntil - now, 20_000);
  now = s.ejectedUntil;
  fail();
  assert.equal(s.ejectedUntil - now, 30_000);
  now = s.ejectedUntil;
  fail();
  assert.equal(s.ejectedUntil - now, 35_000, 'capped at maxMs');
  // Failures while ejected do not extend the ejection.
  const until = s.ejectedUntil;
  fail();
  assert.equal(s.ejectedUntil, until);
  // A success on probation clears it: N failures are needed again.
  now = until;
  answer(s, ++now, 1, m, 'success');
  fail();
  fail();
  assert.ok(s.available(now));

  for (const r of [0, 0.999999]) {
    const j = new InstanceStats('j:1', 0, 30);
    const jm = model({ ejection, random: () => r });
    for (let i = 0; i < 3; i++) answer(j, 1, 1, jm, 'failure');
    const penalty = j.ejectedUntil - 1;
    assert.ok(penalty >= 8500 && penalty <= 11_500, `${penalty}`);
  }
});

test('the ejection count halves for each full penalty period without an ejection', () => {
  const ejection: EjectionSettings = { consecutiveFailures: 1, baseMs: 10_000, maxMs: 300_000 };
  const m = model({ ejection, random: () => 0.5 });
  const s = new InstanceStats('a:1', 0, 30);
  let now = 0;
  for (let i = 0; i < 4; i++) {
    answer(s, now, 1, m, 'failure');
    now = s.ejectedUntil;
  }
  assert.equal(s.ejections, 4);
  assert.equal(s.lastPenaltyMs, 40_000);
  // Two full 40 s periods later: 4 → 1, and the new ejection is the 2nd.
  now = s.ejectedUntil + 80_000;
  answer(s, now, 1, m, 'failure');
  assert.equal(s.ejections, 2);
  assert.equal(s.ejectedUntil - now, 20_000);
  // An hour later it starts again from the first.
  now = s.ejectedUntil + 3_600_000;
  answer(s, now, 1, m, 'failure');
  assert.equal(s.ejections, 1);
});

test('P2C: one candidate is taken as it is; of two, the one with the lower load', () => {
  const m = model({ random: seeded() });
  const fast = new InstanceStats('fast:1', 0, 30);
  const slow = new InstanceStats('slow:1', 0, 30);
  answer(fast, 0, 5, m);
  answer(slow, 0, 50, m);
  const rotation = { next: 0 };
  for (let i = 0; i < 50; i++) assert.equal(chooseInstance(slots(fast, slow), new Set(), 0, 'p2c', rotation, m), fast);
  assert.equal(chooseInstance(slots(slow), new Set(), 0, 'p2c', rotation, m), slow);
  // Busy enough, the fast one loses: 5 × 11 > 50.
  for (let i = 0; i < 10; i++) fast.started(0, m.decayMs);
  assert.equal(chooseInstance(slots(fast, slow), new Set(), 0, 'p2c', rotation, m), slow);
});

test('P2C over three: the slowest is never chosen while the others are idle; draws are spread evenly', () => {
  const m = model({ random: seeded(7) });
  const a = new InstanceStats('a:1', 0, 30);
  const b = new InstanceStats('b:1', 0, 30);
  const c = new InstanceStats('c:1', 0, 30);
  const counts = new Map<InstanceStats, number>();
  const rotation = { next: 0 };
  for (let i = 0; i < 3000; i++) {
    const s = chooseInstance(slots(a, b, c), new Set(), 0, 'p2c', rotation, m) as InstanceStats;
    counts.set(s, (counts.get(s) ?? 0) + 1);
  }
  for (const s of [a, b, c]) assert.ok((counts.get(s) ?? 0) > 800, `equal loads: ${counts.get(s)} of 3000 to ${s.address}`);
  answer(a, 0, 5, m);
  answer(b, 0, 6, m);
  answer(c, 0, 60, m);
  counts.clear();
  for (let i = 0; i < 3000; i++) {
    const s = chooseInstance(slots(a, b, c), new Set(), 0, 'p2c', rotation, m) as InstanceStats;
    counts.set(s, (counts.get(s) ?? 0) + 1);
  }
  assert.equal(counts.get(c), undefined);
  assert.ok((counts.get(a) ?? 0) > (counts.get(b) ?? 0), 'the faster of the two others wins when both are drawn');
});

test('the preference order holds for both kinds: fresh, then untried, then any live; expired instances never', () => {
  const m = model({ random: seeded(3) });
  for (const kind of ['p2c', 'round-robin'] as const) {
    const a = new InstanceStats('a:1', 0, 30);
    const b = new InstanceStats('b:1', 0, 30);
    const c = new InstanceStats('c:1', 0, 30);
    const list: Slot[] = [{ stats: a, expiresAtMs: Infinity }, { stats: b, expiresAtMs: Infinity }, { stats: c, expiresAtMs: 100 }];
    const rotation = { next: 0 };
    const pick = (exclude: Set<string>, now = 200): string | undefined => chooseInstance(list, exclude, now, kind, rotation, m)?.address;
    a.ejectedUntil = 1000;
    for (let i = 0; i < 10; i++) assert.equal(pick(new Set()), 'b:1', `${kind}: a is ejected, c expired`);
    assert.equal(pick(new Set(['b:1'])), 'a:1', `${kind}: an ejected instance rather than a tried one`);
    const seen = new Set<string | undefined>();
    for (let i = 0; i < 20; i++) seen.add(pick(new Set(['a:1', 'b:1'])));
    assert.deepEqual([...seen].sort(), ['a:1', 'b:1'], `${kind}: all tried: any live, never the expired`);
    const early = new Set<string | undefined>();
    for (let i = 0; i < 20; i++) early.add(pick(new Set(), 50));
    assert.deepEqual([...early].sort(), ['b:1', 'c:1'], `${kind}: before its deadline c is a candidate`);
    assert.equal(chooseInstance([], new Set(), 0, kind, rotation, m), undefined);
    b.skipUntil = 1000;
    const both = new Set<string | undefined>();
    for (let i = 0; i < 20; i++) both.add(pick(new Set()));
    assert.deepEqual([...both].sort(), ['a:1', 'b:1'], `${kind}: every live one ejected or skipped: they are used anyway`);
  }
});

test('round robin hands the candidates out in turn', () => {
  const m = model();
  const list = slots(new InstanceStats('a:1', 0, 30), new InstanceStats('b:1', 0, 30), new InstanceStats('c:1', 0, 30));
  const rotation = { next: 0 };
  const order = Array.from({ length: 6 }, () => chooseInstance(list, new Set(), 0, 'round-robin', rotation, m)?.address);
  assert.deepEqual(order, ['a:1', 'b:1', 'c:1', 'a:1', 'b:1', 'c:1']);
});
