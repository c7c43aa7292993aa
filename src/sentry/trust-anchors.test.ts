import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger, type Logger } from '../observability/logging/index.js';
import { newCa, tempDir } from '../security/testing/helpers.js';
import { TrustAnchors } from './trust-anchors.js';

/** A logger whose lines can be read back. */
function capturingLogger(): { logger: Logger; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const logger = createLogger({ level: 'debug', json: true, destination: { write: (line) => void chunks.push(line) } });
  return {
    logger,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('TrustAnchors', () => {
  it('refuses DAPR_TRUST_ANCHORS text without a certificate, naming where it came from', () => {
    const { logger } = capturingLogger();
    assert.throws(() => TrustAnchors.fromPem('not a certificate', logger), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_INVALID_CONFIG');
      assert.match(err.message, /DAPR_TRUST_ANCHORS: holds no PEM certificate/);
      return true;
    });
  });

  it('refuses a missing or empty file at start', (t) => {
    const tmp = tempDir();
    t.after(tmp.remove);
    const { logger } = capturingLogger();
    const missing = join(tmp.dir, 'missing.crt');
    assert.throws(() => TrustAnchors.fromFile(missing, logger), new RegExp(`trust anchors file ${missing}`));
    const empty = join(tmp.dir, 'empty.crt');
    writeFileSync(empty, '');
    assert.throws(() => TrustAnchors.fromFile(empty, logger), /holds no PEM certificate/);
  });

  it('reloads a changed file, tells its listeners, and keeps the current anchors when the new file is broken', async (t) => {
    const tmp = tempDir();
    t.after(tmp.remove);
    const [first, second] = await Promise.all([newCa(), newCa()]);
    const file = join(tmp.dir, 'ca.crt');
    writeFileSync(file, first.ca.trustAnchorsPem);
    const { logger, lines } = capturingLogger();
    const anchors = TrustAnchors.fromFile(file, logger);
    t.after(() => anchors.close());
    assert.equal(anchors.pem, first.ca.trustAnchorsPem);

    // A rollover: both roots for a while.
    const bundle = first.ca.trustAnchorsPem + second.ca.trustAnchorsPem;
    const changed = new Promise<void>((resolve) => anchors.onChange(resolve));
    writeFileSync(file, bundle);
    // The watcher does not keep the process alive (it is unref'd); this timer does, and bounds the wait.
    const guard = setTimeout(() => assert.fail('the change was not noticed within 10 s'), 10_000);
    await changed;
    clearTimeout(guard);
    assert.equal(anchors.pem, bundle);

    // A broken file is refused and logged; the bundle stays in force and no listener hears of it.
    let notified = 0;
    anchors.onChange(() => notified++);
    writeFileSync(file, '-----BEGIN CERTIFICATE-----\ngarbage\n');
    for (let i = 0; i < 60 && !lines().some((l) => /refused/.test(String(l.msg))); i++) await sleep(100);
    const refusal = lines().find((l) => /refused/.test(String(l.msg)));
    assert.ok(refusal, 'the broken file is reported');
    assert.equal(refusal.file, file);
    assert.equal(anchors.pem, bundle);
    assert.equal(notified, 0);

    // After close, changes are no longer read.
    anchors.close();
    writeFileSync(file, second.ca.trustAnchorsPem);
    await sleep(2500);
    assert.equal(anchors.pem, bundle);
  });
});
