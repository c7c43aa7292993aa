import { connect as netConnect, type Socket } from 'node:net';
import type { Readable } from 'node:stream';

// Courier's own HTTP/1.1 client for the plaintext leg from a sidecar to its app (`--app-protocol http`):
// a keep-alive pool of TCP connections, one request at a time on each. It replaces undici on that leg
// only (HTTPS apps and HTTP endpoints keep undici): a request head and a small body leave in one write,
// responses are read straight from the socket's reads (`onread`, no stream machinery), and a sidecar
// whose app speaks plain HTTP does not load undici. docs/decisions/app-http1-client.md.

/** What a call's response handler can ask of the transport carrying it. */
export interface Http1CallControl {
  pause(): void;
  resume(): void;
  abort(reason: Error): void;
}

/** The events of one exchange, in order: attach, then started, received…, ended; or fail at any point. */
export interface Http1Handler {
  attach(control: Http1CallControl): void;
  /** The final response head (status ≥ 200; 1xx heads are skipped), raw headers as name/value pairs. */
  started(status: number, rawHeaders: string[], contentType: string, declaredLength: string | undefined): void;
  /** A piece of the body; the handler owns it. */
  received(chunk: Buffer): void;
  /**
   * The body is complete, or the app closed the connection before all of the Content-Length it
   * declared had come: Dapr passes such a body on as received.
   */
  ended(): void;
  /** `notSent`: true when the request cannot have reached the app (the connection never opened). */
  fail(error: unknown, notSent?: boolean): void;
}

export interface Http1Request {
  readonly method: string;
  /** The request target: an absolute path with its query, already encoded. */
  readonly path: string;
  /**
   * Headers as name/value pairs. Courier writes Host, Connection, Content-Length and Transfer-Encoding
   * itself; the caller leaves them out.
   */
  readonly headers: readonly string[];
  readonly body: Readable | Buffer | null;
  /** A stream body's exact length when known (sent as Content-Length; without it the body is chunked). */
  readonly contentLength: number | undefined;
}

export interface Http1PoolOptions {
  /** A name or an IP literal (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
  /** The TCP connection must be open within this. Default 5000. */
  readonly connectTimeoutMs?: number | undefined;
  /** An idle connection is reused for this long at most (less when the app's Keep-Alive says so). Default 30 s. */
  readonly keepAliveMs?: number | undefined;
  /** Largest response head (status line and headers) accepted. Default 16 KiB, as Node's HTTP. */
  readonly maxHeaderBytes?: number | undefined;
}

/** A failure of the HTTP/1.1 transport; `data` holds the first bytes of a response that was not HTTP/1.1. */
export class Http1Error extends Error {
  readonly code: string;
  readonly data: string | undefined;
  constructor(code: string, message: string, data?: string) {
    super(message);
    this.name = 'Http1Error';
    this.code = code;
    this.data = data;
  }
}

/** The app closed (or reset) the connection before its response was complete. */
export const APP_CLOSED = 'ERR_HTTP1_CLOSED';
/** The connection to the app did not open in time. */
export const CONNECT_TIMEOUT = 'ERR_HTTP1_CONNECT_TIMEOUT';
/** The app's response is not HTTP/1.1 as RFC 9112 writes it. */
export const BAD_RESPONSE = 'ERR_HTTP1_BAD_RESPONSE';
/** The request could not be written as given (a header, the path, or a body that is not its stated length). */
export const BAD_REQUEST = 'ERR_HTTP1_BAD_REQUEST';
/** The pool was closed. */
export const POOL_CLOSED = 'ERR_HTTP1_POOL_CLOSED';

const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
const DEFAULT_KEEP_ALIVE_MS = 30_000;
const DEFAULT_MAX_HEADER_BYTES = 16 * 1024;
/** A Keep-Alive timeout the app announces is shortened by this much, so the pool gives up first. */
const KEEP_ALIVE_MARGIN_MS = 1_000;
/** A body up to this size leaves in the same write as the head (copied once); larger ones in a second. */
const JOIN_BODY_BYTES = 16 * 1024;
/** A chunk-size line (with extensions) or a trailer section longer than this is refused. */
const MAX_CHUNK_LINE_BYTES = 4096;
/** How often idle connections past their keep-alive time are closed. */
const SWEEP_INTERVAL_MS = 1_000;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A header value may hold visible characters, spaces, tabs and obs-text, nothing else. */
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const BAD_TARGET = /[^\x21-\x7e\x80-\xff]/;
/** Methods whose request has a body by definition: without one they still send `Content-Length: 0`. */
const PAYLOAD_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'QUERY', 'PROPFIND', 'PROPPATCH']);

const CRLF = 0x0a0d; // "\r\n" read as a little-endian uint16
const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');
const CHUNK_END = Buffer.from('\r\n', 'latin1');

/** What a connection is reading. */
const IDLE = 0;
const HEAD = 1;
const LENGTH = 2;
const CHUNK_SIZE = 3;
const CHUNK_DATA = 4;
const CHUNK_CRLF = 5;
const TRAILERS = 6;
const UNTIL_CLOSE = 7;

/**
 * The bytes of every read of every connection: `onread` hands each read here, the parser copies what
 * it keeps (a body chunk, an incomplete head), so no buffer is made per read. Reads are processed one
 * at a time on the event loop, so one buffer serves all.
 */
const readBuffer = Buffer.allocUnsafe(64 * 1024);

/**
 * A keep-alive pool of HTTP/1.1 connections to one app. Idle connections are reused most recent first;
 * one that the app announced it will close (Keep-Alive timeout), or that has been idle longer than
 * `keepAliveMs`, is closed instead. A request never waits for a connection: a new one opens when none
 * is idle (the app channel bounds concurrency itself).
 */
export class Http1Pool {
  readonly host: string;
  readonly port: number;
  readonly connectTimeoutMs: number;
  readonly keepAliveMs: number;
  readonly maxHeaderBytes: number;
  /** The Host header: `host:port`, IPv6 in brackets. */
  readonly authority: string;
  readonly #idle: Http1Connection[] = [];
  readonly #all = new Set<Http1Connection>();
  #sweeper: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: Http1PoolOptions) {
    this.host = options.host;
    this.port = options.port;
    this.connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.keepAliveMs = options.keepAliveMs ?? DEFAULT_KEEP_ALIVE_MS;
    this.maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
    this.authority = `${options.host.includes(':') ? `[${options.host}]` : options.host}:${options.port}`;
  }

  /** Open connections, idle or carrying a request. */
  get connections(): number {
    return this.#all.size;
  }

  /** Sends `request` on an idle connection or a new one; everything else arrives at `handler`. */
  request(request: Http1Request, handler: Http1Handler): void {
    if (this.#closed) {
      handler.fail(new Http1Error(POOL_CLOSED, 'the connection pool to the app is closed'), true);
      return;
    }
    let head: string;
    try {
      head = requestHead(request, this.authority);
    } catch (err) {
      handler.fail(err, false);
      return;
    }
    let connection: Http1Connection | undefined;
    const now = Date.now();
    while ((connection = this.#idle.pop()) !== undefined) {
      if (now < connection.reuseUntil) break;
      connection.destroy();
    }
    connection ??= this.#open();
    connection.begin(request, head, handler);
  }

  /** Closes every connection; requests in flight fail. */
  close(): Promise<void> {
    this.#closed = true;
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    this.#idle.length = 0;
    for (const connection of [...this.#all]) connection.fail(new Http1Error(POOL_CLOSED, 'the connection pool to the app is closed'));
    return Promise.resolve();
  }

  #open(): Http1Connection {
    const connection = new Http1Connection(this);
    this.#all.add(connection);
    return connection;
  }

  /** @internal A connection whose exchange completed cleanly and that may carry another. */
  release(connection: Http1Connection, reuseUntil: number): void {
    if (this.#closed) {
      connection.destroy();
      return;
    }
    connection.reuseUntil = reuseUntil;
    this.#idle.push(connection);
    this.#sweeper ??= setInterval(this.#sweep, SWEEP_INTERVAL_MS).unref();
  }

  /** @internal A connection that is gone. */
  forget(connection: Http1Connection): void {
    this.#all.delete(connection);
    const at = this.#idle.indexOf(connection);
    if (at >= 0) this.#idle.splice(at, 1);
    if (this.#all.size === 0 && this.#sweeper !== undefined) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  readonly #sweep = (): void => {
    const now = Date.now();
    for (const connection of [...this.#idle]) if (now >= connection.reuseUntil) connection.destroy();
  };
}

/** The request line and headers, validated, with the framing headers Courier owns. */
function requestHead(request: Http1Request, authority: string): string {
  const { method, path, headers, body } = request;
  if (!TOKEN.test(method)) throw new Http1Error(BAD_REQUEST, `invalid HTTP method ${JSON.stringify(method)}`);
  if (path.length === 0 || BAD_TARGET.test(path)) throw new Http1Error(BAD_REQUEST, `invalid request path ${JSON.stringify(path)}`);
  let head = `${method} ${path} HTTP/1.1\r\nhost: ${authority}\r\nconnection: keep-alive\r\n`;
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const name = headers[i] as string;
    const value = headers[i + 1] as string;
    if (!TOKEN.test(name)) throw new Http1Error(BAD_REQUEST, `invalid header name ${JSON.stringify(name)}`);
    if (BAD_VALUE.test(value)) throw new Http1Error(BAD_REQUEST, `invalid value of header ${name}`);
    head += `${name}: ${value}\r\n`;
  }
  if (body === null) {
    if (PAYLOAD_METHODS.has(method)) head += 'content-length: 0\r\n';
  } else if (Buffer.isBuffer(body)) {
    head += `content-length: ${body.length}\r\n`;
  } else if (request.contentLength !== undefined) {
    head += `content-length: ${request.contentLength}\r\n`;
  } else {
    head += 'transfer-encoding: chunked\r\n';
  }
  return `${head}\r\n`;
}

/**
 * One TCP connection to the app and the exchange it carries. It is the exchange's `Http1CallControl`,
 * and its listeners are made once per connection, not per request.
 */
class Http1Connection {
  readonly #pool: Http1Pool;
  readonly #socket: Socket;
  #connected = false;
  #control: ExchangeControl | undefined;
  #connectTimer: NodeJS.Timeout | undefined;
  #gone = false;
  /** Until when an idle connection may be reused (set by the pool). */
  reuseUntil = 0;

  // The exchange in progress.
  #handler: Http1Handler | undefined;
  #request: Http1Request | undefined;
  #head = '';
  #state = IDLE;
  #headRequest = false;
  /** Bytes of an incomplete head, chunk-size line or trailer section, copied out of the read buffer. */
  #pending: Buffer | undefined;
  #remaining = 0;
  #declared = false;
  #reusable = true;
  #keepAliveMs = 0;
  /** The request (head and body) has been written whole. */
  #requestSent = false;
  #body: Readable | undefined;
  #bodySent = 0;
  #bodyLength: number | undefined;
  #bodyChunked = false;
  #bodyWaitsForDrain = false;

  constructor(pool: Http1Pool) {
    this.#pool = pool;
    this.#socket = netConnect({
      host: pool.host,
      port: pool.port,
      noDelay: true,
      onread: { buffer: readBuffer, callback: this.#onRead },
    });
    this.#socket.on('connect', this.#onConnect);
    this.#socket.on('error', this.#onError);
    this.#socket.on('end', this.#onEnd);
    this.#socket.on('close', this.#onClose);
    this.#socket.on('drain', this.#onDrain);
    this.#connectTimer = setTimeout(this.#onConnectTimeout, pool.connectTimeoutMs);
    this.#connectTimer.unref();
  }

  begin(request: Http1Request, head: string, handler: Http1Handler): void {
    this.#handler = handler;
    this.#request = request;
    this.#head = head;
    this.#state = HEAD;
    this.#headRequest = request.method === 'HEAD';
    this.#pending = undefined;
    this.#reusable = true;
    this.#keepAliveMs = this.#pool.keepAliveMs;
    this.#requestSent = false;
    const control = new ExchangeControl(this);
    this.#control = control;
    const body = request.body;
    if (body !== null && !Buffer.isBuffer(body)) {
      // The body's failures count from now on, also while the connection is still opening.
      this.#body = body;
      body.on('error', this.#onBodyError);
      body.on('close', this.#onBodyClose);
    }
    handler.attach(control);
    if (this.#handler !== handler) return; // aborted as it attached
    if (body !== null && !Buffer.isBuffer(body) && body.destroyed) {
      this.fail(new Http1Error(BAD_REQUEST, 'the request body was closed before it was sent'));
      return;
    }
    if (this.#connected) this.#send();
  }

  // --- Http1CallControl, through the exchange's ExchangeControl ----------------------------------

  pause(): void {
    this.#socket.pause();
  }

  resume(): void {
    this.#socket.resume();
  }

  abort(reason: Error): void {
    if (this.#handler !== undefined) this.fail(reason);
  }

  /** The exchange in progress is over: its control no longer reaches this connection. */
  #endExchange(): Http1Handler | undefined {
    const handler = this.#handler;
    this.#handler = undefined;
    this.#request = undefined;
    this.#state = IDLE;
    if (this.#control !== undefined) this.#control.connection = undefined;
    this.#control = undefined;
    return handler;
  }

  // --- writing ---------------------------------------------------------------------------------

  #send(): void {
    const request = this.#request;
    if (request === undefined) return;
    const head = this.#head;
    this.#head = '';
    const body = request.body;
    const socket = this.#socket;
    if (body === null) {
      socket.write(head, 'latin1');
      this.#requestSent = true;
    } else if (Buffer.isBuffer(body)) {
      if (body.length <= JOIN_BODY_BYTES) {
        const out = Buffer.allocUnsafe(head.length + body.length);
        out.write(head, 0, 'latin1');
        body.copy(out, head.length);
        socket.write(out);
      } else {
        socket.cork();
        socket.write(head, 'latin1');
        socket.write(body);
        socket.uncork();
      }
      this.#requestSent = true;
    } else {
      socket.write(head, 'latin1');
      this.#bodySent = 0;
      this.#bodyLength = request.contentLength;
      this.#bodyChunked = request.contentLength === undefined;
      body.on('data', this.#onBodyData);
      body.on('end', this.#onBodyEnd);
    }
  }

  readonly #onBodyData = (chunk: Buffer | string): void => {
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (data.length === 0) return;
    this.#bodySent += data.length;
    if (this.#bodyLength !== undefined && this.#bodySent > this.#bodyLength) {
      this.fail(new Http1Error(BAD_REQUEST, `the request body is longer than its Content-Length (${this.#bodyLength})`));
      return;
    }
    const socket = this.#socket;
    let ok: boolean;
    if (this.#bodyChunked) {
      socket.cork();
      socket.write(`${data.length.toString(16)}\r\n`, 'latin1');
      socket.write(data);
      ok = socket.write(CHUNK_END);
      socket.uncork();
    } else {
      ok = socket.write(data);
    }
    if (!ok) {
      this.#bodyWaitsForDrain = true;
      this.#body?.pause();
    }
  };

  readonly #onDrain = (): void => {
    if (!this.#bodyWaitsForDrain) return;
    this.#bodyWaitsForDrain = false;
    this.#body?.resume();
  };

  readonly #onBodyEnd = (): void => {
    if (this.#bodyLength !== undefined && this.#bodySent !== this.#bodyLength) {
      this.fail(new Http1Error(BAD_REQUEST, `the request body ended after ${this.#bodySent} of the ${this.#bodyLength} bytes of its Content-Length`));
      return;
    }
    if (this.#bodyChunked) this.#socket.write(LAST_CHUNK);
    this.#detachBody();
    this.#requestSent = true;
  };

  readonly #onBodyError = (err: Error): void => {
    this.fail(err);
  };

  readonly #onBodyClose = (): void => {
    // A body that closes without ending was torn down (its own error, if any, came first).
    if (this.#body !== undefined) this.fail(new Http1Error(BAD_REQUEST, 'the request body closed before it ended'));
  };

  #detachBody(): Readable | undefined {
    const body = this.#body;
    if (body === undefined) return undefined;
    this.#body = undefined;
    this.#bodyWaitsForDrain = false;
    body.off('data', this.#onBodyData);
    body.off('end', this.#onBodyEnd);
    body.off('error', this.#onBodyError);
    body.off('close', this.#onBodyClose);
    return body;
  }

  // --- reading ---------------------------------------------------------------------------------

  readonly #onRead = (length: number, buffer: Buffer): boolean => {
    if (this.#state === IDLE) {
      // Bytes nobody asked for: the connection cannot be trusted with another request.
      this.destroy();
      return false;
    }
    try {
      this.#parse(buffer, 0, length);
    } catch (err) {
      this.fail(err);
    }
    return true;
  };

  #parse(buffer: Buffer, start: number, end: number): void {
    let at = start;
    while (at < end && this.#handler !== undefined) {
      switch (this.#state) {
        case HEAD:
          at = this.#readHead(buffer, at, end);
          break;
        case LENGTH: {
          const n = Math.min(this.#remaining, end - at);
          this.#remaining -= n;
          const chunk = copyOut(buffer, at, n);
          at += n;
          if (this.#remaining === 0) this.#state = IDLE;
          this.#handler.received(chunk);
          if (this.#state === IDLE && this.#handler !== undefined) this.#complete(at < end);
          break;
        }
        case CHUNK_SIZE:
          at = this.#readChunkSize(buffer, at, end);
          break;
        case CHUNK_DATA: {
          const n = Math.min(this.#remaining, end - at);
          this.#remaining -= n;
          const chunk = copyOut(buffer, at, n);
          at += n;
          if (this.#remaining === 0) {
            this.#state = CHUNK_CRLF;
            this.#remaining = 2;
          }
          this.#handler.received(chunk);
          break;
        }
        case CHUNK_CRLF:
          // The CRLF after a chunk's data, possibly split between reads.
          if (buffer[at] !== (this.#remaining === 2 ? 0x0d : 0x0a)) throw badResponse('a chunk is not followed by CRLF');
          at++;
          if (--this.#remaining === 0) this.#state = CHUNK_SIZE;
          break;
        case TRAILERS:
          at = this.#readTrailers(buffer, at, end);
          break;
        case UNTIL_CLOSE: {
          const chunk = copyOut(buffer, at, end - at);
          at = end;
          this.#handler.received(chunk);
          break;
        }
        default:
          // IDLE after a complete response: anything more is not an answer to anything.
          this.destroy();
          return;
      }
    }
  }

  /** Reads (part of) a response head; returns where its bytes end. */
  #readHead(buffer: Buffer, at: number, end: number): number {
    let data = buffer;
    let from = at;
    let to = end;
    let searchFrom = at;
    const pending = this.#pending;
    if (pending !== undefined) {
      data = Buffer.concat([pending, buffer.subarray(at, end)]);
      searchFrom = Math.max(0, pending.length - 3);
      from = 0;
      to = data.length;
    }
    checkStatusLinePrefix(data, from, to);
    const headEnd = data.indexOf(CRLFCRLF, searchFrom);
    if (headEnd < 0 || headEnd + 4 > to) {
      if (to - from > this.#pool.maxHeaderBytes) throw badResponse(`the response head is larger than ${this.#pool.maxHeaderBytes} bytes`);
      this.#pending = pending === undefined ? copyOut(buffer, at, end - at) : data;
      return end;
    }
    if (headEnd + 4 - from > this.#pool.maxHeaderBytes) throw badResponse(`the response head is larger than ${this.#pool.maxHeaderBytes} bytes`);
    this.#pending = undefined;
    const consumedOfData = headEnd + 4;
    // Where the head ends in `buffer`: the pending bytes came before `at`.
    const next = pending === undefined ? consumedOfData : at + (consumedOfData - pending.length);
    const handler = this.#handler;
    this.#onHead(data.toString('latin1', from, headEnd));
    // A final head without a body completes the response here; bytes after it answer nothing.
    if (this.#state === IDLE && handler !== undefined && this.#handler === handler) this.#complete(next < end);
    return next;
  }

  #onHead(text: string): void {
    const lines = text.split('\r\n');
    const statusLine = lines[0] ?? '';
    // "HTTP/1.x SSS[ reason]"
    if (statusLine.length < 12 || !statusLine.startsWith('HTTP/1.') || statusLine.charCodeAt(8) !== 0x20 || (statusLine.length > 12 && statusLine.charCodeAt(12) !== 0x20)) {
      throw badResponse('invalid status line', statusLine.slice(0, 64));
    }
    const minor = statusLine.charCodeAt(7);
    if (minor !== 0x30 && minor !== 0x31) throw badResponse('invalid status line', statusLine.slice(0, 64));
    const status = statusDigits(statusLine);
    if (status < 100) throw badResponse('invalid status code', statusLine.slice(0, 64));
    const rawHeaders: string[] = new Array<string>((lines.length - 1) * 2);
    let contentType = '';
    let contentLength: string | undefined;
    let transferEncoding: string | undefined;
    let connectionClose = minor === 0x30;
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i] as string;
      const colon = line.indexOf(':');
      if (colon <= 0) throw badResponse('invalid header line');
      const name = line.slice(0, colon);
      if (!TOKEN.test(name)) throw badResponse('invalid header name');
      const rawValue = line.slice(colon + 1);
      if (BAD_VALUE.test(rawValue)) throw badResponse(`invalid value of header ${name}`);
      const value = trimOws(rawValue);
      rawHeaders[2 * i - 2] = name;
      rawHeaders[2 * i - 1] = value;
      switch (name.length) {
        case 10: {
          const lower = name.toLowerCase();
          if (lower === 'connection') {
            const tokens = value.toLowerCase();
            if (hasToken(tokens, 'close')) connectionClose = true;
            else if (minor === 0x30 && hasToken(tokens, 'keep-alive')) connectionClose = false;
          } else if (lower === 'keep-alive') {
            this.#keepAliveHint(value);
          }
          break;
        }
        case 12:
          if (contentType === '' && name.toLowerCase() === 'content-type') contentType = value;
          break;
        case 14:
          if (name.toLowerCase() === 'content-length') {
            if (!/^\d+$/.test(value) || (contentLength !== undefined && contentLength !== value)) throw badResponse('invalid Content-Length');
            contentLength = value;
          }
          break;
        case 17:
          if (name.toLowerCase() === 'transfer-encoding') transferEncoding = transferEncoding === undefined ? value : `${transferEncoding}, ${value}`;
          break;
      }
    }
    if (status < 200) {
      if (status === 101) throw badResponse('the app switched protocols');
      return; // 100 Continue, 103 Early Hints: the final head follows
    }
    if (connectionClose) this.#reusable = false;
    const handler = this.#handler as Http1Handler;
    let length = -1;
    if (this.#headRequest || status === 204 || status === 304) {
      length = 0;
    } else if (transferEncoding !== undefined) {
      // Transfer-Encoding wins over Content-Length, and such a connection is not reused.
      if (contentLength !== undefined) this.#reusable = false;
      const codings = transferEncoding.toLowerCase();
      if (/(?:^|,)\s*chunked\s*$/.test(codings)) {
        this.#state = CHUNK_SIZE;
      } else {
        this.#state = UNTIL_CLOSE;
        this.#reusable = false;
      }
    } else if (contentLength !== undefined) {
      length = Number(contentLength);
      if (!Number.isSafeInteger(length)) throw badResponse('invalid Content-Length');
    } else {
      this.#state = UNTIL_CLOSE;
      this.#reusable = false;
    }
    if (length >= 0) {
      this.#declared = contentLength !== undefined;
      this.#remaining = length;
      this.#state = length === 0 ? IDLE : LENGTH;
    } else {
      this.#declared = false;
    }
    handler.started(status, rawHeaders, contentType, contentLength);
  }

  #keepAliveHint(value: string): void {
    const match = /(?:^|[,;\s])timeout\s*=\s*(\d+)/i.exec(value);
    if (match === null) return;
    const ms = Number(match[1]) * 1000 - KEEP_ALIVE_MARGIN_MS;
    if (ms <= 0) this.#reusable = false;
    else this.#keepAliveMs = Math.min(this.#keepAliveMs, ms);
  }

  #readChunkSize(buffer: Buffer, at: number, end: number): number {
    const line = this.#readLine(buffer, at, end);
    if (line === undefined) return end;
    const semicolon = line.text.indexOf(';');
    const digits = trimOws(semicolon >= 0 ? line.text.slice(0, semicolon) : line.text);
    if (!/^[0-9a-fA-F]{1,13}$/.test(digits)) throw badResponse('invalid chunk size');
    const size = parseInt(digits, 16);
    if (size === 0) {
      this.#state = TRAILERS;
      this.#remaining = 0; // bytes of trailers read so far
    } else {
      this.#state = CHUNK_DATA;
      this.#remaining = size;
    }
    return line.next;
  }

  #readTrailers(buffer: Buffer, at: number, end: number): number {
    let next = at;
    while (next < end) {
      const line = this.#readLine(buffer, next, end);
      if (line === undefined) return end;
      next = line.next;
      this.#remaining += line.text.length + 2;
      if (this.#remaining > this.#pool.maxHeaderBytes) throw badResponse('the trailer section is too large');
      if (line.text.length === 0) {
        this.#state = IDLE;
        this.#complete(next < end);
        return end;
      }
    }
    return next;
  }

  /** One CRLF-terminated line, possibly split between reads; undefined while it is incomplete. */
  #readLine(buffer: Buffer, at: number, end: number): { text: string; next: number } | undefined {
    const pending = this.#pending;
    if (pending === undefined) {
      const eol = indexOfCrlf(buffer, at, end);
      if (eol >= 0) return { text: buffer.toString('latin1', at, eol), next: eol + 2 };
      if (end - at > MAX_CHUNK_LINE_BYTES) throw badResponse('a chunk-size line is too long');
      this.#pending = copyOut(buffer, at, end - at);
      return undefined;
    }
    const data = Buffer.concat([pending, buffer.subarray(at, end)]);
    const eol = indexOfCrlf(data, Math.max(0, pending.length - 1), data.length);
    if (eol < 0) {
      if (data.length > MAX_CHUNK_LINE_BYTES) throw badResponse('a chunk-size line is too long');
      this.#pending = data;
      return undefined;
    }
    this.#pending = undefined;
    return { text: data.toString('latin1', 0, eol), next: at + (eol + 2 - pending.length) };
  }

  /** The response is complete. `more`: bytes followed it in the same read. */
  #complete(more: boolean): void {
    const handler = this.#endExchange();
    if (handler === undefined) return;
    let reusable = this.#reusable && !more && !this.#gone;
    const body = this.#detachBody();
    if (!this.#requestSent) {
      // The app answered before the request body was all sent: the rest is drained and dropped (a
      // failure of it no longer matters), and the connection, which is mid-request, is not reused.
      body?.on('error', ignore);
      body?.resume();
      reusable = false;
    }
    if (reusable) {
      this.#socket.resume();
      this.#pool.release(this, Date.now() + this.#keepAliveMs);
    } else {
      this.destroy();
    }
    handler.ended();
  }

  // --- the connection's life -------------------------------------------------------------------

  readonly #onConnect = (): void => {
    this.#connected = true;
    if (this.#connectTimer !== undefined) clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    this.#send();
  };

  readonly #onConnectTimeout = (): void => {
    this.#connectTimer = undefined;
    this.fail(new Http1Error(CONNECT_TIMEOUT, `connecting to the app at ${this.#pool.authority} timed out after ${this.#pool.connectTimeoutMs} ms`));
  };

  readonly #onError = (err: Error): void => {
    this.#lost(err);
  };

  readonly #onEnd = (): void => {
    this.#lost(undefined);
  };

  readonly #onClose = (): void => {
    this.#lost(undefined);
  };

  /** The socket ended, failed or closed. */
  #lost(err: Error | undefined): void {
    const handler = this.#handler;
    if (handler !== undefined) {
      if (this.#state === UNTIL_CLOSE && err === undefined) {
        this.#complete(false);
      } else if (this.#state === LENGTH && this.#declared) {
        // An app that closes before the Content-Length it declared has ended its body there (Dapr
        // passes such bodies on as received).
        this.#reusable = false;
        this.#complete(false);
      } else {
        this.fail(err ?? new Http1Error(APP_CLOSED, this.#state === HEAD ? 'the app closed the connection without answering' : 'the app closed the connection before its response was complete'));
        return;
      }
    }
    this.destroy();
  }

  /** Fails the exchange in progress, if any, and closes the connection. */
  fail(error: unknown): void {
    const notSent = !this.#connected;
    const handler = this.#endExchange();
    const body = this.#detachBody();
    if (body !== undefined && !body.destroyed) {
      body.on('error', ignore);
      body.destroy();
    }
    this.destroy();
    handler?.fail(error, notSent ? true : undefined);
  }

  /** Closes the connection; an exchange still on it must have been finished or failed first. */
  destroy(): void {
    if (!this.#gone) {
      this.#gone = true;
      if (this.#connectTimer !== undefined) clearTimeout(this.#connectTimer);
      this.#connectTimer = undefined;
      this.#pool.forget(this);
      this.#socket.destroy();
    }
    if (this.#handler !== undefined) this.fail(new Http1Error(APP_CLOSED, 'the connection to the app was closed'));
  }
}

function ignore(): void {}

/**
 * What one exchange's handler holds to pause, resume or abort it: it reaches the connection only while
 * that exchange is in progress, so a handler that keeps it after its call ended cannot touch the
 * connection's next call.
 */
class ExchangeControl implements Http1CallControl {
  connection: Http1Connection | undefined;

  constructor(connection: Http1Connection) {
    this.connection = connection;
  }

  pause(): void {
    this.connection?.pause();
  }

  resume(): void {
    this.connection?.resume();
  }

  abort(reason: Error): void {
    this.connection?.abort(reason);
  }
}

function badResponse(reason: string, data?: string): Http1Error {
  return new Http1Error(BAD_RESPONSE, `the app's response is not valid HTTP/1.1: ${reason}`, data);
}

const HTTP_PREFIX = 'HTTP/1.';

/**
 * Fails at once when the first bytes of a response cannot start a status line: an app that answers
 * in HTTP/2 or TLS sends a frame, not a line, and may then wait. The error keeps those bytes, by which
 * the app channel tells what the app speaks.
 */
function checkStatusLinePrefix(data: Buffer, from: number, to: number): void {
  const n = Math.min(HTTP_PREFIX.length, to - from);
  for (let i = 0; i < n; i++) {
    if (data[from + i] !== HTTP_PREFIX.charCodeAt(i)) throw badResponse('it does not begin with HTTP/1.', data.toString('latin1', from, Math.min(to, from + 64)));
  }
}

function statusDigits(line: string): number {
  let status = 0;
  for (let i = 9; i < 12; i++) {
    const digit = line.charCodeAt(i) - 0x30;
    if (digit < 0 || digit > 9) return -1;
    status = status * 10 + digit;
  }
  return status;
}

/** Copies bytes out of the shared read buffer (small copies come from Node's buffer pool). */
function copyOut(buffer: Buffer, at: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  buffer.copy(out, 0, at, at + length);
  return out;
}

function indexOfCrlf(buffer: Buffer, from: number, to: number): number {
  for (let i = from; i + 1 < to; i++) if (buffer.readUInt16LE(i) === CRLF) return i;
  return -1;
}

/** Strips the optional whitespace (spaces and tabs) around a header value. */
function trimOws(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && (value.charCodeAt(start) === 0x20 || value.charCodeAt(start) === 0x09)) start++;
  while (end > start && (value.charCodeAt(end - 1) === 0x20 || value.charCodeAt(end - 1) === 0x09)) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}

function hasToken(list: string, token: string): boolean {
  for (const item of list.split(',')) if (item.trim() === token) return true;
  return false;
}
