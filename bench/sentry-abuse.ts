// The Sentry under a flood of bad certificate requests from one client: how many refusals per second it
// answers, the CPU it spends doing so, how much it logs, and whether a legitimate sidecar on another
// address still gets certificates meanwhile.
//
// One client (source address 127.0.0.2, CONNECTIONS connections, INFLIGHT calls in flight on each) sends
// SignCertificate requests for app "orders" with a forged join token for SECONDS seconds, as fast as the
// Sentry answers. Another client (127.0.0.1) asks for a certificate for app "payments" with a valid token
// every 100 ms. The Sentry is the built CLI (`courier sentry`, run `npm run build` first) with its default
// limits unless flags after `--` say otherwise.
//
//   node --import tsx bench/sentry-abuse.ts [--seconds 10 --connections 4 --inflight 32] [-- <courier sentry flags>]
import { cpuSeconds } from './lib/proc.js';
import { TestEnv } from '../test/framework/env.js';
import { SentryCaller, SentryProcess } from '../test/framework/sentry-process.js';
import { GrpcStatus, grpcStatusName } from '../src/errors/index.js';
import { createKeyAndCsr } from '../src/security/index.js';
import { TokenValidator } from '../src/proto/index.js';

function flag(name: string, fallback: number): number {
  const end = process.argv.indexOf('--', 2);
  const args = end < 0 ? process.argv : process.argv.slice(0, end);
  const at = args.indexOf(`--${name}`);
  const value = at >= 0 ? Number(args[at + 1]) : NaN;
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

const SECONDS = flag('seconds', 10);
const CONNECTIONS = flag('connections', 4);
const INFLIGHT = flag('inflight', 32);
const sentryFlags = process.argv.indexOf('--', 2) < 0 ? [] : process.argv.slice(process.argv.indexOf('--', 2) + 1);

const env = new TestEnv();
try {
  const sentry = env.track(new SentryProcess(env, sentryFlags));
  await sentry.start();
  const pid = sentry.pid;
  const { csrPem } = await createKeyAndCsr();
  const csr = Buffer.from(csrPem);
  const forged = sentry.token('orders').replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'));
  const bad = { id: 'orders', namespace: 'default', certificateSigningRequest: csr, token: forged, tokenValidator: TokenValidator.JWKS };

  const attackers = Array.from({ length: CONNECTIONS }, () => env.track(new SentryCaller(sentry, { localAddress: '127.0.0.2' })));
  const legit = env.track(new SentryCaller(sentry, { localAddress: '127.0.0.1' }));
  // Warm up: connections open, code paths compiled.
  await Promise.all(attackers.map((a) => a.call(bad)));

  const logBefore = Buffer.byteLength(sentry.output);
  const linesBefore = sentry.output.split('\n').length;
  const cpuBefore = cpuSeconds(pid);
  const started = performance.now();
  const deadline = started + SECONDS * 1000;
  const codes = new Map<number, number>();
  const legitResults = { ok: 0, failed: [] as string[], worstMs: 0 };

  const worker = async (caller: SentryCaller): Promise<void> => {
    while (performance.now() < deadline) {
      const r = await caller.call(bad);
      codes.set(r.code, (codes.get(r.code) ?? 0) + 1);
    }
  };
  const legitLoop = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      const { csrPem: good } = await createKeyAndCsr();
      const r = await legit.call({ id: 'payments', namespace: 'default', certificateSigningRequest: Buffer.from(good), token: sentry.token('payments'), tokenValidator: TokenValidator.JWKS });
      legitResults.worstMs = Math.max(legitResults.worstMs, performance.now() - t0);
      if (r.code === GrpcStatus.OK) legitResults.ok++;
      else legitResults.failed.push(`${grpcStatusName(r.code)}: ${r.message}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  await Promise.all([...attackers.flatMap((a) => Array.from({ length: INFLIGHT }, () => worker(a))), legitLoop()]);
  const elapsed = (performance.now() - started) / 1000;
  const cpu = cpuSeconds(pid) - cpuBefore;
  const refused = [...codes.values()].reduce((a, b) => a + b, 0);
  // Let a summary interval pass so its line is counted too.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const logBytes = Buffer.byteLength(sentry.output) - logBefore;
  const logLines = sentry.output.split('\n').length - linesBefore;

  const result = {
    seconds: Number(elapsed.toFixed(2)),
    refusalsPerSecond: Math.round(refused / elapsed),
    byStatus: Object.fromEntries([...codes].map(([code, n]) => [grpcStatusName(code), n])),
    sentryCpuPercentOfOneCore: Number(((cpu / elapsed) * 100).toFixed(1)),
    sentryCpuMicrosecondsPerRefusal: refused === 0 ? 0 : Math.round((cpu / refused) * 1e6),
    logBytes,
    logLines,
    legitimate: { certificates: legitResults.ok, failures: legitResults.failed.slice(0, 3), worstLatencyMs: Math.round(legitResults.worstMs) },
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`\nlast lines of the Sentry's log:\n${sentry.output.trimEnd().split('\n').slice(-6).join('\n')}\n`);
} finally {
  await env.close();
}
