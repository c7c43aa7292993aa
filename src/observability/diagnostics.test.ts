import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { setTimeout as sleep } from 'node:timers/promises';
import { RuntimeDiagnostics } from './diagnostics.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Waits until `check` holds, polling; fails after a wide deadline. */
async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

test('a window runs from start-up, ends with stop (the probes still) and starts again with reset', async () => {
  const diagnostics = new RuntimeDiagnostics();
  try {
    const gcs = (): number => Object.values(diagnostics.report().gc).reduce((n, s) => n + s.count, 0);
    gc();
    await until(() => gcs() > 0, 'a collection to be counted');
    await until(() => diagnostics.report().eventLoopDelayMs.max > 0, 'the delay probe to sample');
    assert.equal(diagnostics.report().running, true);

    diagnostics.stop();
    const stopped = diagnostics.report();
    assert.equal(stopped.running, false);
    const counted = gcs();
    gc();
    await sleep(200);
    const later = diagnostics.report();
    assert.equal(later.sinceMs, stopped.sinceMs, 'a stopped window keeps its length');
    assert.deepEqual(later.eventLoopDelayMs, stopped.eventLoopDelayMs, 'the delay probe no longer samples');
    assert.equal(gcs(), counted, 'collections after stop are not counted');

    diagnostics.reset();
    assert.equal(diagnostics.report().running, true);
    assert.equal(gcs(), 0, 'reset starts from zero');
    gc();
    await until(() => gcs() > 0, 'a collection after reset to be counted');
    await until(() => diagnostics.report().eventLoopDelayMs.max > 0, 'the delay probe to sample again');
    assert.ok(diagnostics.report().sinceMs > 0);
  } finally {
    diagnostics.close();
  }
  assert.equal(diagnostics.report().running, false, 'close stops the probes');
});
