// --scheduler-slice: a sidecar's event loop asks Linux (6.12 and newer) for a short time slice.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestEnv } from '../framework/env.js';
import { startSidecar } from '../framework/sidecar-process.js';
import { runCli } from '../framework/cli-process.js';
import { kernelKeepsSlices, kernelRelease, shownSlice } from '../framework/scheduler.js';

const keepsSlices = kernelKeepsSlices();

describe('scheduler slice', () => {
  const env = new TestEnv();
  after(() => env.close());

  test('a sidecar runs its event loop with a 100 µs slice by default, with what --scheduler-slice says, or with the kernel\'s own with 0', { skip: !keepsSlices && `Linux ${kernelRelease} keeps no slice` }, async () => {
    const kernelDefault = shownSlice(process.pid);
    const byDefault = await startSidecar(env, { appId: 'slice-default', waitForApp: false });
    const longer = await startSidecar(env, { appId: 'slice-2ms', waitForApp: false, args: ['--scheduler-slice', '2000'] });
    const off = await startSidecar(env, { appId: 'slice-off', waitForApp: false, args: ['--scheduler-slice', '0'] });
    assert.equal(shownSlice(byDefault.pid), 100_000);
    assert.equal(shownSlice(longer.pid), 2_000_000);
    assert.equal(shownSlice(off.pid), kernelDefault, "0 leaves the kernel's default");
    assert.notEqual(kernelDefault, 100_000);
  });

  test('a slice Linux does not take is refused before the sidecar starts', async () => {
    for (const value of ['50', '100001', '-1']) {
      const res = await runCli(env, ['sidecar', '--app-id', 'slice-bad', '--metrics-port', '0', '--scheduler-slice', value]);
      assert.notEqual(res.code, 0, value);
      assert.match(res.stderr, /--scheduler-slice -?\d+: Linux takes 100 to 100000 µs/);
    }
  });
});
