// What metrics and tracing at their defaults cost a sidecar at 1000 requests/s, the budget of the
// observability issue (at most +10 % CPU per call over the lean path). Starts PAIRS pairs of sidecars
// (A, the caller, and B in front of the bench's HTTP/1.1 app) per variant (bench/lib/observability-budget.ts
// says why one pair per variant is not enough):
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
// then loads every other variant's k-th pair together with lean's k-th pair (1000 requests/s each,
// open loop, 16 connections, 1 KiB POST, from a generator per pair) for SECONDS, for every k, REPS
// times. CPU is user+system time from /proc over each window; the sidecars run as users run them (no
// --enable-profiling, whose probe alone costs about 0.005 core idle). Prints, per variant, the median
// (over every window of every pair) and the spread of CPU per 1000 requests for A and B, each
// sidecar's cost over lean's as the median of its same-window ratios, the median latency from the
// scheduled send time (two pairs under load at once: higher than the full benchmark's) and RSS.
// The machine's speed wanders (a shared VM: single windows run up to 40 % slower, for every process
// alike); two pairs measured in the same window meet the same machine, so their ratio does not.
//
//   npm run bench:observability-cost [-- --pairs 3 --reps 3 --seconds 10 --variants default,configured,lean,nometrics,notracing,traced,floor] [--cpu-prof DIR]
// (--cpu-prof DIR writes each sidecar's V8 CPU profile into DIR when it stops, warm-up included)
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, TestEnv } from '../test/framework/env.js';
import { measureObservabilityBudget, type BudgetVariant } from './lib/observability-budget.js';
import { median } from './lib/report.js';
import { startPortPrinter } from './lib/processes.js';

function option(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? (process.argv[at + 1] ?? fallback) : fallback;
}
const PAIRS = Math.max(1, Number(option('pairs', '3')) || 3);
const REPS = Math.max(1, Number(option('reps', '3')) || 3);
const SECONDS = Math.max(2, Number(option('seconds', '10')) || 10);
const PROFILE_DIR = process.argv.includes('--cpu-prof') ? option('cpu-prof', '') : undefined;
const nodeArgs = PROFILE_DIR === undefined || PROFILE_DIR === '' ? [] : ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR];

const EMPTY_CONFIG = 'apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: configured\nspec: {}\n';
const LEAN_CONFIG = 'apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: lean\nspec:\n  tracing:\n    samplingRate: "0"\n';

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
  const all: Record<string, BudgetVariant> = {
    default: { name: 'default' },
    configured: { name: 'configured', args: ['--config', emptyFile] },
    lean: { name: 'lean', args: ['--enable-metrics=false', '--config', leanFile] },
    nometrics: { name: 'nometrics', args: ['--enable-metrics=false'] },
    notracing: { name: 'notracing', args: ['--config', leanFile] },
    profiling: { name: 'profiling', args: ['--enable-profiling', '--profile-port', '0'] },
    traced: { name: 'traced', args: tracedConfig },
    floor: { name: 'floor', floor: true },
  };
  const variants = names.map((n) => all[n]).filter((v): v is BudgetVariant => v !== undefined);
  if (variants.length !== names.length || names.length === 0) throw new Error(`--variants: choose among ${Object.keys(all).join(', ')}`);
  const app = await startPortPrinter('http-app', [join(repoRoot, 'bench', 'apps', 'http-app.mjs')]);
  env.track(app.child);
  process.stderr.write(`observability cost: ${names.join(', ')}; ${PAIRS} pair(s) each, ${REPS} repetitions of ${SECONDS} s at 1000 requests/s, node ${process.version}\n`);
  const base = names.includes('lean') ? 'lean' : (names[0] ?? 'lean');
  const figures = await measureObservabilityBudget({ env, appPort: app.port, variants, base, pairs: PAIRS, reps: REPS, seconds: SECONDS, warmupSeconds: 5, nodeArgs });
  const floor = figures.find((f) => f.variant === 'floor');
  const table = figures.map((r) => {
    const name = r.variant;
    const pct = (ratios: number[]): string => (name === base ? '–' : `${((median(ratios) - 1) * 100).toFixed(1)} %`);
    const spread = (xs: number[]): string => `${Math.min(...xs).toFixed(3)}–${Math.max(...xs).toFixed(3)}`;
    return {
      variant: name,
      'A core/1000 req (median)': median(r.a).toFixed(3),
      'A range': spread(r.a),
      'B core/1000 req (median)': median(r.b).toFixed(3),
      'B range': spread(r.b),
      [`A / B over ${base} (median of same-window ratios)`]: `${pct(r.ratioA)} / ${pct(r.ratioB)}`,
      ...(floor === undefined || name === 'floor' ? {} : { 'A / B over floor (median)': `${(median(r.a) / median(floor.a)).toFixed(2)} / ${(median(r.b) / median(floor.b)).toFixed(2)}` }),
      'p50 / p99 ms': `${median(r.p50).toFixed(2)} / ${median(r.p99).toFixed(2)}`,
      'RSS A / B MB (median of pairs)': `${median(r.rssMb.map((x) => x.a))} / ${median(r.rssMb.map((x) => x.b))}`,
    };
  });
  console.table(table);
  if (PAIRS > 1) {
    // Each pair's own median: how far apart pairs doing the same work sit.
    console.table(figures.flatMap((f) => f.pairMedians.map((m, i) => ({ pair: `${f.variant}-${i + 1}`, 'A median': m.a.toFixed(3), 'B median': m.b.toFixed(3) }))));
  }
} finally {
  rmSync(work, { recursive: true, force: true });
  await env.close();
}
