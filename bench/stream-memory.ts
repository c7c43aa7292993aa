// How much memory the sidecars need while large bodies stream through them.
// Starts two sidecars (A: caller, B: callee) with --max-body-size 200Mi and an app behind B, uploads
// 100 MiB through A → B → app and downloads 100 MiB app → B → A, sampling each sidecar's resident set
// size (VmRSS from /proc) every 50 ms. Prints idle RSS, peak RSS and the growth for each transfer.
//
//   npm run bench:memory
import { createHash } from 'node:crypto';
import { request, type ServerResponse } from 'node:http';
import { TestEnv } from '../test/framework/env.js';
import { startSidecar, type SidecarProcess } from '../test/framework/sidecar-process.js';
import { startApp } from '../test/framework/test-app.js';
import { rssBytes, sampleRss } from './lib/proc.js';
import { upload } from './lib/upload.js';
import { writeBytes } from '../test/framework/streams.js';

const MiB = 1024 * 1024;
const TOTAL = 100 * MiB;

/** Runs `work` while sampling the sidecars' RSS every 50 ms; returns its result and each one's peak. */
async function sampled<T>(sidecars: SidecarProcess[], work: () => Promise<T>): Promise<{ result: T; peaks: number[] }> {
  const sampler = sampleRss(sidecars.map((s) => s.pid), 50);
  try {
    return { result: await work(), peaks: sampler.stop() };
  } finally {
    sampler.stop(); // stopping twice is harmless; this covers a failed `work`
  }
}

function download(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: '/v1.0/invoke/b/method/source' }, (res) => {
      let n = 0;
      res.on('data', (d: Buffer) => (n += d.length));
      res.on('end', () => resolve(n));
    })
      .on('error', reject)
      .end();
  });
}

const env = new TestEnv();
try {
  const source = (_req: unknown, res: ServerResponse): void => writeBytes(res, TOTAL, 256 * 1024);
  // The app (not measured) buffers each upload to hash it; only the sidecars' memory is reported.
  const app = await startApp(env, (x) => x.route('/source', source));
  app.route('/sink', (_req, res, body) => res.end(`${body.length} ${createHash('sha256').update(body).digest('hex').slice(0, 12)}`));
  const a = await startSidecar(env, { appId: 'a', args: ['--max-body-size', '200Mi', '--log-level', 'warn'] });
  const b = await startSidecar(env, { appId: 'b', appPort: app.port, waitForApp: true, args: ['--max-body-size', '200Mi', '--log-level', 'warn'] });
  const sidecars = [a, b];
  // Warm up both paths so connection pools and code are in place before measuring.
  await download(a.httpPort);
  await upload(a.httpPort, 'b', TOTAL);
  await new Promise((r) => setTimeout(r, 500));
  const idle = sidecars.map((s) => rssBytes(s.pid));
  const up = await sampled(sidecars, () => upload(a.httpPort, 'b', TOTAL));
  const afterUp = sidecars.map((s) => rssBytes(s.pid));
  const down = await sampled(sidecars, () => download(a.httpPort));
  const mb = (n: number): string => `${(n / MiB).toFixed(1)} MB`;
  console.log(`upload of ${TOTAL / MiB} MiB through A → B → app: answer "${up.result}"`);
  console.log(`download of ${TOTAL / MiB} MiB app → B → A: ${down.result} bytes`);
  console.log('');
  console.log('sidecar   idle RSS   peak during upload (growth)   peak during download (growth)');
  sidecars.forEach((s, i) => {
    const base = idle[i] ?? 0;
    console.log(
      `${s.appId.padEnd(8)}  ${mb(base).padStart(8)}   ${mb(up.peaks[i] ?? 0).padStart(8)} (+${mb((up.peaks[i] ?? 0) - base)})`.padEnd(60) +
        `${mb(down.peaks[i] ?? 0).padStart(8)} (+${mb((down.peaks[i] ?? 0) - (afterUp[i] ?? 0))})`,
    );
  });
} finally {
  await env.close();
}
