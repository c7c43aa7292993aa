import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../observability/logging/index.js';
import { RefusalLog } from './refusal-log.js';

function capture(): { lines: () => Array<Record<string, unknown>>; bytes: () => number; log: RefusalLog; options: { intervalMs: number } } {
  const raw: string[] = [];
  const logger = createLogger({ level: 'info', json: true, destination: { write: (line) => void raw.push(line) } });
  const log = new RefusalLog({ logger, intervalMs: 10_000 });
  return {
    lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>),
    bytes: () => raw.reduce((n, l) => n + Buffer.byteLength(l), 0),
    log,
    options: { intervalMs: 10_000 },
  };
}

describe('RefusalLog', () => {
  test('the first refusal of each kind from a client is a line of its own; the rest are counted', () => {
    const { lines, log } = capture();
    for (let i = 0; i < 500; i++) log.refused('10.0.0.1', 'token_refused', 'the join token was refused: bad signature', 'orders', 'default');
    for (let i = 0; i < 300; i++) log.refused('10.0.0.1', 'rate_limited_address', 'too many certificate requests');
    log.refused('10.0.0.2', 'token_refused', 'the join token was refused: expired', 'payments', 'default');
    const first = lines();
    assert.equal(first.length, 3);
    assert.deepEqual(
      first.map((l) => [l.peer, l.kind, l.app_id, l.reason]),
      [
        ['10.0.0.1', 'token_refused', 'orders', 'the join token was refused: bad signature'],
        ['10.0.0.1', 'rate_limited_address', undefined, 'too many certificate requests'],
        ['10.0.0.2', 'token_refused', 'payments', 'the join token was refused: expired'],
      ],
    );
    assert.match(String(first[0]?.msg), /further refusals of this kind from 10\.0\.0\.1 are summarised every 10s/);
  });

  test('flush writes one summary: totals, rate limited, kinds and the top clients; nothing when nothing was refused', () => {
    const { lines, log } = capture();
    for (let i = 0; i < 500; i++) log.refused('10.0.0.1', 'token_refused', 'bad');
    for (let i = 0; i < 300; i++) log.refused('10.0.0.1', 'rate_limited_address', 'limited');
    for (let i = 0; i < 7; i++) log.refused('10.0.0.2', 'rate_limited_identity', 'limited');
    log.flush();
    const summary = lines().at(-1) ?? {};
    assert.equal(summary.msg, 'refused 807 certificate requests in the last 10s (307 rate limited) from 2 clients');
    assert.equal(summary.refused, 807);
    assert.equal(summary.rate_limited, 307);
    assert.equal(summary.kinds, 'rate_limited_address=300 rate_limited_identity=7 token_refused=500');
    assert.equal(summary.top_clients, '10.0.0.1 800 (rate_limited_address=300 token_refused=500), 10.0.0.2 7 (rate_limited_identity=7)');
    const count = lines().length;
    log.flush();
    assert.equal(lines().length, count, 'a quiet interval writes nothing');
  });

  test('a client quiet for a whole interval is forgotten: its next refusal is written again', () => {
    const { lines, log } = capture();
    log.refused('10.0.0.1', 'no_token', 'a join token is required');
    log.flush();
    log.refused('10.0.0.1', 'no_token', 'a join token is required');
    log.flush();
    assert.equal(lines().filter((l) => l.kind === 'no_token').length, 1, 'still refused in the second interval: counted only');
    log.flush();
    assert.equal(log.trackedClients, 0);
    log.refused('10.0.0.1', 'no_token', 'a join token is required');
    assert.equal(lines().filter((l) => l.kind === 'no_token').length, 2);
  });

  test('many clients and kinds: the log stays bounded (first lines per interval, tracked clients)', () => {
    const { lines, bytes, log } = capture();
    const kinds = ['no_token', 'token_refused', 'invalid_request', 'malformed_request', 'invalid_csr'] as const;
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 5000; i++) log.refused(`10.${round}.${i >> 8}.${i & 255}`, kinds[i % kinds.length] ?? 'no_token', 'x'.repeat(100));
      log.flush();
    }
    assert.ok(lines().length <= 3 * (20 + 1), `${lines().length} lines`);
    assert.ok(bytes() < 20_000, `${bytes()} bytes`);
    const last = lines().at(-1) ?? {};
    assert.equal(last.refused, 5000);
    assert.equal(last.clients, '1000 and more');
    assert.equal(last.from_untracked_clients, 4000);
    assert.ok(log.trackedClients <= 1000);
  });
});
