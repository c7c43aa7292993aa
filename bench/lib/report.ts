// Turns a benchmark run into a Markdown table and an SVG chart of the latency percentiles per path.
import type { LoadResult, Percentiles } from './loadgen.js';
import type { BudgetFigures } from './observability-budget.js';
import type { SaturationResult } from './saturation.js';

export interface ProcessFigures {
  role: string;
  /** Core-seconds of CPU per 1000 requests during the measured window (= cores at 1000 rps). */
  cpuPer1000: number;
  /** The lowest and highest cpuPer1000 over the repetitions (the spread of the median). */
  cpuSpread?: [number, number];
  idleRssMb: number;
  loadRssMb: number;
  /** For sidecars: what held their event loop during the measured window (from --enable-profiling). */
  stalls?: StallFigures | undefined;
}

/** A sidecar's event-loop stalls in one measured window, from its `GET /debug/runtime`. */
export interface StallFigures {
  /** Event-loop delay p99 and max, ms. */
  delayP99Ms: number;
  delayMaxMs: number;
  /** Event-loop delays over 5 ms seen by the probe. */
  stalls: number;
  /** Scavenges (young generation): count, mean and longest pause in ms, pauses over 5 ms. */
  scavenges: { count: number; meanMs: number; maxMs: number; over5: number };
  /** Mark-compact and incremental marking (old generation): count, longest pause, pauses over 5 ms. */
  majorGcs: { count: number; maxMs: number; over5: number };
  /** Stalls the collector does not explain. */
  otherStalls: number;
}

export interface PathRun {
  load: LoadResult;
  processes: ProcessFigures[];
  saturation?: SaturationResult | undefined;
}

export interface PathSummary {
  path: string;
  description: string;
  /** Medians over the repetitions. */
  scheduled: Percentiles;
  actual: Percentiles;
  achievedRate: number;
  errors: number;
  saturationRps: number | undefined;
  saturationErrors: number;
  saturationTool: string | undefined;
  processes: ProcessFigures[];
  runs: PathRun[];
}

export interface UploadFigures {
  bytes: number;
  status: string;
  growthMb: { role: string; idleMb: number; peakMb: number; growthMb: number }[];
}

export interface BenchReport {
  startedAt: string;
  machine: string;
  mode: 'full' | 'quick';
  method: {
    rate: number;
    connections: number;
    bodyBytes: number;
    warmupSeconds: number;
    measuredSeconds: number;
    repetitions: number;
    saturationSeconds: number;
  };
  skipped: string[];
  paths: PathSummary[];
  upload: UploadFigures | undefined;
  /** RSS of the `courier run` process itself (the supervisor), with one app and its sidecar running. */
  supervisorRssMb?: number | undefined;
  /** The same with `courier run` on Node 24 (when the benchmark had one). */
  supervisorRssNode24Mb?: number | undefined;
  /** The observability budget's comparison (bench/lib/observability-budget.ts): default, lean, traced. */
  observability?: { pairs: number; reps: number; seconds: number; figures: BudgetFigures[] } | undefined;
  targets: TargetCheck[];
}

/** One row of the issue's table: a figure against its "must" and its "goal". */
export interface TargetCheck {
  target: string;
  measured: string;
  must: string;
  met: boolean | undefined;
  goal?: string | undefined;
  goalMet?: boolean | undefined;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function medianPercentiles(list: readonly Percentiles[]): Percentiles {
  const keys: (keyof Percentiles)[] = ['p50', 'p90', 'p99', 'p999', 'max', 'mean'];
  const out = {} as Percentiles;
  for (const key of keys) out[key] = round3(median(list.map((p) => p[key])));
  return out;
}

export function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}

const fmt = (n: number | undefined, digits = 2): string => (n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(digits));
/** `n` with its sign, to `digits` decimals. */
export const signed = (n: number, digits = 2): string => (n >= 0 ? `+${n.toFixed(digits)}` : n.toFixed(digits));

/** The added latency of `path` over `base` at each percentile (scheduled latencies). */
export function added(path: PathSummary, base: PathSummary, which: 'scheduled' | 'actual' = 'scheduled'): Percentiles {
  const a = path[which];
  const b = base[which];
  return { p50: round3(a.p50 - b.p50), p90: round3(a.p90 - b.p90), p99: round3(a.p99 - b.p99), p999: round3(a.p999 - b.p999), max: round3(a.max - b.max), mean: round3(a.mean - b.mean) };
}

export function markdown(report: BenchReport): string {
  const lines: string[] = [];
  const m = report.method;
  lines.push(
    `Run ${report.startedAt} (${report.mode}) on ${report.machine}. ${m.rate} requests/s open loop, ${m.connections} connections, ${m.bodyBytes} B POST bodies, ` +
      `${m.warmupSeconds} s warm-up + ${m.measuredSeconds} s measured, ${m.repetitions} interleaved repetition(s), medians shown; saturation ${m.saturationSeconds} s closed loop, ${m.connections} connections.`,
  );
  lines.push('');
  lines.push('Latency in ms, from the scheduled send time (no coordinated omission); "added" is over the direct call of the same protocol.');
  lines.push('');
  lines.push('| path | p50 | p90 | p99 | p99.9 | added p50 / p90 / p99 | from actual send p50 / p90 / p99 | rate | errors | saturation rps |');
  lines.push('|---|---|---|---|---|---|---|---|---|---|');
  for (const p of report.paths) {
    const base = baseFor(report, p);
    const add = base === undefined || base === p ? undefined : added(p, base);
    lines.push(
      `| ${p.path} | ${fmt(p.scheduled.p50)} | ${fmt(p.scheduled.p90)} | ${fmt(p.scheduled.p99)} | ${fmt(p.scheduled.p999)} | ` +
        `${add === undefined ? '–' : `${signed(add.p50)} / ${signed(add.p90)} / ${signed(add.p99)}`} | ` +
        `${fmt(p.actual.p50)} / ${fmt(p.actual.p90)} / ${fmt(p.actual.p99)} | ${fmt(p.achievedRate, 0)} | ${p.errors + p.saturationErrors} | ` +
        `${p.saturationRps === undefined ? '–' : `${p.saturationRps} (${p.saturationTool ?? ''})`} |`,
    );
  }
  lines.push('');
  lines.push('Per process: CPU in core-seconds per 1000 requests (= cores used at 1000 requests/s), RSS in MB idle (before any load) and at its peak under load.');
  lines.push('');
  lines.push('| path | process | CPU / 1000 req (spread) | µs CPU per call | RSS idle | RSS under load |');
  lines.push('|---|---|---|---|---|---|');
  for (const p of report.paths) {
    for (const proc of p.processes) {
      const spread = proc.cpuSpread === undefined || report.method.repetitions < 2 ? '' : ` (${fmt(proc.cpuSpread[0], 3)}–${fmt(proc.cpuSpread[1], 3)})`;
      lines.push(`| ${p.path} | ${proc.role} | ${fmt(proc.cpuPer1000, 3)}${spread} | ${fmt(proc.cpuPer1000 * 1000, 0)} | ${fmt(proc.idleRssMb, 0)} | ${fmt(proc.loadRssMb, 0)} |`);
    }
  }
  const stalled = report.paths.flatMap((p) => p.processes.filter((proc) => proc.stalls !== undefined).map((proc) => ({ path: p.path, proc, s: proc.stalls as StallFigures })));
  if (stalled.length > 0) {
    lines.push('');
    lines.push('What held each sidecar\'s event loop during a measured window (the last repetition; `GET /debug/runtime` of `--enable-profiling`): event-loop delay, pauses of the garbage collector, and stalls over 5 ms it does not explain.');
    lines.push('');
    lines.push('| path | sidecar | loop delay p99 / max (ms) | stalls > 5 ms | scavenges: count, mean / max ms, > 5 ms | major GCs: count, max ms, > 5 ms | other stalls |');
    lines.push('|---|---|---|---|---|---|---|');
    for (const { path, proc, s } of stalled) {
      lines.push(
        `| ${path} | ${proc.role} | ${fmt(s.delayP99Ms)} / ${fmt(s.delayMaxMs)} | ${s.stalls} | ${s.scavenges.count}, ${fmt(s.scavenges.meanMs)} / ${fmt(s.scavenges.maxMs)}, ${s.scavenges.over5} | ` +
          `${s.majorGcs.count}, ${fmt(s.majorGcs.maxMs)}, ${s.majorGcs.over5} | ${s.otherStalls} |`,
      );
    }
  }
  if (report.upload !== undefined) {
    lines.push('');
    lines.push(`100 MiB streamed upload through courier-http (${report.upload.status}): ` + report.upload.growthMb.map((g) => `${g.role} RSS ${g.idleMb} → ${g.peakMb} MB (+${g.growthMb})`).join(', ') + '.');
  }
  if (report.supervisorRssMb !== undefined) {
    lines.push('');
    lines.push(`\`courier run\` (the supervisor process, one app and its sidecar running): ${report.supervisorRssMb} MB RSS` + (report.supervisorRssNode24Mb === undefined ? '.' : `; on Node 24, ${report.supervisorRssNode24Mb} MB.`));
  }
  const ob = report.observability;
  if (ob !== undefined) {
    lines.push('');
    lines.push(
      `Observability budget: ${ob.pairs} pair(s) of sidecars per variant (caller A → callee B → the HTTP app, run as users run them, without --enable-profiling), ` +
        `${ob.reps} repetition(s) of ${ob.seconds} s windows in which each variant's pair k is loaded together with lean's pair k, each at ${m.rate} requests/s; ` +
        "CPU is the median over a variant's windows, its cost over lean the median of its same-window ratios to lean's pair, RSS the median over its pairs of each pair's peak; latency is with two pairs under load at once.",
    );
    lines.push('');
    lines.push('| variant | A CPU / 1000 req (spread) | B CPU / 1000 req (spread) | A / B over lean | pairs\' medians A / B | p50 / p99 ms | RSS A / B (MB) |');
    lines.push('|---|---|---|---|---|---|---|');
    for (const f of ob.figures) {
      const spread = (xs: number[]): string => `${fmt(median(xs), 3)} (${fmt(Math.min(...xs), 3)}–${fmt(Math.max(...xs), 3)})`;
      const over = (ratios: number[]): string => (ratios.length === 0 ? '–' : `${signed(100 * (median(ratios) - 1), 1)} %`);
      lines.push(
        `| ${f.variant} | ${spread(f.a)} | ${spread(f.b)} | ${over(f.ratioA)} / ${over(f.ratioB)} | ${f.pairMedians.map((x) => `${fmt(x.a, 3)} / ${fmt(x.b, 3)}`).join('; ')} | ${fmt(median(f.p50))} / ${fmt(median(f.p99))} | ` +
          `${fmt(median(f.rssMb.map((x) => x.a)), 0)} / ${fmt(median(f.rssMb.map((x) => x.b)), 0)} |`,
      );
    }
  }
  if (report.targets.length > 0) {
    const met = (m: boolean | undefined, must?: string): string => (must === '–' ? '–' : m === undefined ? 'not measured' : m ? 'yes' : '**no**');
    lines.push('');
    lines.push('| figure | measured | must | met | goal | met |');
    lines.push('|---|---|---|---|---|---|');
    for (const t of report.targets) lines.push(`| ${t.target} | ${t.measured} | ${t.must} | ${met(t.met, t.must)} | ${t.goal ?? '–'} | ${t.goal === undefined ? '–' : met(t.goalMet)} |`);
  }
  if (report.skipped.length > 0) {
    lines.push('');
    for (const s of report.skipped) lines.push(`Skipped: ${s}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The direct path a path is compared with: direct-grpc for gRPC paths, direct for the others. */
export function baseFor(report: BenchReport, path: PathSummary): PathSummary | undefined {
  const grpc = path.path === 'direct-grpc' || path.path.startsWith('courier-grpc');
  const name = grpc ? 'direct-grpc' : 'direct';
  return report.paths.find((p) => p.path === name);
}

/** A grouped bar chart: p50, p90, p99 and p99.9 (scheduled) for each path, on a log scale. */
export function svgChart(report: BenchReport): string {
  const series: { key: keyof Percentiles; label: string; color: string }[] = [
    { key: 'p50', label: 'p50', color: '#4e79a7' },
    { key: 'p90', label: 'p90', color: '#f28e2b' },
    { key: 'p99', label: 'p99', color: '#e15759' },
    { key: 'p999', label: 'p99.9', color: '#76b7b2' },
  ];
  const paths = report.paths;
  const width = 140 + paths.length * 120;
  const height = 360;
  const top = 40;
  const bottom = 300;
  const left = 70;
  const values = paths.flatMap((p) => series.map((s) => p.scheduled[s.key])).filter((v) => v > 0);
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...values, 1))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...values, 1))));
  const y = (v: number): number => bottom - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (bottom - top);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${left}" y="20" font-size="14">Latency from scheduled send (ms, log scale), ${report.method.rate} req/s, ${report.startedAt}</text>`);
  for (let v = lo; v <= hi * 1.0001; v *= 10) {
    out.push(`<line x1="${left}" x2="${width - 20}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${left - 8}" y="${y(v) + 4}" text-anchor="end">${v >= 1 ? v.toFixed(0) : v.toString()}</text>`);
  }
  paths.forEach((p, i) => {
    const x0 = left + 20 + i * 120;
    series.forEach((s, j) => {
      const v = p.scheduled[s.key];
      const yv = y(v);
      out.push(`<rect x="${x0 + j * 22}" y="${yv}" width="20" height="${Math.max(0, bottom - yv)}" fill="${s.color}"><title>${p.path} ${s.label} ${v} ms</title></rect>`);
    });
    out.push(`<text x="${x0 + 44}" y="${bottom + 18}" text-anchor="middle">${p.path}</text>`);
  });
  series.forEach((s, j) => {
    out.push(`<rect x="${left + j * 80}" y="${bottom + 36}" width="12" height="12" fill="${s.color}"/>`);
    out.push(`<text x="${left + j * 80 + 16}" y="${bottom + 46}">${s.label}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
