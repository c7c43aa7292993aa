import type { IncomingMessage, ServerResponse } from 'node:http';
import { CourierError, GrpcStatus, httpStatusFromGrpc, renderHttpError, type ErrorCode } from '../../errors/index.js';
import { callerResponseHeaders } from '../../invoke/headers.js';
import { grpcErrorJson } from '../../invoke/translate.js';
import { CallAbort } from '../../invoke/call-signal.js';
import type { FlowControl, ResponseHead, ResponseSink } from '../../invoke/types.js';
import { lingerAfterAnswer } from './linger.js';

const CALL = Symbol('courier.http.call');
/** The `traceparent` every response of a traced request carries (unless an app's response has its own). */
export const TRACEPARENT = Symbol('courier.http.traceparent');
/** The error code a response answered with (set by writeError), for `dapr_error_code_total`. */
export const ERROR_CODE = Symbol('courier.http.error-code');
type TaggedResponse = ServerResponse & { [CALL]?: HttpResponseWriter; [TRACEPARENT]?: string; [ERROR_CODE]?: ErrorCode };

/**
 * One call of the HTTP API from start to end: the request's cancellation signal (it aborts when the
 * caller goes away before the response is complete) and the sink its response is written to, as it
 * arrives: status and headers, then the body chunk by chunk with backpressure (a full socket pauses
 * the producer until it drains). Content-Length is written only when exactly known; otherwise HTTP/1.1
 * chunked encoding is used. A body that fails after the headers were sent ends with the connection
 * reset, so the caller can tell a truncated response from a complete one.
 *
 * One object per call: its listeners on the response are shared functions (no closures), and the
 * socket is corked from the head until the end of the tick, so a response that arrives whole (the
 * common case) leaves in one write with its headers.
 */
export class HttpResponseWriter extends CallAbort implements ResponseSink {
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  /** The target as the caller named it, for Dapr's `failed to invoke, id: <target>, err: …` wording. */
  readonly #target: string;
  #flow: FlowControl | undefined;
  #paused = false;
  /** The whole answer was written in `head` (a gRPC app's error): body events are ignored. */
  #answered = false;
  /** Body bytes written to the caller (the HTTP server metrics' response size). */
  #bodyBytes = 0;

  constructor(req: IncomingMessage, res: ServerResponse, target: string) {
    super();
    this.#req = req;
    this.#res = res;
    this.#target = target;
    (res as TaggedResponse)[CALL] = this;
    // 'close' comes once: `on` spares the wrapper `once` would make for every call.
    res.on('close', HttpResponseWriter.#closed);
  }

  /** Body bytes written to the caller so far. */
  get bodyBytes(): number {
    return this.#bodyBytes;
  }

  static readonly #closed = function (this: TaggedResponse): void {
    const call = this[CALL];
    if (call !== undefined && !this.writableFinished) call.abort();
  };

  static readonly #drained = function (this: TaggedResponse): void {
    const call = this[CALL];
    if (call !== undefined && call.#paused) {
      call.#paused = false;
      call.#flow?.resume();
    }
  };

  head(head: ResponseHead, flow: FlowControl): void {
    const res = this.#res;
    if (res.destroyed) return;
    this.#flow = flow;
    const headers = callerHeaders(head, (res as TaggedResponse)[TRACEPARENT]);
    const failure = grpcFailureBody(head);
    if (failure !== undefined) {
      headers.push('Content-Length', String(Buffer.byteLength(failure)));
      this.#answered = true;
      try {
        res.writeHead(callerStatus(head), headers);
      } catch (err) {
        writeError(res, new CourierError('ERR_DIRECT_INVOKE', `the app's response could not be forwarded: ${(err as Error).message}`));
        return;
      }
      res.end(failure);
      return;
    }
    if (head.contentLength !== undefined) headers.push('Content-Length', String(head.contentLength));
    try {
      res.writeHead(callerStatus(head), headers);
    } catch (err) {
      // An app answered with a status or header Node refuses to write (e.g. a control character).
      flow.pause();
      writeError(res, new CourierError('ERR_DIRECT_INVOKE', `the app's response could not be forwarded: ${(err as Error).message}`));
      return;
    }
    // Headers and what follows in this tick go out together (end() uncorks at once).
    res.cork();
    process.nextTick(uncork, res);
    res.on('drain', HttpResponseWriter.#drained);
  }

  data(chunk: Buffer): void {
    const res = this.#res;
    if (this.#answered || res.destroyed || !res.headersSent) return;
    this.#bodyBytes += chunk.length;
    if (!res.write(chunk) && !this.#paused) {
      this.#paused = true;
      this.#flow?.pause();
    }
  }

  end(): void {
    this.#res.removeListener('drain', HttpResponseWriter.#drained);
    if (!this.#res.destroyed && !this.#res.writableEnded) this.#res.end();
  }

  error(error: CourierError): void {
    const res = this.#res;
    res.removeListener('drain', HttpResponseWriter.#drained);
    if (res.destroyed || res.writableEnded) return;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    // A request whose body was not read to the end cannot leave its connection reusable.
    writeError(res, this.#wrap(error), !this.#req.complete);
  }

  #wrap(error: CourierError): CourierError {
    return namingTarget(error, this.#target);
  }
}

/** The body bytes the invocation behind `res` has written so far (0 for responses that are not invocations). */
export function responseBodyBytes(res: ServerResponse): number {
  return (res as TaggedResponse)[CALL]?.bodyBytes ?? 0;
}

function uncork(res: ServerResponse): void {
  res.uncork();
}

/**
 * The headers the HTTP API's caller gets with an app's response, on node:http's path and the fast
 * path alike: the app's (less hop-by-hop and internal ones), the call's `traceparent` unless the app
 * sent its own, and the Content-Type (the app's, or JSON for a gRPC app's error). Without
 * Content-Length, which each writer sets its own way.
 */
export function callerHeaders(head: ResponseHead, traceparent: string | undefined): string[] {
  const headers = callerResponseHeaders(head.headers);
  const present = headersPresent(headers);
  if (traceparent !== undefined && (present & HAS_TRACEPARENT) === 0) headers.push('traceparent', traceparent);
  if (isGrpcFailure(head)) headers.push('Content-Type', 'application/json');
  else if (head.contentType !== '' && (present & HAS_CONTENT_TYPE) === 0) headers.push('Content-Type', head.contentType);
  return headers;
}

/** The HTTP status for an app's response: its own, 200 for a gRPC app's OK, Dapr's HTTPStatusFromCode for a gRPC app's error. */
export function callerStatus(head: ResponseHead): number {
  // A status under 100 is a gRPC code (see ResponseHead.status).
  if (head.status >= 100) return head.status;
  return head.status === GrpcStatus.OK ? 200 : httpStatusFromGrpc(head.status);
}

/** The whole body answering a gRPC app's error (the google.rpc.Status as JSON, as Dapr), or undefined for any other response. */
export function grpcFailureBody(head: ResponseHead): string | undefined {
  return isGrpcFailure(head) ? grpcErrorJson(head.status, head.statusMessage ?? '', head.statusDetails ?? []) : undefined;
}

function isGrpcFailure(head: ResponseHead): boolean {
  return head.status < 100 && head.status !== GrpcStatus.OK;
}

/** Dapr's wording for a failed invocation names the target: `failed to invoke, id: <target>, err: …`. */
export function namingTarget(error: CourierError, target: string | undefined): CourierError {
  return target !== undefined && error.code === 'ERR_DIRECT_INVOKE' && !error.message.startsWith('failed to invoke, id: ')
    ? error.withMessage(`failed to invoke, id: ${target}, err: ${error.message}`)
    : error;
}

export const HAS_CONTENT_TYPE = 1;
export const HAS_TRACEPARENT = 2;

/** Which of Content-Type and traceparent a flat header list has, in one pass. */
export function headersPresent(flat: readonly string[]): number {
  let found = 0;
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i] as string;
    if (name.length === 12 && name.toLowerCase() === 'content-type') found |= HAS_CONTENT_TYPE;
    else if (name.length === 11 && name.toLowerCase() === 'traceparent') found |= HAS_TRACEPARENT;
  }
  return found;
}

/** Writes an error response (JSON, or plain text for the API-token failure). */
export function writeError(res: ServerResponse, error: unknown, closeConnection = false): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const err = CourierError.from(error);
  (res as TaggedResponse)[ERROR_CODE] = err.code;
  const rendered = renderHttpError(err);
  const headers: Record<string, string | number> = {
    'Content-Type': rendered.contentType,
    'Content-Length': Buffer.byteLength(rendered.body),
  };
  if (closeConnection) headers.Connection = 'close';
  const traceparent = (res as TaggedResponse)[TRACEPARENT];
  if (traceparent !== undefined && !res.hasHeader('traceparent')) headers.traceparent = traceparent;
  res.writeHead(rendered.status, headers);
  res.end(rendered.body);
  // A refusal while the body still arrives: the client must get to read it before the connection goes.
  if (closeConnection) lingerAfterAnswer(res);
}
