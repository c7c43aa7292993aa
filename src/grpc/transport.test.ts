// Courier client → Courier server: how failures are classified (the retry policy depends on it),
// backpressure, graceful close and leaks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { GrpcStatus } from '../errors/index.js';
import { ChannelPool, type CallResult } from './channel.js';
import { GrpcServer, type ServerCall } from './server.js';

function call(pool: ChannelPool, port: number, path: string, messages: Buffer[], options: { signal?: AbortSignal } = {}) {
  return new Promise<{ result: CallResult; messages: Buffer[] }>((resolve) => {
    const c = pool.get({ host: '127.0.0.1', port }).call(path, {}, options);
    const got: Buffer[] = [];
    c.setReader({ headers: () => {}, message: (m) => got.push(Buffer.from(m)), end: (result) => resolve({ result, messages: got }) });
    for (const m of messages) c.sendMessage(m);
    c.end();
  });
}

function echoServer(): GrpcServer {
  const server = new GrpcServer();
  server.register('/t.S/Echo', (c: ServerCall) => {
    const got: Buffer[] = [];
    c.setReader({ message: (m) => got.push(Buffer.from(m)), end: () => (c.sendMessage(Buffer.concat(got)), c.end({ code: 0 })), error: () => {} });
  });
  return server;
}

test('connect-failed: a closed port', async () => {
  const probe = createNetServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const pool = new ChannelPool();
  const { result } = await call(pool, port, '/t.S/Echo', [Buffer.from('x')]);
  assert.equal(result.transport, 'connect-failed');
  assert.equal(result.code, GrpcStatus.UNAVAILABLE);
  assert.match(result.message, new RegExp(`connection to 127\\.0\\.0\\.1:${port} failed: .*ECONNREFUSED`));
  await pool.close();
});

test('connect-failed: a listener that never speaks HTTP/2 times out', async () => {
  const sockets: Socket[] = [];
  const silent = createNetServer((s) => sockets.push(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const pool = new ChannelPool({ connectTimeoutMs: 200 });
  const { result } = await call(pool, (silent.address() as AddressInfo).port, '/t.S/Echo', [Buffer.from('x')]);
  assert.equal(result.transport, 'connect-failed');
  assert.match(result.message, /timed out after 200ms/);
  await pool.close();
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => silent.close(() => r()));
});

test('refused: a server that is shutting down refuses new calls without processing them', async () => {
  const server = new GrpcServer();
  let started = 0;
  let release = (): void => {};
  server.register('/t.S/Hold', (c) => {
    started++;
    c.setReader({ message: () => {}, end: () => (release = () => c.end({ code: 0 })), error: () => {} });
  });
  const { port } = await server.listen('127.0.0.1', 0);
  const pool = new ChannelPool();
  const first = call(pool, port, '/t.S/Hold', [Buffer.from('x')]);
  while (started === 0) await new Promise((r) => setTimeout(r, 5));
  const closing = server.close({ graceMs: 2000 });
  await new Promise((r) => setTimeout(r, 50));
  const second = await call(pool, port, '/t.S/Hold', [Buffer.from('y')]);
  assert.ok(second.result.transport === 'refused' || second.result.transport === 'connect-failed', JSON.stringify(second.result));
  assert.equal(second.result.code, GrpcStatus.UNAVAILABLE);
  assert.equal(started, 1, 'the refused call never reached a handler');
  release();
  assert.equal((await first).result.code, GrpcStatus.OK, 'the call in flight finished during the grace period');
  await closing;
  await pool.close();
});

test('reset: the server dies in the middle of a call', async () => {
  const server = new GrpcServer();
  let serverCall: ServerCall | undefined;
  server.register('/t.S/Hold', (c) => {
    serverCall = c;
    c.setReader({ message: () => {}, end: () => {}, error: () => {} });
  });
  const { port } = await server.listen('127.0.0.1', 0);
  const pool = new ChannelPool();
  const pending = call(pool, port, '/t.S/Hold', [Buffer.from('x')]);
  while (serverCall === undefined) await new Promise((r) => setTimeout(r, 5));
  serverCall.sendHeaders();
  await new Promise((r) => setTimeout(r, 20));
  await server.close({ graceMs: 0 });
  const { result } = await pending;
  assert.notEqual(result.code, GrpcStatus.OK);
  assert.ok(result.transport === 'reset' || result.code === GrpcStatus.UNAVAILABLE, JSON.stringify(result));
  assert.equal(result.headersReceived, true);
  await pool.close();
});

test('a server error before any response is a status, not a transport failure', async () => {
  const server = new GrpcServer();
  server.register('/t.S/No', (c) => c.end({ code: GrpcStatus.UNAVAILABLE, message: 'app is not in a healthy state' }));
  const { port } = await server.listen('127.0.0.1', 0);
  const pool = new ChannelPool();
  const { result } = await call(pool, port, '/t.S/No', [Buffer.from('x')]);
  assert.equal(result.code, GrpcStatus.UNAVAILABLE);
  assert.equal(result.message, 'app is not in a healthy state');
  assert.equal(result.transport, undefined);
  assert.equal(result.headersReceived, false, 'Trailers-Only');
  await pool.close();
  await server.close({ graceMs: 0 });
});

test('message limits on both sides are RESOURCE_EXHAUSTED', async () => {
  const server = new GrpcServer({ maxReceiveMessageBytes: 1024 });
  server.register('/t.S/Echo', (c) => c.setReader({ message: () => {}, end: () => c.end({ code: 0 }), error: () => {} }));
  const { port } = await server.listen('127.0.0.1', 0);
  const pool = new ChannelPool({ maxSendMessageBytes: 4096 });
  assert.equal((await call(pool, port, '/t.S/Echo', [Buffer.alloc(2048)])).result.code, GrpcStatus.RESOURCE_EXHAUSTED);
  assert.equal((await call(pool, port, '/t.S/Echo', [Buffer.alloc(8192)])).result.code, GrpcStatus.RESOURCE_EXHAUSTED);
  await pool.close();
  await server.close({ graceMs: 0 });
});

test('backpressure: a paused reader stops the sender; resumed, 50 MiB pass in full', async () => {
  const server = new GrpcServer({ maxReceiveMessageBytes: 1 << 20 });
  let received = 0;
  let serverCall: ServerCall | undefined;
  server.register('/t.S/Sink', (c) => {
    serverCall = c;
    c.setReader({ message: (m) => (received += m.length), end: () => c.end({ code: 0 }), error: () => {} });
    c.pause();
  });
  const { port } = await server.listen('127.0.0.1', 0);
  const pool = new ChannelPool({ maxSendMessageBytes: 1 << 20 });
  const client = pool.get({ host: '127.0.0.1', port }).call('/t.S/Sink', {});
  const done = new Promise<CallResult>((resolve) => client.setReader({ headers: () => {}, message: () => {}, end: resolve }));
  const chunk = Buffer.alloc(64 * 1024, 1);
  // While the server is paused, the sender soon sees a full buffer.
  let writes = 0;
  while (client.sendMessage(chunk)) writes++;
  assert.ok(writes < 64, `sender stopped after ${writes} writes`);
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(received < 8 * 1024 * 1024, 'nothing beyond the flow-control windows was delivered');
  serverCall?.resume();
  const total = 50 * 1024 * 1024;
  let sent = (writes + 1) * chunk.length;
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      while (sent < total) {
        sent += chunk.length;
        if (!client.sendMessage(chunk)) {
          client.onDrain(pump);
          return;
        }
      }
      client.end();
      resolve();
    };
    client.onDrain(pump);
  });
  assert.equal((await done).code, GrpcStatus.OK);
  assert.equal(received, sent);
  await pool.close();
  await server.close({ graceMs: 0 });
});

test('a channel reconnects after the server restarts on the same port', async () => {
  let server = echoServer();
  const { port } = await server.listen('127.0.0.1', 0);
  const pool = new ChannelPool();
  assert.equal((await call(pool, port, '/t.S/Echo', [Buffer.from('a')])).messages[0]?.toString(), 'a');
  await server.close({ graceMs: 0 });
  server = echoServer();
  await server.listen('127.0.0.1', port);
  let reply: string | undefined;
  for (let attempt = 0; attempt < 3 && reply === undefined; attempt++) {
    const r = await call(pool, port, '/t.S/Echo', [Buffer.from('b')]);
    if (r.result.code === 0) reply = r.messages[0]?.toString();
  }
  assert.equal(reply, 'b');
  await pool.close();
  await server.close({ graceMs: 0 });
});

test('IPv6 loopback works', async () => {
  const server = echoServer();
  const { port } = await server.listen('::1', 0);
  const pool = new ChannelPool();
  const r = await new Promise<{ result: CallResult; messages: Buffer[] }>((resolve) => {
    const c = pool.get({ host: '::1', port }).call('/t.S/Echo', {});
    const got: Buffer[] = [];
    c.setReader({ headers: () => {}, message: (m) => got.push(Buffer.from(m)), end: (result) => resolve({ result, messages: got }) });
    c.sendMessage(Buffer.from('v6'));
    c.end();
  });
  assert.equal(r.messages[0]?.toString(), 'v6');
  await pool.close();
  await server.close({ graceMs: 0 });
});

test('closing the pool and the server leaves no sockets or timers behind', async () => {
  const before = new Set(process.getActiveResourcesInfo());
  const server = echoServer();
  const { port } = await server.listen('127.0.0.1', 0);
  const pool = new ChannelPool();
  await Promise.all(Array.from({ length: 20 }, (_, i) => call(pool, port, '/t.S/Echo', [Buffer.from(String(i))])));
  await pool.close();
  await server.close({ graceMs: 100 });
  await new Promise((r) => setTimeout(r, 50));
  const leftover = process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'TCPServerWrap' || r === 'Http2Session');
  assert.deepEqual(leftover.filter((r) => !before.has(r)), []);
});

test('refused: REFUSED_STREAM means "not processed"', async () => {
  const { createServer: createH2, constants } = await import('node:http2');
  const raw = createH2();
  raw.on('stream', (stream) => {
    stream.on('error', () => {});
    stream.close(constants.NGHTTP2_REFUSED_STREAM);
  });
  await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
  const pool = new ChannelPool();
  const { result } = await call(pool, (raw.address() as AddressInfo).port, '/t.S/Echo', [Buffer.from('x')]);
  assert.equal(result.transport, 'refused', JSON.stringify(result));
  assert.equal(result.code, GrpcStatus.UNAVAILABLE);
  await pool.close();
  await new Promise<void>((r) => raw.close(() => r()));
});
