// Server shutdown, reconnects, several listeners, connection limits, idle close, the pool, and
// proof that closing leaves nothing behind.
import assert from 'node:assert/strict';
import { getEventListeners, setMaxListeners } from 'node:events';
import { describe, test } from 'node:test';
import { GrpcStatus } from '../errors/index.js';
import type { CallResult } from './call.js';
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
    const channel = openChannel(kind, { host: '127.0.0.1', port: proxy.port }, { pingIntervalMs: 0 });
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
