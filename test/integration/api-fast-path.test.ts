// The HTTP API's own HTTP/1.1 connection handling (src/api/http/fast-path.ts), seen from a client
// that writes exact bytes on raw TCP connections: pipelining, hand-over to node:http in the middle of
// a connection, slow and split writes, framing of every kind of response, and the timeouts and
// refusals a client can run into.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestEnv } from '../framework/env.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { startApp, type TestApp } from '../framework/test-app.js';
import { until } from '../framework/grpc-apps.js';

/** How long any one response may take on a busy machine. */
const RESPONSE_MS = 20_000;

/** A response as a client reads it off the wire. */
interface WireResponse {
  status: number;
  reason: string;
  /** Header names and values in order, values trimmed. */
  headers: Array<[string, string]>;
  body: Buffer;
  /** Whether the body came with chunked transfer coding (and how many data chunks it had). */
  chunks: number | undefined;
}

/** All values of a response header, in order. */
function values(res: WireResponse, name: string): string[] {
  return res.headers.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
}

/** The one value of a header (fails if it is repeated), or undefined. */
function header(res: WireResponse, name: string): string | undefined {
  const all = values(res, name);
  assert.ok(all.length <= 1, `header ${name} repeated: ${JSON.stringify(all)}`);
  return all[0];
}

/**
 * Parses one response from the front of `buf`: undefined while it is incomplete, and an error for
 * bytes that are not a well-framed HTTP/1.1 response. `bodyless` is for the answer to HEAD; a body
 * delimited by the connection's close is only complete once `closed`.
 */
function parseResponse(buf: Buffer, bodyless: boolean, closed: boolean): { response: WireResponse; size: number } | undefined {
  if (!'HTTP/1.1 '.startsWith(buf.toString('latin1', 0, Math.min(9, buf.length)))) {
    throw new Error(`not an HTTP/1.1 response: ${JSON.stringify(buf.toString('latin1', 0, 200))}`);
  }
  const headEnd = buf.indexOf('\r\n\r\n', 0, 'latin1');
  if (headEnd < 0) return undefined;
  const lines = buf.toString('latin1', 0, headEnd).split('\r\n');
  const statusLine = /^HTTP\/1\.1 (\d{3}) (.*)$/.exec(lines[0] ?? '');
  if (statusLine === null) throw new Error(`malformed status line: ${JSON.stringify(lines[0])} in ${JSON.stringify(buf.toString('latin1').slice(0, 300))}`);
  const headers: Array<[string, string]> = [];
  for (const line of lines.slice(1)) {
    const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/.exec(line);
    if (m === null) throw new Error(`malformed header line: ${JSON.stringify(line)}`);
    headers.push([m[1] as string, m[2] as string]);
  }
  const status = Number(statusLine[1]);
  const response: WireResponse = { status, reason: statusLine[2] as string, headers, body: Buffer.alloc(0), chunks: undefined };
  let at = headEnd + 4;
  if (bodyless || (status >= 100 && status < 200) || status === 204 || status === 304) return { response, size: at };
  const te = values(response, 'transfer-encoding');
  const cl = values(response, 'content-length');
  if (te.length > 0) {
    assert.deepEqual(te, ['chunked'], 'the only transfer coding a response may use here is chunked');
    assert.deepEqual(cl, [], 'a chunked response must not have a Content-Length');
    const parts: Buffer[] = [];
    let chunks = 0;
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', at, 'latin1');
      if (lineEnd < 0) return undefined;
      const sizeText = buf.toString('latin1', at, lineEnd);
      if (!/^[0-9a-fA-F]+$/.test(sizeText)) throw new Error(`malformed chunk size ${JSON.stringify(sizeText)}`);
      const size = parseInt(sizeText, 16);
      at = lineEnd + 2;
      if (size === 0) {
        // No trailers are expected: the last chunk is followed by the blank line.
        if (buf.length < at + 2) return undefined;
        if (buf.toString('latin1', at, at + 2) !== '\r\n') throw new Error('the last chunk is not followed by a blank line');
        response.body = Buffer.concat(parts);
        response.chunks = chunks;
        return { response, size: at + 2 };
      }
      if (buf.length < at + size + 2) return undefined;
      parts.push(buf.subarray(at, at + size));
      chunks++;
      if (buf.toString('latin1', at + size, at + size + 2) !== '\r\n') throw new Error('a chunk is not followed by CRLF');
      at += size + 2;
    }
  }
  if (cl.length > 0) {
    assert.equal(cl.length, 1, 'one Content-Length');
    assert.match(cl[0] as string, /^[0-9]+$/);
    const length = Number(cl[0]);
    if (buf.length < at + length) return undefined;
    response.body = Buffer.from(buf.subarray(at, at + length));
    return { response, size: at + length };
  }
  // No length: the body runs to the connection's close.
  if (!closed) return undefined;
  response.body = Buffer.from(buf.subarray(at));
  return { response, size: buf.length };
}

/** A client's TCP connection that writes exact bytes and reads responses off the wire. */
class RawConnection {
  readonly socket: Socket;
  #buf = Buffer.alloc(0);
  /** The server closed its side (FIN) or the connection is gone. */
  ended = false;
  closed = false;
  #wake: (() => void) | undefined;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      this.#wake?.();
    });
    socket.on('end', () => {
      this.ended = true;
      this.#wake?.();
    });
    socket.on('close', () => {
      this.ended = true;
      this.closed = true;
      this.#wake?.();
    });
    socket.on('error', () => {});
  }

  static async open(env: TestEnv, port: number): Promise<RawConnection> {
    const socket = connect({ host: '127.0.0.1', port });
    const conn = env.track(new RawConnection(socket));
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return conn;
  }

  /** Bytes received and not yet read as a response. */
  get unread(): string {
    return this.#buf.toString('latin1');
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Writes `data` in pieces of `size` bytes, `gapMs` apart. */
  async trickle(data: string | Buffer, size: number, gapMs: number): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
    for (let i = 0; i < bytes.length; i += size) {
      this.socket.write(bytes.subarray(i, i + size));
      await sleep(gapMs);
    }
  }

  /** Waits for something to arrive (or the connection to end), up to the deadline. */
  async #changed(deadline: number, what: string): Promise<void> {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`timed out waiting for ${what}; received so far: ${JSON.stringify(this.unread.slice(0, 500))}`);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, left);
      this.#wake = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
    });
  }

  /** Reads the next whole response (`bodyless` for the answer to HEAD). */
  async response(bodyless = false, timeoutMs = RESPONSE_MS): Promise<WireResponse> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const parsed = parseResponse(this.#buf, bodyless, this.ended);
      if (parsed !== undefined) {
        this.#buf = this.#buf.subarray(parsed.size);
        return parsed.response;
      }
      if (this.ended) throw new Error(`the connection ended before a whole response; received: ${JSON.stringify(this.unread.slice(0, 500))}`);
      await this.#changed(deadline, 'a response');
    }
  }

  /** Waits until the bytes received (not yet read as a response) include `text`. */
  async waitUnread(text: string, timeoutMs = RESPONSE_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.unread.includes(text)) {
      if (this.ended) throw new Error(`the connection ended before ${JSON.stringify(text)} arrived; received: ${JSON.stringify(this.unread.slice(0, 500))}`);
      await this.#changed(deadline, JSON.stringify(text));
    }
  }

  /** Waits until the server has closed the connection. */
  async waitEnded(timeoutMs = RESPONSE_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) await this.#changed(deadline, 'the server to close the connection');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    const gone = new Promise<void>((resolve) => this.socket.once('close', () => resolve()));
    this.socket.destroy();
    await gone;
  }
}

/** A request's bytes: the request line, headers (Host first unless given), and a body with its Content-Length. */
function request(method: string, target: string, headers: string[] = [], body?: string | Buffer): Buffer {
  const lines = [`${method} ${target} HTTP/1.1`];
  if (!headers.some((h) => /^host:/i.test(h))) lines.push('Host: 127.0.0.1');
  lines.push(...headers);
  if (body !== undefined && !headers.some((h) => /^(content-length|transfer-encoding):/i.test(h))) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  return body === undefined ? head : Buffer.concat([head, typeof body === 'string' ? Buffer.from(body, 'latin1') : body]);
}

/** A POST to the app's echo route through the caller sidecar. */
function echo(body: string | Buffer, headers: string[] = []): Buffer {
  return request('POST', '/v1.0/invoke/b/method/echo', ['Content-Type: text/plain', ...headers], body);
}

/** Asserts an echo response: 200, with exactly `body`. */
function assertEcho(res: WireResponse, body: string | Buffer, method = 'POST'): void {
  assert.equal(res.status, 200, `status ${res.status}, body ${res.body.toString().slice(0, 300)}`);
  assert.equal(header(res, 'x-echo-method'), method);
  const expected = typeof body === 'string' ? Buffer.from(body, 'latin1') : body;
  assert.equal(res.body.length, expected.length, 'echoed body length');
  assert.ok(res.body.equals(expected), 'the echoed body differs from what was sent');
}

/** Asserts a keep-alive response's connection headers and its Date. */
function assertKeepAlive(res: WireResponse): void {
  assert.equal(header(res, 'connection'), 'keep-alive');
  assert.equal(header(res, 'keep-alive'), 'timeout=65');
  const date = header(res, 'date');
  assert.ok(date !== undefined, 'a Date header');
  assert.match(date, /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
  assert.ok(Math.abs(Date.parse(date) - Date.now()) < 120_000, `Date ${date} is not now`);
}

describe('HTTP API fast path (raw HTTP/1.1 clients)', () => {
  const env = new TestEnv();
  let app: TestApp;
  let a: SidecarProcess;
  /** A caller sidecar with --handshake-timeout 2s and --max-body-size 1Ki. */
  let strict: SidecarProcess;
  /** Responses the app's /slow route holds until the test releases them. */
  const held: Array<() => void> = [];
  /** The rest of /chunked responses, sent when the test says. */
  const chunkedHeld: Array<() => void> = [];
  /** Requests to /hold the app saw end without an answer (the caller gave up). */
  let abandoned = 0;

  before(async () => {
    app = await startApp(env, (t) => {
      t.route('/echo', (req, res, body) => {
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'X-Echo-Method': req.method ?? '' });
        res.end(body);
      });
      // No Content-Length: node:http sends it chunked; the second part waits until the test has seen the first.
      t.route('/chunked', (_req, res) => {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.write('first part|');
        chunkedHeld.push(() => {
          res.write('second part');
          res.end();
        });
      });
      t.route('/no-content', (_req, res) => {
        res.writeHead(204, { 'X-Was': 'here' });
        res.end();
      });
      t.route('/sized', (req, res) => {
        res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '11', 'X-Echo-Method': req.method ?? '' });
        res.end(req.method === 'HEAD' ? undefined : 'hello world');
      });
      t.route('/slow', (_req, res, body) => {
        held.push(() => res.end(`slow:${body.toString()}`));
      });
      t.route('/hold', (_req, res) => {
        res.once('close', () => {
          if (!res.writableFinished) abandoned++;
        });
      });
    });
    [a, strict] = await Promise.all([
      startSidecar(env, { appId: 'a' }),
      startSidecar(env, { appId: 'strict', args: ['--handshake-timeout', '2s', '--max-body-size', '1Ki'] }),
      startSidecar(env, { appId: 'b', appPort: app.port, waitForApp: true }),
    ]);
  });
  after(async () => {
    // Responses a failed test left held would keep the sidecars waiting for them on shutdown.
    for (const release of [...held.splice(0), ...chunkedHeld.splice(0)]) release();
    await env.close();
  });

  test('requests pipelined in one write are all answered, in order, with the right bodies', async () => {
    const conn = await RawConnection.open(env, a.httpPort);
    conn.write(
      Buffer.concat([
        echo('first'),
        request('GET', '/v1.0/healthz'),
        echo('second, a little longer'),
        request('PUT', '/echo', ['dapr-app-id: b'], 'third by header'),
        echo(''),
        request('DELETE', '/v1.0/invoke/b/method/echo'),
        request('GET', '/v1.0/healthz/outbound'),
        echo('last'),
      ]),
    );
    assertEcho(await conn.response(), 'first');
    assert.equal((await conn.response()).status, 204);
    assertEcho(await conn.response(), 'second, a little longer');
    assertEcho(await conn.response(), 'third by header', 'PUT');
    assertEcho(await conn.response(), '');
    assertEcho(await conn.response(), '', 'DELETE');
    assert.equal((await conn.response()).status, 204);
    const last = await conn.response();
    assertEcho(last, 'last');
    assertKeepAlive(last);
    assert.equal(conn.unread, '', 'nothing beyond the eight responses');
    assert.equal(conn.ended, false);
  });

  test('pipelined requests with a chunked one in the middle (handed to node:http) are all answered in order', async () => {
    const conn = await RawConnection.open(env, a.httpPort);
    const chunked = request('POST', '/v1.0/invoke/b/method/echo', ['Transfer-Encoding: chunked'], '3\r\ntwo\r\n4\r\n-and\r\n0\r\n\r\n');
    conn.write(Buffer.concat([echo('one'), chunked, echo('three'), request('GET', '/v1.0/healthz')]));
    assertEcho(await conn.response(), 'one');
    assertEcho(await conn.response(), 'two-and');
    assertEcho(await conn.response(), 'three');
    assert.equal((await conn.response()).status, 204);
    assert.equal(conn.unread, '');
    conn.write(echo('still open'));
    assertEcho(await conn.response(), 'still open');
  });

  test('a fast invocation, a chunked POST, then a plain one on one connection: all answered, and the connection stays open', async () => {
    const conn = await RawConnection.open(env, a.httpPort);
    conn.write(echo('one'));
    const first = await conn.response();
    assertEcho(first, 'one');
    assertKeepAlive(first);
    // The chunked body in separate writes.
    conn.write(request('POST', '/v1.0/invoke/b/method/echo', ['Content-Type: text/plain', 'Transfer-Encoding: chunked']));
    await conn.trickle('5\r\nhello\r\n', 4, 5);
    conn.write('6\r\n world\r\n0\r\n\r\n');
    const second = await conn.response();
    assertEcho(second, 'hello world');
    assertKeepAlive(second);
    conn.write(echo('three'));
    assertEcho(await conn.response(), 'three');
    conn.write(request('GET', '/v1.0/healthz'));
    assert.equal((await conn.response()).status, 204);
    assert.equal(conn.ended, false, 'the connection is still open');
    assert.equal(conn.unread, '');
  });

  test('Expect: 100-continue in the middle of a connection: 100 Continue, then the answer, then more requests', async () => {
    const conn = await RawConnection.open(env, a.httpPort);
    conn.write(echo('before'));
    assertEcho(await conn.response(), 'before');
    conn.write(request('POST', '/v1.0/invoke/b/method/echo', ['Content-Type: text/plain', 'Content-Length: 9', 'Expect: 100-continue']));
    const interim = await conn.response();
    assert.equal(interim.status, 100);
    assert.equal(conn.unread, '', 'nothing but 100 Continue before the body is sent');
    conn.write('continued');
    assertEcho(await conn.response(), 'continued');
    conn.write(echo('after'));
    assertEcho(await conn.response(), 'after');
    assert.equal(conn.ended, false);
  });

  test('keep-alive responses carry Connection: keep-alive, Keep-Alive and a Date, whoever wrote them', async () => {
    const conn = await RawConnection.open(env, a.httpPort);
    // Answered by the sidecar itself: a health check and a refusal.
    conn.write(request('GET', '/v1.0/healthz'));
    const health = await conn.response();
    assert.equal(health.status, 204);
    assertKeepAlive(health);
    conn.write(request('POST', '/v1.0/invoke/b', [], 'no method'));
    const refused = await conn.response();
    assert.equal(refused.status, 404);
    assert.equal((JSON.parse(refused.body.toString()) as { errorCode: string }).errorCode, 'ERR_DIRECT_INVOKE');
    assertKeepAlive(refused);
    // Answered by the app.
    conn.write(echo('from the app'));
    const answered = await conn.response();
    assertEcho(answered, 'from the app');
    assertKeepAlive(answered);
    assert.equal(conn.ended, false);
  });

  test('a request sent one byte at a time is answered, and so is the next one', async () => {
    const conn = await RawConnection.open(env, a.httpPort);
    await conn.trickle(echo('byte by byte', ['X-Filler: some more header bytes']), 1, 5);
    assertEcho(await conn.response(), 'byte by byte');
    await conn.trickle(request('GET', '/v1.0/healthz'), 1, 2);
    assert.equal((await conn.response()).status, 204);
  });

  test('a body that arrives in several writes is answered whole', async () => {
    const conn = await RawConnection.open(env, a.httpPort);
    const body = Buffer.from(Array.from({ length: 3000 }, (_, i) => String.fromCharCode(0x21 + (i % 90))).join(''), 'latin1');
    const bytes = echo(body);
    const headLength = bytes.indexOf('\r\n\r\n') + 4;
    // The head alone, then the body in seven pieces.
    conn.write(bytes.subarray(0, headLength));
    await conn.trickle(bytes.subarray(headLength), 450, 20);
    assertEcho(await conn.response(), body);
    // And a head whose body starts in the same write.
    conn.write(bytes.subarray(0, headLength + 10));
    await conn.trickle(bytes.subarray(headLength + 10), 1000, 20);
    assertEcho(await conn.response(), body);
  });

  test('a request head that never completes gets 408 after --handshake-timeout and the connection closes; idle keep-alive connections stay', async () => {
    const idle = await RawConnection.open(env, strict.httpPort);
    idle.write(echo('idle after this'));
    assertEcho(await idle.response(), 'idle after this');
    const started = Date.now();
    const conn = await RawConnection.open(env, strict.httpPort);
    conn.write('POST /v1.0/invoke/b/method/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le');
    await conn.waitEnded(20_000);
    const elapsed = Date.now() - started;
    assert.match(conn.unread, /^HTTP\/1\.1 408 /);
    const res = await conn.response();
    assert.equal(res.status, 408);
    assert.equal(header(res, 'connection'), 'close');
    assert.ok(elapsed >= 1900, `closed after ${elapsed} ms, before the 2 s bound`);
    // The idle connection was idle for longer than the bound, and is not a head in progress.
    assert.equal(idle.ended, false, 'an idle keep-alive connection was closed like a slow head');
    idle.write(echo('still served'));
    assertEcho(await idle.response(), 'still served');
  });

  for (const [name, head] of [
    ['a blank before the colon', 'Foo : bar'],
    ['two Content-Length lines', 'Content-Length: 3\r\nContent-Length: 3'],
    ['two different Content-Length lines', 'Content-Length: 3\r\nContent-Length: 4'],
    ['a folded header line', 'X-A: one\r\n two'],
    ['a control character in a value', 'X-A: a\x01b'],
  ] as const) {
    test(`a malformed head (${name}) gets 400 from node:http; other connections are still served`, async () => {
      const conn = await RawConnection.open(env, a.httpPort);
      conn.write(`POST /v1.0/invoke/b/method/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n${head}\r\n\r\nabc`);
      const res = await conn.response();
      assert.equal(res.status, 400);
      await conn.waitEnded();
      const other = await RawConnection.open(env, a.httpPort);
      other.write(echo('fine'));
      assertEcho(await other.response(), 'fine');
    });
  }

  for (const [name, raw] of [
    ['lines ending in a bare LF', 'GET /v1.0/healthz HTTP/1.1\nHost: 127.0.0.1\n\n'],
    ['a head ending in LF CRLF', 'GET /v1.0/healthz HTTP/1.1\r\nHost: 127.0.0.1\n\r\n'],
    ['a lower-case method', 'get /v1.0/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'],
    ['a method Node does not know', 'FOO /v1.0/invoke/b/method/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'],
    ['a 16 000-blank value ending in a control character', `GET /v1.0/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A:${' '.repeat(16_000)}\x01\r\n\r\n`],
  ] as const) {
    test(`a request with ${name} gets 400 from node:http at once, not a 408 or an answer`, async () => {
      const conn = await RawConnection.open(env, a.httpPort);
      conn.write(raw);
      const res = await conn.response();
      assert.equal(res.status, 400);
      await conn.waitEnded();
    });
  }

  test('a fast request then a malformed one, pipelined: 200, then 400 and the connection closes', async () => {
    const conn = await RawConnection.open(env, a.httpPort);
    conn.write(Buffer.concat([echo('good'), Buffer.from('GET /v1.0/healthz HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n', 'latin1')]));
    assertEcho(await conn.response(), 'good');
    assert.equal((await conn.response()).status, 400);
    await conn.waitEnded();
  });

  test('an app response without Content-Length reaches the client chunked and whole; the connection is reused', async () => {
    const conn = await RawConnection.open(env, a.httpPort);
    conn.write(request('GET', '/v1.0/invoke/b/method/chunked'));
    // The first part reaches the client before the app has finished its response.
    await conn.waitUnread('first part|');
    assert.equal(chunkedHeld.length, 1);
    chunkedHeld.shift()?.();
    const res = await conn.response();
    assert.equal(res.status, 200);
    assert.equal(header(res, 'transfer-encoding'), 'chunked');
    assert.ok((res.chunks ?? 0) >= 2, `the body came in ${res.chunks} chunk(s)`);
    assert.equal(res.body.toString(), 'first part|second part');
    assert.equal(header(res, 'content-type'), 'text/plain');
    assertKeepAlive(res);
    conn.write(echo('second request'));
    assertEcho(await conn.response(), 'second request');
    assert.equal(conn.unread, '');
  });

  test('a 204 from the app has no body and the connection is reused', async () => {
    const conn = await RawConnection.open(env, a.httpPort);
    conn.write(request('GET', '/v1.0/invoke/b/method/no-content'));
    const res = await conn.response();
    assert.equal(res.status, 204);
    assert.equal(header(res, 'x-was'), 'here');
    assert.equal(header(res, 'content-length'), undefined);
    assert.equal(header(res, 'transfer-encoding'), undefined);
    assertKeepAlive(res);
    conn.write(echo('after 204'));
    // A body sent with the 204 would be read here as the start of this response.
    assertEcho(await conn.response(), 'after 204');
    assert.equal(conn.unread, '');
  });

  test('Connection: close is answered with Connection: close and the server closes the connection', async () => {
    const conn = await RawConnection.open(env, a.httpPort);
    conn.write(echo('last one', ['Connection: close']));
    const res = await conn.response();
    assertEcho(res, 'last one');
    assert.equal(header(res, 'connection'), 'close');
    assert.equal(header(res, 'keep-alive'), undefined);
    await conn.waitEnded();
    assert.equal(conn.unread, '');
    // The same for a health check answered at once, and for `keep-alive, close`.
    const health = await RawConnection.open(env, a.httpPort);
    health.write(request('GET', '/v1.0/healthz', ['Connection: keep-alive, close']));
    const h = await health.response();
    assert.equal(h.status, 204);
    assert.equal(header(h, 'connection'), 'close');
    await health.waitEnded();
  });

  test('a HEAD invocation is answered without a body, and the connection goes on', async () => {
    const conn = await RawConnection.open(env, a.httpPort);
    const seen = app.seen.length;
    conn.write(request('HEAD', '/v1.0/invoke/b/method/sized'));
    const res = await conn.response(true);
    assert.equal(res.status, 200);
    assert.equal(header(res, 'x-echo-method'), 'HEAD');
    assert.equal(app.seen.slice(seen).find((r) => r.url === '/sized')?.method, 'HEAD');
    conn.write(request('GET', '/v1.0/invoke/b/method/sized'));
    // A body sent with the HEAD response would come before this one.
    const get = await conn.response();
    assert.equal(get.status, 200);
    assert.equal(get.body.toString(), 'hello world');
    assert.equal(header(get, 'x-echo-method'), 'GET');
    assert.equal(conn.unread, '');
  });

  test('a request pipelined behind a call to a slow route waits for it and is answered after it', async () => {
    const conn = await RawConnection.open(env, a.httpPort);
    const echoesBefore = app.seen.filter((r) => r.url === '/echo').length;
    conn.write(Buffer.concat([request('POST', '/v1.0/invoke/b/method/slow', [], 's1'), echo('e2')]));
    await until(() => held.length === 1, 'the slow call to reach the app', RESPONSE_MS);
    // A round trip on another connection gives the sidecar time to (wrongly) serve the second request.
    const other = await RawConnection.open(env, a.httpPort);
    other.write(echo('other connection'));
    assertEcho(await other.response(), 'other connection');
    assert.equal(conn.unread, '', 'nothing is answered before the slow call');
    assert.equal(app.seen.filter((r) => r.url === '/echo' && r.body.toString() === 'e2').length, 0, 'the second request was sent on before the first was answered');
    held.shift()?.();
    const first = await conn.response();
    assert.equal(first.status, 200);
    assert.equal(first.body.toString(), 'slow:s1');
    assertEcho(await conn.response(), 'e2');
    assert.equal(app.seen.filter((r) => r.url === '/echo').length, echoesBefore + 2);
  });

  test('a backlog of pipelined requests larger than the read-ahead, behind a slow call, is answered whole and in order', async () => {
    const conn = await RawConnection.open(env, a.httpPort);
    const bodies = Array.from({ length: 6 }, (_, i) => Buffer.alloc(60 * 1024, 0x41 + i));
    const chunked = request('POST', '/v1.0/invoke/b/method/echo', ['Transfer-Encoding: chunked'], '4\r\ntail\r\n0\r\n\r\n');
    conn.write(Buffer.concat([request('POST', '/v1.0/invoke/b/method/slow', [], 'backlog'), ...bodies.map((b) => echo(b)), chunked, echo('end')]));
    await until(() => held.length === 1, 'the slow call to reach the app', RESPONSE_MS);
    held.shift()?.();
    const first = await conn.response();
    assert.equal(first.body.toString(), 'slow:backlog');
    for (const body of bodies) assertEcho(await conn.response(), body);
    assertEcho(await conn.response(), 'tail');
    assertEcho(await conn.response(), 'end');
    assert.equal(conn.unread, '');
  });

  test('a client that closes or half-closes during a call aborts it', async () => {
    for (const how of ['destroy', 'end'] as const) {
      const conn = await RawConnection.open(env, a.httpPort);
      const before = abandoned;
      const seen = app.seen.filter((r) => r.url === '/hold').length;
      conn.write(request('POST', '/v1.0/invoke/b/method/hold', [], 'wait'));
      await until(() => app.seen.filter((r) => r.url === '/hold').length === seen + 1, 'the call to reach the app', RESPONSE_MS);
      if (how === 'destroy') conn.socket.destroy();
      else conn.socket.end();
      await until(() => abandoned === before + 1, `the app to see the call given up (${how})`, RESPONSE_MS);
      if (how === 'end') {
        await conn.waitEnded();
        assert.equal(conn.unread, '', 'no response after the half-close');
      }
    }
  });

  test('200 sequential requests on one connection with bodies of 0 B, 1 B, 10 KiB and 60 KiB, then 64 KiB, 64 KiB + 1 and 100 KiB', async () => {
    const conn = await RawConnection.open(env, a.httpPort);
    const sizes = [0, 1, 10 * 1024, 60 * 1024];
    const bodyOf = (i: number, size: number): Buffer => {
      const body = Buffer.alloc(size, 0x61 + (i % 26));
      body.write(String(i).slice(0, size), 'latin1');
      return body;
    };
    for (let i = 0; i < 200; i++) {
      const body = bodyOf(i, sizes[i % sizes.length] as number);
      conn.write(echo(body, [`X-Request: ${i}`]));
      const res = await conn.response();
      assertEcho(res, body);
      assert.equal(header(res, 'connection'), 'keep-alive', `request ${i}`);
      assert.equal(conn.unread, '', `stray bytes after response ${i}`);
    }
    for (const [i, size] of [[200, 64 * 1024], [201, 64 * 1024 + 1], [202, 100 * 1024]] as const) {
      const body = bodyOf(i, size);
      conn.write(echo(body));
      assertEcho(await conn.response(), body);
    }
    assert.equal(conn.ended, false);
    assert.equal(conn.unread, '');
  });

  test('bodies over --max-body-size get 413; up to it they are served', async () => {
    const conn = await RawConnection.open(env, strict.httpPort);
    const limit = Buffer.alloc(1024, 0x6b);
    conn.write(echo(limit));
    assertEcho(await conn.response(), limit);
    const over = await RawConnection.open(env, strict.httpPort);
    over.write(echo(Buffer.alloc(2048, 0x6c)));
    const res = await over.response();
    assert.equal(res.status, 413);
    assert.equal((JSON.parse(res.body.toString()) as { errorCode: string }).errorCode, 'ERR_BODY_TOO_LARGE');
    const justOver = await RawConnection.open(env, strict.httpPort);
    justOver.write(echo(Buffer.alloc(1025, 0x6c)));
    assert.equal((await justOver.response()).status, 413);
  });

  test('a head larger than --read-buffer-size gets 431, and so does a request with more than --max-request-headers headers', async () => {
    const big = await RawConnection.open(env, a.httpPort);
    big.write(echo('x', [`X-Big: ${'v'.repeat(20 * 1024)}`]));
    const res = await big.response();
    assert.equal(res.status, 431);
    const many = await RawConnection.open(env, a.httpPort);
    many.write(echo('x', Array.from({ length: 120 }, (_, i) => `X-Many-${i}: ${i}`)));
    const manyRes = await many.response();
    assert.equal(manyRes.status, 431);
    assert.equal((JSON.parse(manyRes.body.toString()) as { errorCode: string }).errorCode, 'ERR_HEADERS_TOO_LARGE');
    // Exactly the limit (100 header lines with Host, Content-Type and Content-Length) is served.
    const atLimit = await RawConnection.open(env, a.httpPort);
    atLimit.write(echo('at the limit', Array.from({ length: 97 }, (_, i) => `X-Many-${i}: ${i}`)));
    assertEcho(await atLimit.response(), 'at the limit');
  });
});
