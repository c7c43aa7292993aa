// The Prometheus harness really scrapes: a value served over HTTP shows up in its query API, and a
// change to it shows up too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { TestEnv } from './env.js';
import { prometheusBinary, startPrometheus, type Sample } from './prometheus.js';

const unavailable = existsSync(prometheusBinary) ? false : `Prometheus (Debian package prometheus) is not installed at ${prometheusBinary}`;

test('Prometheus scrapes a target and its query API reports the latest value', { skip: unavailable }, async (t) => {
  const env = new TestEnv();
  t.after(() => env.close());

  let value = 3;
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' });
    res.end(`# TYPE demo_total counter\ndemo_total{app_id="x"} ${value}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  env.track({
    // Prometheus keeps its scrape connection open; close() alone would wait for it.
    close: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  });
  const target = `127.0.0.1:${(server.address() as AddressInfo).port}`;

  const prometheus = await startPrometheus(env, [target], { scrapeIntervalMs: 250 });
  const is = (n: number) => (samples: Sample[]) => samples.length === 1 && samples[0]?.value === n;
  const [sample] = await prometheus.waitFor('demo_total{app_id="x"}', is(3));
  assert.deepEqual(sample?.metric, { __name__: 'demo_total', app_id: 'x', instance: target, job: 'courier' });
  assert.deepEqual(await prometheus.targets(), [{ scrapeUrl: `http://${target}/`, health: 'up', lastError: '' }]);

  value = 5;
  await prometheus.waitFor('demo_total{app_id="x"}', is(5));
});
