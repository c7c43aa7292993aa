import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { forTests, MALLOC_ENV, NODE_FLAGS, withoutLauncherEnv } from './heap-flags.js';

const launcherEnv = Object.entries(MALLOC_ENV).map(([name, value]) => `${name}=${value}`);

test('the courier executable starts node with exactly the launcher flags and allocator settings', () => {
  const firstLine = readFileSync(new URL('../cli/main.ts', import.meta.url), 'utf8').split('\n')[0];
  assert.equal(firstLine, `#!/usr/bin/env -S ${launcherEnv.join(' ')} node ${NODE_FLAGS.join(' ')}`);
});

test('the container image starts node as the courier executable does', () => {
  const dockerfile = readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8');
  const entrypoint = /^ENTRYPOINT (.*)$/m.exec(dockerfile)?.[1];
  assert.ok(entrypoint !== undefined, 'the Dockerfile has an ENTRYPOINT');
  assert.deepEqual(JSON.parse(entrypoint), ['node', ...NODE_FLAGS, '/app/dist/cli/main.js']);
  for (const assignment of launcherEnv) assert.match(dockerfile, new RegExp(`^ENV ${assignment}$`, 'm'));
});

test("courier run's apps do not inherit the launcher's allocator settings; a value of the user's own stays", () => {
  assert.deepEqual(withoutLauncherEnv({ ...MALLOC_ENV, A: 'b' }), { A: 'b' });
  assert.deepEqual(withoutLauncherEnv({ MALLOC_MMAP_THRESHOLD_: '1048576', A: 'b' }), { MALLOC_MMAP_THRESHOLD_: '1048576', A: 'b' });
});

test('interpreting only holds back every compiler the runtime has, Maglev where it ships', () => {
  assert.deepEqual(forTests.compilerTiers('11.3.244.8-node.33'), ['sparkplug', 'opt']);
  assert.deepEqual(forTests.compilerTiers('13.6.233.17-node.37'), ['sparkplug', 'maglev', 'opt']);
});

test('a starting sidecar interprets only, and compiles its hot code once it serves', () => {
  // V8 reports a function's tier with %GetOptimizationStatus (bit 4: optimized code, bit 7: interpreted).
  const script = `
    const { interpretOnly, compileWhenServing } = await import(${JSON.stringify(new URL('./heap-flags.ts', import.meta.url).href)});
    const f = (n) => { let s = 0; for (let i = 0; i < n; i++) s += (i * 7) % 13; return s; };
    // Every status f had after any call (a tier may last only a few calls) goes into tiers.
    let tiers = 0;
    const hot = () => { for (let i = 0; i < 3000; i++) { f(500); tiers |= %GetOptimizationStatus(f); } return %GetOptimizationStatus(f); };
    interpretOnly();
    const starting = hot();
    tiers = 0;
    compileWhenServing();
    // A busy machine may finish a compile late: run the hot code until V8 says optimized (at most 20 s).
    let serving = hot();
    for (const until = Date.now() + 20000; (serving & (1 << 4)) === 0 && Date.now() < until; ) serving = hot();
    process.stdout.write(JSON.stringify({ starting, serving, tiers }));`;
  // As the launcher starts a sidecar, and as a plain `node` would (Maglev on where the runtime ships it).
  for (const flags of [NODE_FLAGS, []]) {
    const out = spawnSync(process.execPath, [...flags, '--allow-natives-syntax', '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(out.status, 0, out.stderr);
    const { starting, serving, tiers } = JSON.parse(out.stdout) as { starting: number; serving: number; tiers: number };
    const optimized = 1 << 4;
    const how = `with ${flags.length === 0 ? 'no flags' : flags.join(' ')}`;
    assert.equal(starting & optimized, 0, `status while starting ${how}: ${starting.toString(2)}`);
    assert.notEqual(serving & optimized, 0, `status once serving ${how}: ${serving.toString(2)}`);
    // Hot code goes to TurboFan (bit 6) without passing through Maglev (bit 5).
    assert.notEqual(serving & (1 << 6), 0, `status once serving ${how}: ${serving.toString(2)}`);
    assert.equal(tiers & (1 << 5), 0, `every status seen ${how}: ${tiers.toString(2)}`);
  }
});

test('courier run interprets only, from before its modules load; other commands keep V8 defaults', () => {
  const script = (command: string, waitMs: number): string => `
    const { setCompilersForCommand } = await import(${JSON.stringify(new URL('./heap-flags.ts', import.meta.url).href)});
    setCompilersForCommand(${JSON.stringify(command)});
    const f = (n) => { let s = 0; for (let i = 0; i < n; i++) s += (i * 7) % 13; return s; };
    const hot = () => { for (let i = 0; i < 3000; i++) f(500); return %GetOptimizationStatus(f); };
    // Where optimizing is expected, until V8 says optimized (a busy machine finishes compiles late; at most 20 s).
    let status = hot();
    for (const until = Date.now() + ${waitMs}; (status & (1 << 4)) === 0 && Date.now() < until; ) status = hot();
    process.stdout.write(String(status));`;
  const status = (command: string, waitMs = 0): number => {
    const out = spawnSync(process.execPath, ['--allow-natives-syntax', '--import', 'tsx', '--input-type=module', '-e', script(command, waitMs)], { encoding: 'utf8' });
    assert.equal(out.status, 0, out.stderr);
    return Number(out.stdout);
  };
  const optimized = 1 << 4;
  assert.equal(status('run') & optimized, 0, 'courier run optimized a hot function');
  assert.equal(status('sidecar') & optimized, 0, 'a starting sidecar optimized a hot function');
  assert.notEqual(status('list', 20_000) & optimized, 0, 'courier list did not optimize a hot function');
});
