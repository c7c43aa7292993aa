#!/usr/bin/env node
// Runs every *.test.ts under src/ (unit tests), bench/ (the benchmark's own arithmetic) and test/
// (integration tests) with node:test and tsx.
// Usage: node scripts/run-tests.mjs [path-substring ...]   (filters the files to run)
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function collect(dir, out) {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
    const full = join(dir, name);
    if (statSync(full).isDirectory()) collect(full, out);
    else if (name.endsWith('.test.ts')) out.push(full);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = [...collect('src', []), ...collect('bench', []), ...collect('test', [])]
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const concurrency = process.env.COURIER_TEST_CONCURRENCY ?? '3';
// A test that never ends fails after this long (the slowest take about a minute on a busy machine).
const testTimeoutMs = process.env.COURIER_TEST_TIMEOUT_MS ?? '600000';
// The whole run is stopped after this long, saying what was still running.
const runLimitMinutes = Number(process.env.COURIER_TEST_RUN_LIMIT_MINUTES ?? '40');

// Every Node process of the run (test files, and the sidecars and apps they start) writes a
// diagnostic report on SIGWINCH (ignored by other programs): the watchdog collects them.
const reportDir = mkdtempSync(join(tmpdir(), 'courier-test-reports-'));
const nodeOptions = [process.env.NODE_OPTIONS ?? '', '--report-on-signal', '--report-signal=SIGWINCH', `--report-directory=${reportDir}`].join(' ').trim();

const child = spawn(
  process.execPath,
  ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, `--test-timeout=${testTimeoutMs}`, '--test-reporter=spec', ...files],
  { stdio: 'inherit', env: { ...process.env, NODE_OPTIONS: nodeOptions } },
);
const watchdog = setTimeout(() => void stopHungRun(), runLimitMinutes * 60_000);
watchdog.unref();
child.on('exit', (code, signal) => {
  clearTimeout(watchdog);
  rmSync(reportDir, { recursive: true, force: true });
  process.exit(code ?? (signal ? 1 : 0));
});

/** The processes below `root`, parents first, each with its parent, age in seconds and command line. */
function descendants(root) {
  const rows = execFileSync('ps', ['-eo', 'pid=,ppid=,etimes=,args='], { encoding: 'utf8' })
    .split('\n')
    .map((line) => /^\s*(\d+)\s+(\d+)\s+(\d+)\s+(.*)$/.exec(line))
    .filter((m) => m !== null)
    .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), seconds: Number(m[3]), args: m[4] }));
  const out = [];
  const walk = (pid) => {
    for (const row of rows.filter((r) => r.ppid === pid)) {
      out.push(row);
      walk(row.pid);
    }
  };
  walk(root);
  return out;
}

/** Lists what is still running, with each Node process's JavaScript stack and open sockets, and stops it all. */
async function stopHungRun() {
  const left = descendants(child.pid);
  console.error(`\n== the test run has gone on for ${runLimitMinutes} minutes: stopping it. Still running:`);
  for (const p of left) console.error(`  pid ${p.pid} (parent ${p.ppid}, ${p.seconds} s): ${p.args.slice(0, 300)}`);
  for (const p of left) signal(p.pid, 'SIGWINCH');
  await new Promise((resolve) => setTimeout(resolve, 3000));
  for (const name of readdirSync(reportDir)) {
    try {
      const report = JSON.parse(readFileSync(join(reportDir, name), 'utf8'));
      console.error(`\n-- pid ${report.header?.processId}: ${(report.header?.commandLine ?? []).join(' ').slice(0, 300)}`);
      for (const line of (report.javascriptStack?.stack ?? []).slice(0, 12)) console.error(`   ${line}`);
      for (const h of report.libuv ?? []) {
        if (!h.is_active || (h.type !== 'tcp' && h.type !== 'pipe' && h.type !== 'timer' && h.type !== 'process')) continue;
        const where = h.type === 'tcp' ? `${JSON.stringify(h.localEndpoint)} -> ${JSON.stringify(h.remoteEndpoint)}` : h.type === 'process' ? `pid ${h.pid}` : h.type === 'timer' ? `in ${h.firesInMsFromNow} ms${h.is_referenced ? '' : ' (unref)'}` : '';
        console.error(`   ${h.type} ${where}`);
      }
    } catch (err) {
      console.error(`-- report ${name} unreadable: ${String(err)}`);
    }
  }
  for (const p of left.reverse()) signal(p.pid, 'SIGKILL');
  signal(child.pid, 'SIGKILL');
  rmSync(reportDir, { recursive: true, force: true });
  process.exit(1);
}

function signal(pid, name) {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}
