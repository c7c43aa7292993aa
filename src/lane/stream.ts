import { GrpcStatus } from '../errors/index.js';
import type { CallStatus } from '../grpc/status.js';
import type { DrainWaiter, LaneEndpoint } from './endpoint.js';
import { FLAG_MORE, FLAG_TOTAL, MESSAGE, MESSAGE_FRAME_BYTES, WINDOW } from './wire.js';

/** How much a call buffers (waiting for credit) before `sendMessage` reports a full buffer. */
const HIGH_WATER_MARK = 64 * 1024;

/** The owner of a stream's last frame (half-close, trailers), which waits behind queued messages. */
export interface FinalFrame {
  sendFinal(): void;
}

interface Queued {
  readonly parts: readonly Uint8Array[];
  readonly length: number;
  sent: number;
  part: number;
  offset: number;
}

function runLater(callback: () => void): void {
  callback();
}

/**
 * The sending half of a stream: messages go out as MESSAGE frames while the peer's credit lasts
 * (split into frames of at most MESSAGE_FRAME_BYTES, and wherever the credit runs out), the rest
 * waits here until WINDOW frames return credit. The call's final frame (half-close or trailers)
 * waits behind the queued messages.
 *
 * The common case (credit available, nothing queued) writes the message straight into the
 * connection's batch with no allocation here.
 */
export class StreamSender implements DrainWaiter {
  readonly #endpoint: LaneEndpoint;
  readonly #id: number;
  #credit: number;
  #queue: Queued[] | undefined;
  #queued = 0;
  /** Told when the queue empties (its final frame waits behind the messages). */
  #final: FinalFrame | undefined;
  #drainCallbacks: (() => void)[] | undefined;
  #waitingForSocket = false;
  #discarded = false;

  constructor(endpoint: LaneEndpoint, id: number, credit: number) {
    this.#endpoint = endpoint;
    this.#id = id;
    this.#credit = credit;
  }

  /** True when the sender should wait (`onDrain`) before sending more. */
  get full(): boolean {
    return this.#queued >= HIGH_WATER_MARK || this.#endpoint.congested;
  }

  /** True while messages wait for credit. */
  get pending(): boolean {
    return this.#queue !== undefined;
  }

  /** Sends (or queues) one message; returns false when the caller should wait for `onDrain`. */
  send(bytes: Uint8Array): boolean {
    const length = bytes.byteLength;
    if (this.#queue === undefined && length <= this.#credit && length <= MESSAGE_FRAME_BYTES) {
      this.#credit -= length;
      this.#endpoint.batch.slice(MESSAGE, 0, this.#id, bytes, 0, length);
      this.#endpoint.schedule();
      return !this.#endpoint.congested;
    }
    return this.#enqueue([bytes], length);
  }

  /** Sends (or queues) one message made of consecutive `parts` of `length` bytes in all. */
  sendParts(parts: readonly Uint8Array[], length: number): boolean {
    if (this.#queue === undefined && length <= this.#credit && length <= MESSAGE_FRAME_BYTES) {
      this.#credit -= length;
      this.#endpoint.batch.frame(MESSAGE, 0, this.#id, parts, length);
      this.#endpoint.schedule();
      return !this.#endpoint.congested;
    }
    return this.#enqueue(parts, length);
  }

  /** Has `final` write the stream's last frame now if nothing is queued, else once the queue has gone out. */
  finish(final: FinalFrame): void {
    if (this.#queue === undefined) final.sendFinal();
    else this.#final = final;
  }

  /** The peer returned `increment` bytes of credit. */
  credit(increment: number): void {
    this.#credit += increment;
    if (this.#queue !== undefined) this.#pump();
    this.#maybeDrained();
  }

  onDrain(callback: () => void): void {
    if (this.#discarded) return;
    if (!this.full) {
      process.nextTick(runLater, callback);
      return;
    }
    (this.#drainCallbacks ??= []).push(callback);
    if (this.#endpoint.congested && !this.#waitingForSocket) {
      this.#waitingForSocket = true;
      this.#endpoint.waitForDrain(this);
    }
  }

  connectionDrained(): void {
    this.#waitingForSocket = false;
    this.#maybeDrained();
  }

  /** The stream is over: drop what is queued and every callback. */
  discard(): void {
    this.#discarded = true;
    this.#queue = undefined;
    this.#queued = 0;
    this.#final = undefined;
    this.#drainCallbacks = undefined;
  }

  #enqueue(parts: readonly Uint8Array[], length: number): boolean {
    (this.#queue ??= []).push({ parts, length, sent: 0, part: 0, offset: 0 });
    this.#queued += length;
    this.#pump();
    return !this.full;
  }

  #pump(): void {
    const queue = this.#queue;
    if (queue === undefined) return;
    const batch = this.#endpoint.batch;
    while (queue.length > 0) {
      const message = queue[0] as Queued;
      const remaining = message.length - message.sent;
      if (remaining > 0 && this.#credit <= 0) break;
      const size = Math.min(remaining, this.#credit, MESSAGE_FRAME_BYTES);
      const slices: Uint8Array[] = [];
      let left = size;
      while (left > 0) {
        const part = message.parts[message.part] as Uint8Array;
        const take = Math.min(left, part.byteLength - message.offset);
        slices.push(take === part.byteLength ? part : part.subarray(message.offset, message.offset + take));
        left -= take;
        message.offset += take;
        if (message.offset === part.byteLength) {
          message.part++;
          message.offset = 0;
        }
      }
      let flags = 0;
      let frameBytes = size;
      if (message.sent === 0 && size < message.length) {
        const total = Buffer.allocUnsafe(4);
        total.writeUInt32BE(message.length, 0);
        slices.unshift(total);
        flags = FLAG_TOTAL;
        frameBytes += 4;
      }
      message.sent += size;
      this.#credit -= size;
      this.#queued -= size;
      if (message.sent < message.length) flags |= FLAG_MORE;
      batch.frame(MESSAGE, flags, this.#id, slices, frameBytes);
      if (message.sent === message.length) queue.shift();
    }
    this.#endpoint.schedule();
    if (queue.length > 0) return;
    this.#queue = undefined;
    const final = this.#final;
    if (final !== undefined) {
      this.#final = undefined;
      final.sendFinal();
    }
  }

  #maybeDrained(): void {
    const callbacks = this.#drainCallbacks;
    if (callbacks === undefined || this.full) return;
    this.#drainCallbacks = undefined;
    for (const callback of callbacks) callback();
  }
}

/**
 * The receiving half of a stream: checks the peer stays within the credit it was given, joins the
 * frames of a message, keeps complete messages until the call reads them, and returns credit as they
 * are read, so a call that stops reading stops its sender (exactly as HTTP/2 flow control does).
 *
 * A message larger than the window could never arrive if its bytes were only credited once read, so
 * the bytes of a message being gathered are credited as they arrive while no complete message waits
 * unread; once one waits, everything received is held until the call reads (the sender then has at
 * most one window, plus the message it is part way through, buffered here).
 */
export class StreamReceiver {
  readonly #endpoint: LaneEndpoint;
  readonly #id: number;
  readonly #maxMessageBytes: number;
  readonly #window: number;
  /** Credit the peer still has. */
  #available: number;
  /** Bytes of complete messages waiting to be read. */
  #waiting = 0;
  /** The message being gathered from several frames, and how much of it arrived. */
  #gathering: Buffer | undefined;
  #gathered = 0;
  #first: Buffer | undefined;
  #rest: Buffer[] | undefined;
  failure: CallStatus | undefined;

  constructor(endpoint: LaneEndpoint, id: number, maxMessageBytes: number) {
    this.#endpoint = endpoint;
    this.#id = id;
    this.#maxMessageBytes = maxMessageBytes;
    this.#window = endpoint.limits.initialWindow;
    this.#available = this.#window;
  }

  /** True when no message is waiting to be read and none is half received. */
  get atBoundary(): boolean {
    return this.#first === undefined && this.#gathering === undefined;
  }

  /** A MESSAGE frame arrived. Returns false when the stream must fail (see `failure`). */
  receive(flags: number, payload: Buffer): boolean {
    let total = -1;
    if ((flags & FLAG_TOTAL) !== 0) {
      if (payload.length < 4 || this.#gathering !== undefined) return this.#violation('a malformed first frame of a message');
      total = payload.readUInt32BE(0);
      payload = payload.subarray(4);
    }
    const length = payload.length;
    if (length > this.#available) return this.#violation(`the peer sent ${length} bytes with ${this.#available} bytes of credit`);
    this.#available -= length;
    const max = this.#maxMessageBytes;
    if (total >= 0) {
      if (total > max) {
        this.failure = { code: GrpcStatus.RESOURCE_EXHAUSTED, message: `received message larger than max (${total} vs. ${max})` };
        return false;
      }
      if ((flags & FLAG_MORE) === 0 || length >= total) return this.#violation('a message split into frames is inconsistent');
      this.#gathering = Buffer.allocUnsafe(total);
      payload.copy(this.#gathering, 0);
      this.#gathered = length;
      this.#release();
      return true;
    }
    const gathering = this.#gathering;
    if (gathering !== undefined) {
      if (this.#gathered + length > gathering.length) return this.#violation('a message runs past its declared length');
      payload.copy(gathering, this.#gathered);
      this.#gathered += length;
      if ((flags & FLAG_MORE) !== 0) {
        this.#release();
        return true;
      }
      if (this.#gathered !== gathering.length) return this.#violation('a message ended before its declared length');
      this.#gathering = undefined;
      this.#gathered = 0;
      this.#keep(gathering);
      return true;
    }
    if ((flags & FLAG_MORE) !== 0) return this.#violation('a message split into frames without its length');
    if (length > max) {
      this.failure = { code: GrpcStatus.RESOURCE_EXHAUSTED, message: `received message larger than max (${length} vs. ${max})` };
      return false;
    }
    this.#keep(payload);
    return true;
  }

  #violation(message: string): false {
    this.failure = { code: GrpcStatus.INTERNAL, message: `lane protocol violation: ${message}` };
    return false;
  }

  /** The next complete message, returning its credit to the peer; undefined when none is waiting. */
  read(): Buffer | undefined {
    const message = this.#first;
    if (message === undefined) return undefined;
    const rest = this.#rest;
    this.#first = rest === undefined || rest.length === 0 ? undefined : rest.shift();
    this.#waiting -= message.length;
    this.#release();
    return message;
  }

  /**
   * Returns the credit of every byte received that is not held: held are the complete messages not
   * yet read and, while any of those waits, the part of a message being gathered. Credit goes back
   * in pieces of at least a quarter of the window.
   */
  #release(): void {
    const held = this.#waiting + (this.#first === undefined ? 0 : this.#gathered);
    const returnable = this.#window - this.#available - held;
    if (returnable < this.#window >>> 2) return;
    this.#available += returnable;
    this.#endpoint.batch.u32(WINDOW, 0, this.#id, returnable);
    this.#endpoint.schedule();
  }

  /** Forgets everything held (the stream is over). */
  discard(): void {
    this.#first = undefined;
    this.#rest = undefined;
    this.#gathering = undefined;
    this.#gathered = 0;
    this.#waiting = 0;
  }

  #keep(message: Buffer): void {
    this.#waiting += message.length;
    if (this.#first === undefined) this.#first = message;
    else (this.#rest ??= []).push(message);
  }
}
