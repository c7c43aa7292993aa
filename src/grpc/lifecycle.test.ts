// Server shutdown, reconnects, several listeners, connection limits, idle close, keepalive and
// silence detection, the pool, and proof that closing leaves nothing behind.
import assert from 'node:assert/strict';
import { getEventListeners, setMaxListeners } from 'node:events';
import { constants as h2, createServer as createHttp2Server, type Http2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { describe, test } from 'node:test';
import { GrpcStatus } from '../errors/index.js';
import type { CallResult } from './call.js';
import { GrpcChannel } from './channel.js';
import { messageHead } from './framing.js';
import { SessionKeeper } from './keepalive.js';
import { ChannelPool } from './pool.js';
import { GrpcServer } from './server.js';
import type { ServerCall } from './call.js';
import { collect, eventually, openChannel, registerEchoHandlers, sendAll, startEchoServer, startFreezableProxy, TRANSPORTS, type TestChannel } from './testing/helpers.js';

async function unary(channel: TestChannel, text = 'x'): Promise<CallResult> {
  const call = channel.call('/test.Echo/Unary');
  const done = collect(call);
  sendAll(call, [Buffer.from(text)]);
  return (await done).result;
}

/** Registers `/test.Hold/Call`, whose calls wait until the test ends them; returns them as they come. */
function holdCalls(server: GrpcServer): ServerCall[] {
  const held: ServerCall[] = [];
  server.register('/test.Hold/Call', (call) => {
    held.push(call);
    call.setReader({ message: () => {}, end: () => {}, error: () => {} });
  });
  return held;
}

function startHeld(channel: TestChannel): Promise<CallResult> {
  const call = channel.call('/test.Hold/Call');
  const done = collect(call);
  sendAll(call, [Buffer.from('hold')]);
  return done.then((c) => c.result);
}

/** Silence detection as the sidecar-to-sidecar hop sets it (src/api/internal/transport.ts). */
const SILENCE = { silenceMs: 500, silenceAckTimeoutMs: 1000 } as const;

/** Sockets, servers and timers currently keeping the event loop busy. */
function activeHandles(): string[] {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'TCPServerWrap' || r === 'Timeout');
}

for (const kind of TRANSPORTS) describe(`lifecycle (${kind}; the server serves both)`, () => {
  test('close({ graceMs }) lets an in-flight call finish, refuses new connections, then resolves', async () => {
    const { server, target } = await startEchoServer({ lane: true });
    const held = holdCalls(server);
    const channel = openChannel(kind, target);
    try {
      const inFlight = startHeld(channel);
      await eventually(() => held.length === 1, 5000, 'the held call');
      let closed = false;
      const closing = server.close({ graceMs: 10_000 }).then(() => {
        closed = true;
      });
      // New calls cannot reach the closing server: the connection drains after GOAWAY and the
      // listener is gone, so they fail without having been sent.
      await eventually(() => channel.connectionCount === 1, 5000);
      const late = await unary(channel);
      assert.ok(late.transport === 'connect-failed' || late.transport === 'refused', late.message);
      assert.equal(closed, false, 'close waits for the call in flight');
      const serverCall = held[0] as ServerCall;
      assert.equal(serverCall.signal.aborted, false);
      serverCall.sendMessage(Buffer.from('finished'));
      serverCall.end({ code: GrpcStatus.OK });
      assert.equal((await inFlight).code, GrpcStatus.OK);
      await closing;
      assert.equal(server.connectionCount, 0);
      assert.equal(server.close(), server.close(), 'close is idempotent');
    } finally {
      await channel.close();
      await server.close();
    }
  });

  test('close({ graceMs }) cancels calls still running after the grace period; clients see reset', async () => {
    const { server, target } = await startEchoServer({ lane: true });
    const held = holdCalls(server);
    const channel = openChannel(kind, target);
    try {
      const inFlight = startHeld(channel);
      await eventually(() => held.length === 1, 5000, 'the held call');
      const serverCall = held[0] as ServerCall;
      let readerError: number | undefined;
      serverCall.signal.addEventListener('abort', () => {
        readerError = (serverCall.signal.reason as { grpcCode?: number }).grpcCode;
      });
      await server.close({ graceMs: 100 });
      assert.equal(serverCall.signal.aborted, true);
      assert.equal(readerError, GrpcStatus.UNAVAILABLE);
      const result = await inFlight;
      assert.equal(result.transport, 'reset');
      assert.equal(server.connectionCount, 0);
      // Ending after the cancellation is a harmless no-op.
      serverCall.end({ code: GrpcStatus.OK });
    } finally {
      await channel.close();
    }
  });

  test('a channel reconnects after the server restarts on the same port', async () => {
    const first = await startEchoServer({ lane: true });
    const { port } = first.target;
    const channel = openChannel(kind, first.target);
    try {
      assert.equal((await unary(channel, 'one')).code, GrpcStatus.OK);
      await first.server.close();
      await eventually(() => channel.connectionCount === 0, 5000, 'the connection to drop');
      const down = await unary(channel);
      assert.equal(down.transport, 'connect-failed');
      const second = new GrpcServer({ lane: true });
      registerEchoHandlers(second);
      await second.listen('127.0.0.1', port);
      try {
        assert.equal((await unary(channel, 'two')).code, GrpcStatus.OK);
      } finally {
        await channel.close();
        await second.close();
      }
    } finally {
      await channel.close();
    }
  });

  test('listen() on 127.0.0.1 and ::1 with the same port serves both with the same handlers', async () => {
    const server = new GrpcServer({ lane: true });
    registerEchoHandlers(server);
    const v4 = await server.listen('127.0.0.1', 0);
    const v6 = await server.listen('::1', v4.port);
    assert.equal(v6.port, v4.port);
    const a = openChannel(kind, { host: '127.0.0.1', port: v4.port });
    const b = openChannel(kind, { host: '::1', port: v4.port });
    try {
      assert.equal((await unary(a)).code, GrpcStatus.OK);
      assert.equal((await unary(b)).code, GrpcStatus.OK);
      assert.equal(server.connectionCount, 2);
    } finally {
      await a.close();
      await b.close();
      await server.close();
    }
  });

  test("a second connection is opened when the first reaches the server's MAX_CONCURRENT_STREAMS", async () => {
    const { server, target } = await startEchoServer({ maxConcurrentStreams: 2, lane: true });
    const held = holdCalls(server);
    const channel = openChannel(kind, target);
    try {
      const calls = Array.from({ length: 5 }, () => startHeld(channel));
      await eventually(() => held.length === 5, 5000, 'all five calls to reach the server');
      assert.equal(channel.connectionCount, 3);
      for (const call of held) call.end({ code: GrpcStatus.OK });
      const results = await Promise.all(calls);
      assert.ok(results.every((r) => r.code === GrpcStatus.OK));
    } finally {
      await channel.close();
      await server.close();
    }
  });

  test('idle connections are closed on both sides', async () => {
    const { server, target } = await startEchoServer({ idleSessionTimeoutMs: 150, lane: true });
    const client = openChannel(kind, target, { idleTimeoutMs: 100 });
    try {
      assert.equal((await unary(client)).code, GrpcStatus.OK);
      assert.equal(client.connectionCount, 1);
      await eventually(() => client.connectionCount === 0 && server.connectionCount === 0, 5000, 'the idle connection to close');
      // The next call simply reconnects.
      assert.equal((await unary(client)).code, GrpcStatus.OK);
    } finally {
      await client.close();
      await server.close();
    }
    // The server closes idle connections by itself too.
    const other = await startEchoServer({ idleSessionTimeoutMs: 100, lane: true });
    const lazy = openChannel(kind, other.target, { idleTimeoutMs: 0 });
    try {
      assert.equal((await unary(lazy)).code, GrpcStatus.OK);
      await eventually(() => lazy.connectionCount === 0 && other.server.connectionCount === 0, 5000, 'the server to close the idle connection');
    } finally {
      await lazy.close();
      await other.server.close();
    }
  });

  test('server keepalive: a client that stops answering pings is dropped and its calls abort', async () => {
    const { server, target } = await startEchoServer({ pingIntervalMs: 50, pingTimeoutMs: 150, lane: true });
    const held = holdCalls(server);
    const proxy = await startFreezableProxy(target.port);
    // The client itself never pings, so only the server can notice.
    const channel = openChannel(kind, { host: '127.0.0.1', port: proxy.port }, { pingIntervalMs: 0, silenceMs: 0 });
    try {
      const inFlight = startHeld(channel);
      await eventually(() => held.length === 1, 5000, 'the held call');
      proxy.freeze();
      const serverCall = held[0] as ServerCall;
      await eventually(() => serverCall.signal.aborted, 5000, 'the server to drop the connection');
      await eventually(() => server.connectionCount === 0, 5000, 'the connection to be gone');
      await channel.close();
      assert.equal((await inFlight).transport, 'reset');
    } finally {
      await channel.close();
      await proxy.close();
      await server.close();
    }
  });

  // Courier's own HTTP/2 client carries calls to the local app only, which needs no silence detection.
  test('silence detection: a call on a connection that stops answering fails reset within about 1.5 s; the next call opens a new connection', { skip: kind === 'h2' }, async () => {
    const { server, target } = await startEchoServer({ lane: true });
    const held = holdCalls(server);
    const proxy = await startFreezableProxy(target.port);
    const channel = openChannel(kind, { host: '127.0.0.1', port: proxy.port }, SILENCE);
    try {
      assert.equal((await unary(channel, 'warm')).code, GrpcStatus.OK);
      const inFlight = startHeld(channel);
      await eventually(() => held.length === 1, 5000, 'the held call');
      proxy.freeze();
      const frozenAt = performance.now();
      const result = await inFlight;
      const ms = Math.round(performance.now() - frozenAt);
      console.log(`# ${kind}: a call waiting on a frozen connection failed ${ms} ms after the freeze: ${result.message}`);
      assert.equal(result.code, GrpcStatus.UNAVAILABLE);
      assert.equal(result.transport, 'reset', 'the callee may have processed it: retried only when idempotent');
      assert.match(result.message, /was lost: nothing received for 500ms while calls were waiting, and a ping was not acknowledged within 1000ms/);
      assert.ok(ms < 4000, `failed after ${ms} ms`);
      await eventually(() => channel.connectionCount === 0, 1000, 'the dead connection to be gone');
      // New connections through the proxy are forwarded: the next call works, on a new connection.
      assert.equal((await unary(channel, 'again')).code, GrpcStatus.OK);
      assert.equal(channel.connectionCount, 1);
    } finally {
      await channel.close();
      await proxy.close();
      await server.close({ graceMs: 0 });
    }
  });

  test('calls queued while connecting fail refused when the channel is closed', async () => {
    const { server, target } = await startEchoServer({ lane: true });
    const channel = openChannel(kind, target);
    try {
      const pending = unary(channel);
      const closing = channel.close();
      const result = await pending;
      assert.equal(result.transport, 'refused');
      await closing;
    } finally {
      await server.close();
    }
  });

});

describe('SessionKeeper', () => {
  test('calls may be counted before start(), with and without silence detection', () => {
    for (const silence of [undefined, { silenceMs: 500, ackTimeoutMs: 1000, received: () => 0, onDead: () => {} }]) {
      // An h2c app session counts calls queued before the server's SETTINGS, then starts the keeper.
      const keeper = new SessionKeeper({ destroyed: false, closed: false, ping: () => true }, {
        pingIntervalMs: 10_000,
        pingTimeoutMs: 5000,
        idleTimeoutMs: 60_000,
        silence,
        onIdle: () => {},
        onPingTimeout: () => {},
      });
      keeper.callStarted();
      keeper.start();
      keeper.callEnded();
      keeper.stop();
      assert.equal(keeper.active, 0);
    }
  });
});

describe('silence detection over HTTP/2, against a server with gRPC\'s ping policy', () => {
  // A server that answers after `delayMs` and enforces the ping policy as grpc-go's does (Dapr's
  // internal server: MinTime 8 s): a PING less than 8 s after the previous one, with no HEADERS or
  // DATA written since, is a strike; a PING after such a write clears the strikes; the third strike
  // closes the connection with GOAWAY ENHANCE_YOUR_CALM.
  async function startStrictServer(delayMs: number): Promise<{ port: number; pings: () => number; maxStrikes: () => number; goaways: () => number; close(): Promise<void> }> {
    let pings = 0;
    let maxStrikes = 0;
    let goaways = 0;
    const sessions = new Set<Http2Session>();
    const server = createHttp2Server();
    server.on('session', (session) => {
      sessions.add(session);
      session.on('close', () => sessions.delete(session));
      let strikes = 0;
      let lastPingAt = Number.NEGATIVE_INFINITY;
      let wrote = false;
      session.on('ping', () => {
        pings++;
        const now = performance.now();
        if (wrote) strikes = 0;
        else if (now - lastPingAt < 8000) strikes++;
        wrote = false;
        lastPingAt = now;
        maxStrikes = Math.max(maxStrikes, strikes);
        if (strikes > 2) {
          goaways++;
          session.goaway(h2.NGHTTP2_ENHANCE_YOUR_CALM, 0, Buffer.from('too_many_pings'));
          session.destroy();
        }
      });
      session.on('stream', (stream) => {
        const body: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => body.push(chunk));
        stream.on('end', () => {
          const timer = setTimeout(() => {
            if (stream.destroyed) return;
            const message = Buffer.concat(body).subarray(5);
            wrote = true;
            stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
            stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
            stream.write(messageHead(message.length));
            stream.end(message);
          }, delayMs);
          stream.once('close', () => clearTimeout(timer));
        });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
      port: (server.address() as AddressInfo).port,
      pings: () => pings,
      maxStrikes: () => maxStrikes,
      goaways: () => goaways,
      close: async () => {
        for (const session of sessions) session.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
  }

  test('a slow handler (3 s) on a healthy connection completes; silence PINGs never earn a second strike', async () => {
    const strict = await startStrictServer(3000);
    const channel = new GrpcChannel({ host: '127.0.0.1', port: strict.port }, SILENCE);
    try {
      for (const round of [1, 2]) {
        const started = performance.now();
        const result = await unary(channel, `slow ${round}`);
        const ms = Math.round(performance.now() - started);
        console.log(`# http2: slow call ${round} took ${ms} ms; PINGs so far ${strict.pings()}, most strikes ${strict.maxStrikes()}`);
        assert.equal(result.code, GrpcStatus.OK, result.message);
        assert.ok(ms >= 2900, `${ms} ms`);
      }
      assert.ok(strict.pings() >= 2, `silence detection pinged (${strict.pings()} PINGs)`);
      assert.ok(strict.maxStrikes() <= 1, `at most one strike at a time (${strict.maxStrikes()})`);
      assert.equal(strict.goaways(), 0);
      assert.equal(channel.connectionCount, 1, 'one connection throughout');
    } finally {
      await channel.close();
      await strict.close();
    }
  });
});

describe('lifecycle (the HTTP/2 channel pool)', () => {
  test('the pool keys channels by host:port; evict destroys one and fails its calls', async () => {
    const { server, target } = await startEchoServer();
    const held = holdCalls(server);
    const pool = new ChannelPool();
    try {
      const channel = pool.get(target);
      assert.equal(pool.get({ host: target.host, port: target.port }), channel);
      assert.notEqual(pool.get({ host: '::1', port: target.port }), channel);
      assert.equal(pool.size, 2);
      assert.equal((await unary(channel)).code, GrpcStatus.OK);
      const inFlight = startHeld(channel);
      await eventually(() => held.length === 1, 5000, 'the held call');
      await pool.evict(target);
      const result = await inFlight;
      assert.equal(result.transport, 'reset');
      assert.equal(result.code, GrpcStatus.UNAVAILABLE);
      assert.match(result.message, /the channel was closed/);
      const fresh = pool.get(target);
      assert.notEqual(fresh, channel);
      assert.equal((await unary(fresh)).code, GrpcStatus.OK);
      // A call made on the evicted channel fails at once, without being sent.
      const afterEvict = await unary(channel);
      assert.equal(afterEvict.transport, 'refused');
    } finally {
      await pool.close();
      await server.close({ graceMs: 0 });
    }
  });

  test('closing the pool and the server leaves no sockets, listeners or timers', async () => {
    const before = activeHandles();
    const { server, target } = await startEchoServer({ pingIntervalMs: 1000 });
    const pool = new ChannelPool({ pingIntervalMs: 50 });
    const abort = new AbortController();
    setMaxListeners(100, abort.signal);
    const results = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const call = pool.get(target).call('/test.Echo/Unary', {}, { deadline: Date.now() + 60_000, signal: abort.signal });
        const done = collect(call);
        sendAll(call, [Buffer.from(`n${i}`)]);
        return (await done).result.code;
      }),
    );
    assert.ok(results.every((code) => code === GrpcStatus.OK));
    assert.equal(getEventListeners(abort.signal, 'abort').length, 0, 'finished calls removed their abort listeners');
    assert.ok(activeHandles().length > before.length);
    await pool.close();
    await server.close();
    assert.equal(server.connectionCount, 0);
    await eventually(() => activeHandles().length <= before.length, 2000, 'handles to be released');
    assert.deepEqual(activeHandles(), before);
  });

  test('closing lane channels and the server leaves no sockets, listeners or timers', async () => {
    const before = activeHandles();
    const { server, target } = await startEchoServer({ pingIntervalMs: 1000, lane: true });
    const channel = openChannel('lane', target, { pingIntervalMs: 50 });
    const abort = new AbortController();
    setMaxListeners(100, abort.signal);
    const results = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const call = channel.call('/test.Echo/Unary', {}, { deadline: Date.now() + 60_000, signal: abort.signal });
        const done = collect(call);
        sendAll(call, [Buffer.from(`n${i}`)]);
        return (await done).result.code;
      }),
    );
    assert.ok(results.every((code) => code === GrpcStatus.OK));
    assert.equal(getEventListeners(abort.signal, 'abort').length, 0, 'finished calls removed their abort listeners');
    assert.equal(server.laneConnectionCount, 1);
    await channel.close();
    await server.close();
    assert.equal(server.connectionCount, 0);
    await eventually(() => activeHandles().length <= before.length, 2000, 'handles to be released');
    assert.deepEqual(activeHandles(), before);
  });
});
