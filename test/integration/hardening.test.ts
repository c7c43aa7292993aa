// What a hostile local client or peer can do to a sidecar's ports: connections that never finish
// their handshake, more connections than the sidecar allows, requests with too many headers.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { TestEnv } from '../framework/env.js';
import { startSidecar } from '../framework/sidecar-process.js';
import { startSentry } from '../framework/sentry-process.js';
import { startApp } from '../framework/test-app.js';
import { errorOf, send } from '../framework/http-client.js';

/** A raw TCP connection that writes `trickle` one byte every 300 ms until it is closed; resolves with how long it stayed open. */
function trickle(port: number, text: string): { opened: Promise<void>; closedAfterMs: Promise<number>; socket: Socket } {
  const socket = connect({ host: '127.0.0.1', port });
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const opened = new Promise<void>((resolve, reject) => {
    socket.once('connect', () => {
      let i = 0;
      timer = setInterval(() => {
        if (socket.writable) socket.write(text.charAt(i % text.length));
        i++;
      }, 300);
      resolve();
    });
    socket.once('error', reject);
  });
  const closedAfterMs = new Promise<number>((resolve) =>
    socket.once('close', () => {
      clearInterval(timer);
      resolve(Date.now() - started);
    }),
  );
  // Like an attacker, never read: the server must close the connection itself.
  socket.on('error', () => {});
  return { opened, closedAfterMs, socket };
}

/** Resolves true if the connection is closed by the server within `ms`, false if it is still open then. */
function closedWithin(socket: Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (socket.destroyed) {
      resolve(true);
      return;
    }
    const timer = setTimeout(() => resolve(false), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function openIdle(port: number, count: number): Promise<Socket[]> {
  const sockets: Socket[] = [];
  for (let i = 0; i < count; i++) {
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('connect', resolve));
    sockets.push(socket);
  }
  return sockets;
}

const PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
/** Far longer than the bound in these tests, far shorter than a trickle of the whole preface takes. */
const WIDE_MARGIN_MS = 15_000;

describe('connection hardening', () => {
  const env = new TestEnv();
  after(() => env.close());

  test('connections that trickle their HTTP/2 preface or HTTP request head are closed after --handshake-timeout, on every port', async () => {
    const app = await startApp(env, (a) => a.route('/hi', (_req, res) => res.end('hi')));
    const s = await startSidecar(env, { appId: 'slowloris', appPort: app.port, waitForApp: true, args: ['--handshake-timeout', '1s'] });
    const grpc = trickle(s.grpcPort, PREFACE);
    const internal = trickle(s.internalPort, PREFACE);
    const http = trickle(s.httpPort, 'GET /v1.0/healthz HTTP/1.1\r\nX-Slow: ');
    await Promise.all([grpc.opened, internal.opened, http.opened]);
    const within = (c: { closedAfterMs: Promise<number> }): Promise<number> =>
      Promise.race([c.closedAfterMs, new Promise<number>((r) => setTimeout(() => r(Infinity), WIDE_MARGIN_MS))]);
    const [grpcMs, internalMs, httpMs] = [await within(grpc), await within(internal), await within(http)];
    for (const c of [grpc, internal, http]) c.socket.destroy();
    assert.ok(grpcMs < WIDE_MARGIN_MS, 'the gRPC API port kept a connection that never finished its preface');
    assert.ok(internalMs < WIDE_MARGIN_MS, 'the internal port kept a connection that never finished its preface');
    assert.ok(httpMs < WIDE_MARGIN_MS, 'the HTTP API port kept a connection that never finished its request head');
    assert.ok(grpcMs >= 900 && internalMs >= 900, `closed before the bound: ${grpcMs} / ${internalMs} ms`);
    // Well-behaved clients are unaffected.
    assert.equal((await send(s.httpPort, { method: 'POST', path: '/v1.0/invoke/slowloris/method/hi' })).text, 'hi');
  });

  test('with mTLS, a connection that never starts its TLS handshake is closed after --handshake-timeout', async () => {
    const sentry = await startSentry(env);
    const s = await startSidecar(env, { appId: 'tlsloris', ...sentry.sidecar('tlsloris'), args: [...sentry.sidecar('tlsloris').args, '--handshake-timeout', '1s'] });
    const [silent] = await openIdle(s.internalPort, 1);
    assert.ok(silent !== undefined);
    assert.equal(await closedWithin(silent, WIDE_MARGIN_MS), true, 'the mTLS internal port kept a connection that never sent a ClientHello');
  });

  test('--max-connections caps each port; the connections over it are refused and logged once, not once each', async () => {
    const app = await startApp(env, (a) => a.route('/hi', (_req, res) => res.end('hi')));
    // No waitForApp: its keep-alive connection would take one of the four places.
    const s = await startSidecar(env, { appId: 'capped', appPort: app.port, args: ['--max-connections', '4', '--handshake-timeout', '60s'] });
    for (const port of [s.httpPort, s.grpcPort, s.internalPort]) {
      const held = await openIdle(port, 4);
      const over = await openIdle(port, 6);
      const refused = await Promise.all(over.map((socket) => closedWithin(socket, WIDE_MARGIN_MS)));
      assert.deepEqual(refused, [true, true, true, true, true, true], `port ${port}: connections over the cap were accepted`);
      assert.ok(held.every((socket) => !socket.destroyed), 'connections within the cap stay open');
      // Once one closes, a new connection is accepted again.
      held[0]?.destroy();
      await new Promise((resolve) => setTimeout(resolve, 200));
      const [again] = await openIdle(port, 1);
      assert.equal(await closedWithin(again as Socket, 500), false, `port ${port}: a connection under the cap was refused`);
      for (const socket of [...held, again as Socket]) socket.destroy();
    }
    // The HTTP API still serves once the flood is gone.
    await waitUntil(async () => (await send(s.httpPort, { method: 'POST', path: '/v1.0/invoke/capped/method/hi' }).catch(() => undefined))?.text === 'hi');
    const lines = s.output.split('\n').filter((l) => l.includes('--max-connections'));
    assert.ok(lines.length >= 1 && lines.length <= 6, `refusals should be summarised, got ${lines.length} lines:\n${lines.join('\n')}`);
    assert.match(s.output, /refused \d+ connections? to the HTTP API port: 4 already open \(--max-connections\)/);
  });

  test('a request with more headers than --max-request-headers is refused with 431; under it, the app sees the caller identity first', async () => {
    // A Node app that accepts large heads and many headers (Node 20 keeps only the first 1000 by default
    // and Node 24 refuses more with 431, so the app lifts the count), and says where the caller's identity was.
    const app = createServer({ maxHeaderSize: 1024 * 1024 }, (req, res) => {
      req.resume();
      const names = req.rawHeaders.filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase());
      res.end(JSON.stringify({ caller: req.headers['dapr-caller-app-id'] ?? null, count: names.length, callerAt: names.indexOf('dapr-caller-app-id'), firstFiller: names.indexOf('x-filler-0') }));
    });
    app.maxHeadersCount = 10_000;
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    env.track({ close: () => new Promise<void>((resolve) => app.close(() => resolve())) });
    const appPort = (app.address() as AddressInfo).port;
    await startSidecar(env, { appId: 'many-callee', appPort, waitForApp: true });
    const strict = await startSidecar(env, { appId: 'many-strict' });
    const lenient = await startSidecar(env, { appId: 'many-lenient', args: ['--max-request-headers', '0', '--read-buffer-size', '256Ki'] });

    const headers = (n: number): Record<string, string> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-filler-${i}`, 'x']));
    const tooMany = await send(strict.httpPort, { path: '/v1.0/invoke/many-callee/method/who', headers: headers(150) });
    assert.equal(tooMany.status, 431, tooMany.text);
    assert.equal(errorOf(tooMany).errorCode, 'ERR_HEADERS_TOO_LARGE');
    assert.match(errorOf(tooMany).message, /more than 100 headers \(--max-request-headers\)/);
    const fine = await send(strict.httpPort, { path: '/v1.0/invoke/many-callee/method/who', headers: headers(90) });
    assert.equal(fine.status, 200, fine.text);
    assert.equal((JSON.parse(fine.text) as { caller: string }).caller, 'many-strict');

    // With no cap, 2500 headers and a spoofed identity: every header arrives, Courier's identity headers
    // come before the caller's (an app that keeps only the first N headers still sees them), and the
    // spoofed one is gone.
    const flood = await send(lenient.httpPort, { path: '/v1.0/invoke/many-callee/method/who', headers: { ...headers(2500), 'dapr-caller-app-id': 'spoofed' } });
    assert.equal(flood.status, 200, flood.text);
    const seen = JSON.parse(flood.text) as { caller: string; count: number; callerAt: number; firstFiller: number };
    assert.equal(seen.caller, 'many-lenient');
    assert.ok(seen.count >= 2500, `the app got ${seen.count} headers`);
    assert.ok(seen.callerAt >= 0 && seen.callerAt < seen.firstFiller, `dapr-caller-app-id at ${seen.callerAt}, the caller's first header at ${seen.firstFiller}`);

    // A head larger than --read-buffer-size is 431 too.
    const big = await send(strict.httpPort, { path: '/v1.0/invoke/many-callee/method/who', headers: { 'x-big': 'y'.repeat(20_000) } });
    assert.equal(big.status, 431);
    assert.equal(errorOf(big).errorCode, 'ERR_HEADERS_TOO_LARGE');
  });
});

async function waitUntil(condition: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
