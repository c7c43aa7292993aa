// What a flood of connections costs a sidecar in memory, and whether it gives the memory back.
// Starts two sidecars (A: caller, B: callee) and an app behind B, then opens many connections to A's
// HTTP API at once with wrk (2000 by default, 1 KB POSTs through A → B → app) for 20 s, sampling each
// sidecar's RSS every 250 ms; then watches RSS for 60 s of quiet. Prints idle, peak, and the RSS 10,
// 30 and 60 s after the flood. Extra sidecar flags (e.g. `-- --max-connections 0`) follow `--`.
//
//   npm run bench:flood [-- --connections 2000 --seconds 20 -- <sidecar flags>]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestEnv } from '../test/framework/env.js';
import { startSidecar } from '../test/framework/sidecar-process.js';
import { startApp } from '../test/framework/test-app.js';
import { rssBytes, sampleRss } from './lib/proc.js';
import { ensureTools } from './lib/processes.js';
import { wrkSaturation } from './lib/saturation.js';

const argv = process.argv.slice(2);
const split = argv.indexOf('--');
const own = split < 0 ? argv : argv.slice(0, split);
const sidecarFlags = split < 0 ? [] : argv.slice(split + 1);
const option = (name: string, fallback: number): number => {
  const i = own.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(own[i + 1]);
};
const connections = option('connections', 2000);
const seconds = option('seconds', 20);

const wrk = ensureTools().wrk;
if (typeof wrk !== 'string') {
  console.error(`bench:flood needs wrk: ${wrk.missing}`);
  process.exit(2);
}

const MiB = 1024 * 1024;
const mb = (n: number): string => `${(n / MiB).toFixed(0)} MB`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const env = new TestEnv();
const dir = mkdtempSync(join(tmpdir(), 'courier-flood-'));
try {
  const app = await startApp(env, (x) => x.route('/echo', (_req, res, body) => res.end(body)));
  const flags = ['--log-level', 'warn', ...sidecarFlags];
  const a = await startSidecar(env, { appId: 'flood-a', args: flags });
  const b = await startSidecar(env, { appId: 'flood-b', appPort: app.port, waitForApp: true, args: flags });
  const sidecars = [a, b];
  const url = `http://127.0.0.1:${a.httpPort}/v1.0/invoke/flood-b/method/echo`;
  // Warm-up: code and pools in place before the idle figure.
  await wrkSaturation(wrk, dir, url, 3, 16, 1024);
  await sleep(2000);
  const idle = sidecars.map((s) => rssBytes(s.pid));
  const sampler = sampleRss(sidecars.map((s) => s.pid), 250);
  const flood = await wrkSaturation(wrk, dir, url, seconds, connections, 1024).catch((err: unknown) => ({ requestsPerSecond: NaN, errors: NaN, tool: String(err) }));
  const peaks = sampler.stop();
  const after: number[][] = [];
  for (const wait of [10, 20, 30]) {
    await sleep(wait * 1000);
    after.push(sidecars.map((s) => rssBytes(s.pid)));
  }
  console.log(`${connections} connections for ${seconds} s to sidecar A (sidecar flags: ${sidecarFlags.join(' ') || 'defaults'})`);
  console.log(`wrk: ${flood.requestsPerSecond} requests/s, ${flood.errors} errors (connections over --max-connections are refused by design)`);
  console.log('');
  console.log('sidecar    idle     peak     +10 s    +30 s    +60 s');
  sidecars.forEach((s, i) => {
    const cells = [idle[i], peaks[i], after[0]?.[i], after[1]?.[i], after[2]?.[i]].map((n) => mb(n ?? 0).padStart(7));
    console.log(`${s.appId.padEnd(9)} ${cells.join('  ')}`);
  });
} finally {
  await env.close();
  rmSync(dir, { recursive: true, force: true });
}
