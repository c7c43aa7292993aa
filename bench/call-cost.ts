// What one call costs the two sidecars in CPU, for the HTTP path (with each HTTP app protocol) and
// for a proxied gRPC call. Starts sidecar A (caller) and the callees: B in front of an HTTP/1.1 app,
// H in front of an HTTP/2 app without TLS (--app-protocol h2c), S in front of an HTTPS app
// (--app-protocol https), G in front of a gRPC app (@grpc/grpc-js, a unary echo). Sends CALLS requests
// (CONCURRENCY in flight, 1 KiB bodies) through A:
//   http:        POST A/v1.0/invoke/b/method/echo            (A → B over CallLocalStream → HTTP/1.1 app)
//   http-h2c:    POST A/v1.0/invoke/h/method/echo            (A → H → HTTP/2 app, one session)
//   http-https:  POST A/v1.0/invoke/s/method/echo            (A → S → HTTPS app, kept-alive TLS connections)
//   grpc-proxy:  /courier.bench.Echo/Say with dapr-app-id: g  (A → G relayed frame by frame → gRPC app)
//   external:    POST A/v1.0/invoke/echo-endpoint/method/echo (A → the HTTP app as an HTTPEndpoint, no callee sidecar)
//   http-mtls:   as http, between a second pair of sidecars with mutual TLS (certificates from a local Sentry)
// and reads each sidecar's user+system CPU time from /proc before and after. Prints microseconds of
// CPU per call for each sidecar and in total, and the throughput the loop reached.
//
//   npm run bench:call-cost [-- --calls 20000 --concurrency 16 --paths http,http-mtls] [--no-metrics] [--no-tracing | --trace-all]
// (--no-metrics starts every sidecar with --enable-metrics=false, so the cost of metrics is the difference;
// --no-tracing gives every sidecar a Configuration with tracing off (samplingRate "0"), --trace-all one
// that traces every call and exports it over OTLP/HTTP to a local collector that drops what it gets;
// --concurrency 1 shows what a call costs when it travels alone, as at a low request rate;
// --cpu-prof DIR writes each sidecar's V8 CPU profile into DIR when it stops; --alloc-prof DIR starts the
// sidecars with --enable-profiling and writes an allocation profile of each sidecar over the first
// 5 s of each measured loop into DIR, `<path>-<app id>.heapprofile`: give enough --calls to last that long).
import { Agent, request } from 'undici';
import * as grpc from '@grpc/grpc-js';
import { TestEnv } from '../test/framework/env.js';
import { cpuSeconds } from './lib/proc.js';
import { startSidecar, type SidecarProcess } from '../test/framework/sidecar-process.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createH2cServer } from 'node:http2';
import { createServer as createHttpsServer } from 'node:https';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { appCertificate } from '../test/framework/test-pki.js';
import { startSentry } from '../test/framework/sentry-process.js';
import { asLaunched } from './lib/processes.js';

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  const value = at >= 0 ? Number(process.argv[at + 1]) : NaN;
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

const CALLS = flag('calls', 20_000);
const CONCURRENCY = flag('concurrency', 16);
const pathsAt = process.argv.indexOf('--paths');
const PATHS = pathsAt >= 0 ? new Set((process.argv[pathsAt + 1] ?? '').split(',')) : undefined;
const wanted = (key: string): boolean => PATHS === undefined || PATHS.has(key);
const profAt = process.argv.indexOf('--cpu-prof');
const PROFILE_DIR = profAt >= 0 ? process.argv[profAt + 1] : undefined;
const allocAt = process.argv.indexOf('--alloc-prof');
const ALLOC_DIR = allocAt >= 0 ? process.argv[allocAt + 1] : undefined;
const ALLOC_SECONDS = 5;
// Every sidecar runs as the `courier` executable starts it (asLaunched), with a CPU profile if asked for.
const nodeArgs = PROFILE_DIR === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR];
/** Sidecars record metrics unless --no-metrics is given (what the lean path costs without them). */
const METRICS_ARGS = process.argv.includes('--no-metrics') ? ['--enable-metrics=false'] : [];
if (ALLOC_DIR !== undefined) METRICS_ARGS.push('--enable-profiling', '--profile-port', '0');
const TRACING = process.argv.includes('--no-tracing') ? 'off' : process.argv.includes('--trace-all') ? 'all' : 'default';
const WARMUP = Math.min(2000, Math.floor(CALLS / 5));
const BODY = Buffer.alloc(1024, 'x');
async function loop(count: number, call: () => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++;
      await call();
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

async function measure(name: string, sidecars: SidecarProcess[], call: () => Promise<void>): Promise<Record<string, number | string>> {
  await loop(WARMUP, call);
  const before = sidecars.map((s) => cpuSeconds(s.pid));
  const started = process.hrtime.bigint();
  const profiles = ALLOC_DIR === undefined ? [] : sidecars.map((s) => allocationProfile(s, name, ALLOC_DIR));
  await loop(CALLS, call);
  await Promise.all(profiles);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const after = sidecars.map((s) => cpuSeconds(s.pid));
  const perCall = sidecars.map((_, i) => (((after[i] ?? 0) - (before[i] ?? 0)) * 1e6) / CALLS);
  return {
    path: name,
    'caller µs CPU/call': Math.round(perCall[0] ?? 0),
    'callee µs CPU/call': Math.round(perCall[1] ?? 0),
    'both µs CPU/call': Math.round((perCall[0] ?? 0) + (perCall[1] ?? 0)),
    'calls/s': Math.round(CALLS / seconds),
  };
}

/** Takes a sidecar's allocation profile over ALLOC_SECONDS (its --enable-profiling endpoint) and writes it into `dir`. */
async function allocationProfile(s: SidecarProcess, path: string, dir: string): Promise<void> {
  const res = await request(`http://127.0.0.1:${s.profilePort ?? 0}/debug/alloc-profile?seconds=${ALLOC_SECONDS}`);
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`allocation profile of ${s.appId}: HTTP ${res.statusCode} ${text}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${path.split(' ')[0] ?? path}-${s.appId}.heapprofile`), text);
}

const passthrough = { serialize: (b: Buffer): Buffer => b, deserialize: (b: Buffer): Buffer => b };
const echoService: grpc.ServiceDefinition = {
  Say: {
    path: '/courier.bench.Echo/Say',
    requestStream: false,
    responseStream: false,
    requestSerialize: passthrough.serialize,
    requestDeserialize: passthrough.deserialize,
    responseSerialize: passthrough.serialize,
    responseDeserialize: passthrough.deserialize,
  },
};

const env = new TestEnv();
const grpcApp = new grpc.Server();
let client: grpc.Client | undefined;
const agent = new Agent({ connections: CONCURRENCY, pipelining: 1 });
try {
  const echoBody = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => res.end(Buffer.concat(chunks)));
  };
  if (TRACING !== 'default') {
    // A collector that accepts OTLP/HTTP and drops it (for --trace-all).
    const sink = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end());
    });
    await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
    env.track({ close: () => new Promise<void>((resolve) => { sink.closeAllConnections(); sink.close(() => resolve()); }) });
    const spec =
      TRACING === 'off'
        ? '  tracing:\n    samplingRate: "0"\n'
        : `  tracing:\n    samplingRate: "1"\n    otel:\n      endpointAddress: "127.0.0.1:${(sink.address() as AddressInfo).port}"\n      protocol: http\n      isSecure: false\n`;
    const file = join(env.home, 'tracing.yaml');
    writeFileSync(file, `apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: tracing\nspec:\n${spec}`);
    METRICS_ARGS.push('--config', file);
  }
  const httpApp = createServer(echoBody);
  await new Promise<void>((resolve) => httpApp.listen(0, '127.0.0.1', resolve));
  env.track({ close: () => new Promise<void>((resolve) => { httpApp.closeAllConnections(); httpApp.close(() => resolve()); }) });
  const httpPort = (httpApp.address() as AddressInfo).port;
  const h2cApp = createH2cServer((req, res) => echoBody(req as unknown as IncomingMessage, res as unknown as ServerResponse));
  await new Promise<void>((resolve) => h2cApp.listen(0, '127.0.0.1', resolve));
  env.track({ close: () => new Promise<void>((resolve) => h2cApp.close(() => resolve())) });
  const cert = await appCertificate();
  const httpsApp = createHttpsServer({ key: cert.key, cert: cert.cert }, echoBody);
  await new Promise<void>((resolve) => httpsApp.listen(0, '127.0.0.1', resolve));
  env.track({ close: () => new Promise<void>((resolve) => { httpsApp.closeAllConnections(); httpsApp.close(() => resolve()); }) });
  grpcApp.addService(echoService, {
    Say: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback(null, call.request),
  });
  const grpcPort = await new Promise<number>((resolve, reject) =>
    grpcApp.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
  const b = await startSidecar(env, asLaunched({ nodeArgs, appId: 'b', appPort: httpPort, waitForApp: true, args: [...METRICS_ARGS, '--log-level', 'warn'] }));
  const h = await startSidecar(env, asLaunched({ nodeArgs, appId: 'h', appPort: (h2cApp.address() as AddressInfo).port, waitForApp: true, args: [...METRICS_ARGS, '--app-protocol', 'h2c', '--log-level', 'warn'] }));
  const tls = await startSidecar(env, asLaunched({ nodeArgs, appId: 's', appPort: (httpsApp.address() as AddressInfo).port, waitForApp: true, args: [...METRICS_ARGS, '--app-protocol', 'https', '--log-level', 'warn'] }));
  const g = await startSidecar(env, asLaunched({ nodeArgs, appId: 'g', appPort: grpcPort, waitForApp: true, args: [...METRICS_ARGS, '--app-protocol', 'grpc', '--log-level', 'warn'] }));
  const resources = join(env.home, 'resources');
  mkdirSync(resources);
  writeFileSync(
    join(resources, 'echo-endpoint.yaml'),
    `apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata:\n  name: echo-endpoint\nspec:\n  baseUrl: http://127.0.0.1:${httpPort}\n`,
  );
  const a = await startSidecar(env, asLaunched({ nodeArgs, appId: 'a', args: [...METRICS_ARGS, '--log-level', 'warn', '--resources-path', resources] }));
  let mtlsCaller: SidecarProcess | undefined;
  let mtlsCallee: SidecarProcess | undefined;
  if (wanted('http-mtls')) {
    const sentry = await startSentry(env);
    const callee = sentry.sidecar('bm');
    mtlsCallee = await startSidecar(env, asLaunched({ nodeArgs, appId: 'bm', appPort: httpPort, waitForApp: true, args: [...METRICS_ARGS, '--log-level', 'warn', ...callee.args], env: callee.env }));
    const caller = sentry.sidecar('am');
    mtlsCaller = await startSidecar(env, asLaunched({ nodeArgs, appId: 'am', args: [...METRICS_ARGS, '--log-level', 'warn', ...caller.args], env: caller.env }));
  }

  const httpCall = (appId: string, via = a) => async (): Promise<void> => {
    const res = await request(`http://127.0.0.1:${via.httpPort}/v1.0/invoke/${appId}/method/echo`, { method: 'POST', body: BODY, dispatcher: agent });
    await res.body.arrayBuffer();
    if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
  };
  const externalCall = async (): Promise<void> => {
    const res = await request(`http://127.0.0.1:${a.httpPort}/v1.0/invoke/echo-endpoint/method/echo`, { method: 'POST', body: BODY, dispatcher: agent });
    await res.body.arrayBuffer();
    if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
  };
  const Echo = grpc.makeGenericClientConstructor(echoService, 'Echo');
  client = new Echo(`127.0.0.1:${a.grpcPort}`, grpc.credentials.createInsecure());
  const echo = client as unknown as { Say(req: Buffer, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void };
  const md = new grpc.Metadata();
  md.set('dapr-app-id', 'g');
  const grpcCall = (): Promise<void> =>
    new Promise((resolve, reject) => echo.Say(BODY, md, (err, res) => (err ? reject(err) : res?.length === BODY.length ? resolve() : reject(new Error('short reply')))));

  const rows: Array<Record<string, number | string>> = [];
  if (wanted('http')) rows.push(await measure('http (A → B → HTTP/1.1 app)', [a, b], httpCall('b')));
  if (mtlsCaller !== undefined && mtlsCallee !== undefined) rows.push(await measure('http-mtls (A → B with mTLS → HTTP/1.1 app)', [mtlsCaller, mtlsCallee], httpCall('bm', mtlsCaller)));
  if (wanted('http-h2c')) rows.push(await measure('http-h2c (A → H → HTTP/2 app)', [a, h], httpCall('h')));
  if (wanted('http-https')) rows.push(await measure('http-https (A → S → HTTPS app)', [a, tls], httpCall('s')));
  if (wanted('grpc-proxy')) rows.push(await measure('grpc-proxy (A → G → gRPC app)', [a, g], grpcCall));
  if (wanted('external')) rows.push(await measure('external (A → HTTP app as an HTTPEndpoint)', [a], externalCall));
  console.log(`${CALLS} calls per path after ${WARMUP} warm-up calls, ${CONCURRENCY} in flight, 1 KiB bodies, node ${process.version}`);
  console.table(rows);
} finally {
  client?.close();
  grpcApp.forceShutdown();
  await agent.close();
  await env.close();
}
