import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { DAPR_SENTRY_TOKEN_PATH, kubernetesTokenFile, readKubernetesToken } from './kubernetes-token.js';

test("the sidecar's projected token: Dapr's path unless named, re-read each time, absent only when not named", () => {
  assert.deepEqual(kubernetesTokenFile({}), { file: DAPR_SENTRY_TOKEN_PATH, explicit: false });
  assert.deepEqual(kubernetesTokenFile({ DAPR_SENTRY_TOKEN_FILE: '/t' }), { file: '/t', explicit: true });
  assert.deepEqual(kubernetesTokenFile({ DAPR_SENTRY_TOKEN_FILE: '/t', COURIER_SENTRY_KUBERNETES_TOKEN_FILE: '/k' }), { file: '/k', explicit: true });
  const dir = mkdtempSync(join(tmpdir(), 'courier-sa-'));
  try {
    const file = join(dir, 'token');
    const named = kubernetesTokenFile({ COURIER_SENTRY_KUBERNETES_TOKEN_FILE: file });
    assert.deepEqual(named, { file, explicit: true });
    assert.throws(() => readKubernetesToken(named), /cannot be read/);
    assert.equal(readKubernetesToken({ file, explicit: false }), undefined);
    writeFileSync(file, 'first\n');
    assert.equal(readKubernetesToken(named), 'first');
    writeFileSync(file, 'rotated');
    assert.equal(readKubernetesToken(named), 'rotated');
    writeFileSync(file, '  \n');
    assert.throws(() => readKubernetesToken(named), /is empty/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
