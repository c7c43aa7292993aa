// Closed-loop saturation throughput: wrk for HTTP/1.1, h2load for gRPC (HTTP/2), 16 connections each.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface SaturationResult {
  requestsPerSecond: number;
  /** Requests that failed (socket errors, non-2xx, or h2load's failed/errored). */
  errors: number;
  tool: string;
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited with ${String(code)}:\n${out}`))));
  });
}

/** `wrk -t1 -c<connections> -d<seconds>s` with a POST of `bodyBytes` (a Lua script in `dir`). */
export async function wrkSaturation(wrk: string, dir: string, url: string, seconds: number, connections: number, bodyBytes: number): Promise<SaturationResult> {
  const script = join(dir, 'post.lua');
  writeFileSync(script, `wrk.method = "POST"\nwrk.body = string.rep("x", ${bodyBytes})\nwrk.headers["Content-Type"] = "application/octet-stream"\n`);
  const out = await run(wrk, ['-t1', `-c${connections}`, `-d${seconds}s`, '-s', script, url]);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = socket === null ? 0 : socket.slice(1).reduce((sum, n) => sum + Number(n), 0);
  if (!Number.isFinite(rps)) throw new Error(`could not read wrk's output:\n${out}`);
  return { requestsPerSecond: Math.round(rps), errors: non2xx + socketErrors, tool: 'wrk' };
}

/** `h2load` with a unary gRPC call of `bodyBytes` on `connections` connections, one stream each. */
export async function h2loadSaturation(
  h2load: string,
  dir: string,
  url: string,
  seconds: number,
  connections: number,
  bodyBytes: number,
  headers: Record<string, string>,
): Promise<SaturationResult> {
  const frame = Buffer.alloc(5 + bodyBytes, 'x');
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(bodyBytes, 1);
  const data = join(dir, 'grpc-frame.bin');
  writeFileSync(data, frame);
  const headerArgs = Object.entries({ 'content-type': 'application/grpc', te: 'trailers', ...headers }).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
  const out = await run(h2load, ['-c', String(connections), '-m', '1', '-D', String(seconds), '--warm-up-time', '1', '-d', data, ...headerArgs, url]);
  const rps = Number(/finished in [\d.]+\w*, ([\d.]+) req\/s/.exec(out)?.[1] ?? NaN);
  const counts = /requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed, (\d+) errored/.exec(out);
  if (!Number.isFinite(rps) || counts === null) throw new Error(`could not read h2load's output:\n${out}`);
  return { requestsPerSecond: Math.round(rps), errors: Number(counts[1]) + Number(counts[2]), tool: 'h2load' };
}
