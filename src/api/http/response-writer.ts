import type { ServerResponse } from 'node:http';
import { CourierError, GrpcStatus, httpStatusFromGrpc, renderHttpError } from '../../errors/index.js';
import { callerResponseHeaders } from '../../invoke/headers.js';
import { grpcErrorJson } from '../../invoke/translate.js';
import type { FlowControl, ResponseHead, ResponseSink } from '../../invoke/types.js';

/**
 * Writes an invocation's response to the HTTP caller as it arrives: status and headers, then the
 * body chunk by chunk with backpressure (a full socket pauses the producer until it drains).
 * Content-Length is written only when exactly known; otherwise HTTP/1.1 chunked encoding is used.
 * A body that fails after the headers were sent ends with the connection reset, so the caller can
 * tell a truncated response from a complete one.
 */
export class HttpResponseWriter implements ResponseSink {
  readonly #res: ServerResponse;
  readonly #wrapError: (error: CourierError) => CourierError;
  #flow: FlowControl | undefined;
  #paused = false;
  /** The whole answer was written in `head` (a gRPC app's error): body events are ignored. */
  #answered = false;
  readonly #onDrain = (): void => {
    if (this.#paused) {
      this.#paused = false;
      this.#flow?.resume();
    }
  };

  constructor(res: ServerResponse, wrapError: (error: CourierError) => CourierError) {
    this.#res = res;
    this.#wrapError = wrapError;
  }

  head(head: ResponseHead, flow: FlowControl): void {
    const res = this.#res;
    if (res.destroyed) return;
    this.#flow = flow;
    const headers = callerResponseHeaders(head.headers);
    if (head.status < 100 && head.status !== GrpcStatus.OK) {
      // A gRPC app's error (Dapr: HTTPStatusFromCode, body = the google.rpc.Status as JSON).
      const body = grpcErrorJson(head.status, head.statusMessage ?? '', head.statusDetails ?? []);
      headers.push('Content-Type', 'application/json', 'Content-Length', String(Buffer.byteLength(body)));
      this.#answered = true;
      try {
        res.writeHead(httpStatusFromGrpc(head.status), headers);
      } catch (err) {
        writeError(res, new CourierError('ERR_DIRECT_INVOKE', `the app's response could not be forwarded: ${(err as Error).message}`));
        return;
      }
      res.end(body);
      return;
    }
    if (head.contentType !== '' && !hasHeader(headers, 'content-type')) headers.push('Content-Type', head.contentType);
    if (head.contentLength !== undefined) headers.push('Content-Length', String(head.contentLength));
    try {
      // A gRPC app's OK is an HTTP 200 (status < 100 is a gRPC code, see ResponseHead.status).
      res.writeHead(head.status < 100 ? 200 : head.status, headers);
    } catch (err) {
      // An app answered with a status or header Node refuses to write (e.g. a control character).
      flow.pause();
      writeError(res, new CourierError('ERR_DIRECT_INVOKE', `the app's response could not be forwarded: ${(err as Error).message}`));
      return;
    }
    res.on('drain', this.#onDrain);
  }

  data(chunk: Buffer): void {
    const res = this.#res;
    if (this.#answered || res.destroyed || !res.headersSent) return;
    if (!res.write(chunk) && !this.#paused) {
      this.#paused = true;
      this.#flow?.pause();
    }
  }

  end(): void {
    this.#res.removeListener('drain', this.#onDrain);
    if (!this.#res.destroyed && !this.#res.writableEnded) this.#res.end();
  }

  error(error: CourierError): void {
    const res = this.#res;
    res.removeListener('drain', this.#onDrain);
    if (res.destroyed || res.writableEnded) return;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    writeError(res, this.#wrapError(error));
  }
}

function hasHeader(flat: readonly string[], lowerName: string): boolean {
  for (let i = 0; i < flat.length; i += 2) if ((flat[i] ?? '').toLowerCase() === lowerName) return true;
  return false;
}

/** Writes an error response (JSON, or plain text for the API-token failure). */
export function writeError(res: ServerResponse, error: unknown, closeConnection = false): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const rendered = renderHttpError(error);
  const headers: Record<string, string | number> = {
    'Content-Type': rendered.contentType,
    'Content-Length': Buffer.byteLength(rendered.body),
  };
  if (closeConnection) headers.Connection = 'close';
  res.writeHead(rendered.status, headers);
  res.end(rendered.body);
}
