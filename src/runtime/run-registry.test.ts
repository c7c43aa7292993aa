import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { isAlive, isSameProcess, processGroupAlive, processStartTime, signalProcessGroup } from './run-registry.js';

const linuxOnly = { skip: process.platform !== 'linux' ? 'reads /proc' : false };

/** Starts a command in its own process group, reading the first line it prints. */
async function start(command: string, args: string[]): Promise<{ child: ChildProcess; firstLine: string }> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  while (!out.includes('\n')) {
    if (child.exitCode !== null) throw new Error(`${command} exited`);
    await sleep(10);
  }
  return { child, firstLine: out.split('\n')[0] ?? '' };
}

function killGroup(child: ChildProcess): void {
  try {
    process.kill(-(child.pid ?? 0), 'SIGKILL');
  } catch {
    // gone
  }
}

test('a start time tells two processes with the same pid apart', linuxOnly, () => {
  const own = processStartTime(process.pid);
  assert.match(own ?? '', /^\d+@[0-9a-f-]{36}$/);
  assert.equal(processStartTime(process.pid), own, 'stable');
  const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  assert.ok(own?.endsWith(`@${bootId}`));
  assert.equal(isSameProcess({ pid: process.pid, startTime: own }), true);
  assert.equal(isSameProcess({ pid: process.pid }), true, 'without a start time, alive is all that is checked');
  assert.equal(isSameProcess({ pid: process.pid, startTime: `1@${bootId}` }), false, 'the pid now belongs to another process');
  assert.equal(isSameProcess({ pid: process.pid, startTime: own?.replace(/@.*/, '@another-boot') }), false, 'recorded before a reboot');
  assert.equal(processStartTime(0), undefined);
  assert.equal(isSameProcess({ pid: 0 }), false);
});

test('a zombie is not alive, nor is a group of zombies', linuxOnly, async () => {
  // `sleep 0` ends at once; its parent becomes `sleep 30`, which never reaps it.
  const { child, firstLine } = await start('sh', ['-c', 'sleep 0 & echo $!; exec sleep 30']);
  try {
    const zombie = Number(firstLine);
    while (!readFileSync(`/proc/${zombie}/stat`, 'utf8').includes(') Z ')) await sleep(10);
    assert.equal(isAlive(zombie), false);
    assert.equal(isAlive(child.pid ?? 0), true);
    assert.equal(processGroupAlive(child.pid ?? 0), true);
  } finally {
    killGroup(child);
  }
});

test('a process group is signalled only when its leader is the recorded process', linuxOnly, async () => {
  const { child, firstLine } = await start('sh', ['-c', 'sleep 30 & echo $!; wait']);
  const leader = child.pid ?? 0;
  const member = Number(firstLine);
  try {
    const startTime = processStartTime(leader);
    assert.equal(signalProcessGroup({ pid: leader, startTime: `${startTime ?? ''}0` }, 'SIGKILL'), false);
    assert.ok(isAlive(leader) && isAlive(member));
    assert.equal(processGroupAlive(leader), true);
    assert.equal(signalProcessGroup({ pid: leader, startTime }, 'SIGKILL'), true);
    while (isAlive(leader) || isAlive(member)) await sleep(10);
    assert.equal(processGroupAlive(leader), false);
    assert.equal(signalProcessGroup({ pid: leader, startTime }, 'SIGKILL'), false, 'nothing left to signal');
  } finally {
    killGroup(child);
  }
});
