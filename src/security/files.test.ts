import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensurePrivateDirectory, readPrivateFile } from './files.js';
import { loadOrCreateCa, writeCaMaterial } from './ca-store.js';
import { generateCaMaterial } from './ca-material.js';
import { loadOrCreateTokenSecret } from './tokens.js';
import { rejectsWith } from './testing/helpers.js';

const posix = process.platform !== 'win32';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'courier-files-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function withUmask<T>(mask: number, fn: () => T): T {
  const old = process.umask(mask);
  try {
    return fn();
  } finally {
    process.umask(old);
  }
}

const mode = (path: string): number => statSync(path).mode & 0o777;

describe('private key files', { skip: !posix && 'POSIX file modes' }, () => {
  test('readPrivateFile refuses a file its group or others can read or write, naming the file, its mode and the fix', (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'issuer.key');
    writeFileSync(file, 'secret', { mode: 0o600 });
    assert.equal(readPrivateFile(file, 'CA issuer key')?.toString(), 'secret');
    chmodSync(file, 0o400);
    assert.equal(readPrivateFile(file, 'CA issuer key')?.toString(), 'secret', 'read-only for the owner is fine');
    const cases: Array<[number, RegExp]> = [
      [0o644, /its group and others can read it/],
      [0o640, /its group can read it/],
      [0o604, /others can read it/],
      [0o620, /its group can write it/],
      [0o666, /its group and others can read and write it/],
      [0o601, /others can use it/],
    ];
    for (const [m, reason] of cases) {
      chmodSync(file, m);
      const expected = new RegExp(`^CA issuer key ${file} has mode 0${m.toString(8)}: .*; a private key must be readable by its owner only: chmod 600 ${file}$`);
      assert.throws(() => readPrivateFile(file, 'CA issuer key'), rejectsWith('ERR_INVALID_CONFIG', expected));
      assert.throws(() => readPrivateFile(file, 'CA issuer key'), rejectsWith('ERR_INVALID_CONFIG', reason));
    }
    assert.equal(readPrivateFile(join(dir, 'missing.key'), 'key'), undefined);
  });

  test('the Sentry refuses an existing issuer.key or token.key others can read', async (t) => {
    const dir = tempDir(t);
    await loadOrCreateCa(dir, { trustDomain: 'public' });
    loadOrCreateTokenSecret(dir);
    chmodSync(join(dir, 'issuer.key'), 0o644);
    await assert.rejects(loadOrCreateCa(dir, { trustDomain: 'public' }), rejectsWith('ERR_INVALID_CONFIG', /issuer\.key has mode 0644: .*chmod 600/));
    chmodSync(join(dir, 'issuer.key'), 0o600);
    await loadOrCreateCa(dir, { trustDomain: 'public' });
    chmodSync(join(dir, 'token.key'), 0o660);
    assert.throws(() => loadOrCreateTokenSecret(dir), rejectsWith('ERR_INVALID_CONFIG', /^join-token key .*token\.key has mode 0660: its group can read and write it/));
  });

  test('new directories are 0700 and new keys 0600 whatever the umask', async (t) => {
    const root = tempDir(t);
    const material = await generateCaMaterial({ trustDomain: 'public' });
    for (const mask of [0o000, 0o022, 0o277]) {
      const dir = join(root, `umask-${mask.toString(8)}`, 'nested', 'certs');
      // Synchronous throughout, so that the umask applies to every file and directory made.
      withUmask(mask, () => {
        writeCaMaterial(dir, material);
        loadOrCreateTokenSecret(dir);
      });
      assert.equal(mode(dir).toString(8), '700', `umask ${mask.toString(8)}: the credentials directory`);
      assert.equal(mode(join(root, `umask-${mask.toString(8)}`)).toString(8), '700', `umask ${mask.toString(8)}: a parent it created`);
      assert.equal(mode(join(dir, 'issuer.key')).toString(8), '600', `umask ${mask.toString(8)}: issuer.key`);
      assert.equal(mode(join(dir, 'token.key')).toString(8), '600', `umask ${mask.toString(8)}: token.key`);
    }
  });

  test('an existing directory keeps its mode', (t) => {
    const dir = join(tempDir(t), 'shared');
    mkdirSync(dir);
    chmodSync(dir, 0o750);
    ensurePrivateDirectory(dir);
    assert.equal(mode(dir), 0o750);
  });
});
