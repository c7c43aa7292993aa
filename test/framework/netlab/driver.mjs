// Runs on a test host and makes calls there for the test, which cannot reach into the namespace:
// one JSON command per stdin line, one JSON answer per stdout line ({ id, ... }).
import { createInterface } from 'node:readline';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function get(url, timeoutMs) {
  const started = Date.now();
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    return res.status === 200 ? { host: text, ms: Date.now() - started } : { error: `HTTP ${res.status}: ${text}`, ms: Date.now() - started };
  } catch (err) {
    return { error: String(err?.cause?.message ?? err?.message ?? err), ms: Date.now() - started };
  }
}

const ops = {
  async healthy({ port, timeoutMs = 20000 }) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/v1.0/healthz`);
        await res.arrayBuffer();
        if (res.status === 204) return { ok: true };
      } catch {}
      if (Date.now() > deadline) return { ok: false };
      await sleep(50);
    }
  },
  async calls({ url, count, timeoutMs = 30000 }) {
    const results = [];
    for (let i = 0; i < count; i++) results.push(await get(url, timeoutMs));
    return { results };
  },
  async load({ url, rate, seconds, timeoutMs = 40000 }) {
    const t0 = Date.now();
    const total = Math.round(rate * seconds);
    const pending = [];
    for (let i = 0; i < total; i++) {
      const due = t0 + (i * 1000) / rate;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
      const t = Date.now() - t0;
      pending.push(get(url, timeoutMs).then((r) => ({ t, ...r })));
    }
    return { results: await Promise.all(pending) };
  },
};

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const cmd = JSON.parse(line);
  Promise.resolve(ops[cmd.op](cmd)).then(
    (out) => process.stdout.write(`${JSON.stringify({ id: cmd.id, ...out })}\n`),
    (err) => process.stdout.write(`${JSON.stringify({ id: cmd.id, failed: String(err) })}\n`),
  );
});
rl.on('close', () => process.exit(0));
process.stdout.write('ready\n');
