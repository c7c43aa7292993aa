import type { Dispatcher } from 'undici';
import { CourierError, errorMessage, GrpcStatus } from '../errors/index.js';
import { responseMetadataFromRawHeaders } from '../invoke/headers.js';
import { cancelledError, type FlowControl, type InvokeRequest, type ResponseHead, type ResponseSink } from '../invoke/types.js';
import { transportErrorText, type ProtocolMismatch } from './protocol-mismatch.js';
import type { Semaphore } from './semaphore.js';

/**
 * A response body up to this size, if it has fully arrived by the time its headers are processed, is
 * delivered with an exact Content-Length. Larger or slower bodies are streamed as they come.
 */
const COALESCE_LIMIT_BYTES = 64 * 1024;

/** Errors that happen before a request reaches the app, so another instance may be tried. */
const notSentErrorCodes: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/**
 * Turns a transport failure into the error the caller gets. `waiting`: no response head had arrived;
 * `notSent`: the transport knows the request cannot have reached the server (undefined: it does not
 * know). A promise when the cause needs looking into first.
 */
export type DescribeFailure = (error: unknown, waiting: boolean, notSent: boolean | undefined) => CourierError | Promise<CourierError>;

/**
 * How the app channels describe a failure: Dapr's `error invoking app channel: …`, with the likely
 * cause when the app seems to speak another protocol; a connection that could not be made may be
 * retried on another instance.
 */
export function appChannelFailure(mismatch: ProtocolMismatch): DescribeFailure {
  return (error, waiting, notSent) => {
    const safe = notSent ?? (waiting && notSentErrorCodes.has((error as NodeJS.ErrnoException).code ?? ''));
    const options = safe ? ({ retry: 'safe', grpcCode: GrpcStatus.UNAVAILABLE } as const) : {};
    const message = `error invoking app channel: ${transportErrorText(errorMessage(error))}`;
    const cause = waiting && !safe ? mismatch.explain(error) : undefined;
    const withCause = (found: string | undefined): CourierError =>
      new CourierError('ERR_DIRECT_INVOKE', found === undefined ? message : `${message}; ${found}`, options);
    return cause === undefined || typeof cause === 'string' ? withCause(cause) : cause.then(withCause);
  };
}

/** The transport carrying one call, as its response handler drives it (undici's dispatch controller is one). */
export interface CallControl {
  pause(): void;
  resume(): void;
  abort(reason: Error): void;
}

/**
 * - `waiting`: no response yet;
 * - `coalescing`: the head arrived; the body is collected for a moment, to be sent whole if it is small;
 * - `streaming`: the head went to the sink; body chunks follow it as they come;
 * - `failing`: the call failed before the app answered and the likely cause is being looked into;
 * - `done`: the sink got its `end` or `error`.
 */
type ResponseState = 'waiting' | 'coalescing' | 'streaming' | 'failing' | 'done';

/**
 * The response of one call to an HTTP app, whatever carries it (HTTP/1.1 and TLS through undici, whose
 * dispatch events it takes directly, or an HTTP/2 stream): it turns status, raw headers and body
 * chunks into a ResponseSink's events, one object per call, and releases the call's concurrency slot
 * once the body has been fully passed on.
 */
export class AppResponse implements Dispatcher.DispatchHandler, FlowControl {
  #state: ResponseState = 'waiting';
  #control: CallControl | undefined;
  #status = 0;
  #rawHeaders: string[] = [];
  #contentType = '';
  #declaredLength: number | undefined;
  #chunks: Buffer[] = [];
  #bufferedBytes = 0;
  readonly #request: Pick<InvokeRequest, 'verb' | 'signal'>;
  readonly #sink: ResponseSink;
  readonly #semaphore: Semaphore | undefined;
  readonly #describe: DescribeFailure;

  constructor(request: Pick<InvokeRequest, 'verb' | 'signal'>, sink: ResponseSink, semaphore: Semaphore | undefined, describe: DescribeFailure) {
    this.#request = request;
    this.#sink = sink;
    this.#semaphore = semaphore;
    this.#describe = describe;
    request.signal.addEventListener('abort', this);
  }

  /** The `abort` listener of the request's signal (the response itself: no closure per call). */
  handleEvent(): void {
    if (this.#state === 'failing') this.#finish(cancelledError());
    else this.#control?.abort(new Error('the caller cancelled the call'));
  }

  // --- FlowControl, for the sink ---------------------------------------------------------------

  pause(): void {
    this.#control?.pause();
  }

  resume(): void {
    this.#control?.resume();
  }

  // --- undici's dispatch events ----------------------------------------------------------------

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.attach(controller);
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    if (statusCode < 200) return; // 1xx informational responses are not forwarded
    const contentType = headers['content-type'];
    const declared = headers['content-length'];
    this.started(
      statusCode,
      rawHeaderStrings(controller.rawHeaders),
      Array.isArray(contentType) ? (contentType[0] ?? '') : (contentType ?? ''),
      Array.isArray(declared) ? declared[0] : declared,
    );
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.received(chunk);
  }

  onResponseEnd(): void {
    this.ended();
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    // An app that closes the connection before the Content-Length it declared has ended its body
    // there (Dapr passes such bodies on as received; scenario S21). Any other failure is an error.
    const earlyEof = (error as NodeJS.ErrnoException).code === 'UND_ERR_SOCKET' && this.#declaredLength !== undefined;
    if (this.#state === 'coalescing' && earlyEof) {
      this.#deliverWhole();
      return;
    }
    if (this.#state === 'streaming' && earlyEof) {
      this.#finish(undefined);
      return;
    }
    this.fail(error);
  }

  // --- the same events from any transport ------------------------------------------------------

  /** The call's transport exists: pause, resume and cancellation go to it from now on. */
  attach(control: CallControl): void {
    this.#control = control;
    if (this.#request.signal.aborted) control.abort(new Error('the caller cancelled the call'));
  }

  /** The final response head (status ≥ 200), with its raw headers as name/value pairs. */
  started(status: number, rawHeaders: string[], contentType: string, declaredLength: string | undefined): void {
    if (this.#state !== 'waiting') return;
    this.#status = status;
    this.#rawHeaders = rawHeaders;
    this.#contentType = contentType;
    const length = Number(declaredLength);
    this.#declaredLength = declaredLength !== undefined && Number.isSafeInteger(length) && length >= 0 ? length : undefined;
    if (this.#request.verb === 'HEAD' || status === 204 || status === 304) {
      // No body follows; the declared length describes the resource, so it is passed on as is.
      this.#startStreaming(status === 204 ? undefined : this.#declaredLength);
      return;
    }
    this.#state = 'coalescing';
    coalescing.push(this);
    if (coalescing.length === 1) setImmediate(flushCoalescing);
  }

  /** @internal The end of the tick in which the head arrived: a body still incomplete then is streamed. */
  flushCoalesced(): void {
    if (this.#state === 'coalescing') this.#startStreaming(undefined);
  }

  received(chunk: Buffer): void {
    if (this.#state === 'coalescing') {
      this.#chunks.push(chunk);
      this.#bufferedBytes += chunk.length;
      if (this.#bufferedBytes > COALESCE_LIMIT_BYTES) this.#startStreaming(undefined);
      return;
    }
    if (this.#state === 'streaming') this.#sink.data(chunk);
  }

  ended(): void {
    if (this.#state === 'coalescing') this.#deliverWhole();
    else if (this.#state === 'streaming') this.#finish(undefined);
  }

  /**
   * Fails the call with an error of its transport or one thrown while dispatching. `notSent` says the
   * request cannot have reached the other side (another instance may be tried); undefined leaves it to
   * the failure's description, which may take a moment (a protocol mismatch being looked into).
   */
  fail(error: unknown, notSent?: boolean): void {
    if (this.#state === 'done' || this.#state === 'failing') return;
    if (this.#request.signal.aborted) {
      this.#finish(cancelledError());
      return;
    }
    // The request body's own failure (too large, the caller went away) is reported as is.
    if (error instanceof CourierError) {
      this.#finish(error);
      return;
    }
    const described = this.#describe(error, this.#state === 'waiting', notSent);
    if (described instanceof CourierError) {
      this.#finish(described);
      return;
    }
    this.#state = 'failing';
    void described.then((found) => this.#finish(found));
  }

  #startStreaming(contentLength: number | undefined): void {
    this.#state = 'streaming';
    this.#sink.head(this.#head(contentLength), this);
    const chunks = this.#chunks;
    this.#chunks = [];
    for (const chunk of chunks) this.#sink.data(chunk);
  }

  #deliverWhole(): void {
    this.#state = 'streaming';
    const body = this.#chunks.length === 1 ? this.#chunks[0] : Buffer.concat(this.#chunks, this.#bufferedBytes);
    this.#chunks = [];
    this.#sink.head(this.#head(this.#bufferedBytes), this);
    if (body !== undefined && body.length > 0) this.#sink.data(body);
    this.#finish(undefined);
  }

  #head(contentLength: number | undefined): ResponseHead {
    return {
      status: this.#status,
      headers: responseMetadataFromRawHeaders(this.#rawHeaders),
      contentType: this.#contentType,
      contentLength,
    };
  }

  #finish(error: CourierError | undefined): void {
    if (this.#state === 'done') return;
    this.#state = 'done';
    this.#request.signal.removeEventListener('abort', this);
    this.#semaphore?.release();
    if (error === undefined) this.#sink.end();
    else this.#sink.error(error);
  }
}

/**
 * Responses whose head arrived this tick and whose body is being collected: one shared immediate per
 * tick, not a timer per call, hands those still incomplete to streaming.
 */
let coalescing: AppResponse[] = [];

function flushCoalescing(): void {
  const due = coalescing;
  coalescing = [];
  for (const response of due) response.flushCoalesced();
}

function rawHeaderStrings(raw: Dispatcher.DispatchController['rawHeaders']): string[] {
  if (raw === undefined || raw === null || !Array.isArray(raw)) return [];
  const out: string[] = new Array<string>(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const item = raw[i] as Buffer | string;
    out[i] = typeof item === 'string' ? item : item.toString('latin1');
  }
  return out;
}
