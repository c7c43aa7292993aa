// --scheduler-slice: a sidecar's event loop asks Linux (6.12 and newer) for a short time slice.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { TestEnv } from '../framework/env.js';
import { startSidecar } from '../framework/sidecar-process.js';
import { runCli } from '../framework/cli-process.js';

/** A thread's slice as the kernel shows it (`se.slice`, Linux 6.6 and newer), in ns. */
function sliceOf(pid: number): number | undefined {
  const line = /^se\.slice\s*:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/sched`, 'utf8'));
  return line?.[1] === undefined ? undefined : Number(line[1]);
}

const release = readFileSync('/proc/sys/kernel/osrelease', 'utf8');
const [major = 0, minor = 0] = (/^(\d+)\.(\d+)/.exec(release) ?? []).slice(1).map(Number);
const keepsSlices = major > 6 || (major === 6 && minor >= 12);

describe('scheduler slice', () => {
  const env = new TestEnv();
  after(() => env.close());

  test('a sidecar runs its event loop with a 100 µs slice by default, with what --scheduler-slice says, or with the kernel\'s own with 0', { skip: !keepsSlices && `Linux ${release.trim()} keeps no slice` }, async () => {
    const kernelDefault = sliceOf(process.pid);
    const byDefault = await startSidecar(env, { appId: 'slice-default', waitForApp: false });
    const longer = await startSidecar(env, { appId: 'slice-2ms', waitForApp: false, args: ['--scheduler-slice', '2000'] });
    const off = await startSidecar(env, { appId: 'slice-off', waitForApp: false, args: ['--scheduler-slice', '0'] });
    assert.equal(sliceOf(byDefault.pid), 100_000);
    assert.equal(sliceOf(longer.pid), 2_000_000);
    assert.equal(sliceOf(off.pid), kernelDefault, "0 leaves the kernel's default");
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
