#!/usr/bin/env node
// Compares the CPU cost per unary gRPC call of @grpc/grpc-js with a minimal gRPC framing on raw
// node:http2 (the approach Courier's internal hop uses). 1 KiB echo, 16 calls in flight, client and
// server in separate processes, 20 000 measured calls after 1 000 warm-up calls.
//
//   node bench/grpc-transport.mjs            # runs both, twice, and prints µs of CPU per call
import http2 from 'node:http2';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';

const [mode, role, portArg] = process.argv.slice(2);
const N = 20_000;
const WARMUP = 1_000;
const CONCURRENCY = 16;
const payload = Buffer.alloc(1024, 7);
const passthrough = {
  path: '/bench.Echo/Call',
  requestStream: false,
  responseStream: false,
  requestSerialize: (b) => b,
  requestDeserialize: (b) => b,
  responseSerialize: (b) => b,
  responseDeserialize: (b) => b,
};

function frame(body) {
  const head = Buffer.allocUnsafe(5);
  head[0] = 0;
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

async function runClient(call) {
  for (let k = 0; k < WARMUP; k++) await call();
  let issued = 0;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const worker = async () => {
    while (issued < N) {
      issued++;
      await call();
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const cpu = process.cpuUsage(cpu0);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  return { rps: Math.round((N / ms) * 1000), cpuUsPerCall: (cpu.user + cpu.system) / N };
}

if (role === 'server') {
  const port = Number(portArg);
  let served = 0;
  let cpu0;
  const count = () => {
    served++;
    if (served === WARMUP) cpu0 = process.cpuUsage();
    if (served === WARMUP + N) {
      const cpu = process.cpuUsage(cpu0);
      process.stdout.write(JSON.stringify({ serverCpuUsPerCall: (cpu.user + cpu.system) / N }) + '\n');
      setTimeout(() => process.exit(0), 50);
    }
  };
  if (mode === 'grpc-js') {
    const server = new grpc.Server();
    server.addService({ Call: passthrough }, { Call: (c, cb) => (cb(null, c.request), count()) });
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), () => process.stdout.write('ready\n'));
  } else {
    const server = http2.createServer();
    server.on('stream', (stream) => {
      const chunks = [];
      stream.on('data', (c) => chunks.push(c));
      stream.on('end', () => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(Buffer.concat(chunks));
        count();
      });
    });
    server.listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
  }
} else if (role === 'client') {
  const port = Number(portArg);
  let result;
  if (mode === 'grpc-js') {
    const Client = grpc.makeGenericClientConstructor({ Call: passthrough });
    const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    result = await runClient(() => new Promise((res, rej) => client.Call(payload, (e, r) => (e ? rej(e) : res(r)))));
    client.close();
  } else {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const framed = frame(payload);
    result = await runClient(
      () =>
        new Promise((res, rej) => {
          const s = session.request({ ':method': 'POST', ':path': '/bench.Echo/Call', 'content-type': 'application/grpc', te: 'trailers' });
          const chunks = [];
          s.on('data', (c) => chunks.push(c));
          s.on('end', () => res(Buffer.concat(chunks)));
          s.on('error', rej);
          s.end(framed);
        }),
    );
    session.close();
  }
  process.stdout.write(JSON.stringify(result) + '\n');
} else {
  const self = fileURLToPath(import.meta.url);
  const lines = (child) =>
    new Promise((resolve) => {
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.on('exit', () => resolve(out.trim().split('\n')));
    });
  for (let round = 1; round <= 2; round++) {
    for (const m of ['grpc-js', 'http2']) {
      const port = 18555 + round;
      const server = spawn(process.execPath, [self, m, 'server', String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
      const serverOut = lines(server);
      await new Promise((r) => server.stdout.once('data', r));
      const client = spawn(process.execPath, [self, m, 'client', String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
      const [clientLine] = await lines(client);
      const serverLines = await serverOut;
      const c = JSON.parse(clientLine);
      const s = JSON.parse(serverLines[serverLines.length - 1]);
      console.log(`round ${round} ${m.padEnd(8)} ${String(c.rps).padStart(6)} calls/s  client ${c.cpuUsPerCall.toFixed(1)} µs/call  server ${s.serverCpuUsPerCall.toFixed(1)} µs/call`);
    }
  }
}
