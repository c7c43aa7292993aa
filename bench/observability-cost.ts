// What metrics and tracing at their defaults cost a sidecar at 1000 requests/s, the budget of the
// observability issue (at most +10 % CPU per call over the lean path). Starts one pair of sidecars
// (A, the caller, and B in front of the bench's HTTP/1.1 app) per variant:
//   default    metrics on, tracing at Dapr's default sampling rate (1e-4), no exporter
//   configured as default, with a Configuration that changes nothing: it loads the Configuration parser
//              (zod, yaml) as lean's does, so that default and lean differ in what they record only
//   lean       --enable-metrics=false and a Configuration with tracing off (samplingRate "0")
//   nometrics  --enable-metrics=false, tracing at its default
//   notracing  metrics on, tracing off
//   profiling  as default, with --enable-profiling (the full benchmark's sidecars run so, for its stall table)
//   traced     metrics on, every call traced (samplingRate "1") and exported over OTLP/HTTP to a local
//              collector that drops what it gets (bench/apps/otlp-sink.mjs): the full benchmark's
//              courier-http-traced, whose budget is +30 % over lean
//   floor      no Courier: two minimal Node proxies in a row (bench/apps/minimal-proxy.mjs, node:http and an
//              undici Pool, with the launcher's Node flags), the least any pair of Node sidecars costs here
// then sends 1000 requests/s (open loop, 16 connections, 1 KiB POST) through each pair in turn for
// SECONDS, REPS times, each repetition starting with the next variant so that no variant always runs
// first. CPU is user+system time from /proc over each window; the sidecars run as users run them
// (no --enable-profiling, whose probe alone costs about 0.005 core idle). Prints, per variant, the
// median, the lowest and the spread of CPU per 1000 requests for A and B, the median latency from the
// scheduled send time, and each sidecar's median and lowest over the lean one's. On a machine whose
// speed wanders (a shared VM: single windows here run up to 40 % slower, for every variant alike),
// the lowest of several windows is the steadier figure: interference only ever adds CPU time.
//
//   npm run bench:observability-cost [-- --reps 5 --seconds 10 --variants default,configured,lean,nometrics,notracing,traced,floor] [--cpu-prof DIR]
// (--cpu-prof DIR writes each sidecar's V8 CPU profile into DIR when it stops, warm-up included)
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, TestEnv } from '../test/framework/env.js';
import { startSidecar } from '../test/framework/sidecar-process.js';
import { NODE_FLAGS } from '../src/runtime/heap-flags.js';
import type { LoadSpec } from './lib/loadgen.js';
import { cpuSeconds } from './lib/proc.js';
import { asLaunched, runLoadProcess, startPortPrinter } from './lib/processes.js';

function option(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? (process.argv[at + 1] ?? fallback) : fallback;
}
const REPS = Math.max(1, Number(option('reps', '5')) || 5);
const SECONDS = Math.max(2, Number(option('seconds', '10')) || 10);
const RATE = 1000;
const PROFILE_DIR = process.argv.includes('--cpu-prof') ? option('cpu-prof', '') : undefined;
const nodeArgs = PROFILE_DIR === undefined || PROFILE_DIR === '' ? [] : ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR];

const EMPTY_CONFIG = 'apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: configured\nspec: {}\n';
const LEAN_CONFIG = 'apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: lean\nspec:\n  tracing:\n    samplingRate: "0"\n';

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
};

const env = new TestEnv();
const work = join(env.home, 'configs');
try {
  mkdirSync(work, { recursive: true });
  const leanFile = join(work, 'lean.yaml');
  writeFileSync(leanFile, LEAN_CONFIG);
  const emptyFile = join(work, 'configured.yaml');
  writeFileSync(emptyFile, EMPTY_CONFIG);
  const names = option('variants', 'default,lean,nometrics,notracing').split(',');
  let tracedConfig: string[] = [];
  if (names.includes('traced')) {
    const sink = await startPortPrinter('otlp-sink', [join(repoRoot, 'bench', 'apps', 'otlp-sink.mjs')]);
    env.track(sink.child);
    const tracedFile = join(work, 'traced.yaml');
    writeFileSync(tracedFile, `${EMPTY_CONFIG.replace('spec: {}', 'spec:')}  tracing:\n    samplingRate: "1"\n    otel:\n      endpointAddress: "127.0.0.1:${sink.port}"\n      protocol: http\n      isSecure: false\n`);
    tracedConfig = ['--config', tracedFile];
  }
  const all: Record<string, string[]> = {
    default: [],
    configured: ['--config', emptyFile],
    lean: ['--enable-metrics=false', '--config', leanFile],
    nometrics: ['--enable-metrics=false'],
    notracing: ['--config', leanFile],
    profiling: ['--enable-profiling', '--profile-port', '0'],
    traced: tracedConfig,
    floor: [],
  };
  if (!names.every((v) => v in all) || names.length === 0) throw new Error(`--variants: choose among ${Object.keys(all).join(', ')}`);
  const app = await startPortPrinter('http-app', [join(repoRoot, 'bench', 'apps', 'http-app.mjs')]);
  env.track(app.child);
  const base = ['--log-level', 'warn'];
  const pairs: { name: string; a: { pid: number }; b: { pid: number }; url: string }[] = [];
  for (const name of names) {
    if (name === 'floor') {
      const proxy = (upstream: number) => startPortPrinter(`minimal-proxy-${upstream}`, [...NODE_FLAGS, join(repoRoot, 'bench', 'apps', 'minimal-proxy.mjs'), String(upstream)]);
      const b = await proxy(app.port);
      env.track(b.child);
      const a = await proxy(b.port);
      env.track(a.child);
      pairs.push({ name, a: { pid: a.child.pid }, b: { pid: b.child.pid }, url: `http://127.0.0.1:${a.port}/echo` });
      continue;
    }
    const extra = all[name] ?? [];
    const b = await startSidecar(env, asLaunched({ nodeArgs, appId: `cost-b-${name}`, appPort: app.port, waitForApp: true, args: [...base, ...extra] }));
    const a = await startSidecar(env, asLaunched({ nodeArgs, appId: `cost-a-${name}`, args: [...base, ...extra] }));
    pairs.push({ name, a, b, url: a.url(`/v1.0/invoke/cost-b-${name}/method/echo`) });
  }
  const spec = (url: string, seconds: number): LoadSpec => ({ kind: 'http', url, rate: RATE, connections: 16, warmupSeconds: 0, seconds, bodyBytes: 1024 });
  process.stderr.write(`observability cost: ${names.join(', ')}; ${REPS} repetitions of ${SECONDS} s at ${RATE} requests/s, node ${process.version}\n`);
  for (const p of pairs) await runLoadProcess(spec(p.url, 5)); // warm-up
  const rows = new Map<string, { a: number[]; b: number[]; p50: number[]; p99: number[] }>();
  for (let rep = 0; rep < REPS; rep++) {
    for (let i = 0; i < pairs.length; i++) {
      const p = pairs[(rep + i) % pairs.length];
      if (p === undefined) continue;
      const a0 = cpuSeconds(p.a.pid);
      const b0 = cpuSeconds(p.b.pid);
      const res = await runLoadProcess(spec(p.url, SECONDS));
      const thousands = res.completed / 1000;
      const row = rows.get(p.name) ?? { a: [], b: [], p50: [], p99: [] };
      rows.set(p.name, row);
      row.a.push((cpuSeconds(p.a.pid) - a0) / thousands);
      row.b.push((cpuSeconds(p.b.pid) - b0) / thousands);
      row.p50.push(res.scheduled.p50);
      row.p99.push(res.scheduled.p99);
      process.stderr.write(`  repetition ${rep + 1}, ${p.name}: A ${row.a.at(-1)?.toFixed(3)}, B ${row.b.at(-1)?.toFixed(3)} core per 1000 requests\n`);
    }
  }
  const lean = rows.get('lean');
  const floor = rows.get('floor');
  const table = names.map((name) => {
    const r = rows.get(name) ?? { a: [], b: [], p50: [], p99: [] };
    const pct = (x: number, base: number): string => `${(((x - base) / base) * 100).toFixed(1)} %`;
    const over = (xs: number[], base: number[] | undefined): string =>
      base === undefined || name === 'lean' || name === 'floor' ? '–' : `${pct(median(xs), median(base))} / ${pct(Math.min(...xs), Math.min(...base))}`;
    const spread = (xs: number[]): string => `${Math.min(...xs).toFixed(3)}–${Math.max(...xs).toFixed(3)}`;
    return {
      variant: name,
      'A core/1000 req (median)': median(r.a).toFixed(3),
      'A range': spread(r.a),
      'B core/1000 req (median)': median(r.b).toFixed(3),
      'B range': spread(r.b),
      'A over lean (median / lowest)': over(r.a, lean?.a),
      'B over lean (median / lowest)': over(r.b, lean?.b),
      ...(floor === undefined || name === 'floor' ? {} : { 'A / B over floor (median)': `${(median(r.a) / median(floor.a)).toFixed(2)} / ${(median(r.b) / median(floor.b)).toFixed(2)}` }),
      'p50 / p99 ms': `${median(r.p50).toFixed(2)} / ${median(r.p99).toFixed(2)}`,
    };
  });
  console.table(table);
} finally {
  rmSync(work, { recursive: true, force: true });
  await env.close();
}
