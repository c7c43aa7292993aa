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
  const book = new AddressBook(src, { cacheTtlMs: 60_000, ejectMs: 5000 });
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
  const book = new AddressBook(src, { cacheTtlMs: 60_000, ejectMs: 5000, now: () => now });
  const before = new Set<string>();
  for (let i = 0; i < 4; i++) before.add(await book.pick(target, new Set()));
  assert.deepEqual([...before].sort(), ['new:1', 'old:1']);
  now = 2000;
  for (let i = 0; i < 4; i++) assert.equal(await book.pick(target, new Set()), 'new:1');
});

test('an ejected instance is skipped while others remain, and tried addresses are avoided', async () => {
  let now = 0;
  const book = new AddressBook(source([{ address: 'a:1' }, { address: 'b:1' }]), { cacheTtlMs: 60_000, ejectMs: 5000, now: () => now });
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
