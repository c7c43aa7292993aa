// An open-loop, fixed-rate load generator (one process; run by bench/run.ts, or by hand):
//
//   node --import tsx bench/lib/loadgen.ts '{"kind":"http","url":"http://127.0.0.1:3500/v1.0/invoke/b/method/echo",
//        "rate":1000,"connections":16,"warmupSeconds":10,"seconds":30,"bodyBytes":1024}'
//
// Request i is due at t0 + i/rate whatever happened to the ones before it (no coordinated omission):
// when all connections are busy it waits in the client's queue and that wait counts. Each latency is
// recorded twice, from the due time ("scheduled") and from the moment it was handed to the client
// ("actual"), in HDR histograms (microseconds). Prints one JSON object (a LoadResult) on stdout.
//
// kind "http": POST over HTTP/1.1 keep-alive with undici (a Pool of `connections`, no pipelining).
// kind "grpc": a unary gRPC call (POST, application/grpc, 5-byte framed body) over `connections`
// HTTP/2 connections from node:http2, round robin; extra metadata from `headers` (e.g. dapr-app-id).
import * as http2 from 'node:http2';
import { Pool } from 'undici';
import * as hdr from 'hdr-histogram-js';

export interface LoadSpec {
  kind: 'http' | 'grpc';
  url: string;
  rate: number;
  connections: number;
  warmupSeconds: number;
  seconds: number;
  bodyBytes: number;
  headers?: Record<string, string>;
}

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export interface LoadResult {
  /** Requests due in the measured window. */
  sent: number;
  completed: number;
  errors: number;
  /** The first few distinct error messages. */
  errorSamples: string[];
  /** Completed requests per second over the measured window. */
  achievedRate: number;
  /** Latency from the due time, in milliseconds. */
  scheduled: Percentiles;
  /** Latency from the hand-over to the client, in milliseconds. */
  actual: Percentiles;
  /** How late the generator's own timer handed requests over (scheduled − actual), in milliseconds. */
  sendLag: Percentiles;
  /** The generator's own CPU (user + system seconds) during the measured window. */
  generatorCpuSeconds: number;
}

type Done = (error: string | undefined) => void;
type Send = (done: Done) => void;

function histogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });
}

function percentiles(h: hdr.Histogram): Percentiles {
  const ms = (us: number): number => Math.round(us) / 1000;
  return {
    p50: ms(h.getValueAtPercentile(50)),
    p90: ms(h.getValueAtPercentile(90)),
    p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)),
    max: ms(h.maxValue),
    mean: ms(h.mean),
  };
}

function httpSender(spec: LoadSpec): { send: Send; close: () => Promise<void> } {
  const url = new URL(spec.url);
  const pool = new Pool(url.origin, { connections: spec.connections, pipelining: 1, keepAliveTimeout: 60_000 });
  const body = Buffer.alloc(spec.bodyBytes, 'x');
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream', ...spec.headers };
  const path = url.pathname + url.search;
  const send: Send = (done) => {
    pool.request({ method: 'POST', path, headers, body }).then(
      async (res) => {
        await res.body.dump();
        done(res.statusCode === 200 ? undefined : `HTTP ${res.statusCode}`);
      },
      (err: Error) => done(err.message),
    );
  };
  return { send, close: () => pool.close() };
}

function grpcSender(spec: LoadSpec): { send: Send; close: () => Promise<void> } {
  const url = new URL(spec.url);
  const sessions = Array.from({ length: spec.connections }, () => {
    const session = http2.connect(url.origin);
    session.on('error', () => {});
    return session;
  });
  const frame = Buffer.alloc(5 + spec.bodyBytes, 'x');
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(spec.bodyBytes, 1);
  const headers = {
    ':method': 'POST',
    ':path': url.pathname,
    'content-type': 'application/grpc',
    te: 'trailers',
    ...spec.headers,
  };
  let next = 0;
  const send: Send = (done) => {
    const session = sessions[next++ % sessions.length];
    if (session === undefined || session.destroyed) {
      done('connection closed');
      return;
    }
    let status: string | undefined;
    let message = '';
    const stream = session.request(headers);
    stream.on('response', (h) => {
      if (h['grpc-status'] !== undefined) status = String(h['grpc-status']);
    });
    stream.on('trailers', (t: http2.IncomingHttpHeaders) => {
      status = String(t['grpc-status']);
      message = String(t['grpc-message'] ?? '');
    });
    stream.on('data', () => {});
    stream.once('close', () => done(status === '0' ? undefined : `grpc-status ${status ?? 'none'} ${message}`.trim()));
    stream.on('error', () => {});
    stream.end(frame);
  };
  const close = async (): Promise<void> => {
    await Promise.all(sessions.map((s) => new Promise<void>((resolve) => (s.closed ? resolve() : s.close(() => resolve())))));
  };
  return { send, close };
}

/** Runs `spec` and resolves with what was measured. */
export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const sender = spec.kind === 'http' ? httpSender(spec) : grpcSender(spec);
  const scheduled = histogram();
  const actual = histogram();
  const lag = histogram();
  const warmup = Math.round(spec.warmupSeconds * spec.rate);
  const total = warmup + Math.round(spec.seconds * spec.rate);
  const intervalNs = 1e9 / spec.rate;
  let errors = 0;
  let completed = 0;
  const errorSamples = new Set<string>();
  let cpuAtStart: NodeJS.CpuUsage | undefined;
  let measuredStart = 0n;
  let measuredEnd = 0n;
  let outstanding = 0;
  let allSent!: () => void;
  const finished = new Promise<void>((resolve) => (allSent = resolve));
  let i = 0;
  const t0 = process.hrtime.bigint() + 50_000_000n;

  const fire = (index: number, due: bigint): void => {
    const handed = process.hrtime.bigint();
    const measured = index >= warmup;
    if (measured && cpuAtStart === undefined) {
      cpuAtStart = process.cpuUsage();
      measuredStart = due;
    }
    outstanding++;
    sender.send((error) => {
      const now = process.hrtime.bigint();
      outstanding--;
      if (measured) {
        measuredEnd = now;
        if (error === undefined) {
          completed++;
          scheduled.recordValue(Number(now - due) / 1000);
          actual.recordValue(Number(now - handed) / 1000);
          lag.recordValue(Number(handed - due) / 1000);
        } else {
          errors++;
          if (errorSamples.size < 5) errorSamples.add(error);
        }
      }
      if (i >= total && outstanding === 0) allSent();
    });
  };

  const tick = (): void => {
    const now = process.hrtime.bigint();
    while (i < total) {
      const due = t0 + BigInt(Math.round(i * intervalNs));
      if (due > now) break;
      fire(i, due);
      i++;
    }
    if (i < total) {
      const due = t0 + BigInt(Math.round(i * intervalNs));
      const waitMs = Number(due - process.hrtime.bigint()) / 1e6;
      setTimeout(tick, Math.max(0, Math.floor(waitMs)));
    } else if (outstanding === 0) {
      allSent();
    }
  };
  setTimeout(tick, 50);
  await finished;
  const cpu = process.cpuUsage(cpuAtStart);
  await sender.close();
  const windowSeconds = Number(measuredEnd - measuredStart) / 1e9;
  return {
    sent: total - warmup,
    completed,
    errors,
    errorSamples: [...errorSamples],
    achievedRate: windowSeconds > 0 ? Math.round((completed / windowSeconds) * 10) / 10 : 0,
    scheduled: percentiles(scheduled),
    actual: percentiles(actual),
    sendLag: percentiles(lag),
    generatorCpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
  const result = await runLoad(spec);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
