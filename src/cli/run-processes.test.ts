import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { isAlive } from '../runtime/run-registry.js';
import { exitCodeOf, LineSplitter, ManagedProcess } from './run/processes.js';

test('LineSplitter: lines across chunks, CRLF, split UTF-8, a last line without newline', () => {
  const lines: string[] = [];
  const splitter = new LineSplitter((l) => lines.push(l));
  const euro = Buffer.from('€');
  splitter.push(Buffer.from('one\r\ntw'));
  splitter.push(Buffer.concat([Buffer.from('o\nprice '), euro.subarray(0, 1)]));
  splitter.push(Buffer.concat([euro.subarray(1), Buffer.from('5\n\nlast')]));
  assert.deepEqual(lines, ['one', 'two', 'price €5', '']);
  splitter.end();
  assert.deepEqual(lines, ['one', 'two', 'price €5', '', 'last']);
});

test('exit codes: the code, or 128 + the signal number', () => {
  assert.equal(exitCodeOf({ code: 3, signal: null }), 3);
  assert.equal(exitCodeOf({ code: null, signal: 'SIGKILL' }), 137);
  assert.equal(exitCodeOf({ code: null, signal: 'SIGTERM' }), 143);
});

test('a command that does not exist is reported when started', async () => {
  await assert.rejects(
    ManagedProcess.start({ command: 'no-such-program-courier-test', args: [], cwd: process.cwd(), env: process.env, stdout: () => {}, stderr: () => {} }),
    { message: /^cannot start no-such-program-courier-test: no-such-program-courier-test: command not found/ },
  );
});

test('stop() ends the whole process group, with SIGKILL for what ignores SIGTERM', { skip: process.platform === 'win32' }, async () => {
  // A parent that ignores SIGTERM and a grandchild that ignores it too: both must be gone after stop().
  const script = `
    const { spawn } = require('node:child_process');
    process.on('SIGTERM', () => console.log('parent ignores SIGTERM'));
    const g = spawn(process.execPath, ['-e', "process.on('SIGTERM', () => {}); setInterval(() => {}, 1000); console.log('grandchild up')"], { stdio: 'inherit' });
    console.log('grandchild ' + g.pid);
    setInterval(() => {}, 1000);
  `;
  const lines: string[] = [];
  const child = await ManagedProcess.start({ command: process.execPath, args: ['-e', script], cwd: process.cwd(), env: process.env, stdout: (l) => lines.push(l), stderr: (l) => lines.push(l) });
  // Bounded: a line that never comes fails the test with what did come, instead of holding the suite.
  const deadline = Date.now() + 30_000;
  while (!lines.includes('grandchild up') && Date.now() < deadline) await sleep(20);
  if (!lines.includes('grandchild up')) await child.stop(300);
  assert.ok(lines.includes('grandchild up'), `the grandchild did not report within 30 s; output: ${JSON.stringify(lines)}`);
  const grandchild = Number(lines.find((l) => l.startsWith('grandchild '))?.split(' ')[1]);
  assert.ok(isAlive(grandchild));
  const started = Date.now();
  const status = await child.stop(300);
  assert.deepEqual(status, { code: null, signal: 'SIGKILL' });
  assert.ok(Date.now() - started >= 300);
  assert.equal(isAlive(child.pid), false);
  assert.equal(isAlive(grandchild), false);
  assert.equal(child.groupAlive(), false);
  assert.ok(lines.includes('parent ignores SIGTERM'));
});

test('stop() of a process that exits on SIGTERM returns its status at once', { skip: process.platform === 'win32' }, async () => {
  let up = false;
  const child = await ManagedProcess.start({
    command: process.execPath,
    args: ['-e', "process.on('SIGTERM', () => process.exit(7)); setInterval(() => {}, 1000); console.log('up')"],
    cwd: process.cwd(),
    env: process.env,
    stdout: (line) => (up ||= line === 'up'),
    stderr: () => {},
  });
  const deadline = Date.now() + 30_000;
  while (!up && Date.now() < deadline) await sleep(20);
  if (!up) await child.stop(300);
  assert.ok(up, 'the child did not report within 30 s');
  assert.deepEqual(await child.stop(5000), { code: 7, signal: null });
  assert.deepEqual(await child.stop(5000), { code: 7, signal: null });
});
