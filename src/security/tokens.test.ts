import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { CourierError } from '../errors/index.js';
import { tempDir } from './testing/helpers.js';
import { ANY_APP_ID, loadOrCreateTokenSecret, mintJoinToken, TOKEN_SECRET_FILE, verifyJoinToken } from './tokens.js';

const secret = randomBytes(32);
const NOW = Date.parse('2026-11-24T12:00:00Z');
const req = (appId: string, namespace = 'default'): { appId: string; namespace: string } => ({ appId, namespace });

function denied(verdict: ReturnType<typeof verifyJoinToken>, reason: RegExp): void {
  assert.equal(verdict.ok, false);
  assert.match((verdict as { reason: string }).reason, reason);
}

describe('join tokens', () => {
  test('a token covers exactly its app id and namespace', () => {
    const token = mintJoinToken(secret, { appId: 'orders', namespace: 'shop' });
    assert.deepEqual(verifyJoinToken(secret, token, req('orders', 'shop'), NOW), { ok: true });
    assert.deepEqual(verifyJoinToken(secret, ` ${token}\n`, req('orders', 'shop'), NOW), { ok: true }, 'whitespace of a token file is ignored');
    denied(verifyJoinToken(secret, token, req('payments', 'shop'), NOW), /does not cover app id "payments"/);
    denied(verifyJoinToken(secret, token, req('orders', 'default'), NOW), /does not cover namespace "default"/);
    denied(verifyJoinToken(secret, token, req('', 'shop'), NOW), /does not cover app id ""/);
  });

  test('the wildcard covers every app id of its namespace, never another namespace nor the app id "*"', () => {
    const token = mintJoinToken(secret, { appId: ANY_APP_ID, namespace: 'shop' });
    assert.deepEqual(verifyJoinToken(secret, token, req('orders', 'shop'), NOW), { ok: true });
    assert.deepEqual(verifyJoinToken(secret, token, req('payments', 'shop'), NOW), { ok: true });
    denied(verifyJoinToken(secret, token, req('orders', 'prod'), NOW), /namespace "prod"/);
    denied(verifyJoinToken(secret, token, req('*', 'shop'), NOW), /app id "\*"/);
  });

  test('an expired token is refused from its expiry on', () => {
    const expiresAtMs = NOW + 60_000;
    const token = mintJoinToken(secret, { appId: 'orders', namespace: 'default', expiresAtMs });
    assert.deepEqual(verifyJoinToken(secret, token, req('orders'), expiresAtMs - 1), { ok: true });
    denied(verifyJoinToken(secret, token, req('orders'), expiresAtMs), /expired at 2026-11-24T12:01:00.000Z/);
  });

  test('a tampered token, or one signed with another key, is refused', () => {
    const token = mintJoinToken(secret, { appId: 'orders', namespace: 'default' });
    const [version, payload = '', signature = ''] = token.split('.');
    // Claims changed to another app id, keeping the old signature.
    const forged = Buffer.from(JSON.stringify({ appId: 'payments', namespace: 'default' })).toString('base64url');
    denied(verifyJoinToken(secret, `${version}.${forged}.${signature}`, req('payments'), NOW), /bad signature/);
    const flip = (s: string, at: number): string => s.slice(0, at) + (s[at] === 'A' ? 'B' : 'A') + s.slice(at + 1);
    denied(verifyJoinToken(secret, `${version}.${flip(payload, 3)}.${signature}`, req('orders'), NOW), /bad signature|malformed/);
    denied(verifyJoinToken(secret, `${version}.${payload}.${flip(signature, 5)}`, req('orders'), NOW), /bad signature|malformed/);
    denied(verifyJoinToken(randomBytes(32), token, req('orders'), NOW), /bad signature/);
  });

  test('malformed tokens are refused with a reason, never thrown', () => {
    for (const bad of ['', 'courier1', 'courier1..', 'courier2.e30.AAAA', 'courier1.!!!.AAAA', 'courier1.e30.AAAA', 'a.b.c.d', 'x'.repeat(5000)]) {
      denied(verifyJoinToken(secret, bad, req('orders'), NOW), /malformed token|bad signature/);
    }
  });

  test('minting refuses bad claims and short keys', () => {
    assert.throws(() => mintJoinToken(secret, { appId: '', namespace: 'default' }), (err: unknown) => err instanceof CourierError && /appId/.test(err.message));
    assert.throws(() => mintJoinToken(secret, { appId: 'a', namespace: '' }), /namespace/);
    assert.throws(() => mintJoinToken(secret, { appId: 'a', namespace: 'n', expiresAtMs: Number.NaN }), /expiresAtMs/);
    assert.throws(() => mintJoinToken(randomBytes(16), { appId: 'a', namespace: 'n' }), /at least 32 bytes/);
  });
});

describe('the join-token key file', () => {
  test('is created once, private (0600 in a 0700 directory), and read back unchanged', (t) => {
    const tmp = tempDir();
    t.after(tmp.remove);
    const dir = join(tmp.dir, 'sentry');
    const first = loadOrCreateTokenSecret(dir);
    assert.equal(first.length, 32);
    assert.equal(statSync(join(dir, TOKEN_SECRET_FILE)).mode & 0o777, 0o600);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.deepEqual(loadOrCreateTokenSecret(dir), first);
    // A token minted with it verifies with the key read back, as after a Sentry restart.
    const token = mintJoinToken(first, { appId: 'a', namespace: 'n' });
    assert.deepEqual(verifyJoinToken(loadOrCreateTokenSecret(dir), token, req('a', 'n'), NOW), { ok: true });
  });

  test('a key file that is too short is refused with its size; a longer operator-supplied one is used as is', (t) => {
    const tmp = tempDir();
    t.after(tmp.remove);
    writeFileSync(join(tmp.dir, TOKEN_SECRET_FILE), 'short');
    assert.throws(() => loadOrCreateTokenSecret(tmp.dir), /holds 5 bytes; it needs at least 32/);
    const long = Buffer.from('an operator supplied key that is comfortably longer than 32 bytes');
    writeFileSync(join(tmp.dir, TOKEN_SECRET_FILE), long);
    assert.deepEqual(Buffer.from(loadOrCreateTokenSecret(tmp.dir)), long);
  });
});
