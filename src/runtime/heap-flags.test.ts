import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { NODE_FLAGS } from './heap-flags.js';

test('the courier executable starts node with exactly the launcher flags', () => {
  const firstLine = readFileSync(new URL('../cli/main.ts', import.meta.url), 'utf8').split('\n')[0];
  assert.equal(firstLine, `#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`);
});
