// What a call received by Courier's own HTTP/2 server (src/h2/server.ts) and one received over the
// lane (src/lane/server.ts) share: the handler's side of ServerCall (reader delivery with
// backpressure, the cancellation signal, the deadline, how a failure reaches the reader) and the
// outbound states. Each subclass writes its own frames.
import { SLOT } from '../util/call-tables.js';
import { CourierError, GrpcStatus } from '../errors/index.js';
import { CallAbort, type CallSignal } from '../invoke/call-signal.js';
import type { Logger } from '../observability/logging/index.js';
import type { Peer, ServerReader } from './call.js';
import type { Metadata } from './metadata.js';
import { abortReason, type CallStatus } from './status.js';

/** Nothing sent yet. */
export const IDLE = 0;
/** Response headers sent; messages may follow. */
export const STREAMING = 1;
/** Ended by the handler: the trailers leave once the messages queued before them are out. */
export const ENDING = 2;
/** Over: trailers sent, or reset. */
export const DONE = 3;

/** What a call needs from the server it belongs to. */
export interface CallLimits {
  readonly maxSendMessageBytes: number;
  readonly logger: Logger;
}

export abstract class OwnServerCall {
  readonly path: string;
  /** Its place among the server's running calls. */
  [SLOT] = -1;
  readonly startedAt = performance.now();
  readonly deadline: number | undefined;
  readonly id: number;

  protected state = IDLE;
  protected reader: ServerReader | undefined;
  protected paused = false;
  protected readerClosed = false;
  protected inboundEnded: boolean;
  readonly #limits: CallLimits;
  #delivering = false;
  #failure: CallStatus | undefined;
  #controller: CallAbort | undefined;
  #abortReason: CourierError | undefined;
  #statusCode: number | undefined;
  #deadlineTimer: NodeJS.Timeout | undefined;

  constructor(limits: CallLimits, id: number, path: string, deadline: number | undefined, halfClosed: boolean) {
    this.#limits = limits;
    this.id = id;
    this.path = path;
    this.deadline = deadline;
    this.inboundEnded = halfClosed;
    if (deadline !== undefined) {
      this.#deadlineTimer = setTimeout(OwnServerCall.#deadlineExpired, Math.max(0, deadline - Date.now()), this);
      this.#deadlineTimer.unref();
    }
  }

  abstract get peer(): Peer;

  get signal(): CallSignal {
    if (this.#controller === undefined) {
      this.#controller = new CallAbort();
      if (this.#abortReason !== undefined) this.#controller.abort(this.#abortReason);
    }
    return this.#controller;
  }

  get statusCode(): number | undefined {
    return this.#statusCode ?? this.#failure?.code;
  }

  get finished(): boolean {
    return this.state >= ENDING;
  }

  setReader(reader: ServerReader): void {
    if (this.reader !== undefined) throw new CourierError('ERR_INTERNAL', `setReader called twice on ${this.path}`);
    this.reader = reader;
    if (this.#failure !== undefined) {
      this.readerClosed = true;
      process.nextTick(OwnServerCall.#deliverFailure, this);
      return;
    }
    if (!this.readerClosed) this.deliver();
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (!this.readerClosed && this.reader !== undefined) this.deliver();
  }

  sendHeaders(metadata?: Metadata): void {
    if (this.state === IDLE) this.respond(metadata);
  }

  end(status: CallStatus, trailers?: Metadata): void {
    if (this.state >= ENDING) return;
    this.#statusCode = status.code;
    this.readerClosed = true;
    this.clearDeadline();
    this.finish(status, trailers);
  }

  cancel(status: CallStatus): void {
    if (this.state === DONE) return;
    this.state = DONE;
    this.#statusCode ??= status.code;
    this.clearDeadline();
    this.terminated(status);
    this.sendCancel();
    this.close();
  }

  // --- what each transport does --------------------------------------------------------------------

  /** Sends the response headers (state becomes STREAMING); false when the call failed instead. */
  protected abstract respond(metadata: Metadata | undefined): boolean;
  /** Ends the response with `status` (the call was ended by its handler, and is not over yet). */
  protected abstract finish(status: CallStatus, trailers: Metadata | undefined): void;
  /** Tells the client the call is cancelled. */
  protected abstract sendCancel(): void;
  /** Releases what the call holds and tells the session it is over. */
  protected abstract close(): void;
  /** The next whole message received, if one is. */
  protected abstract nextMessage(): Buffer | undefined;
  /** After the reader has taken what it could: returns credit; a failure of what was received. */
  protected abstract afterDelivery(): CallStatus | undefined;
  /** Whether what was received ends on a message boundary. */
  protected abstract get atBoundary(): boolean;

  // --- for the subclasses --------------------------------------------------------------------------

  /** Checks a message about to be sent (the call still sends, the size is allowed) and sends the headers first when due. */
  protected prepareSend(length: number): boolean {
    if (this.state >= ENDING) return false;
    const limit = this.#limits.maxSendMessageBytes;
    if (length > limit) {
      this.fail({ code: GrpcStatus.RESOURCE_EXHAUSTED, message: `trying to send message larger than max (${length} vs. ${limit})` });
      return false;
    }
    if (this.state === IDLE) return this.respond(undefined);
    return true;
  }

  /** The call ends from outside (a reset, a lost connection): false when it was already over. */
  protected endedBy(status: CallStatus): boolean {
    if (this.state === DONE) return false;
    this.state = DONE;
    this.clearDeadline();
    this.terminated(status);
    return true;
  }

  protected fail(status: CallStatus): void {
    if (this.finished) return;
    this.terminated(status);
    this.end(status);
  }

  protected terminated(status: CallStatus): void {
    if (this.#abortReason === undefined) {
      this.#abortReason = abortReason(status);
      this.#controller?.abort(this.#abortReason);
    }
    this.#failure ??= status;
    if (this.reader !== undefined && !this.readerClosed) {
      this.readerClosed = true;
      this.reader.error(status);
    }
    this.readerClosed = true;
  }

  /** Gives the reader what has arrived, as long as it is not paused, then its end once the client's side is over. */
  protected deliver(): void {
    if (this.#delivering) return;
    const reader = this.reader;
    if (reader === undefined) return;
    this.#delivering = true;
    try {
      while (!this.paused && !this.readerClosed) {
        const message = this.nextMessage();
        if (message === undefined) break;
        reader.message(message);
      }
    } catch (err) {
      this.#delivering = false;
      this.#limits.logger.error({ path: this.path, err: (err as Error).message }, 'gRPC call reader threw');
      this.fail({ code: GrpcStatus.INTERNAL, message: 'the server failed to process a message' });
      return;
    }
    this.#delivering = false;
    if (this.readerClosed || this.paused) return;
    const failure = this.afterDelivery();
    if (failure !== undefined) {
      this.fail(failure);
      return;
    }
    if (!this.inboundEnded) return;
    if (!this.atBoundary) {
      this.fail({ code: GrpcStatus.INTERNAL, message: 'the client ended the stream inside a message' });
      return;
    }
    this.readerClosed = true;
    reader.end();
  }

  protected clearDeadline(): void {
    if (this.#deadlineTimer !== undefined) {
      clearTimeout(this.#deadlineTimer);
      this.#deadlineTimer = undefined;
    }
  }

  static #deadlineExpired(this: void, call: OwnServerCall): void {
    call.#deadlineTimer = undefined;
    call.fail({ code: GrpcStatus.DEADLINE_EXCEEDED, message: 'deadline exceeded' });
  }

  static #deliverFailure(this: void, call: OwnServerCall): void {
    const failure = call.#failure;
    if (failure !== undefined) call.reader?.error(failure);
  }
}
