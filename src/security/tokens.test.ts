import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { rejectsWith, tempDir } from './testing/helpers.js';
import { ANY_APP_ID, loadOrCreateTokenSecret, mintJoinToken, TOKEN_SECRET_FILE, verifyJoinToken } from './tokens.js';

const secret = randomBytes(32);
const NOW = Date.parse('2026-11-24T12:00:00Z');
const req = (appId: string, namespace = 'default'): { appId: string; namespace: string } => ({ appId, namespace });

function denied(verdict: ReturnType<typeof verifyJoinToken>, reason: RegExp): void {
  assert.equal(verdict.ok, false, 'the token was accepted');
  assert.match((verdict as { reason: string }).reason, reason);
}


/** A token whose payload is `text`, correctly signed with `key`: only the claims checks can refuse it. */
function signedPayload(text: string, key: Uint8Array = secret, version = 'courier1'): string {
  const payload = Buffer.from(text, 'utf8').toString('base64url');
  return `${version}.${payload}.${createHmac('sha256', key).update(`courier1.${payload}`).digest('base64url')}`;
}

/** `s` with the character at `at` replaced by another base64url character. */
const flip = (s: string, at: number): string => s.slice(0, at) + (s[at] === 'A' ? 'B' : 'A') + s.slice(at + 1);

describe('join tokens', () => {
  test('the format is courier1.<claims>.<HMAC-SHA256>, readable and deterministic', () => {
    const token = mintJoinToken(secret, { appId: 'orders', namespace: 'shop', expiresAtMs: NOW });
    const [version, payload = '', signature = '', ...rest] = token.split('.');
    assert.equal(version, 'courier1');
    assert.deepEqual(rest, []);
    assert.deepEqual(JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')), { appId: 'orders', namespace: 'shop', expiresAtMs: NOW });
    assert.equal(signature, createHmac('sha256', secret).update(`courier1.${payload}`).digest('base64url'));
    assert.equal(mintJoinToken(secret, { appId: 'orders', namespace: 'shop', expiresAtMs: NOW }), token);
    assert.notEqual(mintJoinToken(randomBytes(32), { appId: 'orders', namespace: 'shop', expiresAtMs: NOW }), token);
  });

  test('a token covers exactly its app id and namespace', () => {
    const token = mintJoinToken(secret, { appId: 'orders', namespace: 'shop' });
    assert.deepEqual(verifyJoinToken(secret, token, req('orders', 'shop'), NOW), { ok: true });
    assert.deepEqual(verifyJoinToken(secret, ` ${token}\n`, req('orders', 'shop'), NOW), { ok: true }, 'whitespace of a token file is ignored');
    denied(verifyJoinToken(secret, token, req('payments', 'shop'), NOW), /^the token does not cover app id "payments"$/);
    denied(verifyJoinToken(secret, token, req('orders', 'default'), NOW), /^the token does not cover namespace "default"$/);
    denied(verifyJoinToken(secret, token, req('payments', 'default'), NOW), /^the token does not cover namespace "default"$/);
    denied(verifyJoinToken(secret, token, req('', 'shop'), NOW), /^the token does not cover app id ""$/);
    denied(verifyJoinToken(secret, token, req('orders', ''), NOW), /^the token does not cover namespace ""$/);
    denied(verifyJoinToken(secret, token, req('Orders', 'shop'), NOW), /app id "Orders"/);
  });

  test('the wildcard covers every app id of its namespace, never another namespace nor the app id "*"', () => {
    assert.equal(ANY_APP_ID, '*');
    const token = mintJoinToken(secret, { appId: ANY_APP_ID, namespace: 'shop' });
    assert.deepEqual(verifyJoinToken(secret, token, req('orders', 'shop'), NOW), { ok: true });
    assert.deepEqual(verifyJoinToken(secret, token, req('payments', 'shop'), NOW), { ok: true });
    denied(verifyJoinToken(secret, token, req('orders', 'prod'), NOW), /^the token does not cover namespace "prod"$/);
    denied(verifyJoinToken(secret, token, req('*', 'shop'), NOW), /^the token does not cover app id "\*"$/);
    denied(verifyJoinToken(secret, token, req('', 'shop'), NOW), /^the token does not cover app id ""$/);
    // A token for one app id does not cover a request for the wildcard either.
    denied(verifyJoinToken(secret, mintJoinToken(secret, { appId: 'orders', namespace: 'shop' }), req('*', 'shop'), NOW), /app id "\*"/);
    // There is no namespace wildcard: "*" as a namespace is only the literal name.
    const anyNs = mintJoinToken(secret, { appId: 'orders', namespace: '*' });
    denied(verifyJoinToken(secret, anyNs, req('orders', 'shop'), NOW), /^the token does not cover namespace "shop"$/);
  });

  test('an expired token is refused from its expiry on; a token without expiry does not expire', () => {
    const expiresAtMs = NOW + 60_000;
    const token = mintJoinToken(secret, { appId: 'orders', namespace: 'default', expiresAtMs });
    assert.deepEqual(verifyJoinToken(secret, token, req('orders'), expiresAtMs - 1), { ok: true });
    denied(verifyJoinToken(secret, token, req('orders'), expiresAtMs), /^expired at 2026-11-24T12:01:00\.000Z$/);
    denied(verifyJoinToken(secret, token, req('orders'), expiresAtMs + 365 * 86_400_000), /^expired at 2026-11-24T12:01:00\.000Z$/);
    // Expiry is checked before the names: an expired token says so whatever it is asked for.
    denied(verifyJoinToken(secret, token, req('payments', 'prod'), expiresAtMs), /^expired at/);

    const forever = mintJoinToken(secret, { appId: 'orders', namespace: 'default' });
    assert.deepEqual(verifyJoinToken(secret, forever, req('orders'), 8.64e15), { ok: true });
  });

  test('an expiry outside the range of a Date is refused when minting, and reported (not thrown) when verifying', () => {
    for (const expiresAtMs of [-1e16, 1e16, Number.MAX_VALUE, Number.POSITIVE_INFINITY, Number.NaN]) {
      assert.throws(() => mintJoinToken(secret, { appId: 'a', namespace: 'n', expiresAtMs }), rejectsWith('ERR_INVALID_CONFIG', /cannot mint a join token: expiresAtMs must be a finite number/));
    }
    assert.deepEqual(verifyJoinToken(secret, mintJoinToken(secret, { appId: 'a', namespace: 'n', expiresAtMs: 8.64e15 }), req('a', 'n'), NOW), { ok: true });
    denied(verifyJoinToken(secret, mintJoinToken(secret, { appId: 'a', namespace: 'n', expiresAtMs: -8.64e15 }), req('a', 'n'), NOW), /^expired at -271821-04-20T00:00:00\.000Z$/);
    // Correctly signed (as by an older or foreign minter), yet unusable: refused as malformed.
    for (const expiresAtMs of [-1e16, 1e16]) {
      const token = signedPayload(JSON.stringify({ appId: 'a', namespace: 'n', expiresAtMs }));
      denied(verifyJoinToken(secret, token, req('a', 'n'), NOW), /^malformed token$/);
      denied(verifyJoinToken(secret, token, req('a', 'n'), 2e16), /^malformed token$/);
    }
  });

  test('a tampered token, or one signed with another key, is refused as a bad signature', () => {
    const token = mintJoinToken(secret, { appId: 'orders', namespace: 'default' });
    const [version, payload = '', signature = ''] = token.split('.');
    // Claims changed to another app id, keeping the old signature.
    const forged = Buffer.from(JSON.stringify({ appId: 'payments', namespace: 'default' })).toString('base64url');
    denied(verifyJoinToken(secret, `${version}.${forged}.${signature}`, req('payments'), NOW), /^bad signature$/);
    // One character of the payload, then one of the signature.
    denied(verifyJoinToken(secret, `${version}.${flip(payload, 3)}.${signature}`, req('orders'), NOW), /^bad signature$/);
    denied(verifyJoinToken(secret, `${version}.${payload}.${flip(signature, 5)}`, req('orders'), NOW), /^bad signature$/);
    // Another token's signature.
    const other = mintJoinToken(secret, { appId: 'payments', namespace: 'default' }).split('.')[2] ?? '';
    denied(verifyJoinToken(secret, `${version}.${payload}.${other}`, req('orders'), NOW), /^bad signature$/);
    // Another key, even for a token that is otherwise expired or for other names: the MAC is checked first.
    denied(verifyJoinToken(randomBytes(32), token, req('orders'), NOW), /^bad signature$/);
    const expired = mintJoinToken(randomBytes(32), { appId: 'orders', namespace: 'default', expiresAtMs: NOW - 1 });
    denied(verifyJoinToken(secret, expired, req('payments', 'prod'), NOW), /^bad signature$/);
    // The version is part of what is signed: a token relabelled with a future version is not accepted.
    denied(verifyJoinToken(secret, `courier2.${payload}.${signature}`, req('orders'), NOW), /^malformed token$/);
  });

  test('each token has one spelling: a non-canonical encoding of the same MAC is refused', () => {
    const token = mintJoinToken(secret, { appId: 'orders', namespace: 'default' });
    const [version, payload = '', signature = ''] = token.split('.');
    assert.equal(signature.length, 43);
    // The last of 43 characters carries 4 bits of the MAC and 2 zero bits; setting one of those bits
    // spells the same 32 bytes differently.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(signature.slice(-1));
    assert.equal(last & 0b11, 0);
    const respelled = signature.slice(0, -1) + alphabet.charAt(last | 1);
    assert.deepEqual(Buffer.from(respelled, 'base64url'), Buffer.from(signature, 'base64url'));
    denied(verifyJoinToken(secret, `${version}.${payload}.${respelled}`, req('orders'), NOW), /^malformed token$/);
    denied(verifyJoinToken(secret, `${version}.${payload}.${signature}=`, req('orders'), NOW), /^malformed token$/);
  });

  test('malformed tokens are refused with a reason, never thrown', () => {
    const valid = mintJoinToken(secret, { appId: 'orders', namespace: 'default' });
    const malformed = [
      '',
      '   ',
      'courier1',
      valid.replaceAll('.', ''), // no separator
      'courier1..',
      'courier1.e30.AAAA', // a 3-byte signature
      'courier1.!!!.AAAA', // not base64url
      `courier1.e30.${'!'.repeat(43)}`,
      `courier1.e+30.${valid.split('.')[2] ?? ''}`,
      'a.b.c.d',
      `${valid}.extra`,
      'x'.repeat(5000),
      ` ${valid}`.padEnd(4097, ' '), // too long before the whitespace is trimmed
      // Correctly signed, but not a claims object.
      signedPayload('not json'),
      signedPayload('{"appId":"orders","namespace":"default"'),
      signedPayload('null'),
      signedPayload('["orders","default"]'),
      signedPayload('"orders"'),
      signedPayload('{}'),
      signedPayload('{"appId":"orders"}'),
      signedPayload('{"appId":"","namespace":"default"}'),
      signedPayload('{"appId":7,"namespace":"default"}'),
      signedPayload(JSON.stringify({ appId: 'x'.repeat(257), namespace: 'default' })),
      signedPayload('{"appId":"orders","namespace":"default","expiresAtMs":"never"}'),
      signedPayload('{"appId":"orders","namespace":"default","expiresAtMs":null}'),
      signedPayload('{"appId":"orders","namespace":"default","admin":true}'),
      signedPayload('{"appId":"orders","namespace":"default","__proto__":{"admin":true}}'),
    ];
    for (const bad of malformed) {
      let verdict: ReturnType<typeof verifyJoinToken> | undefined;
      assert.doesNotThrow(() => (verdict = verifyJoinToken(secret, bad, req('orders'), NOW)), `threw on ${JSON.stringify(bad.slice(0, 60))}`);
      assert.ok(verdict !== undefined);
      denied(verdict, /^malformed token$/);
    }
    // Not a string at all (an unchecked value from a request body).
    for (const bad of [undefined, null, 42, { token: valid }]) {
      denied(verifyJoinToken(secret, bad as unknown as string, req('orders'), NOW), /^malformed token$/);
    }
    // The control: the same claims, correctly signed and well formed, are accepted.
    assert.deepEqual(verifyJoinToken(secret, signedPayload('{"appId":"orders","namespace":"default"}'), req('orders'), NOW), { ok: true });
  });

  test('minting refuses bad claims; minting and verifying refuse short keys', () => {
    assert.throws(() => mintJoinToken(secret, { appId: '', namespace: 'default' }), rejectsWith('ERR_INVALID_CONFIG', /^cannot mint a join token: appId must be a non-empty string$/));
    assert.throws(() => mintJoinToken(secret, { appId: 'a', namespace: '' }), rejectsWith('ERR_INVALID_CONFIG', /^cannot mint a join token: namespace must be a non-empty string$/));
    assert.throws(() => mintJoinToken(secret, { appId: 'a'.repeat(257), namespace: 'n' }), rejectsWith('ERR_INVALID_CONFIG', /appId must be a non-empty string/));
    assert.throws(() => mintJoinToken(secret, { appId: 'a', namespace: 'n', expiresAtMs: Number.NaN }), rejectsWith('ERR_INVALID_CONFIG', /expiresAtMs/));
    const extra = { appId: 'a', namespace: 'n', role: 'admin' } as unknown as Parameters<typeof mintJoinToken>[1];
    assert.throws(() => mintJoinToken(secret, extra), rejectsWith('ERR_INVALID_CONFIG', /^cannot mint a join token: unknown claims: role$/));
    assert.throws(() => mintJoinToken(randomBytes(16), { appId: 'a', namespace: 'n' }), rejectsWith('ERR_INVALID_CONFIG', /^a join-token key must be at least 32 bytes$/));
    assert.throws(() => verifyJoinToken(randomBytes(31), 'courier1.e30.AAAA', req('a', 'n'), NOW), rejectsWith('ERR_INVALID_CONFIG', /at least 32 bytes/));
    assert.throws(() => verifyJoinToken('a string key of more than thirty-two characters' as unknown as Uint8Array, 'x', req('a', 'n'), NOW), rejectsWith('ERR_INVALID_CONFIG', /at least 32 bytes/));
    // Longer keys are fine.
    const long = randomBytes(64);
    assert.deepEqual(verifyJoinToken(long, mintJoinToken(long, { appId: 'a', namespace: 'n' }), req('a', 'n'), NOW), { ok: true });
  });
});

describe('the join-token key file', () => {
  test('is created once, private (0600 in a 0700 directory), and read back unchanged', (t) => {
    const tmp = tempDir();
    t.after(tmp.remove);
    const dir = join(tmp.dir, 'sentry', 'certs');
    const first = loadOrCreateTokenSecret(dir);
    assert.ok(first instanceof Uint8Array);
    assert.equal(first.length, 32);
    assert.equal(statSync(join(dir, TOKEN_SECRET_FILE)).mode & 0o777, 0o600);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.deepEqual(readdirSync(dir), [TOKEN_SECRET_FILE], 'no temporary file is left behind');
    assert.deepEqual(new Uint8Array(readFileSync(join(dir, TOKEN_SECRET_FILE))), first);

    const second = loadOrCreateTokenSecret(dir);
    assert.deepEqual(second, first);
    assert.equal(statSync(join(dir, TOKEN_SECRET_FILE)).mode & 0o777, 0o600);
    // A token minted with it verifies with the key read back, as after a Sentry restart.
    const token = mintJoinToken(first, { appId: 'a', namespace: 'n' });
    assert.deepEqual(verifyJoinToken(second, token, req('a', 'n'), NOW), { ok: true });

    // Another directory gets another key, which does not verify that token.
    const other = loadOrCreateTokenSecret(join(tmp.dir, 'other'));
    assert.notDeepEqual(other, first);
    denied(verifyJoinToken(other, token, req('a', 'n'), NOW), /^bad signature$/);
  });

  test('a key file that is too short is refused with its size and left alone; a longer one is used as is', (t) => {
    const tmp = tempDir();
    t.after(tmp.remove);
    const file = join(tmp.dir, TOKEN_SECRET_FILE);
    writeFileSync(file, 'short', { mode: 0o600 });
    assert.throws(() => loadOrCreateTokenSecret(tmp.dir), rejectsWith('ERR_INVALID_CONFIG', /^join-token key .*token\.key holds 5 bytes; it needs at least 32$/));
    assert.equal(readFileSync(file, 'utf8'), 'short', 'the operator file is not replaced');
    writeFileSync(file, '');
    assert.throws(() => loadOrCreateTokenSecret(tmp.dir), rejectsWith('ERR_INVALID_CONFIG', /holds 0 bytes; it needs at least 32/));
    writeFileSync(file, randomBytes(31));
    assert.throws(() => loadOrCreateTokenSecret(tmp.dir), rejectsWith('ERR_INVALID_CONFIG', /holds 31 bytes/));

    // Any content of 32 bytes or more is used byte for byte, text or not.
    const exact = Buffer.from('0123456789abcdef0123456789abcdef');
    writeFileSync(file, exact);
    assert.deepEqual(Buffer.from(loadOrCreateTokenSecret(tmp.dir)), exact);
    const long = Buffer.from('an operator supplied key that is comfortably longer than 32 bytes\n');
    writeFileSync(file, long);
    assert.deepEqual(Buffer.from(loadOrCreateTokenSecret(tmp.dir)), long);
    assert.equal(readFileSync(file, 'utf8'), long.toString('utf8'));
  });

  test('a key path that cannot be read is an ERR_INVALID_CONFIG naming it', (t) => {
    const tmp = tempDir();
    t.after(tmp.remove);
    mkdirSync(join(tmp.dir, TOKEN_SECRET_FILE));
    assert.throws(() => loadOrCreateTokenSecret(tmp.dir), rejectsWith('ERR_INVALID_CONFIG', /^join-token key .*token\.key: .*EISDIR/));
  });
});
