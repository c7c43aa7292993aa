// Courier's own HTTP/1.1 client (Http1Pool, src/http1/client.ts) against peers that share no code with
// it: node:http servers where a well-behaved app is enough, and raw node:net servers writing exact
// bytes where a response must be malformed, specially framed or split between reads.
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type IncomingHttpHeaders, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import {
  APP_CLOSED,
  BAD_REQUEST,
  BAD_RESPONSE,
  Http1Error,
  Http1Pool,
  POOL_CLOSED,
  type Http1CallControl,
  type Http1Handler,
  type Http1PoolOptions,
  type Http1Request,
} from './client.js';
import { within } from '../grpc/testing/helpers.js';

// --- small helpers ---------------------------------------------------------------------------------

const T = { timeout: 30_000 };

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Two turns of the event loop: bytes written before it are read by the client before bytes written after. */
function turns(): Promise<void> {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}

/** Polls `predicate` until it holds; rejects after `timeoutMs`. */
async function eventually(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await delay(5);
  }
}

/** Resolves once `sample()` has stayed the same for 20 polls in a row (something has stopped moving). */
async function steady(sample: () => number, what: string, timeoutMs = 15_000): Promise<number> {
  let last = Number.NaN;
  let still = 0;
  await eventually(
    () => {
      const now = sample();
      still = now === last ? still + 1 : 0;
      last = now;
      return still >= 20;
    },
    what,
    timeoutMs,
  );
  return last;
}

/** Deterministic bytes that depend on their absolute position (a dropped or reordered byte shows). */
function patternAt(offset: number, size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) {
    const at = offset + i;
    b[i] = (at * 31 + (at >>> 8) + (at >>> 16)) & 0xff;
  }
  return b;
}

/** The values a header has in a flat raw list, matched exactly (case included). */
function rawValues(raw: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i] === name) out.push(raw[i + 1] as string);
  return out;
}

function rawNames(raw: readonly string[]): string[] {
  return raw.filter((_v, i) => i % 2 === 0);
}

function request(fields: Partial<Http1Request> = {}): Http1Request {
  return { method: 'GET', path: '/', headers: [], body: null, contentLength: undefined, ...fields };
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

// --- the recording handler -------------------------------------------------------------------------

/** Keeps every event of one exchange; `done` settles (never rejects) at `ended` or `fail`. */
class Recorder implements Http1Handler {
  readonly events: string[] = [];
  control: Http1CallControl | undefined;
  status: number | undefined;
  rawHeaders: string[] = [];
  contentType: string | undefined;
  declaredLength: string | undefined;
  readonly chunks: Buffer[] = [];
  bytes = 0;
  finished = false;
  failed = false;
  error: unknown;
  notSent: boolean | undefined;
  /** Hooks a test sets to act at a moment of the exchange. */
  onStarted: ((self: Recorder) => void) | undefined;
  onChunk: ((chunk: Buffer, self: Recorder) => void) | undefined;
  onEnded: ((self: Recorder) => void) | undefined;
  readonly done: Promise<Recorder>;
  #settle: (self: Recorder) => void = () => {};

  constructor() {
    this.done = new Promise<Recorder>((resolve) => {
      this.#settle = resolve;
    });
  }

  get body(): Buffer {
    return Buffer.concat(this.chunks);
  }

  get code(): string | undefined {
    return (this.error as { code?: string } | undefined)?.code;
  }

  attach(control: Http1CallControl): void {
    this.events.push('attach');
    this.control = control;
  }

  started(status: number, rawHeaders: string[], contentType: string, declaredLength: string | undefined): void {
    this.events.push('started');
    this.status = status;
    this.rawHeaders = rawHeaders;
    this.contentType = contentType;
    this.declaredLength = declaredLength;
    this.onStarted?.(this);
  }

  received(chunk: Buffer): void {
    if (this.events[this.events.length - 1] !== 'received') this.events.push('received');
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    this.onChunk?.(chunk, this);
  }

  ended(): void {
    this.events.push('ended');
    this.finished = true;
    this.onEnded?.(this);
    this.#settle(this);
  }

  fail(error: unknown, notSent?: boolean): void {
    this.events.push('fail');
    this.failed = true;
    this.error = error;
    this.notSent = notSent;
    this.#settle(this);
  }
}

/** Sends `req` and waits for its end. */
async function call(pool: Http1Pool, req: Http1Request = request(), handler = new Recorder()): Promise<Recorder> {
  pool.request(req, handler);
  return within(handler.done, 10_000, `${req.method} ${req.path}`);
}

function assertEnded(r: Recorder, status: number, body?: string | Buffer): void {
  assert.equal(r.failed, false, `the call failed: ${String(r.error)}`);
  assert.equal(r.finished, true);
  assert.equal(r.status, status);
  if (body !== undefined) assert.deepEqual(r.body, typeof body === 'string' ? Buffer.from(body, 'latin1') : body);
  assert.equal(r.events.filter((e) => e === 'started').length, 1, 'started once');
  assert.equal(r.events[0], 'attach');
  assert.equal(r.events[r.events.length - 1], 'ended');
}

function assertFailed(r: Recorder, code: string): void {
  assert.equal(r.finished, false, 'the call ended instead of failing');
  assert.equal(r.failed, true);
  assert.equal(r.code, code, `the error: ${String(r.error)}`);
  assert.equal(r.events.filter((e) => e === 'fail').length, 1, 'fail once');
  assert.equal(r.events[r.events.length - 1], 'fail');
}

// --- servers and pools, closed after each test -----------------------------------------------------

function listen(server: NetServer | HttpServer): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function closeServer(server: NetServer | HttpServer): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

function openPool(t: TestContext, port: number, options: Partial<Http1PoolOptions> = {}): Http1Pool {
  const pool = new Http1Pool({ host: '127.0.0.1', port, ...options });
  t.after(() => pool.close());
  return pool;
}

interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: string[];
  readonly socket: Socket;
}

interface HttpApp {
  readonly port: number;
  readonly server: HttpServer;
  /** TCP connections accepted so far. */
  connections: number;
  /** Accepted connections that have closed. */
  closed: number;
  /** Connections the app closed first (no FIN from the client before the close). */
  closedByApp: number;
  readonly requests: SeenRequest[];
}

/** A node:http server; every request is recorded before `onRequest` answers it. */
async function httpApp(t: TestContext, onRequest: (req: IncomingMessage, res: ServerResponse) => void, setup?: (server: HttpServer) => void): Promise<HttpApp> {
  const server = createHttpServer();
  setup?.(server);
  const sockets = new Set<Socket>();
  const app: HttpApp = { port: 0, server, connections: 0, closed: 0, closedByApp: 0, requests: [] };
  server.on('connection', (socket: Socket) => {
    app.connections++;
    sockets.add(socket);
    let clientEnded = false;
    socket.on('end', () => {
      clientEnded = true;
    });
    socket.on('close', () => {
      app.closed++;
      if (!clientEnded) app.closedByApp++;
      sockets.delete(socket);
    });
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    app.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, socket: req.socket });
    req.on('error', () => {});
    res.on('error', () => {});
    onRequest(req, res);
  });
  const port = await listen(server);
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    await closeServer(server);
  });
  return Object.assign(app, { port });
}

interface RawConnection {
  readonly socket: Socket;
  /** The request heads received (up to their blank line), in order. */
  readonly requests: string[];
  bytes: number;
  closed: boolean;
}

interface RawApp {
  readonly port: number;
  readonly connections: RawConnection[];
  /** Every request head received on any connection. */
  readonly requests: string[];
}

type OnRawRequest = (conn: RawConnection, head: string, index: number) => void;

/**
 * A TCP server that answers with the bytes the test writes: `onRequest` is called for each request
 * head (requests without a body); `onConnection`, when given, takes the socket over instead.
 */
async function rawApp(t: TestContext, onRequest: OnRawRequest, onConnection?: (conn: RawConnection) => void): Promise<RawApp> {
  const connections: RawConnection[] = [];
  const requests: string[] = [];
  const server = createNetServer((socket) => {
    const conn: RawConnection = { socket, requests: [], bytes: 0, closed: false };
    connections.push(conn);
    // Each write leaves at once (no Nagle delay waiting for the client's delayed ACK).
    socket.setNoDelay(true);
    socket.on('error', () => {});
    socket.on('close', () => {
      conn.closed = true;
    });
    if (onConnection !== undefined) {
      onConnection(conn);
      return;
    }
    let pending = '';
    socket.on('data', (chunk: Buffer) => {
      conn.bytes += chunk.length;
      pending += chunk.toString('latin1');
      let end: number;
      while ((end = pending.indexOf('\r\n\r\n')) >= 0) {
        const head = pending.slice(0, end);
        pending = pending.slice(end + 4);
        conn.requests.push(head);
        requests.push(head);
        onRequest(conn, head, requests.length - 1);
      }
    });
  });
  const port = await listen(server);
  t.after(async () => {
    for (const conn of connections) conn.socket.destroy();
    await closeServer(server);
  });
  return { port, connections, requests };
}

/** Writes `pieces` one at a time, letting the client read each before the next. */
async function writeApart(socket: Socket, pieces: readonly (string | Buffer)[]): Promise<void> {
  for (let i = 0; i < pieces.length; i++) {
    if (i > 0) await turns();
    if (socket.destroyed) return;
    const piece = pieces[i] as string | Buffer;
    socket.write(typeof piece === 'string' ? Buffer.from(piece, 'latin1') : piece);
  }
}

/**
 * Sends one request per split point of `response` (the app writes it in two pieces, read apart) and
 * returns what went wrong at each: a wrong body, a failure, or no end within 2 s (that call is aborted).
 */
async function everySplit(pool: Http1Pool, response: string, setSplit: (at: number) => void, check: (r: Recorder) => string | undefined): Promise<string[]> {
  const problems: string[] = [];
  for (let at = 1; at < response.length; at++) {
    setSplit(at);
    const handler = new Recorder();
    pool.request(request(), handler);
    const where = `split after ${JSON.stringify(response.slice(Math.max(0, at - 6), at))}|${JSON.stringify(response.slice(at, at + 6))} (byte ${at})`;
    try {
      await within(handler.done, 5_000, 'the response');
    } catch {
      handler.control?.abort(new Error('no end within 5 s'));
      problems.push(`${where}: no end within 5 s (body so far ${JSON.stringify(handler.body.toString('latin1'))})`);
      continue;
    }
    if (handler.failed) problems.push(`${where}: failed with ${String(handler.error)}`);
    else {
      const wrong = check(handler);
      if (wrong !== undefined) problems.push(`${where}: ${wrong}`);
    }
  }
  return problems;
}

/** A port on 127.0.0.1 where nothing listens (a server bound it, then closed). */
async function deadPort(): Promise<number> {
  const server = createNetServer();
  const port = await listen(server);
  await closeServer(server);
  return port;
}

/** A stream body that makes its bytes only when asked (read() is called lazily), counting how many it made. */
class LazySource extends Readable {
  produced = 0;
  readonly #total: number;
  readonly #chunk: number;

  constructor(total: number, chunk = 64 * 1024) {
    super({ highWaterMark: chunk });
    this.#total = total;
    this.#chunk = chunk;
  }

  override _read(): void {
    if (this.produced >= this.#total) {
      this.push(null);
      return;
    }
    const n = Math.min(this.#chunk, this.#total - this.produced);
    const bytes = patternAt(this.produced, n);
    this.produced += n;
    this.push(bytes);
  }
}

// --- requests and responses against node:http ------------------------------------------------------

test('GET and POST against node:http: status, raw response headers with their case, body; the request head the server sees', T, async (t) => {
  const bodies: Buffer[] = [];
  const app = await httpApp(t, (req, res) => {
    void readBody(req).then((body) => {
      bodies.push(body);
      const answer = Buffer.from(req.method === 'POST' ? `got ${body.length}: ${body.toString()}` : 'hello from GET');
      res.writeHead(req.method === 'POST' ? 201 : 200, ['X-Reply-Case', 'MiXeD', 'Content-Type', 'text/plain; charset=utf-8', 'x-multi', 'a', 'x-multi', 'b', 'Content-Length', String(answer.length)]);
      res.end(answer);
    });
  });
  const pool = openPool(t, app.port);

  const get = await call(pool, request({ path: '/items?x=1&y=%20', headers: ['X-Custom-Name', 'Value One', 'accept', 'text/plain'] }));
  assertEnded(get, 200, 'hello from GET');
  assert.deepEqual(get.events, ['attach', 'started', 'received', 'ended']);
  assert.deepEqual(rawValues(get.rawHeaders, 'X-Reply-Case'), ['MiXeD']);
  assert.deepEqual(rawValues(get.rawHeaders, 'Content-Type'), ['text/plain; charset=utf-8']);
  assert.deepEqual(rawValues(get.rawHeaders, 'x-multi'), ['a', 'b']);
  assert.equal(get.rawHeaders.length % 2, 0);
  assert.ok(rawNames(get.rawHeaders).includes('Content-Length'), `raw names: ${rawNames(get.rawHeaders).join(', ')}`);
  assert.equal(get.contentType, 'text/plain; charset=utf-8');
  assert.equal(get.declaredLength, String('hello from GET'.length));

  const seenGet = app.requests[0];
  assert.ok(seenGet !== undefined);
  assert.equal(seenGet.method, 'GET');
  assert.equal(seenGet.url, '/items?x=1&y=%20');
  assert.equal(seenGet.headers.host, `127.0.0.1:${app.port}`);
  assert.equal(seenGet.headers.connection, 'keep-alive');
  assert.deepEqual(rawValues(seenGet.rawHeaders, 'X-Custom-Name'), ['Value One'], 'the header name keeps its case');
  assert.equal(seenGet.headers.accept, 'text/plain');
  assert.equal(seenGet.headers['content-length'], undefined, 'a GET without a body has no Content-Length');
  assert.equal(seenGet.headers['transfer-encoding'], undefined, 'nor Transfer-Encoding');

  const payload = Buffer.from('{"hello":"world","n":42}');
  const post = await call(pool, request({ method: 'POST', path: '/items', headers: ['content-type', 'application/json'], body: payload }));
  assertEnded(post, 201, `got ${payload.length}: ${payload.toString()}`);
  const seenPost = app.requests[1];
  assert.ok(seenPost !== undefined);
  assert.equal(seenPost.method, 'POST');
  assert.equal(seenPost.headers['content-length'], String(payload.length));
  assert.equal(seenPost.headers['transfer-encoding'], undefined);
  assert.equal(seenPost.headers['content-type'], 'application/json');
  assert.equal(seenPost.headers.host, `127.0.0.1:${app.port}`);
  assert.equal(seenPost.headers.connection, 'keep-alive');
  assert.deepEqual(bodies[1], payload);

  // A Buffer body larger than the one-write size (16 KiB) arrives whole too.
  const big = patternAt(0, 100_000);
  const bigPost = await call(pool, request({ method: 'PUT', path: '/big', body: big }));
  assertEnded(bigPost, 200);
  assert.equal(app.requests[2]?.headers['content-length'], String(big.length));
  assert.deepEqual(bodies[2], big);

  // A POST whose body is null still says Content-Length: 0.
  const emptyPost = await call(pool, request({ method: 'POST', path: '/empty', body: null }));
  assertEnded(emptyPost, 201, 'got 0: ');
  assert.equal(app.requests[3]?.headers['content-length'], '0');
  assert.equal(app.requests[3]?.headers['transfer-encoding'], undefined);
  assert.equal(app.connections, 1, 'all four over one connection');
});

test('keep-alive: 20 sequential requests share one connection; 10 concurrent ones open 10, and the next batch reuses them', T, async (t) => {
  const app = await httpApp(t, (req, res) => {
    res.end(`answer to ${req.url}`);
  });
  const pool = openPool(t, app.port);
  for (let i = 0; i < 20; i++) assertEnded(await call(pool, request({ path: `/seq/${i}` })), 200, `answer to /seq/${i}`);
  assert.equal(app.connections, 1, 'one TCP connection for 20 sequential requests');
  assert.equal(pool.connections, 1);

  const waiting: (() => void)[] = [];
  let arrived = 0;
  const app2 = await httpApp(t, (req, res) => {
    // The first ten are answered only once all ten are in, so that none can reuse another's connection.
    if (++arrived < 10) {
      waiting.push(() => res.end(`answer to ${req.url}`));
      return;
    }
    res.end(`answer to ${req.url}`);
    for (const answer of waiting.splice(0)) answer();
  });
  const pool2 = openPool(t, app2.port);
  const first = await Promise.all(Array.from({ length: 10 }, (_v, i) => call(pool2, request({ path: `/c/${i}` }))));
  first.forEach((r, i) => assertEnded(r, 200, `answer to /c/${i}`));
  assert.equal(app2.connections, 10, 'ten concurrent requests, ten connections');
  assert.equal(pool2.connections, 10);

  const second = await Promise.all(Array.from({ length: 10 }, (_v, i) => call(pool2, request({ path: `/d/${i}` }))));
  second.forEach((r, i) => assertEnded(r, 200, `answer to /d/${i}`));
  assert.equal(app2.connections, 10, 'the second batch reused the ten idle connections');
  assert.equal(pool2.connections, 10);
});

test("the app's Keep-Alive timeout (less the 1 s margin) bounds reuse: after it, the next request opens a new connection and succeeds", T, async (t) => {
  const app = await httpApp(
    t,
    (_req, res) => {
      res.end('ok');
    },
    (server) => {
      server.keepAliveTimeout = 2000;
    },
  );
  const pool = openPool(t, app.port);
  const first = await call(pool);
  assertEnded(first, 200, 'ok');
  assert.deepEqual(rawValues(first.rawHeaders, 'Keep-Alive'), ['timeout=2'], 'node:http announces its keepAliveTimeout');
  assertEnded(await call(pool), 200, 'ok');
  assert.equal(app.connections, 1, 'reused within the hint');

  const answeredAt = Date.now();
  await eventually(() => Date.now() - answeredAt > 1_200, 'more than a second since the last response');
  const later = await call(pool);
  assertEnded(later, 200, 'ok');
  assert.equal(app.connections, 2, 'past the hint less its margin, a new connection');
  await eventually(() => app.closed >= 1, 'the stale connection to be closed');
  // Unless this machine stalled for most of a second, the app has closed nothing itself (its timeout is
  // 2 s): the client closed the stale connection and opened a new one of its own accord.
  if (Date.now() - answeredAt < 1_800) assert.equal(app.closedByApp, 0, 'the client, not the app, closed the stale connection');
  assert.equal(pool.connections, 1);
});

test('Connection: close from the app: the call succeeds, and the next request opens a new connection and succeeds', T, async (t) => {
  const app = await httpApp(t, (req, res) => {
    if (req.url === '/close') res.setHeader('Connection', 'close');
    res.end(`answer to ${req.url}`);
  });
  const pool = openPool(t, app.port);
  const closing = await call(pool, request({ path: '/close' }));
  assertEnded(closing, 200, 'answer to /close');
  assert.deepEqual(rawValues(closing.rawHeaders, 'Connection'), ['close']);
  const next = await call(pool, request({ path: '/next' }));
  assertEnded(next, 200, 'answer to /next');
  assert.equal(app.connections, 2);
  await eventually(() => app.closed === 1, 'the closed connection to be gone on the server');
  assert.equal(pool.connections, 1);
});

// --- framing: chunked, Content-Length, until close, bodiless, 1xx ---------------------------------

const CHUNKED_RESPONSE =
  'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n' +
  '5;name=value\r\nhello\r\n' +
  '1 ; ext ; other="quoted;value"\r\n,\r\n' +
  'A\r\n chunked w\r\n' +
  '4\r\norld\r\n' +
  '0;last=1\r\nX-Trailer: t1\r\nX-Other: t2\r\n\r\n';
const CHUNKED_BODY = 'hello, chunked world';

test('a chunked response with chunk extensions and trailers, split at every byte boundary: the body is exactly the chunks, the connection is reused', T, async (t) => {
  let split = 0;
  const app = await rawApp(t, (conn) => {
    void writeApart(conn.socket, [CHUNKED_RESPONSE.slice(0, split), CHUNKED_RESPONSE.slice(split)]);
  });
  const pool = openPool(t, app.port);
  const problems = await everySplit(
    pool,
    CHUNKED_RESPONSE,
    (at) => (split = at),
    (r) => {
      if (r.status !== 200) return `status ${r.status}`;
      if (r.body.toString('latin1') !== CHUNKED_BODY) return `body ${JSON.stringify(r.body.toString('latin1'))}`;
      if (r.contentType !== 'text/plain') return `content type ${r.contentType}`;
      if (r.declaredLength !== undefined) return `declared length ${r.declaredLength}`;
      if (rawValues(r.rawHeaders, 'Transfer-Encoding').join() !== 'chunked') return `raw headers ${JSON.stringify(r.rawHeaders)}`;
      return undefined;
    },
  );
  assert.deepEqual(problems, []);
  assert.equal(app.connections.length, 1, 'every response was complete: one connection throughout');
});

test('a chunked response delivered one byte per read arrives whole, and the connection is reused', T, async (t) => {
  const app = await rawApp(t, (conn) => {
    void writeApart(conn.socket, [...CHUNKED_RESPONSE]);
  });
  const pool = openPool(t, app.port);
  const r = await call(pool);
  assertEnded(r, 200, CHUNKED_BODY);
  const again = await call(pool);
  assertEnded(again, 200, CHUNKED_BODY);
  assert.equal(app.connections.length, 1);
});

const LENGTH_RESPONSE = 'HTTP/1.1 200 OK\r\nContent-Length: 26\r\nX-Kind: length\r\n\r\nabcdefghijklmnopqrstuvwxyz';

test('a Content-Length response split at every byte boundary: the body is exactly its bytes, and the connection is reused', T, async (t) => {
  let split = 0;
  const app = await rawApp(t, (conn) => {
    void writeApart(conn.socket, [LENGTH_RESPONSE.slice(0, split), LENGTH_RESPONSE.slice(split)]);
  });
  const pool = openPool(t, app.port);
  const problems = await everySplit(
    pool,
    LENGTH_RESPONSE,
    (at) => (split = at),
    (r) => {
      if (r.status !== 200) return `status ${r.status}`;
      if (r.body.toString('latin1') !== 'abcdefghijklmnopqrstuvwxyz') return `body ${JSON.stringify(r.body.toString('latin1'))}`;
      if (r.declaredLength !== '26') return `declared length ${r.declaredLength}`;
      if (rawValues(r.rawHeaders, 'X-Kind').join() !== 'length') return `raw headers ${JSON.stringify(r.rawHeaders)}`;
      return undefined;
    },
  );
  assert.deepEqual(problems, []);
  assert.equal(app.connections.length, 1, 'every response was complete: one connection throughout');
});

test('a response with neither Content-Length nor Transfer-Encoding is read until the app closes: the whole body, then ended', T, async (t) => {
  const app = await rawApp(t, (conn) => {
    void (async () => {
      await writeApart(conn.socket, ['HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n', 'first part, ', 'second part']);
      await turns();
      conn.socket.end('; the end');
    })();
  });
  const pool = openPool(t, app.port);
  const r = await call(pool);
  assertEnded(r, 200, 'first part, second part; the end');
  assert.equal(r.declaredLength, undefined);
  await eventually(() => pool.connections === 0, 'the connection to be gone from the pool');
  assertEnded(await call(pool), 200, 'first part, second part; the end');
  assert.equal(app.connections.length, 2, 'a body read until close leaves nothing to reuse');
});

test('HEAD, 204 and 304 responses with a Content-Length complete without a body, and the connection is reused', T, async (t) => {
  const app = await rawApp(t, (conn, head) => {
    if (head.startsWith('HEAD ')) conn.socket.write('HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/html\r\n\r\n');
    else if (head.startsWith('GET /204 ')) conn.socket.write('HTTP/1.1 204 No Content\r\nContent-Length: 50\r\n\r\n');
    else if (head.startsWith('GET /304 ')) conn.socket.write('HTTP/1.1 304 Not Modified\r\nContent-Length: 77\r\nETag: "x"\r\n\r\n');
    else conn.socket.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody');
  });
  const pool = openPool(t, app.port);
  const head = await call(pool, request({ method: 'HEAD', path: '/' }));
  assertEnded(head, 200, '');
  assert.equal(head.declaredLength, '1234', 'the declared length is passed on as is');
  assert.equal(head.contentType, 'text/html');
  const noContent = await call(pool, request({ path: '/204' }));
  assertEnded(noContent, 204, '');
  const notModified = await call(pool, request({ path: '/304' }));
  assertEnded(notModified, 304, '');
  assert.equal(notModified.declaredLength, '77');
  const after = await call(pool, request({ path: '/after' }));
  assertEnded(after, 200, 'body');
  assert.equal(app.connections.length, 1, 'all four on one connection');
});

test('100 Continue and 103 Early Hints heads before the final head are skipped: started once, with the final status', T, async (t) => {
  const app = await rawApp(t, (conn) => {
    void writeApart(conn.socket, [
      'HTTP/1.1 100 Continue\r\n\r\n',
      'HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 4\r\nX-Final: yes\r\n\r\n',
      'done',
    ]);
  });
  const pool = openPool(t, app.port);
  const r = await call(pool, request({ method: 'POST', body: null }));
  assertEnded(r, 201, 'done');
  assert.deepEqual(r.events, ['attach', 'started', 'received', 'ended']);
  assert.deepEqual(rawValues(r.rawHeaders, 'X-Final'), ['yes']);
  assert.deepEqual(rawValues(r.rawHeaders, 'Link'), [], 'the 1xx headers are not the final ones');
  assertEnded(await call(pool), 201, 'done');
  assert.equal(app.connections.length, 1);
});

// --- malformed responses ---------------------------------------------------------------------------

const MALFORMED: readonly { readonly name: string; readonly response: string }[] = [
  { name: 'a status line with a two-digit status', response: 'HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n' },
  { name: 'a status line with letters for the status', response: 'HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n' },
  { name: 'a status line without a space after the status', response: 'HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n' },
  { name: 'a status line of HTTP/1.2', response: 'HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n' },
  { name: 'a header line without a colon', response: 'HTTP/1.1 200 OK\r\nNoColonHere\r\nContent-Length: 0\r\n\r\n' },
  { name: 'a header name with a space', response: 'HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n' },
  { name: 'a space between a header name and its colon', response: 'HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n' },
  { name: 'a header value with a bare LF', response: 'HTTP/1.1 200 OK\r\nX-Bad: a\nb\r\nContent-Length: 0\r\n\r\n' },
  { name: 'a header value with a NUL', response: 'HTTP/1.1 200 OK\r\nX-Bad: a\u0000b\r\nContent-Length: 0\r\n\r\n' },
  { name: 'two different Content-Length values', response: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!' },
  { name: 'a non-numeric Content-Length', response: 'HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello' },
  { name: 'a negative Content-Length', response: 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello' },
  { name: 'a bad chunk size', response: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n' },
  { name: 'chunk data not followed by CRLF', response: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n' },
  { name: 'a head larger than maxHeaderBytes (1024)', response: `HTTP/1.1 200 OK\r\nX-Big: ${'b'.repeat(2000)}\r\nContent-Length: 0\r\n\r\n` },
  { name: 'an unfinished head already larger than maxHeaderBytes (1024)', response: `HTTP/1.1 200 OK\r\nX-Big: ${'b'.repeat(2000)}` },
  { name: '101 Switching Protocols', response: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n' },
];

for (const { name, response } of MALFORMED) {
  test(`a response with ${name} fails with ERR_HTTP1_BAD_RESPONSE and the connection is closed`, T, async (t) => {
    const app = await rawApp(t, (conn) => {
      conn.socket.write(Buffer.from(response, 'latin1'));
    });
    const pool = openPool(t, app.port, { maxHeaderBytes: 1024 });
    const r = await call(pool);
    assertFailed(r, BAD_RESPONSE);
    assert.ok(r.error instanceof Http1Error);
    assert.notEqual(r.notSent, true, 'the request was sent');
    assert.equal(pool.connections, 0);
    await eventually(() => app.connections[0]?.closed === true, 'the app to see the connection closed');
  });
}

test('an app answering with an HTTP/2 SETTINGS frame fails with ERR_HTTP1_BAD_RESPONSE whose data holds the frame bytes', T, async (t) => {
  const app = await rawApp(t, (conn) => {
    conn.socket.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]));
  });
  const pool = openPool(t, app.port);
  const r = await call(pool);
  assertFailed(r, BAD_RESPONSE);
  assert.ok(r.error instanceof Http1Error);
  const data = r.error.data;
  assert.equal(typeof data, 'string');
  assert.equal(data?.[0], '\u0000');
  assert.equal(data?.charCodeAt(3), 4, 'the SETTINGS frame type');
  assert.equal(pool.connections, 0);
  await eventually(() => app.connections[0]?.closed === true, 'the app to see the connection closed');
});

// --- the connection ends ----------------------------------------------------------------------------

test('the app closes the connection before any response: ERR_HTTP1_CLOSED', T, async (t) => {
  const app = await rawApp(t, (conn) => {
    conn.socket.end();
  });
  const pool = openPool(t, app.port);
  const r = await call(pool);
  assertFailed(r, APP_CLOSED);
  assert.notEqual(r.notSent, true, 'the connection had opened: the request may have reached the app');
  assert.deepEqual(r.events, ['attach', 'fail']);
  assert.equal(pool.connections, 0);
});

test('the app closes in the middle of a Content-Length body: ended, with the bytes that came (the app ended its body there)', T, async (t) => {
  const app = await rawApp(t, (conn) => {
    void (async () => {
      await writeApart(conn.socket, ['HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n', 'only part']);
      await turns();
      conn.socket.end();
    })();
  });
  const pool = openPool(t, app.port);
  const r = await call(pool);
  assertEnded(r, 200, 'only part');
  assert.equal(r.declaredLength, '100');
  await eventually(() => pool.connections === 0, 'the connection to leave the pool');
  assertEnded(await call(pool), 200, 'only part');
  assert.equal(app.connections.length, 2);
});

test('the app closes in the middle of a chunked body: the call fails', T, async (t) => {
  const app = await rawApp(t, (conn) => {
    void (async () => {
      await writeApart(conn.socket, ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', 'a\r\nhello', ' ']);
      await turns();
      conn.socket.end();
    })();
  });
  const pool = openPool(t, app.port);
  const r = await call(pool);
  assertFailed(r, APP_CLOSED);
  assert.equal(r.status, 200, 'the head had arrived');
  assert.equal(r.body.toString(), 'hello ');
  assert.equal(pool.connections, 0);
});

test('nothing listens on the port: the call fails with ECONNREFUSED and notSent', T, async (t) => {
  const port = await deadPort();
  const pool = openPool(t, port);
  const r = await call(pool);
  assertFailed(r, 'ECONNREFUSED');
  assert.equal(r.notSent, true);
  assert.equal(pool.connections, 0);
});

// --- request bodies --------------------------------------------------------------------------------

test('a stream body with contentLength is sent with that Content-Length; without it, chunked; the app gets the exact bytes', T, async (t) => {
  const bodies: Buffer[] = [];
  const app = await httpApp(t, (req, res) => {
    void readBody(req).then((body) => {
      bodies.push(body);
      res.end(`got ${body.length}`);
    });
  });
  const pool = openPool(t, app.port);
  const pieces = [Buffer.from('first '), Buffer.alloc(0), Buffer.from('second '), patternAt(0, 70_000), Buffer.from(' last')];
  const whole = Buffer.concat(pieces);

  const sized = await call(pool, request({ method: 'POST', path: '/sized', body: Readable.from(pieces), contentLength: whole.length }));
  assertEnded(sized, 200, `got ${whole.length}`);
  assert.equal(app.requests[0]?.headers['content-length'], String(whole.length));
  assert.equal(app.requests[0]?.headers['transfer-encoding'], undefined);
  assert.deepEqual(bodies[0], whole);

  const chunked = await call(pool, request({ method: 'POST', path: '/chunked', body: Readable.from(pieces), contentLength: undefined }));
  assertEnded(chunked, 200, `got ${whole.length}`);
  assert.equal(app.requests[1]?.headers['transfer-encoding'], 'chunked');
  assert.equal(app.requests[1]?.headers['content-length'], undefined);
  assert.deepEqual(bodies[1], whole);

  // A stream body that ends at once: an empty chunked body.
  const empty = await call(pool, request({ method: 'PUT', path: '/empty', body: Readable.from([]), contentLength: undefined }));
  assertEnded(empty, 200, 'got 0');
  assert.deepEqual(bodies[2], Buffer.alloc(0));
  assert.equal(app.connections, 1, 'the connection is reused after stream bodies');
});

test('a stream body longer than its contentLength fails with ERR_HTTP1_BAD_REQUEST, and so does one that ends short of it', T, async (t) => {
  const app = await httpApp(t, (req, res) => {
    void readBody(req).then(
      (body) => res.end(`got ${body.length}`),
      () => {},
    );
  });
  const pool = openPool(t, app.port);
  const long = await call(pool, request({ method: 'POST', body: Readable.from([Buffer.from('12345'), Buffer.from('67890')]), contentLength: 5 }));
  assertFailed(long, BAD_REQUEST);
  assert.ok(long.error instanceof Http1Error);
  const short = await call(pool, request({ method: 'POST', body: Readable.from([Buffer.from('12345')]), contentLength: 10 }));
  assertFailed(short, BAD_REQUEST);
  assert.equal(pool.connections, 0, 'both connections closed');
  await eventually(() => app.closed === app.connections, 'the app to see the connections closed');
});

test('a stream body that errors fails the call with that very error, and the connection is closed', T, async (t) => {
  const app = await httpApp(t, (req, res) => {
    void readBody(req).then(
      () => res.end('unexpected'),
      () => {},
    );
  });
  const pool = openPool(t, app.port);
  const boom = new Error('the body broke');
  const body = new PassThrough();
  const handler = new Recorder();
  pool.request(request({ method: 'POST', body, contentLength: undefined }), handler);
  await eventually(() => app.requests.length === 1, 'the request head to reach the app');
  body.write('some bytes');
  body.destroy(boom);
  const r = await within(handler.done, 10_000, 'the failed call');
  assert.equal(r.failed, true);
  assert.equal(r.error, boom, 'the body stream’s own error object');
  assert.equal(pool.connections, 0);
  await eventually(() => app.closed === 1, 'the app to see the connection closed');
});

test('a stream body that errors while the connection is still opening fails the call with that very error, never unhandled', T, async (t) => {
  const app = await httpApp(t, (req, res) => {
    void readBody(req).then(
      () => res.end('unexpected'),
      () => {},
    );
  });
  const pool = openPool(t, app.port);
  const boom = new Error('the body broke early');
  const body = new PassThrough();
  const handler = new Recorder();
  pool.request(request({ method: 'POST', body, contentLength: undefined }), handler);
  const clientListens = body.listenerCount('error') > 0;
  // The test's own listener keeps an unhandled 'error' from crashing the run.
  body.on('error', () => {});
  body.destroy(boom);
  const r = await within(handler.done, 10_000, 'the failed call');
  assert.equal(r.failed, true);
  assert.equal(r.error, boom, `the body stream's own error object (got ${String(r.error)})`);
  assert.equal(clientListens, true, "the client listens for the body's errors from the moment it takes the request");
  assert.equal(pool.connections, 0);
});

test('request backpressure: a 20 MiB stream body to an app that stops reading for a while is not all buffered; it arrives whole', T, async (t) => {
  const TOTAL = 20 * 1024 * 1024;
  const source = new LazySource(TOTAL);
  let serverBytes = 0;
  let headLength = -1;
  let maxLead = 0;
  const received: Buffer[] = [];
  let appSocket: Socket | undefined;
  const app = await rawApp(
    t,
    () => {},
    (conn) => {
      appSocket = conn.socket;
      conn.socket.pause();
      conn.socket.on('data', (chunk: Buffer) => {
        maxLead = Math.max(maxLead, source.produced - Math.max(0, serverBytes - Math.max(headLength, 0)));
        received.push(chunk);
        serverBytes += chunk.length;
        if (headLength < 0) {
          const end = Buffer.concat(received).indexOf('\r\n\r\n');
          if (end >= 0) headLength = end + 4;
        }
        if (headLength >= 0 && serverBytes - headLength === TOTAL) conn.socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      });
    },
  );
  const pool = openPool(t, app.port);
  const handler = new Recorder();
  pool.request(request({ method: 'POST', path: '/upload', body: source, contentLength: TOTAL }), handler);

  // While the app reads nothing, the source stops being read: wait until it has made nothing new for a while.
  await eventually(() => source.produced > 0, 'the body to start');
  const stalledAt = await steady(() => source.produced, 'the body source to stop being read');
  assert.equal(serverBytes, 0, 'the app has read nothing yet');
  assert.ok(stalledAt < 8 * 1024 * 1024, `the client read ${stalledAt} bytes ahead of an app that read nothing`);
  assert.equal(handler.failed, false);

  appSocket?.resume();
  const r = await within(handler.done, 20_000, 'the upload');
  assertEnded(r, 200, 'ok');
  const all = Buffer.concat(received);
  assert.match(all.toString('latin1', 0, headLength), /\r\ncontent-length: 20971520\r\n/i);
  assert.equal(all.length - headLength, TOTAL);
  assert.ok(all.subarray(headLength).equals(patternAt(0, TOTAL)), 'the body arrived intact');
  assert.equal(app.connections.length, 1);
  assert.ok(maxLead < 16 * 1024 * 1024, `the client was ${maxLead} bytes ahead of the app at most`);
});

// --- response backpressure, abort, early answers, extra bytes -------------------------------------

test('response backpressure: pause() on the first chunk holds the body back; resume() delivers all 16 MiB intact', T, async (t) => {
  const SIZE = 16 * 1024 * 1024;
  const payload = patternAt(0, SIZE);
  let serverSocket: Socket | undefined;
  const app = await httpApp(t, (_req, res) => {
    serverSocket = res.socket ?? undefined;
    res.writeHead(200, { 'content-length': SIZE, 'content-type': 'application/octet-stream' });
    res.end(payload);
  });
  const pool = openPool(t, app.port);
  const handler = new Recorder();
  handler.onChunk = (_chunk, self) => {
    if (self.chunks.length === 1) self.control?.pause();
  };
  pool.request(request({ path: '/big' }), handler);
  await eventually(() => handler.chunks.length > 0, 'the first chunk');
  // The app's writes back up once the client stops reading: what it has yet to send stops moving.
  const unsent = await steady(() => serverSocket?.writableLength ?? 0, "the app's writes to be held back");
  assert.ok(unsent > 0, 'the app has bytes it cannot send');
  const whilePaused = handler.bytes;
  assert.ok(whilePaused < SIZE, 'not all of the body came while paused');
  assert.ok(whilePaused <= 256 * 1024, `${whilePaused} bytes were delivered after pause() (the rest of one read at most)`);
  assert.equal(handler.finished, false);
  handler.control?.resume();
  const r = await within(handler.done, 20_000, 'the rest of the body');
  assertEnded(r, 200);
  assert.equal(r.bytes, SIZE);
  assert.ok(r.body.equals(payload), 'the body arrived intact, in order');
  assertEnded(await call(pool), 200);
  assert.equal(app.connections, 1, 'the connection is reused after a paused response');
});

test('control.abort(err) during a slow response fails the call with err, closes the connection, and the next request uses a new one', T, async (t) => {
  const app = await httpApp(t, (req, res) => {
    if (req.url === '/slow') {
      res.writeHead(200, { 'content-length': 1000 });
      res.write('the first bytes');
      return; // and nothing more
    }
    res.end('fast');
  });
  const pool = openPool(t, app.port);
  const reason = new Error('the caller gave up');
  const handler = new Recorder();
  pool.request(request({ path: '/slow' }), handler);
  await eventually(() => handler.bytes > 0, 'the first bytes of the slow response');
  handler.control?.abort(reason);
  const r = await within(handler.done, 10_000, 'the aborted call');
  assert.equal(r.failed, true);
  assert.equal(r.error, reason, 'the abort reason itself');
  assert.equal(r.finished, false);
  assert.equal(pool.connections, 0);
  await eventually(() => app.closed === 1, 'the app to see the connection closed');
  const next = await call(pool, request({ path: '/fast' }));
  assertEnded(next, 200, 'fast');
  assert.equal(app.connections, 2);
});

test('the app answers (413) before the request body is all sent: the handler gets the response and ended; the connection is not reused', T, async (t) => {
  const app = await httpApp(t, (req, res) => {
    if (req.url === '/upload') {
      res.writeHead(413, { 'content-type': 'text/plain' });
      res.end('too large');
      return;
    }
    void readBody(req).then(() => res.end(`answer to ${req.url}`));
  });
  const pool = openPool(t, app.port);
  const body = new PassThrough();
  body.write('the start of a body that is still being written');
  const handler = new Recorder();
  pool.request(request({ method: 'POST', path: '/upload', body, contentLength: undefined }), handler);
  const r = await within(handler.done, 10_000, 'the early answer');
  assertEnded(r, 413, 'too large');
  body.end('and its end, after the answer');
  const next = await call(pool, request({ path: '/next' }));
  assertEnded(next, 200, 'answer to /next');
  assert.equal(app.connections, 2, 'the connection that was mid-request was not reused');
});

test('bytes after a complete response (two responses to one request): the first call succeeds, the connection is not reused', T, async (t) => {
  const app = await rawApp(t, (conn, head) => {
    if (head.startsWith('GET /twice ')) conn.socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirstHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond');
    else if (head.startsWith('GET /later ')) {
      void writeApart(conn.socket, ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst', 'HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond']);
    } else conn.socket.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext');
  });
  const pool = openPool(t, app.port);
  assertEnded(await call(pool, request({ path: '/twice' })), 200, 'first');
  const next = await call(pool, request({ path: '/next' }));
  assertEnded(next, 200, 'next');
  assert.equal(app.connections.length, 2, 'bytes in the same read as the response: not reused');

  // The extra response arrives in a later read, while the connection is idle.
  assertEnded(await call(pool, request({ path: '/later' })), 200, 'first');
  await eventually(() => app.connections[1]?.closed === true, 'the connection with stray bytes to be closed');
  assertEnded(await call(pool, request({ path: '/next' })), 200, 'next');
  assert.equal(app.connections.length, 3);
});

// --- invalid input, pool.close() -------------------------------------------------------------------

test('invalid request input fails with ERR_HTTP1_BAD_REQUEST (notSent false) and nothing reaches the app', T, async (t) => {
  const app = await httpApp(t, (req, res) => {
    res.end(`answer to ${req.url}`);
  });
  const pool = openPool(t, app.port);
  const invalid: readonly [string, Http1Request][] = [
    ['a header value with CRLF', request({ headers: ['x-evil', 'a\r\nx-injected: 1'] })],
    ['a header value with a bare LF', request({ headers: ['x-evil', 'a\nb'] })],
    ['a header value with a NUL', request({ headers: ['x-evil', 'a\u0000b'] })],
    ['a header value beyond latin1', request({ headers: ['x-evil', 'euro €'] })],
    ['a header name with a space', request({ headers: ['x bad', 'v'] })],
    ['a header name with a colon', request({ headers: ['x-bad:', 'v'] })],
    ['an empty header name', request({ headers: ['', 'v'] })],
    ['a method with a space', request({ method: 'GET /x' })],
    ['an empty method', request({ method: '' })],
    ['a path with a space', request({ path: '/a b' })],
    ['a path with CRLF', request({ path: '/a\r\nx-injected: 1' })],
    ['an empty path', request({ path: '' })],
  ];
  for (const [what, req] of invalid) {
    const r = await call(pool, req);
    assertFailed(r, BAD_REQUEST);
    assert.equal(r.notSent, false, what);
    assert.ok(r.error instanceof Http1Error, what);
    assert.equal(pool.connections, 0, `${what}: no connection was opened`);
  }
  assert.equal(app.connections, 0, 'the app saw no connection');
  assertEnded(await call(pool, request({ path: '/valid' })), 200, 'answer to /valid');
  assert.deepEqual(
    app.requests.map((r) => r.url),
    ['/valid'],
    'the only request the app saw is the valid one',
  );
});

test('pool.close() fails a request in flight with ERR_HTTP1_POOL_CLOSED, leaves no connection, and later requests fail the same way', T, async (t) => {
  const app = await httpApp(t, () => {
    // Never answers.
  });
  const pool = openPool(t, app.port);
  const idle = await httpApp(t, (_req, res) => {
    res.end('ok');
  });
  const handler = new Recorder();
  pool.request(request({ path: '/hang' }), handler);
  await eventually(() => app.requests.length === 1, 'the request to reach the app');
  assert.equal(pool.connections, 1);
  await pool.close();
  const r = await within(handler.done, 10_000, 'the call in flight');
  assert.equal(r.failed, true);
  assert.ok(r.code === POOL_CLOSED || r.code === APP_CLOSED, `code ${r.code}`);
  assert.equal(pool.connections, 0);
  await eventually(() => app.closed === 1, 'the app to see the connection closed');

  const later = await call(pool, request({ path: '/later' }));
  assertFailed(later, POOL_CLOSED);
  assert.equal(later.notSent, true);
  assert.equal(app.requests.length, 1);

  // Idle connections are closed too.
  const pool2 = openPool(t, idle.port);
  assertEnded(await call(pool2), 200, 'ok');
  assert.equal(pool2.connections, 1);
  await pool2.close();
  assert.equal(pool2.connections, 0);
  await eventually(() => idle.closed === 1, 'the idle connection to be closed');
  assertFailed(await call(pool2), POOL_CLOSED);
});

// --- found while writing these tests ----------------------------------------------------------------

test('a response head whose last bytes arrive in a later read is not completed from stale bytes of an earlier read', T, async (t) => {
  // The same head twice: first in one read, then split just before its final LF. The client reads every
  // socket into one shared buffer, so the LF of the first read is still there after the second's end.
  const HEAD = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n';
  const app = await rawApp(t, (conn, _head, index) => {
    if (index === 0) conn.socket.write(`${HEAD}hello`);
    else void writeApart(conn.socket, [HEAD.slice(0, -1), '\nworld']);
  });
  const pool = openPool(t, app.port);
  assertEnded(await call(pool), 200, 'hello');
  const second = await call(pool);
  assertEnded(second, 200, 'world');
});

test('bytes after a bodiless response (204) in the same read: the connection is not reused, and they are not taken as the next response', T, async (t) => {
  const app = await rawApp(t, (conn, _head, index) => {
    if (index === 0) conn.socket.write('HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled');
    else conn.socket.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal');
  });
  const pool = openPool(t, app.port);
  // The next request is made from ended(), as a caller that sends another at once would.
  const next = new Recorder();
  const first = new Recorder();
  first.onEnded = () => pool.request(request({ path: '/next' }), next);
  pool.request(request({ path: '/first' }), first);
  assertEnded(await within(first.done, 10_000, 'the 204'), 204, '');
  const r = await within(next.done, 10_000, 'the next request');
  assertEnded(r, 200, 'real');
  assert.equal(app.connections.length, 2, 'the connection with stray bytes after the 204 was not reused');
});

test('a control kept from a finished exchange does not act on the next exchange carried by the same connection', T, async (t) => {
  let slow: ServerResponse | undefined;
  const app = await httpApp(t, (req, res) => {
    if (req.url === '/slow') slow = res;
    else res.end('fast answer');
  });
  const pool = openPool(t, app.port);
  const first = await call(pool, request({ path: '/fast' }));
  assertEnded(first, 200, 'fast answer');
  const stale = first.control;
  assert.ok(stale !== undefined);
  const second = new Recorder();
  pool.request(request({ path: '/slow' }), second);
  await eventually(() => slow !== undefined || second.failed, 'the second request to reach the app');
  assert.equal(app.connections, 1, 'the second request reused the connection');
  // A handler that keeps its control past ended() (a late cancellation, a sink's late pause) must not
  // reach another call.
  stale.abort(new Error('a late abort of the first call'));
  slow?.end('slow answer');
  const r = await within(second.done, 10_000, 'the second call');
  assertEnded(r, 200, 'slow answer');
});
