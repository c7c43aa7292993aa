// The HTTP API's own HTTP/1.1 connection handling for the requests every call makes, in front of
// node:http for everything else. See docs/decisions/api-fast-path.md.
import type { Socket } from 'node:net';
import { METHODS, STATUS_CODES } from '../../util/builtin-http.js';
import { CourierError, renderHttpError, type ErrorCode } from '../../errors/index.js';
import { CallAbort } from '../../invoke/call-signal.js';
import type { FlowControl, ResponseHead, ResponseSink } from '../../invoke/types.js';
import type { Span } from '../../observability/tracing/tracer.js';
import { callerHeaders, callerStatus, grpcFailureBody, HAS_TRACEPARENT, headersPresent, namingTarget } from './response-writer.js';

/** A request head the fast path parsed: HTTP/1.1, origin-form target, no transfer coding. */
export interface FastHead {
  readonly method: string;
  /** The request target as sent (origin-form: starts with `/`). */
  readonly target: string;
  /** Header names and values, alternating, as sent (values trimmed of surrounding blanks). */
  readonly rawHeaders: string[];
  /** The body's length from Content-Length (0 without one). */
  readonly contentLength: number;
  /** Whether the client asked to keep the connection open (it did not send `Connection: close`). */
  readonly keepAlive: boolean;
}

/** What serves the requests of a fast connection: the HTTP API server. */
export interface FastHost<Plan> {
  /**
   * Whether the fast path serves this request, and how (undefined: node:http serves this request and
   * every later one on the connection). Called once the head has arrived, before the body.
   */
  plan(head: FastHead): Plan | undefined;
  /** Serves a planned request whose whole body has arrived. */
  serve(call: FastCall<Plan>): void;
  /** A request's exchange is over: its response was written whole, or the connection closed first. */
  done(call: FastCall<Plan>): void;
  /** Gives the connection (with `pending` unread bytes put back) to node:http. */
  handOff(socket: Socket, pending: Buffer | undefined): void;
  /** Whether the server is shutting down: responses ask the client to close. */
  draining(): boolean;
  /** The largest request head, in bytes (`--read-buffer-size`). */
  readonly maxHeadBytes: number;
  /** The most header lines a request may carry; 0 is unlimited. */
  readonly maxHeaders: number;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** A header value Node's own writeHead would refuse (a control character, or one outside latin1); also checks request header values. */
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
/** An origin-form request target: `/` and visible ASCII. */
const ORIGIN_TARGET = /^\/[\x21-\x7e]*$/;
const DIGITS = /^[0-9]{1,15}$/;
/** The methods the fast path serves: those Node's parser knows, but HEAD (no body in its answer) and CONNECT. */
const SERVED_METHODS: ReadonlySet<string> = new Set(METHODS.filter((m) => m !== 'HEAD' && m !== 'CONNECT'));

/**
 * Parses a request head (without its final blank line) strictly: anything RFC 9112 leaves to the
 * server's judgement, or that Node's parser treats specially, is not parsed here (undefined), and
 * node:http gets the connection. That covers HTTP/1.0, absolute-form and asterisk targets, folded
 * or malformed header lines, bare CR or LF, Transfer-Encoding, Expect, Upgrade, a missing or repeated
 * Host, a malformed or repeated Content-Length, and more header lines than `maxHeaders`.
 */
export function parseRequestHead(head: string, maxHeaders: number): FastHead | undefined {
  let lineEnd = head.indexOf('\r\n');
  const requestLine = lineEnd < 0 ? head : head.slice(0, lineEnd);
  const sp1 = requestLine.indexOf(' ');
  const sp2 = requestLine.indexOf(' ', sp1 + 1);
  if (sp1 <= 0 || sp2 < 0 || requestLine.slice(sp2 + 1) !== 'HTTP/1.1') return undefined;
  const method = requestLine.slice(0, sp1);
  const target = requestLine.slice(sp1 + 1, sp2);
  if (!SERVED_METHODS.has(method) || !ORIGIN_TARGET.test(target)) return undefined;
  const rawHeaders: string[] = [];
  let contentLength = -1;
  let hosts = 0;
  let keepAlive = true;
  while (lineEnd >= 0) {
    const start = lineEnd + 2;
    lineEnd = head.indexOf('\r\n', start);
    const line = lineEnd < 0 ? head.slice(start) : head.slice(start, lineEnd);
    // No regular expression with backtracking: a line of blanks is scanned once.
    const colon = line.indexOf(':');
    if (colon <= 0) return undefined;
    const name = line.slice(0, colon);
    let from = colon + 1;
    let to = line.length;
    while (from < to && isBlank(line.charCodeAt(from))) from++;
    while (to > from && isBlank(line.charCodeAt(to - 1))) to--;
    const value = line.slice(from, to);
    if (!TOKEN.test(name) || BAD_VALUE.test(value)) return undefined;
    switch (name.length) {
      case 4:
        if (name.toLowerCase() === 'host') hosts++;
        break;
      case 6:
        if (name.toLowerCase() === 'expect') return undefined;
        break;
      case 7:
        if (name.toLowerCase() === 'upgrade') return undefined;
        break;
      case 10:
        if (name.toLowerCase() === 'connection') {
          const tokens = value.toLowerCase();
          if (tokens.includes('upgrade')) return undefined;
          if (/(?:^|[\s,])close(?:$|[\s,])/.test(tokens)) keepAlive = false;
        }
        break;
      case 14:
        if (name.toLowerCase() === 'content-length') {
          if (contentLength >= 0 || !DIGITS.test(value)) return undefined;
          contentLength = Number(value);
        }
        break;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') return undefined;
        break;
      default:
        break;
    }
    rawHeaders.push(name, value);
  }
  if (hosts !== 1 || (maxHeaders > 0 && rawHeaders.length > 2 * maxHeaders)) return undefined;
  return { method, target, rawHeaders, contentLength: contentLength < 0 ? 0 : contentLength, keepAlive };
}

function isBlank(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

/** Whether a line feed in `buffer` (from `from` on) is not preceded by a carriage return. */
function hasBareLineFeed(buffer: Buffer, from: number): boolean {
  for (let at = buffer.indexOf(0x0a, from); at >= 0; at = buffer.indexOf(0x0a, at + 1)) {
    if (at === 0 || buffer[at - 1] !== 0x0d) return true;
  }
  return false;
}

/** The `Date` header's value, formatted once a second. */
let dateSecond = 0;
let dateValue = '';
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateValue = new Date(now).toUTCString();
  }
  return dateValue;
}

const WAIT_HEAD = 0;
const READ_BODY = 1;
const RESPONDING = 2;
const CLOSED = 3;

/** Bytes read ahead of a response in progress (a pipelining client) before the socket is paused. */
const READ_AHEAD_LIMIT = 64 * 1024;
/** A head and a body up to this size leave in one write. */
const ONE_WRITE_BYTES = 16 * 1024;

/**
 * One client connection of the HTTP API, served by the fast path until a request comes that it does
 * not serve: then node:http gets the connection from that request on (nothing of the request is
 * consumed), and serves it as it serves every connection when the fast path is off. Requests are
 * served one at a time, in order; bytes a client sends ahead (pipelining) wait, up to
 * `READ_AHEAD_LIMIT`, before the socket is paused.
 */
export class FastConnection<Plan> {
  readonly socket: Socket;
  readonly #host: FastHost<Plan>;
  #state = WAIT_HEAD;
  #buffer: Buffer | undefined;
  /** How far the buffer has been searched for the end of the head. */
  #searched = 0;
  #head: FastHead | undefined;
  #plan: Plan | undefined;
  #call: FastCall<Plan> | undefined;
  #advancing = false;
  /** When the head now awaited started (the connection's opening, or its first byte). */
  headSince: number;
  /** When the connection became idle between requests (0 while a head is due or a request is served). */
  idleSince = 0;

  constructor(socket: Socket, host: FastHost<Plan>) {
    this.socket = socket;
    this.#host = host;
    this.headSince = Date.now();
    socket.on('data', this.#onData);
    socket.on('drain', this.#onDrain);
    socket.on('close', this.#onClose);
    socket.on('end', this.#onEnd);
    // Errors are followed by 'close'; a reset client is no failure of the server.
    socket.on('error', noop);
  }

  /** Whether the connection waits for a request with nothing of it received. */
  get idle(): boolean {
    return this.#state === WAIT_HEAD && this.#buffer === undefined;
  }

  /** Whether a request head is due (the connection is new, or part of a head has arrived). */
  get awaitingHead(): boolean {
    return this.#state === WAIT_HEAD && this.idleSince === 0;
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.#state === CLOSED) return;
    if (this.#buffer === undefined) {
      this.#buffer = chunk;
      if (this.#state === WAIT_HEAD && this.idleSince !== 0) {
        this.idleSince = 0;
        this.headSince = Date.now();
      }
    } else {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
    }
    if (this.#state === RESPONDING) {
      if (this.#buffer.length > READ_AHEAD_LIMIT) this.socket.pause();
      return;
    }
    this.#advance();
  };

  readonly #onDrain = (): void => {
    this.#call?.drained();
  };

  /**
   * The client closed its side: as with Node's server (which does not keep half-open HTTP connections),
   * a call in progress is given up and the connection closes.
   */
  readonly #onEnd = (): void => {
    if (this.#state !== CLOSED) this.socket.destroy();
  };

  readonly #onClose = (): void => {
    const state = this.#state;
    this.#state = CLOSED;
    this.#buffer = undefined;
    const call = this.#call;
    this.#call = undefined;
    if (call !== undefined && state === RESPONDING) {
      call.abort();
      this.#host.done(call);
    }
  };

  /**
   * Parses what has arrived: the next head, or the rest of a body, and serves each complete request.
   * A request answered at once (an error, a health check) lets the loop go on to the next one.
   */
  #advance(): void {
    if (this.#advancing) return;
    this.#advancing = true;
    try {
      for (;;) {
        if (this.#state === WAIT_HEAD) {
          const buffer = this.#buffer;
          if (buffer === undefined) return;
          const end = buffer.indexOf('\r\n\r\n', Math.max(0, this.#searched - 3), 'latin1');
          if (end < 0) {
            // A head whose lines end in a bare LF never ends in CRLF CRLF: Node's parser refuses it.
            const bare = hasBareLineFeed(buffer, this.#searched);
            this.#searched = buffer.length;
            if (bare || buffer.length > this.#host.maxHeadBytes) this.#handOff();
            return;
          }
          this.#searched = 0;
          const head = end + 4 > this.#host.maxHeadBytes ? undefined : parseRequestHead(buffer.toString('latin1', 0, end), this.#host.maxHeaders);
          const plan = head === undefined ? undefined : this.#host.plan(head);
          if (head === undefined || plan === undefined) {
            this.#handOff();
            return;
          }
          this.#head = head;
          this.#plan = plan;
          this.#state = READ_BODY;
          this.#buffer = end + 4 === buffer.length ? undefined : buffer.subarray(end + 4);
        }
        if (this.#state !== READ_BODY) return;
        const length = (this.#head as FastHead).contentLength;
        let body: Buffer | null = null;
        if (length > 0) {
          const rest = this.#buffer;
          if (rest === undefined || rest.length < length) return;
          this.#buffer = rest.length === length ? undefined : rest.subarray(length);
          body = rest.length === length ? rest : rest.subarray(0, length);
        }
        this.#start(body);
      }
    } finally {
      this.#advancing = false;
    }
  }

  #start(body: Buffer | null): void {
    const call = new FastCall<Plan>(this, this.#head as FastHead, this.#plan as Plan, body);
    this.#head = undefined;
    this.#plan = undefined;
    this.#call = call;
    this.#state = RESPONDING;
    this.#host.serve(call);
  }

  /** The response of `call` is written whole: the next request is served, or the connection closes. */
  responded(call: FastCall<Plan>): void {
    if (this.#call !== call) return;
    this.#call = undefined;
    this.#host.done(call);
    if (this.#state === CLOSED) return;
    if (!call.keepAlive) {
      this.#state = CLOSED;
      this.#buffer = undefined;
      // The write side closes after the response; nothing more is read.
      this.socket.removeListener('data', this.#onData);
      this.socket.resume();
      this.socket.end();
      this.socket.once('finish', destroySocket);
      return;
    }
    this.#state = WAIT_HEAD;
    if (this.#buffer === undefined) {
      this.idleSince = Date.now();
    } else {
      this.headSince = Date.now();
      if (this.socket.isPaused()) this.socket.resume();
      this.#advance();
    }
  }

  /** The response failed after its head was written: the connection is reset, so the client sees it cut short. */
  reset(): void {
    this.socket.destroy();
  }

  #handOff(): void {
    const pending = this.#buffer;
    this.#state = CLOSED;
    this.#buffer = undefined;
    this.socket.removeListener('data', this.#onData);
    this.socket.removeListener('drain', this.#onDrain);
    this.socket.removeListener('close', this.#onClose);
    this.socket.removeListener('end', this.#onEnd);
    this.socket.removeListener('error', noop);
    this.#host.handOff(this.socket, pending);
  }

  /** Answers a client that did not send its request head in time with 408, and closes. */
  timeOut(): void {
    this.#state = CLOSED;
    this.socket.removeListener('data', this.#onData);
    this.socket.end('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n', 'latin1');
    this.socket.once('finish', destroySocket);
  }

  /** Closes an idle connection (shutdown, or the keep-alive time is up). */
  close(): void {
    this.socket.destroy();
  }

  get host(): FastHost<Plan> {
    return this.#host;
  }
}

function destroySocket(this: Socket): void {
  this.destroy();
}

function noop(): void {}

/**
 * One request served by the fast path, from its parsed head to its response: the call's cancellation
 * signal, the sink its response is written to (with backpressure, Content-Length when known, chunked
 * otherwise), and the record the server's metrics and spans read when it ends.
 */
export class FastCall<Plan> extends CallAbort implements ResponseSink {
  readonly connection: FastConnection<Plan>;
  /** The request's parsed head. */
  readonly request: FastHead;
  readonly plan: Plan;
  readonly body: Buffer | null;
  /** The server's record of the call. */
  started = 0;
  pathLabel = '_';
  span: Span | undefined;
  /** The `traceparent` the response carries (unless an app's response has its own). */
  traceparent: string | undefined;
  /** The target as the caller named it, for Dapr's `failed to invoke, id: <target>, err: …` wording. */
  invokeTarget: string | undefined;
  errorCode: ErrorCode | undefined;
  /** The status written; 0 until a response head is. */
  status = 0;
  /** Body bytes written to the client. */
  bodyBytes = 0;
  keepAlive: boolean;
  #flow: FlowControl | undefined;
  #paused = false;
  /** The head of the response, waiting to leave with the first body bytes (until the tick ends). */
  #pendingHead: string | undefined;
  #chunked = false;
  #bodyless = false;
  /** The body length the head declared, or -1. */
  #declared = -1;
  #finished = false;

  constructor(connection: FastConnection<Plan>, head: FastHead, plan: Plan, body: Buffer | null) {
    super();
    this.connection = connection;
    this.request = head;
    this.plan = plan;
    this.body = body;
    this.keepAlive = head.keepAlive;
  }

  get finished(): boolean {
    return this.#finished;
  }

  #headText(status: number, headers: string[], length: number): string {
    if (this.connection.host.draining()) this.keepAlive = false;
    let text = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'unknown'}\r\n`;
    let hasDate = false;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i] as string;
      if (name.length === 4 && name.toLowerCase() === 'date') hasDate = true;
      text += `${name}: ${headers[i + 1] as string}\r\n`;
    }
    if (!hasDate) text += `Date: ${httpDate()}\r\n`;
    text += this.keepAlive ? 'Connection: keep-alive\r\nKeep-Alive: timeout=65\r\n' : 'Connection: close\r\n';
    if (length >= 0) text += `Content-Length: ${length}\r\n`;
    else if (this.#chunked) text += 'Transfer-Encoding: chunked\r\n';
    this.status = status;
    return `${text}\r\n`;
  }

  /** Writes a whole response: a status, headers, and a body (a string is written as UTF-8). */
  respond(status: number, headers: string[], body: string | Buffer | undefined): void {
    if (this.#finished || this.status !== 0 || this.connection.socket.destroyed) return;
    const bytes = body === undefined ? undefined : typeof body === 'string' ? Buffer.from(body) : body;
    if (this.traceparent !== undefined && (headersPresent(headers) & HAS_TRACEPARENT) === 0) headers.push('traceparent', this.traceparent);
    this.#writeWithHead(this.#headText(status, headers, status === 204 || status === 304 ? -1 : (bytes?.length ?? 0)), bytes);
    this.#finish();
  }

  /** Answers with an error (JSON, or plain text for the API-token failure). */
  fail(error: unknown): void {
    if (this.#finished) return;
    if (this.status !== 0) {
      this.#abandon();
      return;
    }
    const err = CourierError.from(error);
    this.errorCode = err.code;
    const rendered = renderHttpError(err);
    this.respond(rendered.status, ['Content-Type', rendered.contentType], rendered.body);
  }

  // ResponseSink: the invocation's response as it arrives.

  head(head: ResponseHead, flow: FlowControl): void {
    if (this.#finished || this.status !== 0 || this.connection.socket.destroyed) return;
    this.#flow = flow;
    const headers = callerHeaders(head, this.traceparent);
    const status = callerStatus(head);
    const failure = grpcFailureBody(head);
    const problem = !Number.isInteger(status) || status < 200 || status > 999 ? `the status ${status}` : validHeaders(headers) ? undefined : 'an invalid header';
    if (problem !== undefined) {
      flow.pause();
      this.fail(this.#wrap(new CourierError('ERR_DIRECT_INVOKE', `the app's response could not be forwarded: it has ${problem}`)));
      return;
    }
    if (failure !== undefined) {
      this.respond(status, headers, failure);
      return;
    }
    this.#bodyless = status === 204 || status === 304;
    if (!this.#bodyless) {
      if (head.contentLength !== undefined) this.#declared = head.contentLength;
      else this.#chunked = true;
    }
    this.#pendingHead = this.#headText(status, headers, this.#bodyless ? -1 : this.#declared);
    // The head waits for the body of this tick, so that a response that arrives whole leaves in one write.
    process.nextTick(flushHead, this);
  }

  data(chunk: Buffer): void {
    if (this.#finished || this.status === 0 || this.#bodyless || chunk.length === 0 || this.connection.socket.destroyed) return;
    this.bodyBytes += chunk.length;
    if (this.#declared >= 0 && this.bodyBytes > this.#declared) {
      // More than the head declared: the client would read the rest as another response.
      this.#abandon();
      return;
    }
    let ok: boolean;
    const head = this.#pendingHead;
    this.#pendingHead = undefined;
    if (this.#chunked) {
      const socket = this.connection.socket;
      const size = `${chunk.length.toString(16)}\r\n`;
      socket.cork();
      socket.write(head === undefined ? size : head + size, 'latin1');
      socket.write(chunk);
      ok = socket.write('\r\n', 'latin1');
      socket.uncork();
    } else {
      ok = head === undefined ? this.connection.socket.write(chunk) : this.#writeWithHead(head, chunk);
    }
    if (!ok && !this.#paused) {
      this.#paused = true;
      this.#flow?.pause();
    }
  }

  end(): void {
    if (this.#finished || this.status === 0 || this.connection.socket.destroyed) return;
    if (this.#declared >= 0 && this.bodyBytes !== this.#declared) {
      // Fewer bytes than the head declared: the client must see the response cut short.
      this.#abandon();
      return;
    }
    const head = this.#pendingHead;
    this.#pendingHead = undefined;
    if (this.#chunked) this.connection.socket.write(head === undefined ? '0\r\n\r\n' : `${head}0\r\n\r\n`, 'latin1');
    else if (head !== undefined) this.connection.socket.write(head, 'latin1');
    this.#finish();
  }

  error(error: CourierError): void {
    if (this.#finished) return;
    if (this.status !== 0) this.#abandon();
    else this.fail(this.#wrap(error));
  }

  /** The socket drained: a paused response body resumes. */
  drained(): void {
    if (this.#paused) {
      this.#paused = false;
      this.#flow?.resume();
    }
  }

  /** Writes the pending head now, if its body did not come in the same tick. */
  flushHead(): void {
    const head = this.#pendingHead;
    if (head === undefined || this.#finished) return;
    this.#pendingHead = undefined;
    this.connection.socket.write(head, 'latin1');
  }

  #writeWithHead(head: string, body: Buffer | undefined): boolean {
    const socket = this.connection.socket;
    if (body === undefined || body.length === 0) return socket.write(head, 'latin1');
    if (body.length > ONE_WRITE_BYTES) {
      socket.write(head, 'latin1');
      return socket.write(body);
    }
    const out = Buffer.allocUnsafe(head.length + body.length);
    out.write(head, 0, 'latin1');
    body.copy(out, head.length);
    return socket.write(out);
  }

  #finish(): void {
    this.#finished = true;
    this.connection.responded(this);
  }

  /** The response cannot be completed: the connection is reset, so the client sees it cut short. */
  #abandon(): void {
    this.#pendingHead = undefined;
    this.abort();
    this.connection.reset();
  }

  #wrap(error: CourierError): CourierError {
    return namingTarget(error, this.invokeTarget);
  }
}

function flushHead(call: FastCall<unknown>): void {
  call.flushHead();
}

/** Whether every name of a flat header list is a token and every value one Node would write. */
function validHeaders(flat: readonly string[]): boolean {
  for (let i = 0; i < flat.length; i += 2) {
    if (!TOKEN.test(flat[i] as string) || BAD_VALUE.test(flat[i + 1] as string)) return false;
  }
  return true;
}
