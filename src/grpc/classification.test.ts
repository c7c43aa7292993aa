// How calls that end without a status from the server are classified (CallResult.transport): the
// layer above retries `connect-failed` and `refused` freely, `reset` only for idempotent requests.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { constants as h2, createServer as createHttp2Server, type Http2Server, type ServerHttp2Stream } from 'node:http2';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { GrpcStatus } from '../errors/index.js';
import { GrpcChannel } from './channel.js';
import type { CallResult } from './call.js';
import type { ServerCall } from './call.js';
import { cancelStream } from './stream-reset.js';
import { collect, eventually, openChannel, sendAll, startEchoServer, startFreezableProxy, TRANSPORTS, type TestChannel } from './testing/helpers.js';

async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A bare HTTP/2 server whose behaviour per stream the test decides. */
async function rawServer(onStream: (stream: ServerHttp2Stream, path: string) => void): Promise<{ port: number; close(): Promise<void>; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server: Http2Server = createHttp2Server();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    onStream(stream, headers[':path'] ?? '');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    sockets,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function unary(channel: GrpcChannel | TestChannel, path = '/test.Echo/Unary', deadline?: number) {
  const call = channel.call(path, {}, deadline === undefined ? {} : { deadline });
  const done = collect(call);
  sendAll(call, [Buffer.from('x')]);
  return (await done).result;
}

describe('transport failure classification', () => {
  test('connect-failed: nothing listens on the port', async () => {
    const port = await freePort();
    const channel = new GrpcChannel({ host: '127.0.0.1', port });
    try {
      const result = await unary(channel);
      assert.equal(result.transport, 'connect-failed');
      assert.equal(result.code, GrpcStatus.UNAVAILABLE);
      assert.equal(result.headersReceived, false);
      assert.match(result.message, new RegExp(`^connection to 127\\.0\\.0\\.1:${port} failed: connect ECONNREFUSED`));
    } finally {
      await channel.close();
    }
  });

  test('connect-failed: an unusable address (bad port, unresolvable name)', async () => {
    for (const target of [
      { host: '127.0.0.1', port: 70_000 },
      { host: 'courier-test.invalid', port: 80 },
    ]) {
      const channel = new GrpcChannel(target, { connectTimeoutMs: 2000 });
      try {
        const result = await unary(channel);
        assert.equal(result.transport, 'connect-failed', result.message);
        assert.equal(result.code, GrpcStatus.UNAVAILABLE);
        assert.ok(result.message.startsWith(`connection to ${target.host}:${target.port} failed: `), result.message);
      } finally {
        await channel.close();
      }
    }
  });

  test('connect-failed: a TCP listener that never speaks HTTP/2 (connect timeout)', async () => {
    const silent: NetServer = createNetServer((socket) => socket.on('error', () => {}));
    const sockets = new Set<Socket>();
    silent.on('connection', (s: Socket) => sockets.add(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as AddressInfo;
    const channel = new GrpcChannel({ host: '127.0.0.1', port }, { connectTimeoutMs: 200 });
    try {
      const result = await unary(channel);
      assert.equal(result.transport, 'connect-failed');
      assert.equal(result.code, GrpcStatus.UNAVAILABLE);
      assert.equal(result.message, `connection to 127.0.0.1:${port} failed: timed out after 200ms`);
    } finally {
      await channel.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  test('connect-failed: an HTTP/1.1 server', async () => {
    const http1: NetServer = createNetServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', () => socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n'));
    });
    await new Promise<void>((resolve) => http1.listen(0, '127.0.0.1', resolve));
    const { port } = http1.address() as AddressInfo;
    const channel = new GrpcChannel({ host: '127.0.0.1', port });
    try {
      const result = await unary(channel);
      assert.equal(result.transport, 'connect-failed');
      assert.match(result.message, new RegExp(`^connection to 127\\.0\\.0\\.1:${port} failed: `));
    } finally {
      await channel.close();
      await new Promise<void>((resolve) => http1.close(() => resolve()));
    }
  });

  test('refused: RST_STREAM(REFUSED_STREAM)', async () => {
    const server = await rawServer((stream) => stream.close(h2.NGHTTP2_REFUSED_STREAM));
    const channel = new GrpcChannel({ host: '127.0.0.1', port: server.port });
    try {
      const result = await unary(channel);
      assert.equal(result.transport, 'refused');
      assert.equal(result.code, GrpcStatus.UNAVAILABLE);
      assert.match(result.message, /REFUSED_STREAM/);
    } finally {
      await channel.close();
      await server.close();
    }
  });

  for (const code of [h2.NGHTTP2_NO_ERROR, h2.NGHTTP2_ENHANCE_YOUR_CALM]) {
    test(`refused: a stream above GOAWAY's last-stream-id (GOAWAY error code ${code}); streams below it are not`, async () => {
      let first: ServerHttp2Stream | undefined;
      const server = await rawServer((stream) => {
        if (first === undefined) {
          first = stream;
          // Accept this one, refuse everything after it.
          stream.session?.goaway(code, stream.id);
          if (code === h2.NGHTTP2_NO_ERROR) {
            stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
            stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
            stream.resume();
            stream.on('end', () => stream.end());
          }
        }
      });
      const fresh = new GrpcChannel({ host: '127.0.0.1', port: server.port });
      try {
        // Two calls in the same tick share the connection: streams 1 and 3.
        const [one, three] = await Promise.all([unary(fresh), unary(fresh)]);
        if (code === h2.NGHTTP2_NO_ERROR) {
          assert.equal(one?.code, GrpcStatus.OK);
          assert.equal(one?.transport, undefined);
        } else {
          assert.equal(one?.transport, 'reset', 'the accepted stream died with the connection');
        }
        assert.equal(three?.transport, 'refused');
        assert.equal(three?.code, GrpcStatus.UNAVAILABLE);
      } finally {
        await fresh.close();
        await server.close();
      }
    });
  }

  test('reset: the server socket dies mid-call', async () => {
    const server = await rawServer((stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
      stream.write(Buffer.from([0, 0, 0, 0, 1, 0x41]));
      setTimeout(() => {
        for (const s of server.sockets) s.destroy();
      }, 20);
    });
    const channel = new GrpcChannel({ host: '127.0.0.1', port: server.port });
    try {
      const call = channel.call('/test.Echo/Unary');
      const done = collect(call);
      call.sendMessage(Buffer.from('x'));
      const { messages, result } = await done;
      assert.equal(messages.length, 1);
      assert.equal(result.transport, 'reset');
      assert.equal(result.code, GrpcStatus.UNAVAILABLE);
      assert.equal(result.headersReceived, true);
      assert.match(result.message, /was lost/);
    } finally {
      await channel.close();
      await server.close();
    }
  });

  test('reset: RST_STREAM(INTERNAL_ERROR) maps to INTERNAL; RST_STREAM(CANCEL) from the server to CANCELLED', async () => {
    const server = await rawServer((stream, path) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
      // Not stream.close(code): Node would send END_STREAM first (see stream-reset.ts), and a client
      // that had half-closed would see a stream that simply ended without trailers.
      setTimeout(() => (path.endsWith('Cancel') ? cancelStream(stream) : stream.destroy(new Error('boom'))), 10);
    });
    const channel = new GrpcChannel({ host: '127.0.0.1', port: server.port });
    try {
      const internal = await unary(channel, '/a.B/Internal');
      assert.equal(internal.transport, 'reset');
      assert.equal(internal.code, GrpcStatus.INTERNAL);
      assert.match(internal.message, /INTERNAL_ERROR/);
      const cancelled = await unary(channel, '/a.B/Cancel');
      assert.equal(cancelled.transport, 'reset');
      assert.equal(cancelled.code, GrpcStatus.CANCELLED);
    } finally {
      await channel.close();
      await server.close();
    }
  });

  test('not a gRPC server: HTTP statuses map per spec; a stream without trailers is INTERNAL', async () => {
    const server = await rawServer((stream, path) => {
      if (path === '/a.B/NotFound') {
        stream.respond({ ':status': 404, 'content-type': 'text/html' });
        stream.end('<h1>nope</h1>');
      } else if (path === '/a.B/Unavailable') {
        stream.respond({ ':status': 503 }, { endStream: true });
      } else {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
        stream.end(Buffer.from([0, 0, 0, 0, 0]));
      }
    });
    const channel = new GrpcChannel({ host: '127.0.0.1', port: server.port });
    try {
      const notFound = await unary(channel, '/a.B/NotFound');
      assert.equal(notFound.code, GrpcStatus.UNIMPLEMENTED);
      assert.equal(notFound.transport, undefined);
      assert.match(notFound.message, /HTTP status 404/);
      const unavailable = await unary(channel, '/a.B/Unavailable');
      assert.equal(unavailable.code, GrpcStatus.UNAVAILABLE);
      assert.equal(unavailable.headersReceived, false);
      const noTrailers = await unary(channel, '/a.B/NoTrailers');
      assert.equal(noTrailers.code, GrpcStatus.INTERNAL);
      assert.equal(noTrailers.transport, undefined);
      assert.match(noTrailers.message, /without sending trailers/);
    } finally {
      await channel.close();
      await server.close();
    }
  });
});

for (const kind of TRANSPORTS) describe(`transport failure classification with our server (${kind})`, () => {
  test('refused: a call sent while our server is closing (GOAWAY crossed the request)', async () => {
    const { server, target } = await startEchoServer({ lane: true });
    let held: ServerCall | undefined;
    server.register('/test.Hold/Until', (call) => {
      held = call;
      call.setReader({ message: () => {}, end: () => {}, error: () => {} });
    });
    const channel = openChannel(kind, target);
    try {
      assert.equal((await unary(channel)).code, GrpcStatus.OK);
      const inFlight = channel.call('/test.Hold/Until');
      const inFlightDone = collect(inFlight);
      sendAll(inFlight, [Buffer.from('x')]);
      await eventually(() => held !== undefined, 5000, 'the held call');
      // In one tick: the server starts closing (GOAWAY) and the client sends a new call on the same
      // connection, which has not seen the GOAWAY yet.
      const closing = server.close({ graceMs: 10_000 });
      const late = unary(channel);
      const lateResult = await late;
      assert.equal(lateResult.transport, 'refused', lateResult.message);
      held?.sendMessage(Buffer.from('done'));
      held?.end({ code: GrpcStatus.OK });
      const inFlightResult = (await inFlightDone).result;
      assert.equal(inFlightResult.code, GrpcStatus.OK, 'the call in flight finished within the grace period');
      await closing;
    } finally {
      await channel.close();
      await server.close();
    }
  });

  test('reset: the server process is killed mid-call', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./testing/server-process.ts', import.meta.url))], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const [line] = (await once(child.stdout, 'data')) as [Buffer];
      const port = Number(line.toString().trim());
      const channel = openChannel(kind, { host: '127.0.0.1', port });
      try {
        const call = channel.call('/test.Hold/Forever');
        let headersSeen = false;
        const done = new Promise<CallResult>((resolve) =>
          call.setReader({
            headers: () => {
              headersSeen = true;
            },
            message: () => {},
            end: resolve,
          }),
        );
        sendAll(call, [Buffer.from('x')]);
        // The server answers headers once it has the whole request: the call is in progress there.
        await eventually(() => headersSeen, 10_000, 'response headers');
        child.kill('SIGKILL');
        const result = await done;
        assert.equal(result.transport, 'reset');
        assert.equal(result.code, GrpcStatus.UNAVAILABLE);
        assert.equal(result.headersReceived, true);
      } finally {
        await channel.close();
      }
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('reset: an unanswered keepalive ping drops the connection', async () => {
    const { server, target } = await startEchoServer({ lane: true });
    server.register('/test.Hold/Forever', (call) => call.setReader({ message: () => {}, end: () => {}, error: () => {} }));
    const proxy = await startFreezableProxy(target.port);
    const channel = openChannel(kind, { host: '127.0.0.1', port: proxy.port }, { pingIntervalMs: 50, pingTimeoutMs: 200 });
    try {
      assert.equal((await unary(channel)).code, GrpcStatus.OK);
      const call = channel.call('/test.Hold/Forever');
      const done = collect(call);
      sendAll(call, [Buffer.from('x')]);
      await new Promise((resolve) => setTimeout(resolve, 100));
      proxy.freeze();
      const { result } = await done;
      assert.equal(result.transport, 'reset');
      assert.equal(result.code, GrpcStatus.UNAVAILABLE);
      assert.match(result.message, /keepalive ping not acknowledged within 200ms/);
    } finally {
      await channel.close();
      await proxy.close();
      await server.close({ graceMs: 0 });
    }
  });
});
