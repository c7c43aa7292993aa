import { DATA, DEFAULT_WINDOW, FLAG_END_STREAM, MAX_WINDOW } from './frames.js';
import type { H2Endpoint, SendWaiter } from './endpoint.js';

/** A stream with this much data waiting for a window reports a full buffer. */
const HIGH_WATER = 64 * 1024;

/**
 * The DATA one stream has to send: gRPC message heads and messages, in order, referenced (never
 * copied until they go into a frame), sent as the stream's window, the connection's window, the
 * peer's frame size and the socket allow.
 */
export class Outbox {
  /** Bytes the peer's stream window still takes. */
  window: number;
  /** Bytes waiting. */
  queued = 0;
  #queue: Uint8Array[] = [];
  #offset = 0;
  #drainCallbacks: (() => void)[] | undefined;

  constructor(window: number) {
    this.window = window;
  }

  /** Queues one message: its 5-byte head, then its pieces. */
  add(head: Buffer, parts: readonly Uint8Array[], length: number): void {
    this.#queue.push(head);
    for (const part of parts) if (part.byteLength > 0) this.#queue.push(part);
    this.queued += head.length + length;
  }

  /** Queues one message given whole. */
  addOne(head: Buffer, bytes: Uint8Array): void {
    this.#queue.push(head);
    if (bytes.byteLength > 0) this.#queue.push(bytes);
    this.queued += head.length + bytes.byteLength;
  }

  /** True when this much waits that a sender should wait for `onDrain`, whatever the socket. */
  get overHighWater(): boolean {
    return this.queued >= HIGH_WATER;
  }

  /** True when a sender should wait for `onDrain`. */
  full(endpoint: H2Endpoint): boolean {
    return this.overHighWater || endpoint.congested;
  }

  /**
   * Writes DATA frames for what the windows allow. With `endStream`, the frame that empties the
   * queue carries END_STREAM (an empty DATA frame when nothing was queued). Returns true when the
   * queue is empty afterwards (and END_STREAM went out, when asked for).
   */
  pump(endpoint: H2Endpoint, stream: number, waiter: SendWaiter, endStream: boolean): boolean {
    const out = endpoint.out;
    const queue = this.#queue;
    if (this.queued === 0) {
      if (endStream) {
        out.head(DATA, FLAG_END_STREAM, stream, 0);
        endpoint.schedule();
      }
      return true;
    }
    while (this.queued > 0) {
      const allowed = Math.min(this.window, endpoint.sendWindow, endpoint.peerMaxFrameBytes);
      if (allowed <= 0 || endpoint.congested) {
        // The stream's own window returns with its WINDOW_UPDATE; the connection's, or a drained
        // socket, wakes the waiters.
        if (this.window > 0) endpoint.waitToSend(waiter);
        break;
      }
      const n = Math.min(allowed, this.queued);
      out.head(DATA, endStream && n === this.queued ? FLAG_END_STREAM : 0, stream, n);
      let left = n;
      while (left > 0) {
        const piece = queue[0] as Uint8Array;
        const take = Math.min(piece.byteLength - this.#offset, left);
        out.bytes(piece, this.#offset, this.#offset + take);
        left -= take;
        this.#offset += take;
        if (this.#offset === piece.byteLength) {
          queue.shift();
          this.#offset = 0;
        }
      }
      this.window -= n;
      endpoint.spend(n);
      this.queued -= n;
    }
    endpoint.schedule();
    const callbacks = this.#drainCallbacks;
    if (callbacks !== undefined && !this.full(endpoint)) {
      this.#drainCallbacks = undefined;
      for (const callback of callbacks) callback();
    }
    return this.queued === 0;
  }

  /** Adds a WINDOW_UPDATE's increment (or a SETTINGS change, which may be negative); false on overflow. */
  credit(increment: number): boolean {
    if (this.window + increment > MAX_WINDOW) return false;
    this.window += increment;
    return true;
  }

  /**
   * Runs `callback` once the buffer has room (next tick if it has room now). A stream waiting only
   * for the socket asks the connection to wake it (`waiter.sendMore`) when the socket drains.
   */
  onDrain(endpoint: H2Endpoint, waiter: SendWaiter, callback: () => void): void {
    if (!this.full(endpoint)) {
      process.nextTick(callback);
      return;
    }
    (this.#drainCallbacks ??= []).push(callback);
    if (endpoint.congested) endpoint.waitToSend(waiter);
  }

  /** Takes over what `other` queued (messages sent before the stream existed). */
  takeFrom(other: Outbox): void {
    for (const piece of other.#queue) this.#queue.push(piece);
    this.#offset = other.#offset;
    this.queued += other.queued;
    other.clear();
  }

  /** Drops everything queued, and the drain callbacks (the stream is over). */
  clear(): void {
    this.#queue = [];
    this.#offset = 0;
    this.queued = 0;
    this.#drainCallbacks = undefined;
  }
}

/** Stream credit is returned once half of the protocol's default window is consumed. */
const STREAM_CREDIT_BYTES = DEFAULT_WINDOW >>> 1;

/**
 * The receiving side of one stream's flow control: what the peer may still send on it, and the DATA
 * held until the reader takes it. Credit goes back as the reader consumes, so a paused reader holds
 * the peer to its window.
 */
export class Inbox {
  /** DATA bytes the peer may still send on the stream. */
  #window = DEFAULT_WINDOW;
  /** Received, not yet consumed. */
  #held = 0;
  /** Consumed, not yet returned to the stream window. */
  #uncredited = 0;

  /** Counts `length` received bytes; false (nothing counted) when they are over the stream window. */
  receive(length: number): boolean {
    if (length > this.#window) return false;
    this.#window -= length;
    this.#held += length;
    return true;
  }

  /**
   * The reader consumed what was held: it returns to the connection window, and to the stream
   * window (once half of it is used) unless the peer has ended its side.
   */
  consumed(endpoint: H2Endpoint, stream: number, peerEnded: boolean): void {
    const held = this.#held;
    if (held === 0) return;
    this.#held = 0;
    endpoint.consumed(held);
    if (peerEnded) return;
    this.#uncredited += held;
    if (this.#uncredited >= STREAM_CREDIT_BYTES) {
      endpoint.streamConsumed(stream, this.#uncredited);
      this.#window += this.#uncredited;
      this.#uncredited = 0;
    }
  }

  /** The stream is over: what it held goes back to the connection window. */
  drop(endpoint: H2Endpoint): void {
    if (this.#held === 0) return;
    endpoint.consumed(this.#held);
    this.#held = 0;
  }
}
