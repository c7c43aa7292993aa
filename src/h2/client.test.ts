// Courier's own HTTP/2 client (H2Channel, src/h2/client.ts) at the protocol's edges and when things
// fail, driven by peers that share no code with it: node:http2's server (nghttp2) and raw sockets
// writing frames by hand. Ordinary calls against Courier's own server are covered by the shared suites
// in src/grpc/*.test.ts (kind 'h2'), and against grpc-js by src/grpc/interop.test.ts.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import type { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import {
  constants as h2c,
  createServer as createHttp2Server,
  type Http2Server,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
  type ServerOptions,
} from 'node:http2';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { createServer as createTlsServer } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { GrpcStatus } from '../errors/index.js';
import type { CallOptions, CallResult, ClientCall } from '../grpc/call.js';
import type { Metadata } from '../grpc/metadata.js';
import { cancelStream } from '../grpc/stream-reset.js';
import { collect, delay, eventually, within, type Collected } from '../grpc/testing/helpers.js';
import { forTests, H2Channel, type H2ChannelOptions } from './client.js';
import { ACK, CONTINUATION, DATA, END_HEADERS, END_STREAM, FLOW_CONTROL_ERROR, frame, GOAWAY, grpcMessage, HEADERS, hpack, NO_ERROR, PADDED, PING, PREFACE, PRIORITY_FLAG, PROTOCOL_ERROR, RST_STREAM, SETTINGS, SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE, settingsFrame, u32, WINDOW_UPDATE } from './testing/raw-frames.js';

const RESPONSE_HEAD: readonly (readonly [string, string])[] = [
  [':status', '200'],
  ['content-type', 'application/grpc'],
];

/** Splits a request body into gRPC messages; undefined when the framing is broken (servers must not throw). */
function splitMessages(body: Buffer): Buffer[] | undefined {
  const out: Buffer[] = [];
  let at = 0;
  while (at < body.length) {
    if (body.length - at < 5 || body[at] !== 0) return undefined;
    const length = body.readUInt32BE(at + 1);
    if (at + 5 + length > body.length) return undefined;
    out.push(body.subarray(at + 5, at + 5 + length));
    at += 5 + length;
  }
  return out;
}

/** Deterministic, position-dependent bytes (so a reordered, dropped or duplicated chunk shows). */
function pattern(size: number, seed = 0): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed * 7 + (i >>> 8)) & 0xff;
  return b;
}

/** A header value of `length` printable characters that differ along the way. */
function longValue(length: number, seed = 0): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[(i * 7 + seed + (i >>> 5)) % alphabet.length];
  return out;
}

/** Header values a field had, in order, from Node's flat raw list. */
function rawValues(raw: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i] === name) out.push(raw[i + 1] as string);
  return out;
}

/** `grpc-timeout` in milliseconds (PROTOCOL-HTTP2.md: 1 to 8 digits, then H M S m u n). */
function timeoutMs(value: string): number {
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  assert.ok(match !== null, `grpc-timeout "${value}" is malformed`);
  const units: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };
  return Number(match[1]) * (units[match[2] as string] as number);
}

// --- what every test opens, closed after it --------------------------------------------------------

const cleanups: (() => Promise<void> | void)[] = [];

function onCleanup(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

async function runCleanups(): Promise<void> {
  while (cleanups.length > 0) {
    const fn = cleanups.pop() as () => Promise<void> | void;
    try {
      await fn();
    } catch {
      // Keep closing the rest.
    }
  }
}

function listen(server: NetServer | Http2Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function closeServer(server: NetServer | Http2Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

function openChannel(port: number, options: H2ChannelOptions = {}): H2Channel {
  const channel = new H2Channel({ host: '127.0.0.1', port }, options);
  onCleanup(() => channel.close());
  return channel;
}

/** Opens a call, sends `messages` and (unless told otherwise) half-closes; `done` resolves at its end. */
function startCall(
  channel: H2Channel,
  path: string,
  messages: readonly Buffer[] = [Buffer.from('x')],
  metadata?: Metadata,
  options?: CallOptions,
  end = true,
): { call: ClientCall; done: Promise<Collected> } {
  const call = channel.call(path, metadata, options);
  const done = collect(call);
  for (const m of messages) call.sendMessage(m);
  if (end) call.end();
  return { call, done };
}

type StreamHandler = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, raw: string[]) => void;

interface NodeServer {
  readonly port: number;
  readonly server: Http2Server;
  readonly sessions: ServerHttp2Session[];
  readonly sockets: Set<Socket>;
  readonly streams: ServerHttp2Stream[];
}

/** A node:http2 server (nghttp2) whose answer to each stream the test writes by hand. */
async function startNodeServer(onStream: StreamHandler, options: ServerOptions = {}): Promise<NodeServer> {
  const server = createHttp2Server(options);
  const sessions: ServerHttp2Session[] = [];
  const sockets = new Set<Socket>();
  const streams: ServerHttp2Stream[] = [];
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('session', (session: ServerHttp2Session) => {
    sessions.push(session);
    session.on('error', () => {});
  });
  // Node passes the raw header list as a fourth argument, which @types/node leaves out.
  (server as EventEmitter).on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, raw: string[]) => {
    streams.push(stream);
    stream.on('error', () => {});
    onStream(stream, headers, raw);
  });
  const port = await listen(server);
  onCleanup(async () => {
    for (const session of sessions) session.destroy();
    for (const socket of sockets) socket.destroy();
    await closeServer(server);
  });
  return { port, server, sessions, sockets, streams };
}

const GRPC_HEADERS = { ':status': 200, 'content-type': 'application/grpc' } as const;

/** The whole request body (resolves at its end, or with what came when the stream closes). */
function readRequest(stream: ServerHttp2Stream): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('close', () => resolve(Buffer.concat(chunks)));
  });
}

/** A complete gRPC response: headers, messages, trailers. */
function answer(stream: ServerHttp2Stream, messages: readonly Buffer[], trailers: OutgoingHttpHeaders = { 'grpc-status': '0' }, headers: OutgoingHttpHeaders = {}): void {
  if (stream.destroyed || stream.closed) return;
  stream.respond({ ...GRPC_HEADERS, ...headers }, { waitForTrailers: true });
  stream.once('wantTrailers', () => stream.sendTrailers(trailers));
  for (const m of messages) stream.write(grpcMessage(m));
  stream.end();
}

/** Echoes the request's messages once it is complete (INTERNAL when its framing is broken). */
function echo(stream: ServerHttp2Stream): void {
  void readRequest(stream).then((body) => {
    const messages = splitMessages(body);
    if (messages === undefined) answer(stream, [], { 'grpc-status': '13', 'grpc-message': 'broken framing' });
    else answer(stream, messages);
  });
}

// --- raw HTTP/2 peers ------------------------------------------------------------------------------

interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly stream: number;
  readonly payload: Buffer;
}

/** The server end of one connection, reading the client's frames; it writes only what the test says. */
class RawPeer {
  readonly frames: Frame[] = [];
  /** Acknowledge the client's SETTINGS (once `handshake` was called) and PINGs. */
  ackSettings = false;
  ackPings = true;
  prefaceOk: boolean | undefined;
  closed = false;
  onFrame: ((frame: Frame) => void) | undefined;
  readonly #socket: Socket;
  #buffer = Buffer.alloc(0);

  constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
    });
    socket.on('data', (chunk: Buffer) => this.#read(chunk));
  }

  send(...pieces: Buffer[]): void {
    if (!this.#socket.destroyed && this.#socket.writable) this.#socket.write(Buffer.concat(pieces));
  }

  /** The server's side of the handshake: its SETTINGS, and from now on an ACK for the client's. */
  handshake(entries: readonly (readonly [number, number])[] = []): void {
    this.send(settingsFrame(entries));
    this.ackSettings = true;
    if (this.has((f) => f.type === SETTINGS && (f.flags & ACK) === 0)) this.send(frame(SETTINGS, ACK, 0));
  }

  has(predicate: (frame: Frame) => boolean): boolean {
    return this.frames.some(predicate);
  }

  #read(chunk: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    if (this.prefaceOk === undefined) {
      if (this.#buffer.length < PREFACE.length) return;
      this.prefaceOk = this.#buffer.subarray(0, PREFACE.length).equals(PREFACE);
      this.#buffer = this.#buffer.subarray(PREFACE.length);
    }
    while (this.#buffer.length >= 9) {
      const length = this.#buffer.readUIntBE(0, 3);
      if (this.#buffer.length < 9 + length) break;
      const f: Frame = {
        type: this.#buffer[3] as number,
        flags: this.#buffer[4] as number,
        stream: this.#buffer.readUInt32BE(5) & 0x7fff_ffff,
        payload: Buffer.from(this.#buffer.subarray(9, 9 + length)),
      };
      this.#buffer = this.#buffer.subarray(9 + length);
      this.frames.push(f);
      if (f.type === SETTINGS && (f.flags & ACK) === 0 && this.ackSettings) this.send(frame(SETTINGS, ACK, 0));
      if (f.type === PING && (f.flags & ACK) === 0 && this.ackPings) this.send(frame(PING, ACK, 0, f.payload));
      this.onFrame?.(f);
    }
  }
}

/** A TCP server whose connections are RawPeers; `onPeer` decides what each does. */
async function startRawServer(onPeer: (peer: RawPeer) => void = () => {}): Promise<{ port: number; peers: RawPeer[] }> {
  const peers: RawPeer[] = [];
  const sockets = new Set<Socket>();
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    const peer = new RawPeer(socket);
    peers.push(peer);
    onPeer(peer);
  });
  const port = await listen(server);
  onCleanup(async () => {
    for (const socket of sockets) socket.destroy();
    await closeServer(server);
  });
  return { port, peers };
}

/** A complete response on `stream` from a raw peer: HEADERS, one DATA, trailers with END_STREAM. */
function rawAnswer(peer: RawPeer, stream: number, message: string): void {
  peer.send(
    frame(HEADERS, END_HEADERS, stream, hpack(RESPONSE_HEAD)),
    frame(DATA, 0, stream, grpcMessage(message)),
    frame(HEADERS, END_HEADERS | END_STREAM, stream, hpack([['grpc-status', '0']])),
  );
}

const T = { timeout: 60_000 };

// --- the tests -------------------------------------------------------------------------------------

describe('H2Channel against a node:http2 server: requests and responses', () => {
  afterEach(runCleanups);

  test('unary: the request head and metadata as nghttp2 sees them; headers, message and multi-valued trailers arrive', T, async () => {
    const seen: { headers: IncomingHttpHeaders; raw: string[] }[] = [];
    const server = await startNodeServer((stream, headers, raw) => {
      seen.push({ headers, raw });
      void readRequest(stream).then((body) => {
        answer(stream, splitMessages(body) ?? [], { 'grpc-status': '0', 'x-trailer': ['t1', 't2'], 'x-trailer-bin': 'AAEC' }, { 'x-reply': 'r1', 'x-reply-bin': 'AQID' });
      });
    });
    const channel = openChannel(server.port);
    const bin = Buffer.from([0, 1, 2, 250, 255]).toString('base64');
    const metadata: Metadata = { 'x-multi': ['a', 'b'], 'x-single': 'one', 'x-data-bin': bin };
    const { done } = startCall(channel, '/pkg.Svc/Unary', [Buffer.from('hello')], metadata, { deadline: Date.now() + 30_000 });
    const { headers, messages, result } = await done;
    assert.equal(result.code, GrpcStatus.OK, result.message);
    assert.equal(result.transport, undefined);
    assert.equal(result.headersReceived, true);
    assert.equal(String(headers?.[':status']), '200');
    assert.equal(headers?.['content-type'], 'application/grpc');
    assert.equal(headers?.['x-reply'], 'r1');
    assert.equal(headers?.['x-reply-bin'], 'AQID');
    assert.deepEqual(
      messages.map((m) => m.toString()),
      ['hello'],
    );
    assert.deepEqual(result.trailers['x-trailer'], ['t1', 't2']);
    assert.equal(result.trailers['x-trailer-bin'], 'AAEC');
    assert.equal(result.trailers['grpc-status'], '0');

    const first = seen[0];
    assert.ok(first !== undefined);
    assert.equal(first.headers[':method'], 'POST');
    assert.equal(first.headers[':scheme'], 'http');
    assert.equal(first.headers[':path'], '/pkg.Svc/Unary');
    assert.equal(first.headers[':authority'], `127.0.0.1:${server.port}`);
    assert.equal(first.headers['content-type'], 'application/grpc');
    assert.equal(first.headers.te, 'trailers');
    assert.match(String(first.headers['user-agent']), /^grpc-node-courier\//);
    assert.deepEqual(rawValues(first.raw, 'x-multi'), ['a', 'b']);
    assert.deepEqual(rawValues(first.raw, 'x-single'), ['one']);
    assert.deepEqual(rawValues(first.raw, 'x-data-bin'), [bin]);
    const timeout = rawValues(first.raw, 'grpc-timeout');
    assert.equal(timeout.length, 1, 'one grpc-timeout with a deadline');
    const ms = timeoutMs(timeout[0] as string);
    assert.ok(ms > 0 && ms <= 30_000, `grpc-timeout ${timeout[0]} is not the 30 s left`);

    // Without a deadline, no grpc-timeout.
    const second = await startCall(channel, '/pkg.Svc/Unary', [Buffer.from('again')]).done;
    assert.equal(second.result.code, GrpcStatus.OK, second.result.message);
    assert.deepEqual(rawValues(seen[1]?.raw ?? [], 'grpc-timeout'), []);
    assert.equal(channel.connectionCount, 1);
    assert.equal(server.sessions.length, 1, 'both calls on one connection');
  });

  test('a connection whose 31-bit stream ids are used up takes no more calls: the next opens a new connection, the old one closes', T, async () => {
    const server = await startNodeServer((stream) => echo(stream));
    const channel = openChannel(server.port);
    assert.equal((await startCall(channel, '/pkg.Svc/Unary', [Buffer.from('one')]).done).result.code, GrpcStatus.OK);
    const [first] = forTests.connections(channel);
    assert.ok(first !== undefined);
    forTests.setNextStreamId(first, 0x7fff_ffff); // the last odd id
    const last = await startCall(channel, '/pkg.Svc/Unary', [Buffer.from('last id')]).done;
    assert.equal(last.result.code, GrpcStatus.OK, last.result.message);
    assert.deepEqual(last.messages.map((m) => m.toString()), ['last id']);
    const next = await startCall(channel, '/pkg.Svc/Unary', [Buffer.from('new connection')]).done;
    assert.equal(next.result.code, GrpcStatus.OK, next.result.message);
    assert.equal(server.sessions.length, 2, 'the call after the last id went over a second connection');
    await eventually(() => channel.connectionCount === 1 && forTests.connections(channel)[0] !== first, 10_000, 'the used-up connection to close');
  });

  test('Trailers-Only error response: code, decoded message, trailers; no headers', T, async () => {
    const server = await startNodeServer((stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '7', 'grpc-message': 'no%20way', 'x-detail': 'd' }, { endStream: true });
    });
    const channel = openChannel(server.port);
    const { headers, messages, result } = await startCall(channel, '/pkg.Svc/Denied').done;
    assert.equal(result.code, GrpcStatus.PERMISSION_DENIED);
    assert.equal(result.message, 'no way');
    assert.equal(result.headersReceived, false);
    assert.equal(result.transport, undefined);
    assert.equal(headers, undefined, 'reader.headers is not called for Trailers-Only');
    assert.equal(messages.length, 0);
    assert.equal(result.trailers['x-detail'], 'd');
    assert.equal(result.trailers['grpc-status'], '7');
  });

  test('non-gRPC answers: HTTP statuses map per spec, a foreign content type is UNKNOWN, a stream without trailers INTERNAL', T, async () => {
    const server = await startNodeServer((stream, headers) => {
      const path = headers[':path'];
      if (path === '/t.NotGrpc/NotFound') {
        stream.respond({ ':status': 404, 'content-type': 'text/plain' });
        stream.end('nope');
      } else if (path === '/t.NotGrpc/Html') {
        stream.respond({ ':status': 200, 'content-type': 'text/html' });
        stream.end('<h1>hello</h1>');
      } else if (path === '/t.NotGrpc/Unavailable') {
        stream.respond({ ':status': 503 }, { endStream: true });
      } else {
        stream.respond(GRPC_HEADERS);
        stream.end(grpcMessage('no trailers follow'));
      }
    });
    const channel = openChannel(server.port);
    const notFound = (await startCall(channel, '/t.NotGrpc/NotFound').done).result;
    assert.equal(notFound.code, GrpcStatus.UNIMPLEMENTED);
    assert.equal(notFound.transport, undefined);
    assert.match(notFound.message, /HTTP status 404/);
    const html = (await startCall(channel, '/t.NotGrpc/Html').done).result;
    assert.equal(html.code, GrpcStatus.UNKNOWN);
    assert.equal(html.transport, undefined);
    assert.match(html.message, /text\/html/);
    const unavailable = (await startCall(channel, '/t.NotGrpc/Unavailable').done).result;
    assert.equal(unavailable.code, GrpcStatus.UNAVAILABLE);
    assert.equal(unavailable.transport, undefined, 'an HTTP 503 is an answer, not a transport failure');
    assert.equal(unavailable.headersReceived, false);
    assert.match(unavailable.message, /HTTP status 503/);
    const noTrailers = await startCall(channel, '/t.NotGrpc/NoTrailers').done;
    assert.equal(noTrailers.result.code, GrpcStatus.INTERNAL);
    assert.equal(noTrailers.result.transport, undefined);
    assert.equal(noTrailers.result.headersReceived, true);
    assert.match(noTrailers.result.message, /without sending trailers/);
    // The connection survives answers like these.
    assert.equal(server.sessions.length, 1);
  });

  test('server resets: REFUSED_STREAM is UNAVAILABLE refused, CANCEL is CANCELLED reset, INTERNAL_ERROR is INTERNAL reset', T, async () => {
    const server = await startNodeServer((stream, headers) => {
      const path = headers[':path'];
      if (path === '/t.Reset/Refuse') {
        // Before any response: Node sends RST_STREAM alone.
        stream.close(h2c.NGHTTP2_REFUSED_STREAM);
        return;
      }
      stream.respond(GRPC_HEADERS);
      // Not stream.close(code) after respond: Node would send END_STREAM first (see src/grpc/stream-reset.ts).
      setTimeout(() => (path === '/t.Reset/Cancel' ? cancelStream(stream) : stream.destroy(new Error('boom'))), 10);
    });
    const channel = openChannel(server.port);
    const refused = (await startCall(channel, '/t.Reset/Refuse').done).result;
    assert.equal(refused.code, GrpcStatus.UNAVAILABLE);
    assert.equal(refused.transport, 'refused');
    assert.equal(refused.headersReceived, false);
    assert.match(refused.message, /REFUSED_STREAM/);
    const cancelled = (await startCall(channel, '/t.Reset/Cancel').done).result;
    assert.equal(cancelled.code, GrpcStatus.CANCELLED);
    assert.equal(cancelled.transport, 'reset');
    assert.equal(cancelled.headersReceived, true);
    const internal = (await startCall(channel, '/t.Reset/Internal').done).result;
    assert.equal(internal.code, GrpcStatus.INTERNAL);
    assert.equal(internal.transport, 'reset');
    assert.match(internal.message, /INTERNAL_ERROR/);
    assert.equal(server.sessions.length, 1, 'stream resets leave the connection up');
  });

  test("GOAWAY: the stream at its last-stream-id completes, the one above fails refused; the next call opens a new connection", T, async () => {
    let held: ServerHttp2Stream | undefined;
    const server = await startNodeServer((stream, headers) => {
      const path = headers[':path'];
      if (path === '/t.Goaway/First') {
        held = stream;
        void readRequest(stream);
      } else if (path === '/t.Goaway/Second') {
        // Stream 3 arrived: tell the client only stream 1 will be processed, then finish stream 1.
        stream.session?.goaway(h2c.NGHTTP2_NO_ERROR, 1);
        const first = held;
        setTimeout(() => {
          if (first !== undefined) answer(first, [Buffer.from('first done')]);
        }, 20);
      } else {
        echo(stream);
      }
    });
    const channel = openChannel(server.port);
    const first = startCall(channel, '/t.Goaway/First');
    const second = startCall(channel, '/t.Goaway/Second');
    const [one, three] = await within(Promise.all([first.done, second.done]), 10_000, 'both calls');
    assert.equal(one.result.code, GrpcStatus.OK, one.result.message);
    assert.equal(one.result.transport, undefined);
    assert.deepEqual(
      one.messages.map((m) => m.toString()),
      ['first done'],
    );
    assert.equal(three.result.code, GrpcStatus.UNAVAILABLE);
    assert.equal(three.result.transport, 'refused');
    assert.equal(three.result.headersReceived, false);
    assert.match(three.result.message, /GOAWAY/);

    const next = await startCall(channel, '/t.Goaway/Next', [Buffer.from('after')]).done;
    assert.equal(next.result.code, GrpcStatus.OK, next.result.message);
    assert.deepEqual(
      next.messages.map((m) => m.toString()),
      ['after'],
    );
    assert.equal(server.sessions.length, 2, 'the call after GOAWAY went on a new connection');
    // (Not checked on the server: a node:http2 session that has sent GOAWAY itself does not notice
    // the client's GOAWAY and FIN; a raw peer sees both.)
    await eventually(() => channel.connectionCount === 1, 10_000, 'the old connection to close');
  });

  test('the connection dies mid-call: UNAVAILABLE reset, "was lost", after the messages that came', T, async () => {
    const server = await startNodeServer((stream) => {
      stream.respond(GRPC_HEADERS);
      stream.write(grpcMessage('partial'));
      setTimeout(() => {
        for (const socket of server.sockets) socket.destroy();
      }, 50);
    });
    const channel = openChannel(server.port);
    const { messages, result } = await startCall(channel, '/t.Die/Midway').done;
    assert.deepEqual(
      messages.map((m) => m.toString()),
      ['partial'],
    );
    assert.equal(result.code, GrpcStatus.UNAVAILABLE);
    assert.equal(result.transport, 'reset');
    assert.equal(result.headersReceived, true);
    assert.match(result.message, /was lost/);
    await eventually(() => channel.connectionCount === 0, 10_000, 'the dead connection to be dropped');
  });

  test('a response header list over the client limit fails that call only; HPACK stays in step for the next', T, async () => {
    let n = 0;
    const server = await startNodeServer(
      (stream) => {
        const i = n++;
        void readRequest(stream).then(() =>
          // nghttp2 indexes x-indexed in its dynamic table; the next response refers to it by index.
          answer(stream, [Buffer.from(`r${i}`)], { 'grpc-status': '0' }, i === 0 ? { 'x-indexed': 'same', 'x-huge': longValue(70_000) } : { 'x-indexed': 'same' }),
        );
      },
      { maxSendHeaderBlockLength: 1024 * 1024 },
    );
    const channel = openChannel(server.port);
    const huge = await within(startCall(channel, '/t.Headers/Huge').done, 10_000, 'the call with huge headers');
    assert.notEqual(huge.result.code, GrpcStatus.OK);
    assert.match(huge.result.message, /headers/, 'the call failed on its headers (node sent them)');
    assert.equal(huge.messages.length, 0);
    const next = await within(startCall(channel, '/t.Headers/Next').done, 10_000, 'the next call');
    assert.equal(next.result.code, GrpcStatus.OK, next.result.message);
    assert.equal(next.headers?.['x-indexed'], 'same');
    assert.equal(next.messages[0]?.toString(), 'r1');
    assert.equal(server.sessions.length, 1, 'the connection survived');
  });

  test('header blocks larger than a frame (CONTINUATION) both ways: 30 000-character values arrive intact', T, async () => {
    const requestValue = longValue(30_000, 1);
    const responseValue = longValue(30_000, 2);
    const trailerValue = longValue(30_000, 3);
    let seenRequestValue: string[] = [];
    const server = await startNodeServer((stream, _headers, raw) => {
      seenRequestValue = rawValues(raw, 'x-big');
      void readRequest(stream).then((body) => answer(stream, splitMessages(body) ?? [], { 'grpc-status': '0', 'x-big-trailer': trailerValue }, { 'x-big-reply': responseValue }));
    });
    const channel = openChannel(server.port);
    const { headers, messages, result } = await startCall(channel, '/t.Big/Headers', [Buffer.from('m')], { 'x-big': requestValue, 'x-small': 's' }).done;
    assert.equal(result.code, GrpcStatus.OK, result.message);
    assert.deepEqual(seenRequestValue, [requestValue], 'the request metadata reached the server intact');
    assert.equal(headers?.['x-big-reply'], responseValue, 'the response header arrived intact');
    assert.equal(result.trailers['x-big-trailer'], trailerValue, 'the trailer arrived intact');
    assert.equal(messages[0]?.toString(), 'm');
    // And the connection goes on (HPACK state and frame parsing intact).
    const after = await startCall(channel, '/t.Big/Headers', [Buffer.from('n')]).done;
    assert.equal(after.result.code, GrpcStatus.OK, after.result.message);
    assert.equal(server.sessions.length, 1);
  });
});

describe('H2Channel: connect failures', () => {
  afterEach(runCleanups);
  let certDir: string | undefined;
  let key = '';
  let cert = '';

  before(() => {
    certDir = mkdtempSync(join(tmpdir(), 'courier-h2client-'));
    const keyPath = join(certDir, 'k.pem');
    const certPath = join(certDir, 'c.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', keyPath, '-out', certPath], { stdio: 'ignore' });
    key = readFileSync(keyPath, 'utf8');
    cert = readFileSync(certPath, 'utf8');
  });

  after(() => {
    if (certDir !== undefined) rmSync(certDir, { recursive: true, force: true });
  });

  test('nothing listens on the port: UNAVAILABLE connect-failed', T, async () => {
    const probe = createNetServer();
    const port = await listen(probe);
    await closeServer(probe);
    const channel = openChannel(port);
    const { result } = await startCall(channel, '/t.Connect/Refused').done;
    assert.equal(result.code, GrpcStatus.UNAVAILABLE);
    assert.equal(result.transport, 'connect-failed');
    assert.equal(result.headersReceived, false);
    assert.match(result.message, /ECONNREFUSED/);
    assert.equal(channel.connectionCount, 0);
  });

  test('a listener that never answers: connect-failed after connectTimeoutMs, "timed out"', T, async () => {
    const { port, peers } = await startRawServer();
    const channel = openChannel(port, { connectTimeoutMs: 300 });
    const started = Date.now();
    const { result } = await within(startCall(channel, '/t.Connect/Silent').done, 10_000, 'the connect timeout');
    assert.ok(Date.now() - started < 10_000);
    assert.equal(result.code, GrpcStatus.UNAVAILABLE);
    assert.equal(result.transport, 'connect-failed');
    assert.match(result.message, /timed out/);
    assert.equal(peers.length, 1);
    assert.equal(peers[0]?.prefaceOk, true, 'the client sent its preface');
    assert.ok(!(peers[0]?.has((f) => f.type === HEADERS) ?? true), 'no request was sent before the handshake completed');
    await eventually(() => peers[0]?.closed === true, 10_000, 'the client to close the socket');
  });

  test('an HTTP/1.1 server: UNAVAILABLE, a protocol error naming HTTP/1', T, async () => {
    const server = createHttpServer((_req, res) => res.end('hello'));
    const sockets = new Set<Socket>();
    server.on('connection', (socket: Socket) => sockets.add(socket));
    const port = await listen(server);
    onCleanup(async () => {
      for (const socket of sockets) socket.destroy();
      await closeServer(server);
    });
    const channel = openChannel(port);
    const { result } = await within(startCall(channel, '/t.Connect/Http1').done, 10_000, 'the HTTP/1.1 failure');
    assert.equal(result.code, GrpcStatus.UNAVAILABLE);
    assert.equal(result.transport, 'connect-failed', result.message);
    assert.match(result.message, /protocol error/i);
    assert.match(result.message, /HTTP\/1/);
  });

  test('a TLS server: UNAVAILABLE, "closed before HTTP/2 was established"', T, async () => {
    const server = createTlsServer({ key, cert });
    server.on('tlsClientError', () => {});
    const sockets = new Set<Socket>();
    server.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
    });
    const port = await listen(server);
    onCleanup(async () => {
      for (const socket of sockets) socket.destroy();
      await closeServer(server);
    });
    const channel = openChannel(port);
    const { result } = await within(startCall(channel, '/t.Connect/Tls').done, 10_000, 'the TLS failure');
    assert.equal(result.code, GrpcStatus.UNAVAILABLE);
    assert.equal(result.transport, 'connect-failed', result.message);
    assert.match(result.message, /closed before HTTP\/2 was established/);
  });

  test('channel.close() with a call queued while connecting: refused, close() resolves; calls after close fail refused at once', T, async () => {
    const { port, peers } = await startRawServer();
    const channel = openChannel(port);
    const { done } = startCall(channel, '/t.Close/Queued');
    await eventually(() => peers[0]?.prefaceOk === true, 10_000, 'the connection (preface received)');
    await within(channel.close(), 10_000, 'channel.close()');
    const { result } = await within(done, 10_000, 'the queued call');
    assert.equal(result.code, GrpcStatus.UNAVAILABLE);
    assert.equal(result.transport, 'refused');
    assert.equal(result.headersReceived, false);
    assert.equal(channel.connectionCount, 0);
    const late = await within(startCall(channel, '/t.Close/Late').done, 2000, 'a call after close');
    assert.equal(late.result.code, GrpcStatus.UNAVAILABLE);
    assert.equal(late.result.transport, 'refused');
    assert.equal(channel.connectionCount, 0);
    assert.equal(peers.length, 1, 'no connection was opened after close');
    assert.ok(!(peers[0]?.has((f) => f.type === HEADERS) ?? true), 'nothing of the queued call was sent');
  });
});

describe('H2Channel: flow control and backpressure against node:http2', () => {
  afterEach(runCleanups);

  test('request side: a 300 000-byte message through a server with initialWindowSize 1024 that reads slowly arrives whole', T, async () => {
    let received: Buffer | undefined;
    const server = await startNodeServer(
      (stream) => {
        // Read in bursts: paused, then flowing for a moment, again and again.
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => {
          chunks.push(chunk);
          stream.pause();
          setTimeout(() => stream.resume(), 2);
        });
        stream.on('end', () => {
          received = Buffer.concat(chunks);
          const messages = splitMessages(received);
          answer(stream, [Buffer.from(String(messages?.[0]?.length ?? -1))]);
        });
      },
      { settings: { initialWindowSize: 1024 } },
    );
    const channel = openChannel(server.port);
    const request = pattern(300_000, 5);
    const { messages, result } = await startCall(channel, '/t.Flow/Upload', [request]).done;
    assert.equal(result.code, GrpcStatus.OK, result.message);
    assert.equal(messages[0]?.toString(), '300000');
    assert.ok(received !== undefined);
    assert.ok(received.equals(grpcMessage(request)), 'the request body is exactly the message, in order');
  });

  test('response side: a 500 000-byte message arrives whole (the client returns stream credit)', T, async () => {
    const response = pattern(500_000, 9);
    const server = await startNodeServer((stream) => void readRequest(stream).then(() => answer(stream, [response])));
    const channel = openChannel(server.port);
    const { messages, result } = await within(startCall(channel, '/t.Flow/Download').done, 30_000, 'the response');
    assert.equal(result.code, GrpcStatus.OK, result.message);
    assert.equal(messages.length, 1);
    assert.ok(messages[0]?.equals(response), 'the response message is intact');
  });

  test('more than the 16 MiB connection window over one connection (the client returns connection credit)', T, async () => {
    const server = await startNodeServer((stream) =>
      void readRequest(stream).then(() => {
        stream.respond(GRPC_HEADERS, { waitForTrailers: true });
        stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        let i = 0;
        const more = (): void => {
          while (i < 100) {
            if (!stream.write(grpcMessage(Buffer.alloc(64 * 1024, i++ % 256)))) {
              stream.once('drain', more);
              return;
            }
          }
          stream.end();
        };
        more();
      }),
    );
    const channel = openChannel(server.port);
    for (let round = 0; round < 3; round++) {
      const { messages, result } = await within(startCall(channel, '/t.Flow/Many').done, 30_000, `round ${round} (${round * 6.5} MB before it)`);
      assert.equal(result.code, GrpcStatus.OK, result.message);
      assert.equal(messages.length, 100);
      messages.forEach((m, i) => assert.ok(m.length === 64 * 1024 && m[0] === i % 256 && m[m.length - 1] === i % 256, `message ${i} of round ${round}`));
    }
    assert.equal(server.sessions.length, 1, 'all rounds on one connection');
  });

  test('response backpressure: pause() holds the server back (its writes block); resume() delivers all 200 × 64 KiB in order', T, async () => {
    const state = { written: 0, waiting: false, stream: undefined as ServerHttp2Stream | undefined };
    const server = await startNodeServer((stream) =>
      void readRequest(stream).then(() => {
        state.stream = stream;
        stream.respond(GRPC_HEADERS, { waitForTrailers: true });
        stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        const more = (): void => {
          state.waiting = false;
          while (state.written < 200) {
            if (stream.destroyed) return;
            const ok = stream.write(grpcMessage(Buffer.alloc(64 * 1024, state.written % 256)));
            state.written++;
            if (!ok) {
              state.waiting = true;
              stream.once('drain', more);
              return;
            }
          }
          stream.end();
        };
        more();
      }),
    );
    const channel = openChannel(server.port);
    const call = channel.call('/t.Back/Download');
    const messages: Buffer[] = [];
    const done = new Promise<CallResult>((resolve) =>
      call.setReader({
        headers: () => {},
        message: (bytes) => {
          messages.push(Buffer.from(bytes));
          if (messages.length === 1) call.pause();
        },
        end: resolve,
      }),
    );
    call.sendMessage(Buffer.from('go'));
    call.end();
    await eventually(() => messages.length >= 1, 10_000, 'the first message');
    await eventually(() => state.waiting, 10_000, 'the server to wait for drain');
    await delay(500);
    const writtenWhilePaused = state.written;
    assert.equal(messages.length, 1, 'no messages are delivered while paused');
    assert.ok(state.waiting, 'the server still waits for drain while the client is paused');
    assert.ok(writtenWhilePaused < 20, `the server wrote ${writtenWhilePaused} of 200 messages while the client was paused`);
    assert.ok((state.stream?.writableLength ?? 0) > 0, "the server's buffer holds data it cannot send");
    await delay(300);
    assert.equal(state.written, writtenWhilePaused, 'the server made no progress while the client was paused');
    call.resume();
    const result = await within(done, 30_000, 'the rest after resume()');
    assert.equal(result.code, GrpcStatus.OK, result.message);
    assert.equal(messages.length, 200);
    messages.forEach((m, i) => assert.ok(m.length === 64 * 1024 && m[0] === i % 256 && m[m.length - 1] === i % 256, `message ${i} out of order or damaged`));
  });

  test('request backpressure: against a server that does not read, sendMessage returns false and onDrain waits until it reads; all messages arrive in order', T, async () => {
    const total = 60;
    let held: ServerHttp2Stream | undefined;
    const server = await startNodeServer((stream) => {
      // No 'data' listener: the stream is not read until the test resumes it.
      held = stream;
    });
    const channel = openChannel(server.port);
    const call = channel.call('/t.Back/Upload');
    const done = collect(call);
    const message = (i: number): Buffer => Buffer.alloc(64 * 1024, i % 256);
    const drain = (): Promise<true> => new Promise((resolve) => call.onDrain(() => resolve(true)));
    let sent = 0;
    let blocked = false;
    // Until the buffer reports full and no drain comes for half a second (some credit may still
    // come while nghttp2 buffers what it has received).
    while (sent < total) {
      if (call.sendMessage(message(sent++))) continue;
      const drained = await Promise.race([drain(), delay(500).then(() => false as const)]);
      if (!drained) {
        blocked = true;
        break;
      }
    }
    assert.ok(blocked, `sendMessage never stayed full while the server did not read (${sent} messages sent)`);
    assert.ok(sent < total / 2, `${sent} messages of 64 KiB were accepted by a server that does not read`);
    await eventually(() => held !== undefined, 10_000, 'the stream on the server');
    const drained = drain();
    const stream = held as ServerHttp2Stream;
    void readRequest(stream).then((body) => {
      const messages = splitMessages(body) ?? [];
      const inOrder = messages.every((m, i) => m.length === 64 * 1024 && m[0] === i % 256 && m[m.length - 1] === i % 256);
      answer(stream, [Buffer.from(`${messages.length}:${inOrder}`)]);
    });
    assert.equal(await within(drained, 10_000, 'onDrain after the server reads'), true);
    while (sent < total) {
      if (!call.sendMessage(message(sent++))) await within(drain(), 10_000, `onDrain after message ${sent}`);
    }
    call.end();
    const { messages, result } = await within(done, 30_000, 'the call');
    assert.equal(result.code, GrpcStatus.OK, result.message);
    assert.equal(messages[0]?.toString(), `${total}:true`, 'the server got every message, in order');
  });
});

describe('H2Channel: cancellation and deadlines against node:http2', () => {
  afterEach(runCleanups);

  function holdingServer(): Promise<NodeServer> {
    return startNodeServer((stream, headers) => {
      if (headers[':path'] === '/t.Warm/Up') echo(stream);
      else void readRequest(stream);
    });
  }

  test('cancel(): CANCELLED, and the server sees the stream reset with CANCEL', T, async () => {
    const server = await holdingServer();
    const channel = openChannel(server.port);
    const { call, done } = startCall(channel, '/t.Cancel/Hold', [Buffer.from('x')], undefined, undefined, false);
    await eventually(() => server.streams.length === 1, 10_000, 'the stream on the server');
    call.cancel();
    const { result } = await within(done, 10_000, 'the cancelled call');
    assert.equal(result.code, GrpcStatus.CANCELLED);
    assert.equal(result.transport, undefined);
    const stream = server.streams[0] as ServerHttp2Stream;
    await eventually(() => stream.closed, 10_000, 'the server stream to close');
    assert.equal(stream.rstCode, h2c.NGHTTP2_CANCEL);
    assert.equal(stream.aborted, true);
    // The connection goes on.
    assert.equal((await startCall(channel, '/t.Warm/Up').done).result.code, GrpcStatus.OK);
    assert.equal(server.sessions.length, 1);
  });

  test('a deadline on a held call: DEADLINE_EXCEEDED, grpc-timeout was sent, and the server sees the stream reset', T, async () => {
    let timeout: string[] = [];
    const server = await startNodeServer((stream, headers, raw) => {
      if (headers[':path'] === '/t.Warm/Up') {
        echo(stream);
        return;
      }
      timeout = rawValues(raw, 'grpc-timeout');
      void readRequest(stream);
    });
    const channel = openChannel(server.port);
    assert.equal((await startCall(channel, '/t.Warm/Up').done).result.code, GrpcStatus.OK);
    const started = Date.now();
    const { result } = await within(startCall(channel, '/t.Deadline/Hold', [Buffer.from('x')], undefined, { deadline: Date.now() + 100 }).done, 10_000, 'the deadline');
    assert.equal(result.code, GrpcStatus.DEADLINE_EXCEEDED);
    assert.equal(result.transport, undefined);
    assert.ok(Date.now() - started >= 80, 'not before the deadline');
    assert.equal(timeout.length, 1);
    assert.ok(timeoutMs(timeout[0] as string) <= 100, `grpc-timeout ${timeout[0]}`);
    const stream = server.streams[1] as ServerHttp2Stream;
    await eventually(() => stream.closed, 10_000, 'the server stream to close');
    assert.equal(stream.rstCode, h2c.NGHTTP2_CANCEL);
  });

  test('an already-aborted signal or a past deadline: the call fails without any stream or connection', T, async () => {
    const server = await holdingServer();
    const channel = openChannel(server.port);
    const aborted = await startCall(channel, '/t.Cancel/Never', [Buffer.from('x')], undefined, { signal: AbortSignal.abort() }).done;
    assert.equal(aborted.result.code, GrpcStatus.CANCELLED);
    assert.equal(aborted.result.transport, undefined);
    const late = await startCall(channel, '/t.Deadline/Never', [Buffer.from('x')], undefined, { deadline: Date.now() - 1 }).done;
    assert.equal(late.result.code, GrpcStatus.DEADLINE_EXCEEDED);
    await delay(200);
    assert.equal(channel.connectionCount, 0);
    assert.equal(server.sessions.length, 0, 'no connection was opened');
    assert.equal(server.streams.length, 0);
  });
});

describe("H2Channel: the server's SETTINGS (node:http2)", () => {
  afterEach(runCleanups);

  test('headerTableSize 0, from the start and mid-connection: the client signals the size update and calls go on', T, async () => {
    const fromStart = await startNodeServer(echo, { settings: { headerTableSize: 0 } });
    const channel = openChannel(fromStart.port);
    for (let i = 0; i < 3; i++) {
      const { messages, result } = await startCall(channel, '/t.Table/Zero', [Buffer.from(`m${i}`)], { 'x-i': String(i) }).done;
      assert.equal(result.code, GrpcStatus.OK, `call ${i}: ${result.message}`);
      assert.equal(messages[0]?.toString(), `m${i}`);
    }
    assert.equal(fromStart.sessions.length, 1, 'all calls on one connection');

    let changed = false;
    const midway = await startNodeServer((stream) => {
      if (!changed) {
        changed = true;
        stream.session?.settings({ headerTableSize: 0 });
      }
      echo(stream);
    });
    const second = openChannel(midway.port);
    for (let i = 0; i < 3; i++) {
      const { result } = await startCall(second, '/t.Table/Midway', [Buffer.from(`m${i}`)], { 'x-i': String(i) }).done;
      assert.equal(result.code, GrpcStatus.OK, `call ${i} after the change: ${result.message}`);
    }
    assert.equal(midway.sessions.length, 1, 'the connection survived the change');
  });

  test('maxConcurrentStreams 1: a second call opens a second connection; calls queued together spread over connections', T, async () => {
    const held: ServerHttp2Stream[] = [];
    let release = false;
    const server = await startNodeServer(
      (stream, headers) => {
        if (headers[':path'] === '/t.Max/Hold' && !release) {
          held.push(stream);
          void readRequest(stream);
          return;
        }
        echo(stream);
      },
      { settings: { maxConcurrentStreams: 1 } },
    );
    const channel = openChannel(server.port);
    const first = startCall(channel, '/t.Max/Hold', [Buffer.from('held')]);
    await eventually(() => held.length === 1, 10_000, 'the held call');
    const second = await within(startCall(channel, '/t.Max/Echo', [Buffer.from('second')]).done, 10_000, 'the second call');
    assert.equal(second.result.code, GrpcStatus.OK, second.result.message);
    assert.equal(channel.connectionCount, 2);
    assert.equal(server.sessions.length, 2);
    release = true;
    for (const stream of held) answer(stream, [Buffer.from('released')]);
    const firstResult = await within(first.done, 10_000, 'the held call');
    assert.equal(firstResult.result.code, GrpcStatus.OK, firstResult.result.message);

    // Three calls in one tick on a fresh channel: queued on one connection while it connects, then
    // spread over connections as its limit of 1 allows. None may be refused by the server.
    release = false;
    held.length = 0;
    const fresh = openChannel(server.port);
    const three = [0, 1, 2].map(() => startCall(fresh, '/t.Max/Hold', [Buffer.from('q')]));
    await eventually(() => held.length === 3, 10_000, 'three held calls on the server');
    assert.equal(fresh.connectionCount, 3);
    for (const stream of held) answer(stream, [Buffer.from('released')]);
    for (const { done } of three) {
      const { result } = await within(done, 10_000, 'a queued call');
      assert.equal(result.code, GrpcStatus.OK, result.message);
    }
  });

  test('maxFrameSize 65536: a 200 000-byte request arrives whole', T, async () => {
    let received: Buffer | undefined;
    const server = await startNodeServer(
      (stream) =>
        void readRequest(stream).then((body) => {
          received = body;
          answer(stream, [Buffer.from(String(body.length))]);
        }),
      { settings: { maxFrameSize: 65_536, initialWindowSize: 1024 * 1024 } },
    );
    const channel = openChannel(server.port);
    const request = pattern(200_000, 3);
    const { result } = await startCall(channel, '/t.Frame/Big', [request]).done;
    assert.equal(result.code, GrpcStatus.OK, result.message);
    assert.ok(received?.equals(grpcMessage(request)), 'the request arrived whole and in order');
  });
});

describe('H2Channel against raw HTTP/2 peers', () => {
  afterEach(runCleanups);

  test("the handshake: the client's SETTINGS and connection window first; the server's SETTINGS and PINGs are acknowledged", T, async () => {
    const { port, peers } = await startRawServer((peer) => {
      peer.handshake();
      peer.send(frame(PING, 0, 0, Buffer.from('rawping1')));
      peer.onFrame = (f) => {
        if (f.type === HEADERS) rawAnswer(peer, f.stream, 'hi');
      };
    });
    const channel = openChannel(port);
    const { messages, result } = await startCall(channel, '/t.Raw/Hello').done;
    assert.equal(result.code, GrpcStatus.OK, result.message);
    assert.equal(messages[0]?.toString(), 'hi');
    const peer = peers[0] as RawPeer;
    assert.equal(peer.prefaceOk, true);
    const first = peer.frames[0];
    assert.ok(first !== undefined && first.type === SETTINGS && (first.flags & ACK) === 0, 'the first frame is SETTINGS');
    await eventually(() => peer.has((f) => f.type === SETTINGS && (f.flags & ACK) !== 0), 5000, "the client's SETTINGS ACK");
    await eventually(() => peer.has((f) => f.type === PING && (f.flags & ACK) !== 0), 5000, "the client's PING ACK");
    const pong = peer.frames.find((f) => f.type === PING && (f.flags & ACK) !== 0);
    assert.equal(pong?.payload.toString('latin1'), 'rawping1', 'the PING ACK echoes the payload');
  });

  test('padded DATA and HEADERS with padding and priority: the payload is read without the padding', T, async () => {
    const { port } = await startRawServer((peer) => {
      peer.handshake();
      peer.onFrame = (f) => {
        if (f.type !== HEADERS) return;
        const block = hpack([...RESPONSE_HEAD, ['x-padded', 'yes']]);
        // Pad length 3, then (PRIORITY) 4-byte dependency and a weight, the block, 3 bytes of padding.
        const headersPayload = Buffer.concat([Buffer.from([3]), u32(0), Buffer.from([15]), block, Buffer.alloc(3)]);
        const message = grpcMessage('padded message');
        const dataPayload = Buffer.concat([Buffer.from([7]), message, Buffer.alloc(7)]);
        const trailers = hpack([['grpc-status', '0']]);
        peer.send(
          frame(HEADERS, END_HEADERS | PADDED | PRIORITY_FLAG, f.stream, headersPayload),
          frame(DATA, PADDED, f.stream, dataPayload),
          frame(HEADERS, END_HEADERS | END_STREAM | PADDED, f.stream, Buffer.concat([Buffer.from([2]), trailers, Buffer.alloc(2)])),
        );
      };
    });
    const channel = openChannel(port);
    const { headers, messages, result } = await startCall(channel, '/t.Raw/Padded').done;
    assert.equal(result.code, GrpcStatus.OK, result.message);
    assert.equal(headers?.['x-padded'], 'yes');
    assert.deepEqual(
      messages.map((m) => m.toString()),
      ['padded message'],
    );
  });

  test('maxFrameSize 65536 from a raw peer: DATA frames grow past 16 KiB but never past the limit; the request arrives whole', T, async () => {
    const { port, peers } = await startRawServer((peer) => {
      peer.handshake([
        [SETTINGS_MAX_FRAME_SIZE, 65_536],
        [SETTINGS_INITIAL_WINDOW_SIZE, 4 * 1024 * 1024],
      ]);
      peer.send(frame(WINDOW_UPDATE, 0, 0, u32(4 * 1024 * 1024)));
      peer.onFrame = (f) => {
        if (f.type === DATA && (f.flags & END_STREAM) !== 0) rawAnswer(peer, f.stream, 'ok');
      };
    });
    const channel = openChannel(port);
    const request = pattern(200_000, 4);
    const { result } = await startCall(channel, '/t.Raw/BigFrames', [request]).done;
    assert.equal(result.code, GrpcStatus.OK, result.message);
    const data = (peers[0] as RawPeer).frames.filter((f) => f.type === DATA && f.stream === 1);
    const largest = Math.max(...data.map((f) => f.payload.length));
    assert.ok(largest <= 65_536, `a DATA frame of ${largest} bytes is over the peer's SETTINGS_MAX_FRAME_SIZE`);
    assert.ok(largest > 16_384, `DATA frames stayed at ${largest} bytes though the peer takes 65 536`);
    assert.ok(Buffer.concat(data.map((f) => f.payload)).equals(grpcMessage(request)));
  });

  test('keepalive: a peer that never acknowledges PINGs: the held call fails UNAVAILABLE reset, naming the ping', T, async () => {
    const { port, peers } = await startRawServer((peer) => {
      peer.ackPings = false;
      peer.handshake();
    });
    const channel = openChannel(port, { pingIntervalMs: 100, pingTimeoutMs: 300 });
    const started = Date.now();
    const { result } = await within(startCall(channel, '/t.Raw/Held').done, 10_000, 'the keepalive failure');
    assert.ok(Date.now() - started < 10_000);
    assert.equal(result.code, GrpcStatus.UNAVAILABLE);
    assert.equal(result.transport, 'reset');
    assert.match(result.message, /ping/i);
    const peer = peers[0] as RawPeer;
    assert.ok(peer.has((f) => f.type === HEADERS && f.stream === 1), 'the call was sent');
    assert.ok(peer.has((f) => f.type === PING && (f.flags & ACK) === 0), 'the client sent a PING');
    await eventually(() => peer.closed, 10_000, 'the connection to be closed');
    await eventually(() => channel.connectionCount === 0, 10_000, 'the channel to drop the connection');
  });

  test('keepalive goes on while a connection drains after GOAWAY: a peer that then goes silent fails the held call reset within 10 s', T, async () => {
    const { port, peers } = await startRawServer((peer) => {
      peer.ackPings = false;
      peer.handshake();
      peer.onFrame = (f) => {
        // Stream 1 is accepted (response headers) and will be processed (last-stream-id 1); then nothing.
        if (f.type === HEADERS && f.stream === 1) peer.send(frame(HEADERS, END_HEADERS, 1, hpack(RESPONSE_HEAD)), frame(GOAWAY, 0, 0, Buffer.concat([u32(1), u32(NO_ERROR)])));
      };
    });
    const channel = openChannel(port, { pingIntervalMs: 100, pingTimeoutMs: 300 });
    const { result } = await within(startCall(channel, '/t.Raw/DrainingSilence').done, 10_000, 'the call on a draining connection whose peer went silent (no keepalive PING was sent after GOAWAY)');
    assert.equal(result.code, GrpcStatus.UNAVAILABLE);
    assert.equal(result.transport, 'reset');
    assert.match(result.message, /ping/i);
    assert.ok((peers[0] as RawPeer).has((f) => f.type === PING && (f.flags & ACK) === 0));
  });

  test('GOAWAY with an error code ends the connection: the call at its last-stream-id fails reset without waiting for the peer to close', T, async () => {
    const { port } = await startRawServer((peer) => {
      peer.handshake();
      peer.onFrame = (f) => {
        // A connection error (as nghttp2 sends it, leaving the socket open); PINGs are still answered.
        if (f.type === HEADERS && f.stream === 1) peer.send(frame(HEADERS, END_HEADERS, 1, hpack(RESPONSE_HEAD)), frame(GOAWAY, 0, 0, Buffer.concat([u32(1), u32(PROTOCOL_ERROR)])));
      };
    });
    const channel = openChannel(port);
    const { result } = await within(startCall(channel, '/t.Raw/GoawayError').done, 5000, 'the call on a connection the peer failed with GOAWAY(PROTOCOL_ERROR)');
    assert.equal(result.code, GrpcStatus.UNAVAILABLE);
    assert.equal(result.transport, 'reset');
  });

  test('a stream window of 0 holds DATA back until the peer credits the stream', T, async () => {
    let dataBeforeCredit = -1;
    const { port, peers } = await startRawServer((peer) => {
      peer.handshake([[SETTINGS_INITIAL_WINDOW_SIZE, 0]]);
      peer.send(frame(WINDOW_UPDATE, 0, 0, u32(1024 * 1024)));
      peer.onFrame = (f) => {
        if (f.type === HEADERS && f.stream === 1) {
          setTimeout(() => {
            dataBeforeCredit = peer.frames.filter((d) => d.type === DATA && d.payload.length > 0).length;
            peer.send(frame(WINDOW_UPDATE, 0, 1, u32(100_000)));
          }, 200);
        }
        if (f.type === DATA && (f.flags & END_STREAM) !== 0) rawAnswer(peer, f.stream, 'ok');
      };
    });
    const channel = openChannel(port);
    const request = pattern(50_000, 8);
    const { result } = await within(startCall(channel, '/t.Raw/ZeroWindow', [request]).done, 10_000, 'the call');
    assert.equal(result.code, GrpcStatus.OK, result.message);
    assert.equal(dataBeforeCredit, 0, 'no DATA before the stream had a window');
    const body = Buffer.concat((peers[0] as RawPeer).frames.filter((f) => f.type === DATA && f.stream === 1).map((f) => f.payload));
    assert.ok(body.equals(grpcMessage(request)));
  });

  test('SETTINGS_INITIAL_WINDOW_SIZE raised mid-stream applies to the open stream', T, async () => {
    let received = 0;
    let atSettings = -1;
    const { port, peers } = await startRawServer((peer) => {
      peer.handshake();
      peer.send(frame(WINDOW_UPDATE, 0, 0, u32(1024 * 1024)));
      peer.onFrame = (f) => {
        if (f.type !== DATA || f.stream !== 1) return;
        received += f.payload.length;
        if (received === 65_535) {
          setTimeout(() => {
            atSettings = received;
            peer.send(settingsFrame([[SETTINGS_INITIAL_WINDOW_SIZE, 200_000]]));
          }, 100);
        }
        if ((f.flags & END_STREAM) !== 0) rawAnswer(peer, 1, 'ok');
      };
    });
    const channel = openChannel(port);
    const request = pattern(100_000, 6);
    const { result } = await within(startCall(channel, '/t.Raw/RaiseWindow', [request]).done, 10_000, 'the call');
    assert.equal(result.code, GrpcStatus.OK, result.message);
    assert.equal(atSettings, 65_535, 'exactly the default window was used before the SETTINGS');
    const body = Buffer.concat((peers[0] as RawPeer).frames.filter((f) => f.type === DATA && f.stream === 1).map((f) => f.payload));
    assert.ok(body.equals(grpcMessage(request)));
  });

  test("the connection window holds DATA back even when the stream's is large; credit on stream 0 lets it go on", T, async () => {
    let received = 0;
    let credited = 0;
    let overrun = false;
    let crediting = false;
    const { port, peers } = await startRawServer((peer) => {
      peer.handshake([[SETTINGS_INITIAL_WINDOW_SIZE, 1024 * 1024]]);
      peer.onFrame = (f) => {
        if (f.type !== DATA || f.stream !== 1) return;
        received += f.payload.length;
        if (received > 65_535 + credited) overrun = true;
        if (65_535 + credited - received < 16_384 && !crediting) {
          crediting = true;
          setTimeout(() => {
            crediting = false;
            credited += 30_000;
            peer.send(frame(WINDOW_UPDATE, 0, 0, u32(30_000)));
          }, 5);
        }
        if ((f.flags & END_STREAM) !== 0) rawAnswer(peer, 1, 'ok');
      };
    });
    const channel = openChannel(port);
    const request = pattern(200_000, 2);
    const { result } = await within(startCall(channel, '/t.Raw/ConnectionWindow', [request]).done, 20_000, 'the call');
    assert.equal(result.code, GrpcStatus.OK, result.message);
    assert.equal(overrun, false, 'DATA beyond the connection window');
    const body = Buffer.concat((peers[0] as RawPeer).frames.filter((f) => f.type === DATA && f.stream === 1).map((f) => f.payload));
    assert.ok(body.equals(grpcMessage(request)));
  });

  test('DATA on a stream the client never opened (id above its streams): the connection is dropped with GOAWAY PROTOCOL_ERROR; open calls fail reset', T, async () => {
    const { port, peers } = await startRawServer((peer) => {
      peer.handshake();
      peer.onFrame = (f) => {
        if (f.type === HEADERS && f.stream === 1) peer.send(frame(HEADERS, END_HEADERS, 1, hpack(RESPONSE_HEAD)), frame(DATA, 0, 5, grpcMessage('stray')));
      };
    });
    const channel = openChannel(port);
    const { messages, result } = await within(startCall(channel, '/t.Raw/Stray').done, 10_000, 'the call on the broken connection');
    assert.equal(messages.length, 0);
    assert.equal(result.code, GrpcStatus.UNAVAILABLE);
    assert.equal(result.transport, 'reset');
    const peer = peers[0] as RawPeer;
    await eventually(() => peer.has((f) => f.type === GOAWAY), 5000, 'GOAWAY from the client');
    const goaway = peer.frames.find((f) => f.type === GOAWAY) as Frame;
    assert.equal(goaway.payload.readUInt32BE(4), PROTOCOL_ERROR);
    await eventually(() => channel.connectionCount === 0, 10_000, 'the connection to be dropped');
  });

  test('DATA on stream 2 (server-initiated, never opened, push disabled) is a connection error too (RFC 9113 §5.1 idle stream)', T, async () => {
    const { port, peers } = await startRawServer((peer) => {
      peer.handshake();
      peer.onFrame = (f) => {
        if (f.type === HEADERS && f.stream === 1) peer.send(frame(HEADERS, END_HEADERS, 1, hpack(RESPONSE_HEAD)), frame(DATA, 0, 2, grpcMessage('stray')));
      };
    });
    const channel = openChannel(port);
    const { result } = await within(startCall(channel, '/t.Raw/StrayEven').done, 5000, 'the call on a connection that got DATA on idle stream 2');
    assert.equal(result.transport, 'reset', result.message);
    const peer = peers[0] as RawPeer;
    await eventually(() => peer.has((f) => f.type === GOAWAY), 5000, 'GOAWAY from the client');
    assert.equal((peer.frames.find((f) => f.type === GOAWAY) as Frame).payload.readUInt32BE(4), PROTOCOL_ERROR);
  });

  test('DATA before the response HEADERS is malformed (RFC 9113 §8.1): the call fails and no message is delivered', T, async () => {
    const { port } = await startRawServer((peer) => {
      peer.handshake();
      peer.onFrame = (f) => {
        if (f.type !== HEADERS) return;
        peer.send(
          frame(DATA, 0, f.stream, grpcMessage('too early')),
          frame(HEADERS, END_HEADERS, f.stream, hpack(RESPONSE_HEAD)),
          frame(HEADERS, END_HEADERS | END_STREAM, f.stream, hpack([['grpc-status', '0']])),
        );
      };
    });
    const channel = openChannel(port);
    const { messages, result } = await within(startCall(channel, '/t.Raw/DataFirst').done, 10_000, 'the call');
    assert.notEqual(result.code, GrpcStatus.OK, `a response whose DATA came before its HEADERS succeeded (${messages.length} message(s) delivered)`);
    assert.equal(messages.length, 0);
  });

  test('a peer that sends more than the stream window (65 535) to a paused reader: the call fails, nothing hangs, the connection goes on', T, async () => {
    const { port, peers } = await startRawServer((peer) => {
      peer.handshake();
      peer.onFrame = (f) => {
        if (f.type !== HEADERS) return;
        if (f.stream !== 1) {
          rawAnswer(peer, f.stream, 'fine');
          return;
        }
        // One 69 995-byte message in five frames: 4 × 16 384 = 65 536 bytes is one past the window.
        const body = grpcMessage(pattern(69_995));
        const frames = [frame(HEADERS, END_HEADERS, 1, hpack(RESPONSE_HEAD))];
        for (let at = 0; at < body.length; at += 16_384) frames.push(frame(DATA, 0, 1, body.subarray(at, Math.min(body.length, at + 16_384))));
        peer.send(...frames);
      };
    });
    const channel = openChannel(port);
    const call = channel.call('/t.Raw/Overflow');
    call.pause();
    const done = collect(call);
    call.sendMessage(Buffer.from('x'));
    call.end();
    const { messages, result } = await within(done, 10_000, 'the call that got too much');
    assert.ok(result.code === GrpcStatus.INTERNAL || result.transport === 'reset', `code ${result.code} (${result.message})`);
    assert.equal(messages.length, 0);
    const peer = peers[0] as RawPeer;
    await eventually(
      () => peer.has((f) => (f.type === RST_STREAM && f.stream === 1 && f.payload.readUInt32BE(0) === FLOW_CONTROL_ERROR) || (f.type === GOAWAY && f.payload.readUInt32BE(4) === FLOW_CONTROL_ERROR)),
      5000,
      'RST_STREAM or GOAWAY with FLOW_CONTROL_ERROR',
    );
    if (!peer.closed && channel.connectionCount === 1) {
      // A stream error: the connection carries the next call.
      const next = await within(startCall(channel, '/t.Raw/Next').done, 10_000, 'the next call');
      assert.equal(next.result.code, GrpcStatus.OK, next.result.message);
      assert.equal(next.messages[0]?.toString(), 'fine');
    }
  });

  test('CONTINUATION from a raw peer, split at odd places (one byte, mid-field): the response headers arrive intact', T, async () => {
    const value = longValue(40_000, 7);
    const { port } = await startRawServer((peer) => {
      peer.handshake();
      peer.onFrame = (f) => {
        if (f.type !== HEADERS) return;
        const block = hpack([...RESPONSE_HEAD, ['x-long', value]]);
        const cuts = [0, 1, 7_001, 16_384, 31_000, block.length];
        const frames: Buffer[] = [];
        for (let i = 0; i + 1 < cuts.length; i++) {
          const part = block.subarray(cuts[i], cuts[i + 1]);
          const last = i + 2 === cuts.length;
          frames.push(frame(i === 0 ? HEADERS : CONTINUATION, last ? END_HEADERS : 0, f.stream, part));
        }
        frames.push(frame(DATA, 0, f.stream, grpcMessage('after a long header')));
        frames.push(frame(HEADERS, END_HEADERS | END_STREAM, f.stream, hpack([['grpc-status', '0']])));
        peer.send(...frames);
      };
    });
    const channel = openChannel(port);
    const { headers, messages, result } = await startCall(channel, '/t.Raw/Continuation').done;
    assert.equal(result.code, GrpcStatus.OK, result.message);
    assert.equal(headers?.['x-long'], value);
    assert.equal(messages[0]?.toString(), 'after a long header');
  });
});

describe('H2Channel: idleness and process lifetime', () => {
  afterEach(runCleanups);

  test('idleTimeoutMs: after a call the idle connection is closed (GOAWAY to the server); the next call reconnects', T, async () => {
    const server = await startNodeServer(echo);
    const goaways: number[] = [];
    server.server.on('session', (session: ServerHttp2Session) => session.on('goaway', (code: number) => goaways.push(code)));
    const channel = openChannel(server.port, { idleTimeoutMs: 200 });
    assert.equal((await startCall(channel, '/t.Idle/One').done).result.code, GrpcStatus.OK);
    assert.equal(channel.connectionCount, 1);
    await eventually(() => channel.connectionCount === 0, 10_000, 'the idle connection to close');
    const session = server.sessions[0] as ServerHttp2Session;
    await eventually(() => session.closed || session.destroyed, 10_000, 'the server to see the session close');
    assert.deepEqual(goaways, [h2c.NGHTTP2_NO_ERROR], 'the client said GOAWAY (NO_ERROR) before closing');
    const again = await startCall(channel, '/t.Idle/Two', [Buffer.from('back')]).done;
    assert.equal(again.result.code, GrpcStatus.OK, again.result.message);
    assert.equal(again.messages[0]?.toString(), 'back');
    assert.equal(server.sessions.length, 2);
  });

  test('a channel left open never keeps the process alive', T, async () => {
    const server = await startNodeServer(echo);
    const clientUrl = new URL('./client.ts', import.meta.url).href;
    const script = `
      const { H2Channel } = await import(${JSON.stringify(clientUrl)});
      const channel = new H2Channel({ host: '127.0.0.1', port: ${server.port} });
      const call = channel.call('/t.Exit/Unary');
      const got = [];
      call.setReader({
        headers() {},
        message(m) { got.push(Buffer.from(m).toString()); },
        end(r) { process.stdout.write(JSON.stringify({ code: r.code, message: r.message, got }) + '\\n'); },
      });
      call.sendMessage(Buffer.from('bye'));
      call.end();
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    onCleanup(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let stdout = '';
    let stderr = '';
    let printedAt: number | undefined;
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes('\n')) printedAt ??= Date.now();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await within(
      eventually(() => printedAt !== undefined || child.exitCode !== null, 40_000, 'the child to print its result'),
      45_000,
      'the child',
    );
    const code = await within(exited, 10_000, `the child to exit after its call (it printed ${JSON.stringify(stdout)}; stderr ${JSON.stringify(stderr.slice(0, 500))})`);
    assert.equal(code, 0, stderr);
    const line = JSON.parse(stdout.trim()) as { code: number; message: string; got: string[] };
    assert.equal(line.code, GrpcStatus.OK, line.message);
    assert.deepEqual(line.got, ['bye']);
    assert.equal(server.sessions.length, 1);
  });
});

