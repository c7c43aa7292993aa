// Courier's own HTTP/2 server end (src/h2/) at the protocol's edges, driven by peers that share no code
// with it: node:http2's client (nghttp2) and raw sockets writing frames by hand. Ordinary calls through
// GrpcServer are covered by src/grpc/*.test.ts (Courier's client) and interop.test.ts (grpc-js).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  connect as http2Connect,
  constants as h2,
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type ClientSessionOptions,
  type ClientSessionRequestOptions,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { GrpcStatus } from '../errors/index.js';
import type { ServerCall } from '../grpc/call.js';
import { GrpcServer, type GrpcServerOptions } from '../grpc/server.js';
import type { CallStatus } from '../grpc/status.js';
import { delay, eventually, readAll, registerEchoHandlers } from '../grpc/testing/helpers.js';
import { HpackDecoder, HpackEncoder } from './hpack.js';
import { ACK, COMPRESSION_ERROR, CONTINUATION, DATA, END_HEADERS, END_STREAM, ENHANCE_YOUR_CALM, frame, FRAME_SIZE_ERROR, GOAWAY, grpcMessage, HEADERS, NO_ERROR, PADDED, PING, PREFACE, PRIORITY_FLAG, PROTOCOL_ERROR, REFUSED_STREAM, RST_STREAM, SETTINGS, SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_CONCURRENT_STREAMS, settingsFrame, u32, WINDOW_UPDATE } from './testing/raw-frames.js';

/** An HPACK-encoded gRPC request head for `path`, plus `extra` fields. */
function requestBlock(path: string, extra: readonly (readonly [string, string])[] = []): Buffer {
  const encoder = new HpackEncoder();
  encoder.begin();
  encoder.add(':method', 'POST');
  encoder.add(':scheme', 'http');
  encoder.add(':path', path);
  encoder.add(':authority', 'localhost');
  encoder.add('content-type', 'application/grpc');
  encoder.add('te', 'trailers');
  for (const [name, value] of extra) encoder.add(name, value);
  return encoder.end();
}

/** Splits a response body into gRPC messages, checking the framing. */
function parseMessages(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < body.length) {
    assert.ok(body.length - at >= 5, `a truncated message head at ${at} of ${body.length}`);
    assert.equal(body[at], 0, 'compressed flag');
    const length = body.readUInt32BE(at + 1);
    assert.ok(at + 5 + length <= body.length, `a truncated message at ${at} (${length} bytes declared, ${body.length - at - 5} there)`);
    out.push(body.subarray(at + 5, at + 5 + length));
    at += 5 + length;
  }
  return out;
}

/** Deterministic, position-dependent bytes (so a reordered or dropped chunk shows). */
function pattern(size: number, seed = 0): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed * 7 + (i >>> 8)) & 0xff;
  return b;
}

/** Header values a field had, in order, from Node's flat raw list. */
function rawValues(raw: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i] === name) out.push(raw[i + 1] as string);
  return out;
}

// --- what every test opens, closed at the end -------------------------------------------------------

const servers: GrpcServer[] = [];
const sessionsClosed = new Map<ClientHttp2Session, Promise<void>>();
const rawPeers = new Set<RawPeer>();

async function startServer(options: GrpcServerOptions = {}): Promise<{ server: GrpcServer; port: number }> {
  const server = new GrpcServer(options);
  registerEchoHandlers(server);
  servers.push(server);
  const { port } = await server.listen('127.0.0.1', 0);
  return { server, port };
}

async function connectClient(port: number, options: ClientSessionOptions = {}): Promise<ClientHttp2Session> {
  const session = http2Connect(`http://127.0.0.1:${port}`, options);
  session.on('error', () => {});
  sessionsClosed.set(session, new Promise<void>((resolve) => session.once('close', () => resolve())));
  await new Promise<void>((resolve, reject) => {
    session.once('remoteSettings', () => resolve());
    session.once('close', () => reject(new Error("the session closed before the server's SETTINGS arrived")));
  });
  return session;
}

async function closeClient(session: ClientHttp2Session): Promise<void> {
  session.destroy();
  await sessionsClosed.get(session);
}

/** A gRPC POST on `session` (errors are reported by `readResponse`). */
function post(session: ClientHttp2Session, path: string, headers: OutgoingHttpHeaders = {}, options: ClientSessionRequestOptions = {}): ClientHttp2Stream {
  const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers }, options);
  stream.on('error', () => {});
  return stream;
}

interface H2Response {
  headers: IncomingHttpHeaders | undefined;
  rawHeaders: string[];
  trailers: IncomingHttpHeaders | undefined;
  rawTrailers: string[];
  body: Buffer;
  rstCode: number | undefined;
  error: Error | undefined;
}

/** Everything the node client sees of a stream, once it has closed (rejects after `timeoutMs`). */
function readResponse(stream: ClientHttp2Stream, timeoutMs = 20_000): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const res: Omit<H2Response, 'body' | 'rstCode'> = { headers: undefined, rawHeaders: [], trailers: undefined, rawTrailers: [], error: undefined };
    const timer = setTimeout(() => {
      stream.destroy();
      reject(new Error(`the stream did not close within ${timeoutMs} ms (response headers ${res.headers === undefined ? 'not ' : ''}received)`));
    }, timeoutMs);
    stream.on('response', (headers: IncomingHttpHeaders, _flags: number, raw?: string[]) => {
      res.headers = headers;
      res.rawHeaders = raw ?? [];
    });
    stream.on('trailers', (trailers: IncomingHttpHeaders, _flags: number, raw?: string[]) => {
      res.trailers = trailers;
      res.rawTrailers = raw ?? [];
    });
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', (err: Error) => {
      res.error = err;
    });
    stream.on('close', () => {
      clearTimeout(timer);
      resolve({ ...res, body: Buffer.concat(chunks), rstCode: stream.rstCode });
    });
  });
}

/** The call's status: from the trailers, or from the headers of a Trailers-Only response. */
function grpcStatusOf(res: H2Response): string | undefined {
  const status = (res.trailers ?? res.headers)?.['grpc-status'];
  return typeof status === 'string' ? status : undefined;
}

interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly stream: number;
  readonly payload: Buffer;
}

/** A client writing HTTP/2 frames by hand, keeping every frame the server sends. */
class RawPeer {
  readonly socket: Socket;
  readonly frames: Frame[] = [];
  closed = false;
  #pending: Buffer = Buffer.alloc(0);

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
    });
  }

  static async connect(port: number): Promise<RawPeer> {
    const socket = netConnect({ host: '127.0.0.1', port });
    const peer = new RawPeer(socket);
    rawPeers.add(peer);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    return peer;
  }

  /** Connects and sends the preface and SETTINGS with `settings`. */
  static async handshake(port: number, settings: readonly (readonly [number, number])[] = []): Promise<RawPeer> {
    const peer = await RawPeer.connect(port);
    peer.send(PREFACE, settingsFrame(settings));
    return peer;
  }

  send(...bytes: Buffer[]): void {
    if (!this.socket.destroyed) this.socket.write(Buffer.concat(bytes));
  }

  /** The first frame (received so far or later) that satisfies `predicate`. */
  async frame(predicate: (f: Frame) => boolean, what: string, timeoutMs = 10_000): Promise<Frame> {
    await eventually(() => this.frames.some(predicate), timeoutMs, what);
    return this.frames.find(predicate) as Frame;
  }

  /** The server's GOAWAY: last stream id, error code, debug text. */
  async goaway(timeoutMs = 10_000): Promise<{ lastStreamId: number; code: number; debug: string }> {
    const f = await this.frame((x) => x.type === GOAWAY, 'a GOAWAY from the server', timeoutMs);
    return { lastStreamId: f.payload.readUInt32BE(0) & 0x7fff_ffff, code: f.payload.readUInt32BE(4), debug: f.payload.subarray(8).toString() };
  }

  async waitClosed(timeoutMs = 10_000): Promise<void> {
    await eventually(() => this.closed, timeoutMs, 'the server to close the connection');
  }

  /** Total DATA payload bytes received on `stream`. */
  dataBytes(stream: number): number {
    let n = 0;
    for (const f of this.frames) if (f.type === DATA && f.stream === stream) n += f.payload.length;
    return n;
  }

  data(stream: number): Buffer {
    return Buffer.concat(this.frames.filter((f) => f.type === DATA && f.stream === stream).map((f) => f.payload));
  }

  /** The header blocks received on `stream` (HEADERS + CONTINUATION reassembled, decoded). */
  headerBlocks(stream: number): { fields: Record<string, string>; endStream: boolean; complete: boolean }[] {
    const decoder = new HpackDecoder();
    const out: { fields: Record<string, string>; endStream: boolean; complete: boolean }[] = [];
    let parts: Buffer[] | undefined;
    let endStream = false;
    const finish = (complete: boolean): void => {
      const block = Buffer.concat(parts ?? []);
      const fields: Record<string, string> = {};
      if (complete) decoder.decode(block, 0, block.length, (name, value) => (fields[name] = value));
      out.push({ fields, endStream, complete });
      parts = undefined;
    };
    for (const f of this.frames) {
      if (f.type === HEADERS) {
        // The server's encoder never pads nor sets priority; all blocks are decoded in order, every
        // stream's, to keep a decoder's table in step (the server's encoder keeps none anyway).
        parts = [f.payload];
        endStream = (f.flags & END_STREAM) !== 0;
        if ((f.flags & END_HEADERS) !== 0 && f.stream === stream) finish(true);
        else if ((f.flags & END_HEADERS) !== 0) parts = undefined;
      } else if (f.type === CONTINUATION && parts !== undefined) {
        parts.push(f.payload);
        if ((f.flags & END_HEADERS) !== 0) {
          if (f.stream === stream) finish(true);
          else parts = undefined;
        }
      }
    }
    return out;
  }

  #onData(chunk: Buffer): void {
    let buf = Buffer.concat([this.#pending, chunk]);
    while (buf.length >= 9) {
      const length = buf.readUIntBE(0, 3);
      if (buf.length < 9 + length) break;
      this.frames.push({ type: buf[3] as number, flags: buf[4] as number, stream: buf.readUInt32BE(5) & 0x7fff_ffff, payload: Buffer.from(buf.subarray(9, 9 + length)) });
      buf = buf.subarray(9 + length);
    }
    this.#pending = buf;
  }
}

/** Calls held by `/test.H2/Hold`, and what their readers saw. */
interface Held {
  readonly call: ServerCall;
  readonly messages: Buffer[];
  ended: boolean;
  error: CallStatus | undefined;
}

/** Registers `/test.H2/Hold`: calls wait for the test; with request metadata `x-headers-first` the headers go out at once. */
function holdCalls(server: GrpcServer): Held[] {
  const held: Held[] = [];
  server.register('/test.H2/Hold', (call) => {
    const record: Held = { call, messages: [], ended: false, error: undefined };
    held.push(record);
    if (call.metadata['x-headers-first'] !== undefined) call.sendHeaders();
    call.setReader({
      message: (bytes) => record.messages.push(Buffer.from(bytes)),
      end: () => {
        record.ended = true;
      },
      error: (status) => {
        record.error = status;
      },
    });
  });
  return held;
}

after(async () => {
  // Whatever a failed test left open is closed here (close is idempotent); then nothing may be left:
  // every server has no connection.
  for (const session of sessionsClosed.keys()) session.destroy();
  for (const peer of rawPeers) peer.socket.destroy();
  await Promise.all(servers.map((server) => server.close({ graceMs: 0 })));
  for (const server of servers) assert.equal(server.connectionCount, 0, 'connections left on a closed server');
});

// --- a node:http2 client -----------------------------------------------------------------------------

describe('H2ServerSession with a node:http2 client', () => {
  let server: GrpcServer;
  let port: number;
  let held: Held[];
  /** Calls that reached `/test.H2/Record`. */
  const recorded: ServerCall[] = [];
  const BIG_TRAILER = pattern(20_000).toString('base64').slice(0, 20_000);

  before(async () => {
    ({ server, port } = await startServer());
    held = holdCalls(server);
    server.register('/test.H2/Big', (call) => {
      void readAll(call).then(
        (messages) => {
          call.sendMessage(pattern(Number(messages[0]?.toString() ?? '0')));
          call.end({ code: GrpcStatus.OK });
        },
        () => {},
      );
    });
    server.register('/test.H2/Record', (call) => {
      recorded.push(call);
      void readAll(call).then(
        () => {
          call.sendMessage(Buffer.from('ok'));
          call.end({ code: GrpcStatus.OK });
        },
        () => {},
      );
    });
    server.register('/test.H2/BigTrailers', (call) => {
      void readAll(call).then(
        () => {
          call.sendHeaders({ 'x-m': ['a', 'b'] });
          call.sendMessage(Buffer.from('x'));
          call.end({ code: GrpcStatus.OK }, { 'x-big': BIG_TRAILER, 'x-t': ['c', 'd'] });
        },
        () => {},
      );
    });
    server.register('/test.H2/BigTrailersOnly', (call) => {
      call.end({ code: GrpcStatus.FAILED_PRECONDITION, message: 'no' }, { 'x-big': BIG_TRAILER });
    });
  });

  after(async () => {
    for (const session of sessionsClosed.keys()) session.destroy();
    await Promise.all(sessionsClosed.values());
    await server.close({ graceMs: 0 });
    assert.equal(server.connectionCount, 0);
  });

  test('a 300 000-byte response reaches a client whose stream window is 1 KiB, whole and intact, then grpc-status 0', async () => {
    const session = await connectClient(port, { settings: { initialWindowSize: 1024 } });
    const stream = post(session, '/test.H2/Big');
    const response = readResponse(stream);
    stream.end(grpcMessage('300000'));
    const res = await response;
    assert.equal(res.error, undefined);
    assert.equal(res.headers?.[':status'], 200);
    assert.equal(res.headers['content-type'], 'application/grpc');
    const messages = parseMessages(res.body);
    assert.equal(messages.length, 1);
    assert.equal(messages[0]?.length, 300_000);
    assert.ok(messages[0]?.equals(pattern(300_000)), 'the response bytes differ from what the handler sent');
    assert.equal(res.trailers?.['grpc-status'], '0');
    await closeClient(session);
  });

  test('a request header of 30 000 characters (HEADERS + CONTINUATION) reaches the handler intact', async () => {
    const session = await connectClient(port);
    const long = randomBytes(22_500).toString('base64');
    assert.equal(long.length, 30_000);
    const before = recorded.length;
    const stream = post(session, '/test.H2/Record', { 'x-long': long });
    const response = readResponse(stream);
    stream.end(grpcMessage('x'));
    const res = await response;
    assert.equal(grpcStatusOf(res), '0');
    assert.equal(recorded.length, before + 1);
    assert.equal(recorded.at(-1)?.metadata['x-long'], long);
    await closeClient(session);
  });

  test('a header list over 65 535 bytes resets the stream (ENHANCE_YOUR_CALM); the next call on the same connection still works', async () => {
    // node refuses to send a header block over 64 KiB itself unless told otherwise.
    const session = await connectClient(port, { maxSendHeaderBlockLength: 1 << 20 });
    const before = recorded.length;
    // nghttp2 indexes x-before and x-after (dynamic table) and sends x-big without indexing; the next
    // request refers to the indexed ones, so the server must have decoded the whole refused block.
    const big = post(session, '/test.H2/Record', { 'x-before': 'b1', 'x-big': 'a'.repeat(70_000), 'x-after': 'a1' }, { endStream: true });
    const refused = await readResponse(big);
    assert.equal(refused.headers, undefined, 'the oversized request was answered');
    assert.equal(refused.rstCode, ENHANCE_YOUR_CALM);
    assert.equal(recorded.length, before, 'the oversized request reached a handler');

    const next = post(session, '/test.H2/Record', { 'x-before': 'b1', 'x-after': 'a1', 'x-fresh': 'f1' });
    const response = readResponse(next);
    next.end(grpcMessage('x'));
    const res = await response;
    assert.equal(grpcStatusOf(res), '0');
    assert.deepEqual(parseMessages(res.body).map(String), ['ok']);
    const call = recorded.at(-1);
    assert.equal(recorded.length, before + 1);
    assert.equal(call?.metadata['x-before'], 'b1');
    assert.equal(call.metadata['x-after'], 'a1');
    assert.equal(call.metadata['x-fresh'], 'f1');
    assert.equal(session.destroyed, false);
    await closeClient(session);
  });

  test('trailers over 16 KiB arrive intact; multi-valued response headers and trailers arrive as each value', async () => {
    const session = await connectClient(port);
    const stream = post(session, '/test.H2/BigTrailers');
    const response = readResponse(stream);
    stream.end(grpcMessage('x'));
    const res = await response;
    assert.equal(res.error, undefined);
    assert.deepEqual(rawValues(res.rawHeaders, 'x-m'), ['a', 'b']);
    assert.deepEqual(parseMessages(res.body).map(String), ['x']);
    assert.equal(res.trailers?.['grpc-status'], '0');
    assert.equal(res.trailers['x-big'], BIG_TRAILER);
    assert.deepEqual(rawValues(res.rawTrailers, 'x-t'), ['c', 'd']);

    // The same in a Trailers-Only response (one header block with END_STREAM, over 16 KiB).
    const only = post(session, '/test.H2/BigTrailersOnly', {}, { endStream: true });
    const resOnly = await readResponse(only);
    assert.equal(resOnly.error, undefined);
    assert.equal(resOnly.headers?.[':status'], 200);
    assert.equal(resOnly.headers['grpc-status'], String(GrpcStatus.FAILED_PRECONDITION));
    assert.equal(resOnly.headers['x-big'], BIG_TRAILER);
    assert.equal(resOnly.trailers, undefined);
    assert.equal(resOnly.body.length, 0);
    await closeClient(session);
  });

  test('a client that resets its stream (CANCEL) aborts the handler: signal, CANCELLED, no call left', async () => {
    const session = await connectClient(port);
    const before = held.length;
    const stream = post(session, '/test.H2/Hold');
    const response = readResponse(stream);
    stream.write(grpcMessage('hold'));
    await eventually(() => held.length === before + 1 && (held[before]?.messages.length ?? 0) === 1, 10_000, 'the held call and its message');
    const record = held[before] as Held;
    const signal = record.call.signal;
    assert.equal(signal.aborted, false);
    assert.equal(server.activeCallCount, 1);
    stream.close(h2.NGHTTP2_CANCEL);
    await eventually(() => signal.aborted, 10_000, "the handler's signal to abort");
    assert.equal(record.call.statusCode, GrpcStatus.CANCELLED);
    // node's close() half-closes the stream (empty DATA with END_STREAM) before its RST_STREAM, so the
    // reader may have had end() already; then the cancellation shows through the signal only.
    if (record.error !== undefined) assert.equal(record.error.code, GrpcStatus.CANCELLED);
    else assert.equal(record.ended, true);
    assert.equal(record.call.finished, true);
    await eventually(() => server.activeCallCount === 0, 10_000, 'no active call');
    const res = await response;
    assert.equal(res.rstCode, h2.NGHTTP2_CANCEL);
    // The connection is fine: a sending to the cancelled call is a no-op, and a new call works.
    assert.equal(record.call.sendMessage(Buffer.from('late')), true);
    record.call.end({ code: GrpcStatus.OK });
    const next = post(session, '/test.Echo/Unary');
    const nextResponse = readResponse(next);
    next.end(grpcMessage('again'));
    const nextRes = await nextResponse;
    assert.equal(grpcStatusOf(nextRes), '0');
    assert.deepEqual(parseMessages(nextRes.body).map(String), ['again']);
    await closeClient(session);
  });

  test('grpc-timeout 50m on a held call ends it with DEADLINE_EXCEEDED in the trailers', async () => {
    const session = await connectClient(port);
    const before = held.length;
    const stream = post(session, '/test.H2/Hold', { 'grpc-timeout': '50m', 'x-headers-first': '1' });
    const response = readResponse(stream);
    stream.write(grpcMessage('hold'));
    const res = await response;
    assert.equal(res.headers?.[':status'], 200);
    assert.equal(res.trailers?.['grpc-status'], String(GrpcStatus.DEADLINE_EXCEEDED));
    const record = held[before];
    assert.ok(record !== undefined, 'the call did not reach the handler');
    assert.equal(record.call.signal.aborted, true);
    assert.equal(record.call.statusCode, GrpcStatus.DEADLINE_EXCEEDED);
    assert.equal(record.error?.code, GrpcStatus.DEADLINE_EXCEEDED);
    await eventually(() => server.activeCallCount === 0, 10_000, 'no active call');
    await closeClient(session);
  });

  test('a malformed grpc-timeout gets INTERNAL in a Trailers-Only response, without reaching a handler', async () => {
    const session = await connectClient(port);
    const before = held.length;
    const res = await readResponse(post(session, '/test.H2/Hold', { 'grpc-timeout': 'abc' }, { endStream: true }));
    assert.equal(res.headers?.[':status'], 200);
    assert.equal(res.headers['content-type'], 'application/grpc');
    assert.equal(res.headers['grpc-status'], String(GrpcStatus.INTERNAL));
    assert.equal(res.trailers, undefined);
    assert.equal(held.length, before);
    await closeClient(session);
  });

  test('requests that are not gRPC: GET gets 405 with allow, text/plain 415, gzip UNIMPLEMENTED, unknown paths UNIMPLEMENTED in grpc-go words', async () => {
    const session = await connectClient(port);
    const get = session.request({ ':method': 'GET', ':path': '/test.Echo/Unary' }, { endStream: true });
    get.on('error', () => {});
    const resGet = await readResponse(get);
    assert.equal(resGet.headers?.[':status'], 405);
    assert.equal(resGet.headers.allow, 'POST');

    const text = await readResponse(post(session, '/test.Echo/Unary', { 'content-type': 'text/plain' }, { endStream: true }));
    assert.equal(text.headers?.[':status'], 415);
    assert.equal(text.headers['grpc-status'], undefined);

    const gzip = await readResponse(post(session, '/test.Echo/Unary', { 'grpc-encoding': 'gzip' }, { endStream: true }));
    assert.equal(gzip.headers?.[':status'], 200);
    assert.equal(gzip.headers['grpc-status'], String(GrpcStatus.UNIMPLEMENTED));
    assert.equal(gzip.headers['grpc-accept-encoding'], 'identity');

    const service = await readResponse(post(session, '/nope.Svc/Method', {}, { endStream: true }));
    assert.equal(service.headers?.['grpc-status'], String(GrpcStatus.UNIMPLEMENTED));
    assert.equal(decodeURIComponent(String(service.headers['grpc-message'])), 'unknown service nope.Svc');

    const method = await readResponse(post(session, '/test.Echo/Nope', {}, { endStream: true }));
    assert.equal(method.headers?.['grpc-status'], String(GrpcStatus.UNIMPLEMENTED));
    assert.equal(decodeURIComponent(String(method.headers['grpc-message'])), 'unknown method Nope for service test.Echo');
    await closeClient(session);
  });

  test('backpressure to the client: a paused client holds the handler back (sendMessage false), then all 200 × 64 KiB arrive in order', async () => {
    const COUNT = 200;
    const SIZE = 64 * 1024;
    let clientPaused = false;
    const progress = { sent: 0, fullWhilePaused: 0, ended: false };
    server.register('/test.H2/Download', (call) => {
      let i = 0;
      const pump = (): void => {
        while (i < COUNT) {
          const message = Buffer.alloc(SIZE, i & 0xff);
          message.writeUInt32BE(i, 0);
          i++;
          progress.sent = i;
          if (!call.sendMessage(message)) {
            if (clientPaused) progress.fullWhilePaused++;
            call.onDrain(pump);
            return;
          }
        }
        progress.ended = true;
        call.end({ code: GrpcStatus.OK });
      };
      call.setReader({ message: () => {}, end: pump, error: () => {} });
    });
    const session = await connectClient(port);
    const stream = post(session, '/test.H2/Download');
    stream.pause();
    clientPaused = true;
    const response = readResponse(stream, 60_000);
    stream.end(grpcMessage('go'));
    await eventually(() => progress.fullWhilePaused > 0, 10_000, 'sendMessage to report a full buffer');
    // Wait until the handler stops making progress; it must stop well before the end.
    let last = -1;
    for (let i = 0; i < 100 && progress.sent !== last; i++) {
      last = progress.sent;
      await delay(200);
    }
    assert.ok(progress.sent < COUNT, `the handler sent all ${COUNT} messages to a client that read nothing`);
    assert.equal(progress.ended, false);
    clientPaused = false;
    stream.resume();
    const res = await response;
    assert.equal(res.trailers?.['grpc-status'], '0');
    const messages = parseMessages(res.body);
    assert.equal(messages.length, COUNT);
    messages.forEach((m, i) => {
      assert.equal(m.length, SIZE);
      assert.equal(m.readUInt32BE(0), i, `message ${i} out of order`);
      assert.equal(m[SIZE - 1], i & 0xff);
    });
    await closeClient(session);
  });

  test('backpressure from the client: a paused call stops the client sending 2 MB; after resume every byte arrives', async () => {
    const COUNT = 32;
    const SIZE = 64 * 1024;
    const upload = { call: undefined as ServerCall | undefined, order: [] as number[], bytes: 0, bad: 0 };
    server.register('/test.H2/Upload', (call) => {
      upload.call = call;
      call.setReader({
        message: (bytes) => {
          const i = bytes.readUInt32BE(0);
          upload.order.push(i);
          upload.bytes += bytes.length;
          if (!bytes.subarray(4).equals(pattern(SIZE - 4, i))) upload.bad++;
          if (upload.order.length === 1) call.pause();
        },
        end: () => {
          call.sendMessage(Buffer.from(`${upload.order.length}:${upload.bytes}`));
          call.end({ code: GrpcStatus.OK });
        },
        error: () => {},
      });
    });
    const chunks = Array.from({ length: COUNT }, (_, i) => {
      const m = Buffer.alloc(SIZE);
      m.writeUInt32BE(i, 0);
      pattern(SIZE - 4, i).copy(m, 4);
      return grpcMessage(m);
    });
    const total = chunks.reduce((n, c) => n + c.length, 0);
    const session = await connectClient(port);
    const stream = post(session, '/test.H2/Upload');
    const response = readResponse(stream, 60_000);
    // One write per message: the client's buffer shrinks as each one is sent.
    const accepted = chunks.map((c) => stream.write(c));
    stream.end();
    assert.equal(accepted.at(-1), false, 'the client buffered 2 MB without reporting a full buffer');
    await eventually(() => upload.order.length === 1, 10_000, 'the first message');
    // The handler is paused: the client's buffer stops draining, with most of the 2 MB still in it.
    let last = -1;
    for (let i = 0; i < 100 && stream.writableLength !== last; i++) {
      last = stream.writableLength;
      await delay(200);
    }
    assert.ok(stream.writableLength > total - 512 * 1024, `the client's buffer drained to ${stream.writableLength} of ${total} bytes while the call was paused`);
    assert.equal(upload.order.length, 1, 'messages were delivered to a paused call');
    upload.call?.resume();
    const res = await response;
    assert.equal(res.trailers?.['grpc-status'], '0');
    assert.deepEqual(parseMessages(res.body).map(String), [`${COUNT}:${COUNT * SIZE}`]);
    assert.deepEqual(
      upload.order,
      Array.from({ length: COUNT }, (_, i) => i),
    );
    assert.equal(upload.bad, 0);
    assert.equal(stream.writableLength, 0);
    await closeClient(session);
  });

  test('PING is acknowledged with its payload', async () => {
    const session = await connectClient(port);
    const payload = Buffer.from('courier1');
    const echoed = await new Promise<Buffer>((resolve, reject) => {
      session.ping(payload, (err, _duration, answer) => (err === null ? resolve(answer) : reject(err)));
    });
    assert.deepEqual(echoed, payload);
    await closeClient(session);
  });

  test('the client ends its request with trailers (HEADERS with END_STREAM): the handler reads to the end and answers', async () => {
    const session = await connectClient(port);
    const stream = post(session, '/test.Echo/ClientStream', {}, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'x-client-trailer': 'yes' }));
    const response = readResponse(stream);
    stream.write(grpcMessage('a'));
    stream.write(grpcMessage('b'));
    stream.end(grpcMessage('c'));
    const res = await response;
    assert.equal(res.trailers?.['grpc-status'], '0');
    assert.deepEqual(parseMessages(res.body).map(String), ['3']);
    await closeClient(session);
  });

  test('a client that limits its HPACK table (SETTINGS_HEADER_TABLE_SIZE 0) can read the responses', async () => {
    // RFC 7541 §4.2: after the client lowers the table size below 4096, the first header block the
    // server sends must start with a dynamic table size update; nghttp2 enforces it.
    const session = await connectClient(port, { settings: { headerTableSize: 0 } });
    const stream = post(session, '/test.Echo/Unary');
    const response = readResponse(stream, 10_000);
    stream.end(grpcMessage('small table'));
    const res = await response;
    assert.equal(res.error, undefined);
    assert.equal(grpcStatusOf(res), '0');
    assert.deepEqual(parseMessages(res.body).map(String), ['small table']);
    await closeClient(session);
  });
});

describe('H2ServerSession limits and shutdown, with a node:http2 client', () => {
  test('maxConcurrentStreams 2: node honours the SETTINGS and queues a third call until one ends', async () => {
    const { server, port } = await startServer({ maxConcurrentStreams: 2 });
    const held = holdCalls(server);
    const session = await connectClient(port);
    try {
      assert.equal(session.remoteSettings.maxConcurrentStreams, 2);
      const streams = [0, 1, 2].map(() => post(session, '/test.H2/Hold'));
      const responses = streams.map((s) => readResponse(s));
      for (const s of streams) s.end(grpcMessage('hold'));
      await eventually(() => held.length === 2, 10_000, 'two held calls');
      await delay(300);
      assert.equal(held.length, 2, 'a third stream was opened beyond the limit');
      held[0]?.call.end({ code: GrpcStatus.OK });
      await eventually(() => held.length === 3, 10_000, 'the third call, once one ended');
      held[1]?.call.end({ code: GrpcStatus.OK });
      held[2]?.call.end({ code: GrpcStatus.OK });
      for (const res of await Promise.all(responses)) assert.equal(grpcStatusOf(res), '0');
    } finally {
      await closeClient(session);
      await server.close({ graceMs: 0 });
    }
    assert.equal(server.connectionCount, 0);
  });

  test('close({ graceMs }): GOAWAY (NO_ERROR) at once, the held call still finishes, then close resolves with no connection left', async () => {
    const { server, port } = await startServer();
    const held = holdCalls(server);
    const session = await connectClient(port);
    const goaway = new Promise<[number, number]>((resolve) => session.once('goaway', (code: number, last: number) => resolve([code, last])));
    const stream = post(session, '/test.H2/Hold');
    const response = readResponse(stream);
    stream.write(grpcMessage('hold'));
    await eventually(() => held.length === 1, 10_000, 'the held call');
    let closed = false;
    const closing = server.close({ graceMs: 10_000 }).then(() => {
      closed = true;
    });
    const [code, lastStreamId] = await goaway;
    assert.equal(code, h2.NGHTTP2_NO_ERROR);
    assert.equal(lastStreamId, 1);
    assert.equal(closed, false);
    const call = (held[0] as Held).call;
    assert.equal(call.signal.aborted, false);
    call.sendMessage(Buffer.from('bye'));
    call.end({ code: GrpcStatus.OK });
    const res = await response;
    assert.deepEqual(parseMessages(res.body).map(String), ['bye']);
    assert.equal(res.trailers?.['grpc-status'], '0');
    await closing;
    assert.equal(server.connectionCount, 0);
    assert.equal(server.activeCallCount, 0);
    await sessionsClosed.get(session);
  });
});

// --- raw sockets -------------------------------------------------------------------------------------

describe('H2ServerSession with frames written by hand', () => {
  let server: GrpcServer;
  let port: number;
  let held: Held[];

  before(async () => {
    ({ server, port } = await startServer({ maxConcurrentStreams: 5 }));
    held = holdCalls(server);
    server.register('/test.H2/Big', (call) => {
      void readAll(call).then(
        (messages) => {
          call.sendMessage(pattern(Number(messages[0]?.toString() ?? '0')));
          call.end({ code: GrpcStatus.OK });
        },
        () => {},
      );
    });
  });

  after(async () => {
    for (const peer of rawPeers) peer.socket.destroy();
    await eventually(() => [...rawPeers].every((p) => p.closed), 10_000, 'raw sockets closed');
    await server.close({ graceMs: 0 });
    assert.equal(server.connectionCount, 0);
  });

  test('bytes that are not the HTTP/2 preface: the server closes the connection', async () => {
    const peer = await RawPeer.connect(port);
    peer.send(Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'));
    await peer.waitClosed();
    assert.equal(peer.frames.filter((f) => f.type !== SETTINGS && f.type !== WINDOW_UPDATE).length, 0);
  });

  test('a PING before the SETTINGS: GOAWAY PROTOCOL_ERROR, then the connection closes', async () => {
    const peer = await RawPeer.connect(port);
    peer.send(PREFACE, frame(PING, 0, 0, Buffer.from('12345678')));
    const goaway = await peer.goaway();
    assert.equal(goaway.code, PROTOCOL_ERROR);
    assert.equal(peer.frames.some((f) => f.type === PING), false, 'the PING was answered');
    await peer.waitClosed();
  });

  test('HEADERS on an even stream: GOAWAY PROTOCOL_ERROR', async () => {
    const peer = await RawPeer.handshake(port);
    peer.send(frame(HEADERS, END_HEADERS | END_STREAM, 2, requestBlock('/test.Echo/Unary')));
    const goaway = await peer.goaway();
    assert.equal(goaway.code, PROTOCOL_ERROR);
    await peer.waitClosed();
  });

  test('a header block interrupted by another frame: GOAWAY PROTOCOL_ERROR', async () => {
    const peer = await RawPeer.handshake(port);
    const block = requestBlock('/test.Echo/Unary');
    peer.send(frame(HEADERS, END_STREAM, 1, block.subarray(0, 5)), frame(PING, 0, 0, Buffer.from('12345678')));
    const goaway = await peer.goaway();
    assert.equal(goaway.code, PROTOCOL_ERROR);
    assert.equal(peer.frames.some((f) => f.type === PING), false, 'the PING was answered');
    await peer.waitClosed();
  });

  test('a frame of exactly 16 384 bytes is taken; one of 16 385 gets GOAWAY FRAME_SIZE_ERROR', async () => {
    const before = held.length;
    const peer = await RawPeer.handshake(port);
    peer.send(frame(HEADERS, END_HEADERS, 1, requestBlock('/test.H2/Hold')));
    const message = grpcMessage(pattern(16_384 - 5));
    assert.equal(message.length, 16_384);
    peer.send(frame(DATA, 0, 1, message));
    await eventually(() => held[before]?.messages.length === 1, 10_000, 'the 16 384-byte frame to arrive');
    assert.ok(held[before]?.messages[0]?.equals(pattern(16_384 - 5)));
    peer.send(frame(DATA, 0, 1, Buffer.alloc(16_385)));
    const goaway = await peer.goaway();
    assert.equal(goaway.code, FRAME_SIZE_ERROR);
    assert.equal(goaway.lastStreamId, 1);
    await peer.waitClosed();
    await eventually(() => held[before]?.error !== undefined, 10_000, 'the held call to fail with the connection');
  });

  test('an HPACK index beyond both tables: GOAWAY COMPRESSION_ERROR', async () => {
    const peer = await RawPeer.handshake(port);
    // 0xbf: indexed field 63; the static table ends at 61 and the dynamic table is empty.
    peer.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, Buffer.from([0x83, 0x86, 0xbf])));
    const goaway = await peer.goaway();
    assert.equal(goaway.code, COMPRESSION_ERROR);
    await peer.waitClosed();
  });

  test("the server's first frame is SETTINGS with SETTINGS_MAX_CONCURRENT_STREAMS; it acknowledges the client's SETTINGS", async () => {
    const peer = await RawPeer.handshake(port);
    const ack = await peer.frame((f) => f.type === SETTINGS && (f.flags & ACK) !== 0, 'the SETTINGS acknowledgement');
    assert.equal(ack.payload.length, 0);
    const first = peer.frames[0] as Frame;
    assert.equal(first.type, SETTINGS);
    assert.equal(first.flags & ACK, 0);
    assert.equal(first.stream, 0);
    const entries = new Map<number, number>();
    for (let at = 0; at + 6 <= first.payload.length; at += 6) entries.set(first.payload.readUInt16BE(at), first.payload.readUInt32BE(at + 2));
    assert.equal(entries.get(SETTINGS_MAX_CONCURRENT_STREAMS), 5);
    peer.socket.destroy();
  });

  test('HEADERS split over many CONTINUATION frames, cut anywhere, reach the handler intact', async () => {
    const before = held.length;
    const long = pattern(30_000).toString('base64').slice(0, 30_000);
    const block = requestBlock('/test.H2/Hold', [['x-long', long], ['x-short', 'yes']]);
    const cuts = [0, 1, 2, 7, 100, 16_484, 30_000, block.length];
    const peer = await RawPeer.handshake(port);
    const frames: Buffer[] = [];
    for (let i = 0; i + 1 < cuts.length; i++) {
      const last = i + 2 === cuts.length;
      frames.push(frame(i === 0 ? HEADERS : CONTINUATION, last ? END_HEADERS : 0, 1, block.subarray(cuts[i], cuts[i + 1])));
    }
    // One byte at a time: the frame parser meets every possible split of the input too.
    const bytes = Buffer.concat(frames);
    for (let at = 0; at < 200; at++) peer.send(bytes.subarray(at, at + 1));
    peer.send(bytes.subarray(200));
    await eventually(() => held.length === before + 1, 10_000, 'the call');
    const call = (held[before] as Held).call;
    assert.equal(call.metadata['x-long'], long);
    assert.equal(call.metadata['x-short'], 'yes');
    call.end({ code: GrpcStatus.OK });
    await peer.frame((f) => f.type === HEADERS && f.stream === 1 && (f.flags & END_STREAM) !== 0, 'the Trailers-Only answer');
    assert.equal(peer.headerBlocks(1)[0]?.fields['grpc-status'], '0');
    peer.socket.destroy();
  });

  test('a header block stretched over 100 000 empty CONTINUATION frames is refused (GOAWAY) before it is served', async () => {
    // The CONTINUATION flood (VU#421644): empty fragments carry no header bytes, so a limit on the
    // block's bytes alone never trips while the server keeps a fragment object per frame.
    const peer = await RawPeer.handshake(port);
    const block = requestBlock('/test.Echo/Unary');
    const empty = frame(CONTINUATION, 0, 1);
    peer.send(frame(HEADERS, 0, 1, block.subarray(0, 1)));
    const batch = Buffer.concat(Array.from({ length: 10_000 }, () => empty));
    for (let i = 0; i < 10 && !peer.closed; i++) {
      if (!peer.socket.write(batch)) await new Promise<void>((resolve) => peer.socket.once('drain', () => resolve()));
    }
    peer.send(frame(CONTINUATION, END_HEADERS, 1, block.subarray(1)), frame(DATA, END_STREAM, 1, grpcMessage('flood')));
    const outcome = await peer.frame((f) => f.type === GOAWAY || (f.type === HEADERS && f.stream === 1), 'a GOAWAY, or an answer on stream 1', 20_000);
    assert.equal(outcome.type, GOAWAY, 'the server took 100 000 empty CONTINUATION frames and served the call');
    assert.ok([PROTOCOL_ERROR, ENHANCE_YOUR_CALM].includes(outcome.payload.readUInt32BE(4)), `GOAWAY code ${outcome.payload.readUInt32BE(4)}`);
    await peer.waitClosed();
  });

  test('padded HEADERS with priority and padded DATA: the message arrives without the padding', async () => {
    const before = held.length;
    const peer = await RawPeer.handshake(port);
    const block = requestBlock('/test.H2/Hold');
    // Pad Length, E + Stream Dependency, Weight, the block, the padding.
    const headers = Buffer.concat([Buffer.from([3]), u32(0), Buffer.from([15]), block, Buffer.alloc(3, 0xee)]);
    peer.send(frame(HEADERS, END_HEADERS | PADDED | PRIORITY_FLAG, 1, headers));
    const message = grpcMessage('padded');
    peer.send(frame(DATA, PADDED | END_STREAM, 1, Buffer.concat([Buffer.from([10]), message, Buffer.alloc(10, 0xee)])));
    await eventually(() => held[before]?.ended === true, 10_000, 'the padded request to arrive and end');
    assert.deepEqual(held[before]?.messages.map(String), ['padded']);
    assert.equal(held[before]?.call.path, '/test.H2/Hold');
    held[before]?.call.end({ code: GrpcStatus.OK });
    peer.socket.destroy();
  });

  test('malformed requests reset only their stream: no :path gets RST_STREAM PROTOCOL_ERROR, the connection goes on', async () => {
    const peer = await RawPeer.handshake(port);
    const encoder = new HpackEncoder();
    encoder.begin();
    encoder.add(':method', 'POST');
    encoder.add(':scheme', 'http');
    encoder.add('content-type', 'application/grpc');
    peer.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, encoder.end()));
    const rst = await peer.frame((f) => f.type === RST_STREAM && f.stream === 1, 'RST_STREAM on stream 1');
    assert.equal(rst.payload.readUInt32BE(0), PROTOCOL_ERROR);
    peer.send(frame(HEADERS, END_HEADERS, 3, requestBlock('/test.Echo/Unary')), frame(DATA, END_STREAM, 3, grpcMessage('still here')));
    await peer.frame((f) => f.type === HEADERS && f.stream === 3 && (f.flags & END_STREAM) !== 0, 'the trailers of stream 3');
    assert.deepEqual(parseMessages(peer.data(3)).map(String), ['still here']);
    assert.equal(peer.headerBlocks(3).at(-1)?.fields['grpc-status'], '0');
    assert.equal(peer.frames.some((f) => f.type === GOAWAY), false);
    peer.socket.destroy();
  });

  test('flow control: the server sends exactly the windows it has, in DATA frames of at most 16 384 bytes, and goes on with each credit', async () => {
    const SIZE = 300_000;
    const peer = await RawPeer.handshake(port);
    peer.send(frame(HEADERS, END_HEADERS, 1, requestBlock('/test.H2/Big')), frame(DATA, END_STREAM, 1, grpcMessage(String(SIZE))));
    // Both windows are the protocol's 65 535 bytes.
    await eventually(() => peer.dataBytes(1) === 65_535, 10_000, 'the first 65 535 bytes');
    await delay(200);
    assert.equal(peer.dataBytes(1), 65_535, 'the server sent beyond the windows');
    // Connection credit alone does not release a stream whose own window is empty.
    peer.send(frame(WINDOW_UPDATE, 0, 0, u32(1 << 20)));
    await delay(200);
    assert.equal(peer.dataBytes(1), 65_535, "the server sent beyond the stream's window");
    // A larger initial window (SETTINGS) applies to the open stream too.
    peer.send(settingsFrame([[SETTINGS_INITIAL_WINDOW_SIZE, 65_535 + 100_000]]));
    await eventually(() => peer.dataBytes(1) === 165_535, 10_000, 'the next 100 000 bytes');
    peer.send(frame(WINDOW_UPDATE, 0, 1, u32(1 << 20)));
    await peer.frame((f) => f.type === HEADERS && f.stream === 1 && (f.flags & END_STREAM) !== 0, 'the trailers');
    const dataFrames = peer.frames.filter((f) => f.type === DATA && f.stream === 1);
    assert.ok(
      dataFrames.every((f) => f.payload.length <= 16_384),
      `DATA frames over 16 384 bytes: ${dataFrames.map((f) => f.payload.length).filter((n) => n > 16_384).join(', ')}`,
    );
    const messages = parseMessages(peer.data(1));
    assert.equal(messages.length, 1);
    assert.ok(messages[0]?.equals(pattern(SIZE)));
    const blocks = peer.headerBlocks(1);
    assert.equal(blocks[0]?.fields[':status'], '200');
    assert.equal(blocks.at(-1)?.fields['grpc-status'], '0');
    assert.equal(blocks.at(-1)?.endStream, true);
    peer.socket.destroy();
  });

  test('the client ends its request with a trailers block: the handler gets end() and the call answers', async () => {
    const peer = await RawPeer.handshake(port);
    const trailers = new HpackEncoder();
    trailers.begin();
    trailers.add('x-client-trailer', 'yes');
    peer.send(
      frame(HEADERS, END_HEADERS, 1, requestBlock('/test.Echo/ClientStream')),
      frame(DATA, 0, 1, Buffer.concat([grpcMessage('a'), grpcMessage('b')])),
      frame(HEADERS, END_HEADERS | END_STREAM, 1, trailers.end()),
    );
    await peer.frame((f) => f.type === HEADERS && f.stream === 1 && (f.flags & END_STREAM) !== 0, 'the trailers');
    assert.deepEqual(parseMessages(peer.data(1)).map(String), ['2']);
    assert.equal(peer.headerBlocks(1).at(-1)?.fields['grpc-status'], '0');
    assert.equal(peer.frames.some((f) => f.type === RST_STREAM || f.type === GOAWAY), false);
    peer.socket.destroy();
  });

  test('RST_STREAM CANCEL on a held call whose request is still open: reader error CANCELLED, signal aborted, the connection goes on', async () => {
    const before = held.length;
    const peer = await RawPeer.handshake(port);
    peer.send(frame(HEADERS, END_HEADERS, 1, requestBlock('/test.H2/Hold')), frame(DATA, 0, 1, grpcMessage('hold')));
    await eventually(() => held[before]?.messages.length === 1, 10_000, 'the held call and its message');
    const record = held[before] as Held;
    const signal = record.call.signal;
    peer.send(frame(RST_STREAM, 0, 1, u32(0x8 /* CANCEL */)));
    await eventually(() => signal.aborted, 10_000, "the handler's signal to abort");
    assert.equal(record.call.statusCode, GrpcStatus.CANCELLED);
    assert.equal(record.error?.code, GrpcStatus.CANCELLED);
    assert.equal(record.ended, false);
    // DATA that crossed the reset is dropped quietly (it still counts against the connection window).
    peer.send(frame(DATA, END_STREAM, 1, grpcMessage('late')));
    peer.send(frame(HEADERS, END_HEADERS, 3, requestBlock('/test.Echo/Unary')), frame(DATA, END_STREAM, 3, grpcMessage('next')));
    await peer.frame((f) => f.type === HEADERS && f.stream === 3 && (f.flags & END_STREAM) !== 0, 'the trailers of stream 3');
    assert.deepEqual(parseMessages(peer.data(3)).map(String), ['next']);
    assert.equal(peer.frames.some((f) => f.type === GOAWAY || (f.type === RST_STREAM && f.stream === 3)), false);
    assert.equal(peer.frames.some((f) => f.stream === 1 && f.type !== WINDOW_UPDATE), false, 'the server answered a cancelled stream');
    peer.socket.destroy();
  });

  test('maxConcurrentStreams: a stream beyond the limit gets RST_STREAM REFUSED_STREAM; the others run', async () => {
    const before = held.length;
    const peer = await RawPeer.handshake(port);
    for (const id of [1, 3, 5, 7, 9, 11]) peer.send(frame(HEADERS, END_HEADERS, id, requestBlock('/test.H2/Hold')));
    const rst = await peer.frame((f) => f.type === RST_STREAM, 'a refused stream');
    assert.equal(rst.stream, 11);
    assert.equal(rst.payload.readUInt32BE(0), REFUSED_STREAM);
    await eventually(() => held.length === before + 5, 10_000, 'five held calls');
    assert.equal(peer.frames.filter((f) => f.type === RST_STREAM).length, 1);
    // One ends: the next stream is taken.
    held[before]?.call.end({ code: GrpcStatus.OK });
    await peer.frame((f) => f.type === HEADERS && f.stream === 1 && (f.flags & END_STREAM) !== 0, 'the end of stream 1');
    peer.send(frame(HEADERS, END_HEADERS, 13, requestBlock('/test.H2/Hold')));
    await eventually(() => held.length === before + 6, 10_000, 'a sixth held call');
    assert.equal(held.at(-1)?.call.metadata[':path'], '/test.H2/Hold');
    peer.socket.destroy();
    await eventually(() => held.slice(before + 1).every((h) => h.error !== undefined), 10_000, 'the held calls to fail with the connection');
  });
});

describe('H2ServerSession handshake and shutdown, with frames written by hand', () => {
  test('handshakeTimeoutMs: a connection that sends nothing, or only the preface, is closed; one that sent SETTINGS is not', async () => {
    const { server, port } = await startServer({ handshakeTimeoutMs: 200 });
    try {
      const silent = await RawPeer.connect(port);
      const prefaceOnly = await RawPeer.connect(port);
      prefaceOnly.send(PREFACE);
      const ready = await RawPeer.handshake(port);
      await silent.waitClosed(10_000);
      await prefaceOnly.waitClosed(10_000);
      await delay(1000);
      assert.equal(ready.closed, false, 'a connection that completed its handshake was closed');
      ready.send(frame(PING, 0, 0, Buffer.from('stillok!')));
      const pong = await ready.frame((f) => f.type === PING && (f.flags & ACK) !== 0, 'the PING answer');
      assert.equal(pong.payload.toString(), 'stillok!');
      ready.socket.destroy();
      await ready.waitClosed();
    } finally {
      await server.close({ graceMs: 0 });
    }
    assert.equal(server.connectionCount, 0);
  });

  test('close({ graceMs }): GOAWAY with the last stream, new streams are refused, the held call finishes, then the connection closes', async () => {
    const { server, port } = await startServer();
    const held = holdCalls(server);
    const peer = await RawPeer.handshake(port);
    peer.send(frame(HEADERS, END_HEADERS, 1, requestBlock('/test.H2/Hold')), frame(DATA, 0, 1, grpcMessage('hold')));
    await eventually(() => held.length === 1, 10_000, 'the held call');
    const closing = server.close({ graceMs: 10_000 });
    const goaway = await peer.goaway();
    assert.equal(goaway.code, NO_ERROR);
    assert.equal(goaway.lastStreamId, 1);
    peer.send(frame(HEADERS, END_HEADERS | END_STREAM, 3, requestBlock('/test.Echo/Unary')));
    const rst = await peer.frame((f) => f.type === RST_STREAM && f.stream === 3, 'stream 3 refused');
    assert.equal(rst.payload.readUInt32BE(0), REFUSED_STREAM);
    assert.equal(held.length, 1);
    const call = (held[0] as Held).call;
    call.sendMessage(Buffer.from('bye'));
    call.end({ code: GrpcStatus.OK });
    await peer.frame((f) => f.type === HEADERS && f.stream === 1 && (f.flags & END_STREAM) !== 0, 'the trailers of stream 1');
    assert.deepEqual(parseMessages(peer.data(1)).map(String), ['bye']);
    assert.equal(peer.headerBlocks(1).at(-1)?.fields['grpc-status'], '0');
    await peer.waitClosed();
    await closing;
    assert.equal(server.connectionCount, 0);
  });
});
