// Courier's benchmark: what two sidecars add to a call, against a direct call and a pair of nginx
// proxies, measured in one run on this machine.
//
//   npm run bench             full run (3 interleaved repetitions of 10 s warm-up + 30 s per path, then
//                             the observability budget's own comparison; about 35 min)
//   npm run bench -- --quick  about 3 minutes, for checking a change
//
// Paths: direct (generator → HTTP app), courier-http and courier-http-mtls (generator → sidecar A's
// HTTP API → sidecar B over the internal gRPC hop, without and with mutual TLS → HTTP app),
// courier-http-lean (as courier-http, with metrics and tracing off), courier-http-traced (as courier-http,
// every call traced and exported over OTLP/HTTP to a local collector that accepts and drops),
// nginx-2hop (generator → nginx → nginx → HTTP app), direct-grpc (gRPC generator → gRPC app) and
// courier-grpc-proxy (gRPC generator → sidecar A → sidecar B → gRPC app, proxied by dapr-app-id).
// Fixed-rate latency comes from bench/lib/loadgen.ts (open loop), saturation from wrk or h2load.
// What the default observability and tracing every call cost (the budget rows) is measured apart, on
// several pairs per variant loaded together with a lean pair (bench/lib/observability-budget.ts).
// Writes bench/results/<timestamp>.{json,md,svg}; a full run also refreshes docs/performance.md.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { repoRoot, TestEnv } from '../test/framework/env.js';
import { startSidecar as startTestSidecar, type SidecarProcess } from '../test/framework/sidecar-process.js';
import { startSentry } from '../test/framework/sentry-process.js';
import type { LoadSpec } from './lib/loadgen.js';
import { cpuSeconds, machineDescription, mb, rssBytes, sampleRss } from './lib/proc.js';
import { asLaunched, ensureTools, runLoadProcess, startNginx, startPortPrinter } from './lib/processes.js';
import { upload } from './lib/upload.js';
import { measureObservabilityBudget, overBase } from './lib/observability-budget.js';
import { findNode24 } from './lib/node24.js';
import { NODE_FLAGS, withLauncherEnv } from '../src/runtime/heap-flags.js';
import { h2loadSaturation, wrkSaturation, type SaturationResult } from './lib/saturation.js';
import {
  added,
  baseFor,
  markdown,
  median,
  medianPercentiles,
  round3,
  signed,
  svgChart,
  type BenchReport,
  type PathRun,
  type PathSummary,
  type ProcessFigures,
  type StallFigures,
  type TargetCheck,
  type UploadFigures,
} from './lib/report.js';
import { freePorts } from '../test/framework/ports.js';
import type { RuntimeReport } from '../src/observability/diagnostics.js';

const quick = process.argv.includes('--quick');
const method = quick
  ? { rate: 1000, connections: 16, bodyBytes: 1024, warmupSeconds: 2, measuredSeconds: 8, repetitions: 1, saturationSeconds: 3 }
  : { rate: 1000, connections: 16, bodyBytes: 1024, warmupSeconds: 10, measuredSeconds: 30, repetitions: 3, saturationSeconds: 10 };
// The observability budget's own comparison (bench/lib/observability-budget.ts): pairs per variant,
// interleaved windows per pair and their length.
const budget = quick ? { pairs: 1, reps: 1, seconds: 3, warmupSeconds: 2 } : { pairs: 4, reps: 3, seconds: 8, warmupSeconds: 5 };
const MiB = 1024 * 1024;
const UPLOAD_BYTES = 100 * MiB;
// Every sidecar serves its runtime diagnostics (--enable-profiling) so the stalls of each measured
// window can be read; the probe behind it is a 10 ms timer and a GC observer, which run only during
// the sidecar's own measured windows (`?reset=true` starts one, `?stop=true` ends it), so that idle
// sidecars do not wake 100 times a second while another path is measured.
const SIDECAR_ARGS = ['--log-level', 'warn', '--max-body-size', '200Mi', '--enable-profiling', '--profile-port', '0'];

interface Proc {
  role: string;
  pid: number;
  /** A sidecar's diagnostics port (`--enable-profiling`). */
  profilePort?: number | undefined;
}

/** A sidecar's `GET /debug/runtime`, then a new window started (`reset`) or the probes stopped (`stop`). */
async function runtimeReport(port: number, then: 'reset' | 'stop'): Promise<RuntimeReport> {
  const res = await fetch(`http://127.0.0.1:${port}/debug/runtime?${then}=true`);
  return (await res.json()) as RuntimeReport;
}

function stallFigures(report: RuntimeReport): StallFigures {
  const scavenge = report.gc.scavenge ?? { count: 0, totalMs: 0, maxMs: 0, stalls: 0 };
  const major = [report.gc['mark-compact'], report.gc['incremental-marking']].filter((x) => x !== undefined);
  return {
    delayP99Ms: report.eventLoopDelayMs.p99,
    delayMaxMs: report.eventLoopDelayMs.max,
    stalls: report.stalls,
    scavenges: { count: scavenge.count, meanMs: scavenge.count === 0 ? 0 : round3(scavenge.totalMs / scavenge.count), maxMs: scavenge.maxMs, over5: scavenge.stalls },
    majorGcs: { count: major.reduce((n, x) => n + x.count, 0), maxMs: Math.max(0, ...major.map((x) => x.maxMs)), over5: major.reduce((n, x) => n + x.stalls, 0) },
    otherStalls: report.otherStalls,
  };
}

interface PathSetup {
  name: string;
  description: string;
  kind: 'http' | 'grpc';
  url: string;
  headers?: Record<string, string>;
  processes: Proc[];
  saturate: ((seconds: number) => Promise<SaturationResult>) | undefined;
}


/**
 * How long a process is left to settle before its idle RSS is read. V8 holds the heap that start-up
 * grew until its memory reducer first runs, about 8 s after start (`--trace-gc`: a "Mark-Compact
 * (reduce)" that took an idle sidecar's committed heap from 14.9 to 9.9 MB and its RSS from about 60 to
 * 56 MB); what a process holds while it idles is what it holds after that.
 */
const SETTLE_MS = 12_000;

/**
 * The RSS of a `courier run` process once its app and sidecar are up and it only supervises them (the
 * app is an idle node process), measured SETTLE_MS after it says it is up.
 */
async function supervisorRss(home: string, node = process.execPath, extraEnv: Record<string, string> = {}): Promise<number> {
  // Started as the `courier` executable starts it: with the launcher's Node flags.
  const child = spawn(node, [...NODE_FLAGS, join(repoRoot, 'dist', 'cli', 'main.js'), 'run', '--app-id', 'bench-supervised', '--', process.execPath, '-e', 'setInterval(() => {}, 1000)'], {
    env: withLauncherEnv({ ...process.env, COURIER_HOME: home, ...extraEnv }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + 30_000;
    while (!out.includes("You're up and running")) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`courier run did not come up:\n${out}`);
      await sleep(50);
    }
    await sleep(SETTLE_MS);
    return mb(rssBytes(child.pid ?? 0));
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => (child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve)));
  }
}


async function measurePath(path: PathSetup): Promise<PathRun> {
  const spec = (seconds: number): LoadSpec => ({
    kind: path.kind,
    url: path.url,
    rate: method.rate,
    connections: method.connections,
    warmupSeconds: 0,
    seconds,
    bodyBytes: method.bodyBytes,
    ...(path.headers === undefined ? {} : { headers: path.headers }),
  });
  await runLoadProcess(spec(method.warmupSeconds));
  const pids = path.processes.map((p) => p.pid);
  for (const p of path.processes) if (p.profilePort !== undefined) await runtimeReport(p.profilePort, 'reset');
  const cpuBefore = pids.map(cpuSeconds);
  const rss = sampleRss(pids, 250);
  const load = await runLoadProcess(spec(method.measuredSeconds));
  const peaks = rss.stop();
  const cpuAfter = pids.map(cpuSeconds);
  const stalls = await Promise.all(path.processes.map(async (p) => (p.profilePort === undefined ? undefined : stallFigures(await runtimeReport(p.profilePort, 'stop')))));
  const processes: ProcessFigures[] = path.processes.map((p, i) => ({
    role: p.role,
    cpuPer1000: round3(((cpuAfter[i] ?? 0) - (cpuBefore[i] ?? 0)) / Math.max(1, load.completed / 1000)),
    idleRssMb: 0,
    loadRssMb: mb(peaks[i] ?? 0),
    stalls: stalls[i],
  }));
  const saturation = path.saturate === undefined ? undefined : await path.saturate(method.saturationSeconds);
  return { load, processes, saturation };
}

function summarize(path: PathSetup, runs: PathRun[], idleRss: Map<number, number>): PathSummary {
  const sats = runs.map((r) => r.saturation).filter((s): s is SaturationResult => s !== undefined);
  return {
    path: path.name,
    description: path.description,
    scheduled: medianPercentiles(runs.map((r) => r.load.scheduled)),
    actual: medianPercentiles(runs.map((r) => r.load.actual)),
    achievedRate: median(runs.map((r) => r.load.achievedRate)),
    // Failed or never answered: every request due in the window either completed or counts here.
    errors: runs.reduce((sum, r) => sum + r.load.sent - r.load.completed, 0),
    saturationRps: sats.length === 0 ? undefined : Math.round(median(sats.map((s) => s.requestsPerSecond))),
    saturationErrors: sats.reduce((sum, s) => sum + s.errors, 0),
    saturationTool: sats[0]?.tool,
    processes: path.processes.map((p, i) => {
      const cpus = runs.map((r) => r.processes[i]?.cpuPer1000 ?? NaN);
      return {
        role: p.role,
        cpuPer1000: round3(median(cpus)),
        cpuSpread: [Math.min(...cpus), Math.max(...cpus)] as [number, number],
        idleRssMb: mb(idleRss.get(p.pid) ?? 0),
        loadRssMb: Math.max(...runs.map((r) => r.processes[i]?.loadRssMb ?? 0)),
        stalls: runs[runs.length - 1]?.processes[i]?.stalls,
      };
    }),
    runs,
  };
}

/** The table of issue 14 (the lean data path): each figure against its "must" and its "goal". */
function targets(report: BenchReport): TargetCheck[] {
  const find = (name: string): PathSummary | undefined => report.paths.find((p) => p.path === name);
  const checks: TargetCheck[] = [];
  const http = find('courier-http');
  const mtls = find('courier-http-mtls');
  const grpc = find('courier-grpc-proxy');
  const nginx = find('nginx-2hop');
  const addedOf = (p: PathSummary | undefined): ReturnType<typeof added> | undefined => {
    const base = p === undefined ? undefined : baseFor(report, p);
    return p === undefined || base === undefined ? undefined : added(p, base);
  };
  const h = addedOf(http);
  const t = addedOf(mtls);
  const g = addedOf(grpc);
  const n = addedOf(nginx);
  const ms = (v: number | undefined): string => (v === undefined ? '–' : `${v.toFixed(2)} ms`);
  const sidecarsOf = (p: PathSummary | undefined): ProcessFigures[] => (p?.processes ?? []).filter((x) => x.role.startsWith('sidecar'));
  const worst = (p: PathSummary | undefined, key: 'cpuPer1000' | 'idleRssMb' | 'loadRssMb'): number | undefined => {
    const list = sidecarsOf(p);
    return list.length === 0 ? undefined : Math.max(...list.map((x) => x[key]));
  };
  const each = (p: PathSummary | undefined, key: 'cpuPer1000' | 'idleRssMb' | 'loadRssMb', unit: string, digits: number): string =>
    sidecarsOf(p)
      .map((x) => `${x.role} ${x[key].toFixed(digits)}${unit}`)
      .join(', ') || '–';
  const row = (target: string, measured: string, value: number | undefined, must: number, goal: number | undefined, unit: string, atLeast = false): TargetCheck => {
    const ok = (limit: number): boolean | undefined => (value === undefined ? undefined : atLeast ? value >= limit : value <= limit);
    const word = atLeast ? '≥' : '≤';
    return {
      target,
      measured,
      must: `${word} ${must}${unit}`,
      met: ok(must),
      ...(goal === undefined ? {} : { goal: `${word} ${goal}${unit}`, goalMet: ok(goal) }),
    };
  };
  const cpu = worst(http, 'cpuPer1000');
  checks.push(row('CPU per sidecar per 1000 rps (courier-http)', each(http, 'cpuPer1000', '', 3), cpu, 0.2, 0.15, ' core'));
  checks.push(row('added p50 (courier-http)', ms(h?.p50), h?.p50, 0.6, 0.5, ' ms'));
  checks.push(row('added p90 (courier-http)', ms(h?.p90), h?.p90, 1.5, 1.0, ' ms'));
  const p99Goal = n === undefined ? undefined : Math.max(0, 1.5 * n.p99);
  checks.push({
    ...row('added p99 (courier-http)', ms(h?.p99), h?.p99, 3, undefined, ' ms'),
    goal: `≤ 1.5 × nginx-2hop's (${ms(p99Goal)})`,
    goalMet: h === undefined || p99Goal === undefined ? undefined : h.p99 <= p99Goal,
  });
  checks.push(row('RSS per sidecar, idle (courier-http)', each(http, 'idleRssMb', ' MB', 0), worst(http, 'idleRssMb'), 60, 50, ' MB'));
  checks.push(row('RSS per sidecar at 1000 rps (courier-http)', each(http, 'loadRssMb', ' MB', 0), worst(http, 'loadRssMb'), 90, 70, ' MB'));
  const satHttp = http?.saturationRps;
  const satNginx = nginx?.saturationRps;
  const share = satHttp === undefined || satNginx === undefined ? undefined : (100 * satHttp) / satNginx;
  checks.push(
    row(
      "saturation, 1 KB POST, as a share of nginx-2hop's",
      share === undefined ? '–' : `${satHttp} vs ${satNginx} rps (${share.toFixed(0)} %)`,
      share,
      25,
      50,
      ' %',
      true,
    ),
  );
  checks.push(row('`courier run` supervisor RSS', report.supervisorRssMb === undefined ? '–' : `${report.supervisorRssMb} MB`, report.supervisorRssMb, 50, 40, ' MB'));
  const mtlsCpu = worst(mtls, 'cpuPer1000');
  const cpuDelta = cpu === undefined || mtlsCpu === undefined ? undefined : mtlsCpu - cpu;
  checks.push(row('mTLS: CPU per sidecar over plaintext', cpuDelta === undefined ? '–' : `${mtlsCpu?.toFixed(3)} vs ${cpu?.toFixed(3)} (+${cpuDelta.toFixed(3)})`, cpuDelta, 0.05, undefined, ' core'));
  const p90Delta = t === undefined || h === undefined ? undefined : t.p90 - h.p90;
  checks.push(row('mTLS: added p90 over plaintext', p90Delta === undefined ? '–' : `${ms(t?.p90)} vs ${ms(h?.p90)} (${p90Delta >= 0 ? '+' : ''}${p90Delta.toFixed(2)} ms)`, p90Delta, 0.3, undefined, ' ms'));
  checks.push(row('CPU per sidecar per 1000 rps (courier-grpc-proxy)', each(grpc, 'cpuPer1000', '', 3), worst(grpc, 'cpuPer1000'), 0.2, 0.15, ' core'));
  const on24 = find('courier-http-node24');
  if (on24 !== undefined) {
    const a24 = addedOf(on24);
    checks.push(row('CPU per sidecar per 1000 rps (courier-http-node24)', each(on24, 'cpuPer1000', '', 3), worst(on24, 'cpuPer1000'), 0.2, 0.15, ' core'));
    checks.push(row('added p90 (courier-http-node24)', ms(a24?.p90), a24?.p90, 1.5, 1.0, ' ms'));
    checks.push(row('added p99 (courier-http-node24)', ms(a24?.p99), a24?.p99, 3, undefined, ' ms'));
    checks.push(row('RSS per sidecar, idle (courier-http-node24)', each(on24, 'idleRssMb', ' MB', 0), worst(on24, 'idleRssMb'), 60, 50, ' MB'));
    checks.push(row('RSS per sidecar at 1000 rps (courier-http-node24)', each(on24, 'loadRssMb', ' MB', 0), worst(on24, 'loadRssMb'), 90, 70, ' MB'));
  }
  if (report.supervisorRssNode24Mb !== undefined) {
    checks.push(row('`courier run` supervisor RSS on Node 24', `${report.supervisorRssNode24Mb} MB`, report.supervisorRssNode24Mb, 50, 40, ' MB'));
  }
  // The observability budget, from its own comparison of several pairs per variant (see
  // bench/lib/observability-budget.ts for why one pair per variant cannot tell 10 % apart).
  const ob = report.observability;
  const pairsOf = (n: number): string => `${n} pair${n === 1 ? '' : 's'}`;
  const obOf = (name: string) => ob?.figures.find((f) => f.variant === name);
  const leanFigures = obOf('lean');
  const signedUnit = (x: number, unit: string, digits = 1): string => `${signed(x, digits)}${unit}`;
  const budgetRows = (what: string, name: string, bound: number, rssBound: number | undefined): void => {
    const v = obOf(name);
    if (v === undefined || leanFigures === undefined) return;
    const o = overBase(v, leanFigures);
    const measured =
      `${name} vs lean: A ${signedUnit(o.a, ' %')}, B ${signedUnit(o.b, ' %')} (medians of the windows: A ${median(v.a).toFixed(3)} vs ${median(leanFigures.a).toFixed(3)}, ` +
      `B ${median(v.b).toFixed(3)} vs ${median(leanFigures.b).toFixed(3)} core per 1000 requests)`;
    checks.push(row(`${what}: CPU per sidecar over the lean path (${pairsOf(ob?.pairs ?? 0)} each, median of same-window ratios)`, measured, o.worst, bound, undefined, ' %'));
    const target = `${what}: RSS per sidecar at 1000 rps over the lean path (median of pairs' peaks)`;
    // No bound for every call traced: its RSS is reported so the cost of exporting everything is known.
    if (rssBound === undefined) checks.push({ target, measured: signedUnit(o.rssMb, ' MB', 0), must: '–', met: undefined });
    else checks.push(row(target, signedUnit(o.rssMb, ' MB', 0), o.rssMb, rssBound, undefined, ' MB'));
  };
  budgetRows('metrics + default tracing', 'default', 10, 5);
  budgetRows('every call traced and exported', 'traced', 30, undefined);
  // The same comparison between the single pairs of the paths above, for reference: no bound, since
  // one pair per variant measures partly which pairs were drawn.
  const leanPath = find('courier-http-lean');
  const leanCpu = worst(leanPath, 'cpuPer1000');
  if (leanCpu !== undefined && cpu !== undefined) {
    const share = (100 * (cpu - leanCpu)) / leanCpu;
    checks.push({ target: 'for reference, one pair each: courier-http vs courier-http-lean, CPU per sidecar (worst of A and B)', measured: `${cpu.toFixed(3)} vs ${leanCpu.toFixed(3)} (${signedUnit(share, ' %')})`, must: '–', met: undefined });
  }
  checks.push(row("Dapr's gate: added p90 (courier-http)", ms(h?.p90), h?.p90, 2.0, undefined, ' ms'));
  checks.push(row("Dapr's gate: added p90 (courier-grpc-proxy)", ms(g?.p90), g?.p90, 2.5, undefined, ' ms'));
  const up = report.upload;
  const growth = up === undefined ? undefined : Math.max(...up.growthMb.map((x) => x.growthMb));
  checks.push({
    ...row('100 MiB streamed upload: RSS added to either sidecar', up === undefined ? '–' : up.growthMb.map((x) => `${x.role} +${x.growthMb} MB`).join(', '), growth, 50, undefined, ' MB'),
    met: up === undefined || growth === undefined ? undefined : growth < 50 && up.status === 'HTTP 200',
  });
  const errors = report.paths.reduce((sum, p) => sum + p.errors + p.saturationErrors, 0);
  checks.push({ target: 'errors in every run', measured: `${errors}`, must: '0', met: errors === 0 });
  return checks;
}

const env = new TestEnv();
// Interrupted (Ctrl-C, a CI timeout): every process the run started is still stopped.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`\nbench: ${signal}, stopping every process it started\n`);
    void env.close().finally(() => process.exit(130));
  });
}
const startedAt = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
const skipped: string[] = [];
let exitCode = 0;
try {
  const tools = ensureTools();
  for (const found of Object.values(tools)) if (typeof found !== 'string') skipped.push(found.missing);
  const tool = (name: 'wrk' | 'nginx' | 'h2load'): string | undefined => {
    const found = tools[name];
    return typeof found === 'string' ? found : undefined;
  };
  const work = join(env.home, 'bench');
  mkdirSync(work, { recursive: true });

  const httpApp = await startPortPrinter('http-app', [join(repoRoot, 'bench', 'apps', 'http-app.mjs')]);
  env.track(httpApp.child);
  const grpcApp = await startPortPrinter('grpc-app', [join(repoRoot, 'bench', 'apps', 'grpc-app.mjs')]);
  env.track(grpcApp.child);
  const sentry = await startSentry(env);
  const mtlsOf = (appId: string): { args: string[]; env: Record<string, string> } => sentry.sidecar(appId);

  // Sidecars run with the Node flags the `courier` launcher sets (src/runtime/heap-flags.ts).
  const startSidecar = (e: TestEnv, spec: Parameters<typeof startTestSidecar>[1]): Promise<SidecarProcess> => startTestSidecar(e, asLaunched(spec));
  const b1 = await startSidecar(env, { appId: 'bench-http', appPort: httpApp.port, waitForApp: true, args: SIDECAR_ARGS });
  const a1 = await startSidecar(env, { appId: 'bench-caller', args: SIDECAR_ARGS });
  // The lean path: the same pair with metrics and tracing off, against which the cost of the default
  // observability (metrics, and tracing at Dapr's default sampling rate without an exporter) is measured.
  const configOf = (name: string, spec: string): string => {
    const file = join(work, `${name}.yaml`);
    writeFileSync(file, `apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: ${name}\nspec:\n${spec}`);
    return file;
  };
  const lean = [...SIDECAR_ARGS, '--enable-metrics=false', '--config', configOf('lean', '  tracing:\n    samplingRate: "0"\n')];
  const b6 = await startSidecar(env, { appId: 'bench-http-lean', appPort: httpApp.port, waitForApp: true, args: lean });
  const a6 = await startSidecar(env, { appId: 'bench-caller-lean', args: lean });
  // Every call traced (samplingRate "1") and exported over OTLP/HTTP to a collector that drops what it gets.
  const sink = await startPortPrinter('otlp-sink', [join(repoRoot, 'bench', 'apps', 'otlp-sink.mjs')]);
  env.track(sink.child);
  const tracedConfig = configOf('traced', `  tracing:\n    samplingRate: "1"\n    otel:\n      endpointAddress: "127.0.0.1:${sink.port}"\n      protocol: http\n      isSecure: false\n`);
  const traced = [...SIDECAR_ARGS, '--config', tracedConfig];
  const b7 = await startSidecar(env, { appId: 'bench-http-traced', appPort: httpApp.port, waitForApp: true, args: traced });
  const a7 = await startSidecar(env, { appId: 'bench-caller-traced', args: traced });
  const m2 = mtlsOf('bench-http-mtls');
  const b2 = await startSidecar(env, { appId: 'bench-http-mtls', appPort: httpApp.port, waitForApp: true, args: [...SIDECAR_ARGS, ...m2.args], env: m2.env });
  const m2a = mtlsOf('bench-caller-mtls');
  const a2 = await startSidecar(env, { appId: 'bench-caller-mtls', args: [...SIDECAR_ARGS, ...m2a.args], env: m2a.env });
  const g3 = await startSidecar(env, { appId: 'bench-grpc', appPort: grpcApp.port, waitForApp: true, args: [...SIDECAR_ARGS, '--app-protocol', 'grpc'] });
  const a3 = await startSidecar(env, { appId: 'bench-caller-grpc', args: SIDECAR_ARGS });
  // The hop as it is to a peer that speaks only gRPC (daprd): both sidecars with the lane off.
  const noLane = [...SIDECAR_ARGS, '--internal-lane=false'];
  const b4 = await startSidecar(env, { appId: 'bench-http-grpc-hop', appPort: httpApp.port, waitForApp: true, args: noLane });
  const a4 = await startSidecar(env, { appId: 'bench-caller-grpc-hop', args: noLane });
  // Node 24 LTS, the reference runtime, when one is at hand (.ci/run installs it).
  const node24 = findNode24();
  let node24Pair: [SidecarProcess, SidecarProcess] | undefined;
  if (typeof node24 === 'string') skipped.push(node24);
  else {
    const on24 = { node: node24.node, env: { COURIER_SQLITE_ADDON: node24.sqliteAddon } };
    const b5 = await startSidecar(env, { appId: 'bench-http-node24', appPort: httpApp.port, waitForApp: true, args: SIDECAR_ARGS, ...on24 });
    const a5 = await startSidecar(env, { appId: 'bench-caller-node24', args: SIDECAR_ARGS, ...on24 });
    node24Pair = [a5, b5];
  }

  const wrk = tool('wrk');
  const h2load = tool('h2load');
  const nginxBin = tool('nginx');
  const wrkSat = (url: string) => (wrk === undefined ? undefined : (seconds: number) => wrkSaturation(wrk, work, url, seconds, method.connections, method.bodyBytes));
  const h2Sat = (url: string, headers: Record<string, string>) =>
    h2load === undefined ? undefined : (seconds: number) => h2loadSaturation(h2load, work, url, seconds, method.connections, method.bodyBytes, headers);
  const sidecarProcs = (a: SidecarProcess, b: SidecarProcess, app: string, appPid: number): Proc[] => [
    { role: `sidecar A (${a.appId})`, pid: a.pid, profilePort: a.profilePort },
    { role: `sidecar B (${b.appId})`, pid: b.pid, profilePort: b.profilePort },
    { role: app, pid: appPid },
  ];

  const paths: PathSetup[] = [];
  const directUrl = `http://127.0.0.1:${httpApp.port}/echo`;
  paths.push({ name: 'direct', description: 'generator → HTTP app', kind: 'http', url: directUrl, processes: [{ role: 'HTTP app', pid: httpApp.child.pid }], saturate: wrkSat(directUrl) });
  const httpUrl = a1.url('/v1.0/invoke/bench-http/method/echo');
  paths.push({ name: 'courier-http', description: 'generator → sidecar A (HTTP API) → sidecar B → HTTP app', kind: 'http', url: httpUrl, processes: sidecarProcs(a1, b1, 'HTTP app', httpApp.child.pid), saturate: wrkSat(httpUrl) });
  const leanUrl = a6.url('/v1.0/invoke/bench-http-lean/method/echo');
  paths.push({
    name: 'courier-http-lean',
    description: 'as courier-http, with metrics and tracing off (--enable-metrics=false, samplingRate "0")',
    kind: 'http',
    url: leanUrl,
    processes: sidecarProcs(a6, b6, 'HTTP app', httpApp.child.pid),
    saturate: wrkSat(leanUrl),
  });
  const tracedUrl = a7.url('/v1.0/invoke/bench-http-traced/method/echo');
  paths.push({
    name: 'courier-http-traced',
    description: 'as courier-http, with every call traced (samplingRate "1") and exported over OTLP/HTTP',
    kind: 'http',
    url: tracedUrl,
    processes: sidecarProcs(a7, b7, 'HTTP app', httpApp.child.pid),
    saturate: wrkSat(tracedUrl),
  });
  const grpcHopUrl = a4.url('/v1.0/invoke/bench-http-grpc-hop/method/echo');
  paths.push({
    name: 'courier-http-grpc-hop',
    description: 'as courier-http, with the hop between the sidecars over gRPC (--internal-lane=false, as to a daprd peer)',
    kind: 'http',
    url: grpcHopUrl,
    processes: sidecarProcs(a4, b4, 'HTTP app', httpApp.child.pid),
    saturate: wrkSat(grpcHopUrl),
  });
  if (node24Pair !== undefined && typeof node24 !== 'string') {
    const [a5, b5] = node24Pair;
    const url24 = a5.url('/v1.0/invoke/bench-http-node24/method/echo');
    paths.push({
      name: 'courier-http-node24',
      description: `as courier-http, with both sidecars on Node ${node24.version}`,
      kind: 'http',
      url: url24,
      processes: sidecarProcs(a5, b5, 'HTTP app', httpApp.child.pid),
      saturate: wrkSat(url24),
    });
  }
  const mtlsUrl = a2.url('/v1.0/invoke/bench-http-mtls/method/echo');
  paths.push({ name: 'courier-http-mtls', description: 'as courier-http, with mutual TLS between the sidecars', kind: 'http', url: mtlsUrl, processes: sidecarProcs(a2, b2, 'HTTP app', httpApp.child.pid), saturate: wrkSat(mtlsUrl) });
  if (nginxBin !== undefined) {
    const [p1, p2] = (await freePorts(2)) as [number, number];
    const n2 = env.track(await startNginx(nginxBin, work, 'nginx-b', p2, httpApp.port));
    const n1 = env.track(await startNginx(nginxBin, work, 'nginx-a', p1, p2));
    const nginxUrl = `http://127.0.0.1:${p1}/echo`;
    paths.push({
      name: 'nginx-2hop',
      description: 'generator → nginx → nginx → HTTP app',
      kind: 'http',
      url: nginxUrl,
      processes: [{ role: 'nginx A', pid: n1.pid }, { role: 'nginx B', pid: n2.pid }, { role: 'HTTP app', pid: httpApp.child.pid }],
      saturate: wrkSat(nginxUrl),
    });
  } else {
    skipped.push('the nginx-2hop path (no nginx)');
  }
  const grpcDirect = `http://127.0.0.1:${grpcApp.port}/courier.bench.Echo/Say`;
  paths.push({ name: 'direct-grpc', description: 'gRPC generator → gRPC app', kind: 'grpc', url: grpcDirect, processes: [{ role: 'gRPC app', pid: grpcApp.child.pid }], saturate: h2Sat(grpcDirect, {}) });
  const grpcProxy = `http://127.0.0.1:${a3.grpcPort}/courier.bench.Echo/Say`;
  paths.push({
    name: 'courier-grpc-proxy',
    description: 'gRPC generator → sidecar A (proxy by dapr-app-id) → sidecar B → gRPC app',
    kind: 'grpc',
    url: grpcProxy,
    headers: { 'dapr-app-id': 'bench-grpc' },
    processes: sidecarProcs(a3, g3, 'gRPC app', grpcApp.child.pid),
    saturate: h2Sat(grpcProxy, { 'dapr-app-id': 'bench-grpc' }),
  });
  if (wrk === undefined) skipped.push('HTTP saturation (no wrk)');
  if (h2load === undefined) skipped.push('gRPC saturation (no h2load)');

  // Every sidecar's probes stay off outside its measured windows.
  for (const path of paths) for (const p of path.processes) if (p.profilePort !== undefined) await runtimeReport(p.profilePort, 'stop');
  // Idle RSS once the last sidecar started has settled (SETTLE_MS).
  await sleep(SETTLE_MS);
  const idleRss = new Map<number, number>();
  for (const path of paths) for (const p of path.processes) idleRss.set(p.pid, rssBytes(p.pid));

  const runs = new Map<string, PathRun[]>(paths.map((p) => [p.name, []]));
  for (let rep = 1; rep <= method.repetitions; rep++) {
    for (const path of paths) {
      process.stderr.write(`bench: repetition ${rep}/${method.repetitions}, ${path.name} ... `);
      const run = await measurePath(path);
      runs.get(path.name)?.push(run);
      process.stderr.write(
        `p50 ${run.load.scheduled.p50} p90 ${run.load.scheduled.p90} p99 ${run.load.scheduled.p99} ms, ${run.load.errors} errors` +
          (run.saturation === undefined ? '' : `, saturation ${run.saturation.requestsPerSecond} rps`) +
          '\n',
      );
    }
  }

  process.stderr.write(`bench: observability budget, ${budget.pairs} pair(s) each of default, lean and traced sidecars\n`);
  const budgetFigures = await measureObservabilityBudget({
    env,
    appPort: httpApp.port,
    base: 'lean',
    // `default` is given a Configuration that changes nothing, so that all three load the same
    // Configuration parser and differ only in what they record (the parser alone holds about 5 MB).
    variants: [
      { name: 'default', args: ['--config', configOf('budget-default', '  {}\n')] },
      { name: 'lean', args: ['--enable-metrics=false', '--config', configOf('budget-lean', '  tracing:\n    samplingRate: "0"\n')] },
      { name: 'traced', args: ['--config', tracedConfig] },
    ],
    ...budget,
    log: (line) => process.stderr.write(`${line}\n`),
  });

  process.stderr.write('bench: 100 MiB upload through courier-http ... ');
  const uploadPids = [a1.pid, b1.pid];
  const before = uploadPids.map(rssBytes);
  const sampler = sampleRss(uploadPids, 50);
  const status = await upload(a1.httpPort, 'bench-http', UPLOAD_BYTES);
  const peaks = sampler.stop();
  const uploadFigures: UploadFigures = {
    bytes: UPLOAD_BYTES,
    status,
    growthMb: ['sidecar A', 'sidecar B'].map((role, i) => ({ role, idleMb: mb(before[i] ?? 0), peakMb: mb(peaks[i] ?? 0), growthMb: mb((peaks[i] ?? 0) - (before[i] ?? 0)) })),
  };
  process.stderr.write(`${status}\n`);

  process.stderr.write('bench: courier run (the supervisor) with one app ... ');
  const supervisorRssMb = await supervisorRss(env.home);
  process.stderr.write(`${supervisorRssMb} MB\n`);
  let supervisorRssNode24Mb: number | undefined;
  if (typeof node24 !== 'string') {
    process.stderr.write(`bench: courier run on Node ${node24.version} ... `);
    supervisorRssNode24Mb = await supervisorRss(env.home, node24.node, { COURIER_SQLITE_ADDON: node24.sqliteAddon });
    process.stderr.write(`${supervisorRssNode24Mb} MB\n`);
  }

  const report: BenchReport = {
    startedAt,
    machine: machineDescription(),
    mode: quick ? 'quick' : 'full',
    method,
    skipped,
    paths: paths.map((p) => summarize(p, runs.get(p.name) ?? [], idleRss)),
    upload: uploadFigures,
    supervisorRssMb,
    supervisorRssNode24Mb,
    observability: { pairs: budget.pairs, reps: budget.reps, seconds: budget.seconds, figures: budgetFigures },
    targets: [],
  };
  report.targets = targets(report);

  const results = join(repoRoot, 'bench', 'results');
  mkdirSync(results, { recursive: true });
  const stem = join(results, startedAt.replace(/:/g, '-'));
  const table = markdown(report);
  writeFileSync(`${stem}.json`, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(`${stem}.md`, table);
  writeFileSync(`${stem}.svg`, svgChart(report));
  if (!quick) {
    const docs = join(repoRoot, 'docs', 'performance.md');
    const text = readFileSync(docs, 'utf8');
    const begin = '<!-- bench:latest:begin -->';
    const end = '<!-- bench:latest:end -->';
    const a = text.indexOf(begin);
    const b = text.indexOf(end);
    if (a >= 0 && b > a) {
      const chart = `![latency percentiles per path](../bench/results/${startedAt.replace(/:/g, '-')}.svg)`;
      writeFileSync(docs, `${text.slice(0, a + begin.length)}\n${table}\n${chart}\n${text.slice(b)}`);
    }
  }
  process.stdout.write(`\n${table}\nWritten: ${stem}.json, .md, .svg${quick ? '' : ' and docs/performance.md'}\n`);
} catch (err) {
  console.error(err);
  exitCode = 1;
} finally {
  await env.close();
}
process.exit(exitCode);
