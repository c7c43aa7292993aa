// What a sidecar's observability costs per call, measured as a comparison between variants of the same
// pair of sidecars (caller A → callee B → the bench's HTTP app) at 1000 requests/s. Shared by the full
// benchmark (its budget rows: default observability and every call traced, each against the lean path)
// and `npm run bench:observability-cost`.
//
// Why several pairs per variant: two pairs of sidecars started alike and doing identical work can differ
// here by more than the 10 % budget, and some keep their difference over many windows (one lean caller
// measured 0.199–0.215 core per 1000 requests over three windows while two others, started the same
// way, measured 0.154–0.186). A single pair per variant measures partly which pairs were drawn. So every
// variant gets PAIRS pairs and its figure is over all of them.
//
// Why each window loads two pairs at once: the machine's own speed wanders from one window to the next
// (a shared VM: whole windows run up to 40 % slower, for every process alike), by more than the budget
// too. The base variant's pair k (lean) is loaded in the same window as every other variant's pair k,
// each from its own generator at 1000 requests/s, and a variant's cost is the median over its windows
// of its CPU per call over the base's in that window: what a window adds for every process alike cancels.
// Each repetition starts one pair further along and with the next variant, so none always runs first.
// With two pairs loaded at once, more processes share the two cores than in the full benchmark's paths,
// so each call's CPU and latency read higher there; the budget compares two pairs under the same load.

import { join } from 'node:path';
import type { TestEnv } from '../../test/framework/env.js';
import { repoRoot } from '../../test/framework/env.js';
import { startSidecar } from '../../test/framework/sidecar-process.js';
import { NODE_FLAGS } from '../../src/runtime/heap-flags.js';
import type { LoadSpec } from './loadgen.js';
import { cpuSeconds, mb, sampleRss } from './proc.js';
import { asLaunched, runLoadProcess, startPortPrinter } from './processes.js';
import { median } from './report.js';

/** One way of running the pair: sidecar arguments, or `floor` for two minimal Node proxies instead. */
export interface BudgetVariant {
  readonly name: string;
  readonly args?: readonly string[];
  readonly floor?: boolean;
}

export interface BudgetOptions {
  readonly env: TestEnv;
  readonly appPort: number;
  readonly variants: readonly BudgetVariant[];
  /** The variant every other one is compared with (and measured together with): its pair k shares each window with their pair k. */
  readonly base: string;
  readonly pairs: number;
  readonly reps: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  /** Node arguments for the sidecars (e.g. --cpu-prof). */
  readonly nodeArgs?: readonly string[];
  readonly log?: (line: string) => void;
}

/** Every window of one variant (all its pairs): CPU per 1000 requests of A and B, latency, RSS peaks. */
export interface BudgetFigures {
  readonly variant: string;
  readonly pairs: number;
  /** Core-seconds per 1000 requests, one entry per window. */
  readonly a: number[];
  readonly b: number[];
  /** Against the base variant's pair of the same number, loaded in the same window: this variant's CPU over the base's, per window. */
  readonly ratioA: number[];
  readonly ratioB: number[];
  /** Each pair's median over its windows, in the order the pairs were started. */
  readonly pairMedians: { a: number; b: number }[];
  /** Milliseconds from the scheduled send time, per window. */
  readonly p50: number[];
  readonly p99: number[];
  /** Each pair's highest RSS over its windows, in MB (A, B). */
  readonly rssMb: { a: number; b: number }[];
}

interface Pair {
  readonly variant: string;
  readonly key: string;
  readonly a: number;
  readonly b: number;
  readonly url: string;
  readonly cpuA: number[];
  readonly cpuB: number[];
  rssA: number;
  rssB: number;
}

/** Starts the pairs, measures them and returns one BudgetFigures per variant, in the order given. */
export async function measureObservabilityBudget(o: BudgetOptions): Promise<BudgetFigures[]> {
  const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const pairs: Pair[] = [];
  for (let k = 1; k <= o.pairs; k++) {
    for (const v of o.variants) {
      const key = o.pairs === 1 ? v.name : `${v.name}-${k}`;
      if (v.floor === true) {
        const proxy = (upstream: number) => startPortPrinter(`minimal-proxy-${upstream}`, [...NODE_FLAGS, join(repoRoot, 'bench', 'apps', 'minimal-proxy.mjs'), String(upstream)]);
        const b = await proxy(o.appPort);
        o.env.track(b.child);
        const a = await proxy(b.port);
        o.env.track(a.child);
        pairs.push({ variant: v.name, key, a: a.child.pid, b: b.child.pid, url: `http://127.0.0.1:${a.port}/echo`, cpuA: [], cpuB: [], rssA: 0, rssB: 0 });
        continue;
      }
      const common = { nodeArgs: [...(o.nodeArgs ?? [])], args: ['--log-level', 'warn', ...(v.args ?? [])] };
      const b = await startSidecar(o.env, asLaunched({ ...common, appId: `budget-b-${key}`, appPort: o.appPort, waitForApp: true }));
      const a = await startSidecar(o.env, asLaunched({ ...common, appId: `budget-a-${key}` }));
      pairs.push({ variant: v.name, key, a: a.pid, b: b.pid, url: a.url(`/v1.0/invoke/budget-b-${key}/method/echo`), cpuA: [], cpuB: [], rssA: 0, rssB: 0 });
    }
  }
  const spec = (url: string, seconds: number): LoadSpec => ({ kind: 'http', url, rate: 1000, connections: 16, warmupSeconds: 0, seconds, bodyBytes: 1024 });
  for (const p of pairs) await runLoadProcess(spec(p.url, o.warmupSeconds));
  const latency = new Map<string, { p50: number[]; p99: number[] }>(o.variants.map((v) => [v.name, { p50: [], p99: [] }]));
  const ratios = new Map<string, { a: number[]; b: number[] }>(o.variants.map((v) => [v.name, { a: [], b: [] }]));
  // One window: the pairs given, loaded at once (each at 1000 requests/s from its own generator).
  const window = async (together: Pair[]): Promise<void> => {
    const before = together.map((p) => [cpuSeconds(p.a), cpuSeconds(p.b)] as const);
    const rss = sampleRss(together.flatMap((p) => [p.a, p.b]), 250);
    const results = await Promise.all(together.map((p) => runLoadProcess(spec(p.url, o.seconds))));
    const peaks = rss.stop();
    together.forEach((p, i) => {
      const res = results[i];
      if (res === undefined) return;
      const thousands = Math.max(1, res.completed) / 1000;
      p.cpuA.push((cpuSeconds(p.a) - (before[i]?.[0] ?? 0)) / thousands);
      p.cpuB.push((cpuSeconds(p.b) - (before[i]?.[1] ?? 0)) / thousands);
      p.rssA = Math.max(p.rssA, peaks[2 * i] ?? 0);
      p.rssB = Math.max(p.rssB, peaks[2 * i + 1] ?? 0);
      const l = latency.get(p.variant);
      l?.p50.push(res.scheduled.p50);
      l?.p99.push(res.scheduled.p99);
      if (res.completed < res.sent) log(`  ${p.key}: ${res.sent - res.completed} of ${res.sent} requests failed`);
    });
  };
  const pairsOf = (variant: string): Pair[] => pairs.filter((p) => p.variant === variant);
  const others = o.variants.filter((v) => v.name !== o.base).map((v) => ({ name: v.name, pairs: pairsOf(v.name) }));
  const basePairs = pairsOf(o.base);
  for (let rep = 0; rep < o.reps; rep++) {
    if (others.length === 0) {
      // Only the base variant: its pairs one after the other.
      for (let i = 0; i < basePairs.length; i++) {
        const p = basePairs[(rep + i) % basePairs.length];
        if (p === undefined) continue;
        await window([p]);
        log(`  repetition ${rep + 1}/${o.reps}, ${p.key}: A ${p.cpuA.at(-1)?.toFixed(3)}, B ${p.cpuB.at(-1)?.toFixed(3)} core per 1000 requests`);
      }
      continue;
    }
    // Every other variant's k-th pair together with the base's k-th pair, so that both meet the same
    // machine: what one window adds for every process alike cancels in their ratio.
    for (let i = 0; i < o.pairs; i++) {
      const k = (rep + i) % o.pairs;
      const base = basePairs[k];
      if (base === undefined) continue;
      for (let j = 0; j < others.length; j++) {
        const v = others[(rep + j) % others.length];
        const p = v?.pairs[k];
        if (v === undefined || p === undefined) continue;
        await window([p, base]);
        const ra = (p.cpuA.at(-1) ?? NaN) / (base.cpuA.at(-1) ?? NaN);
        const rb = (p.cpuB.at(-1) ?? NaN) / (base.cpuB.at(-1) ?? NaN);
        ratios.get(v.name)?.a.push(ra);
        ratios.get(v.name)?.b.push(rb);
        log(
          `  repetition ${rep + 1}/${o.reps}, ${p.key} with ${base.key}: A ${p.cpuA.at(-1)?.toFixed(3)} / ${base.cpuA.at(-1)?.toFixed(3)}, ` +
            `B ${p.cpuB.at(-1)?.toFixed(3)} / ${base.cpuB.at(-1)?.toFixed(3)} core per 1000 requests`,
        );
      }
    }
  }
  return o.variants.map((v) => {
    const own = pairsOf(v.name);
    const l = latency.get(v.name) ?? { p50: [], p99: [] };
    return {
      variant: v.name,
      pairs: own.length,
      a: own.flatMap((p) => p.cpuA),
      b: own.flatMap((p) => p.cpuB),
      ratioA: ratios.get(v.name)?.a ?? [],
      ratioB: ratios.get(v.name)?.b ?? [],
      pairMedians: own.map((p) => ({ a: median(p.cpuA), b: median(p.cpuB) })),
      p50: l.p50,
      p99: l.p99,
      rssMb: own.map((p) => ({ a: mb(p.rssA), b: mb(p.rssB) })),
    };
  });
}

/**
 * A variant's cost over the base, per call: for each sidecar, the median over all windows of its CPU
 * over the base pair's in the same window, as a share; `worst` is the larger of the two sidecars'.
 */
export function overBase(v: BudgetFigures, base: BudgetFigures): { a: number; b: number; worst: number; rssMb: number } {
  const a = 100 * (median(v.ratioA) - 1);
  const b = 100 * (median(v.ratioB) - 1);
  // RSS: the median over pairs of each pair's larger peak, against the base's.
  const peak = (f: BudgetFigures): number => median(f.rssMb.map((r) => Math.max(r.a, r.b)));
  return { a, b, worst: Math.max(a, b), rssMb: peak(v) - peak(base) };
}
