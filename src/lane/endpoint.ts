import type { Duplex } from 'node:stream';
import { errorMessage } from '../errors/index.js';
import { flushAfterTurn, writePieces } from '../util/turn-flush.js';
import type { Pingable } from '../grpc/keepalive.js';
import {
  DEFAULT_INITIAL_WINDOW,
  DEFAULT_MAX_FRAME_BYTES,
  FLAG_ACK,
  FRAME_SIZE_ERROR,
  FrameBatch,
  FrameParser,
  GOAWAY,
  LANE_MAGIC,
  PayloadReader,
  PING,
  PROTOCOL_ERROR,
  SETTINGS,
  SETTING_INITIAL_WINDOW,
  SETTING_MAX_CONCURRENT_STREAMS,
  SETTING_MAX_FRAME_BYTES,
  type FrameHandler,
} from './wire.js';

/** What one end of a lane connection allows its peer (sent in its SETTINGS). */
export interface LaneLimits {
  /** Calls the peer may have open at once on the connection. */
  readonly maxConcurrentStreams: number;
  /** Message bytes per call the peer may send before credit is returned. */
  readonly initialWindow: number;
  /** The largest frame payload accepted. */
  readonly maxFrameBytes: number;
}

export const DEFAULT_LIMITS: LaneLimits = {
  maxConcurrentStreams: 2048,
  initialWindow: DEFAULT_INITIAL_WINDOW,
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
};

/** A stream waiting for the connection's socket to drain. */
export interface DrainWaiter {
  connectionDrained(): void;
}

const PING_PAYLOAD = Buffer.alloc(8);

/**
 * What both ends of a lane connection share: the magic and SETTINGS exchange, frame parsing, writes
 * gathered per turn of the event loop (one write per turn however many calls produced frames), socket backpressure,
 * and PING. The client and server ends add streams on top.
 */
export abstract class LaneEndpoint implements FrameHandler, Pingable {
  readonly socket: Duplex;
  readonly batch = new FrameBatch();
  readonly limits: LaneLimits;
  /** The peer's limits; the defaults until its SETTINGS arrive. */
  peerLimits: LaneLimits = DEFAULT_LIMITS;
  /** The socket's buffer is over its high-water mark: senders should wait for `drain`. */
  congested = false;
  /** Why the connection failed, once it did (the first reason wins). */
  failure: string | undefined;
  /** Bytes read from the socket so far (what a client's silence detection watches). */
  bytesReceived = 0;

  readonly #parser: FrameParser;
  #magicMatched = 0;
  #settingsSeen = false;
  #flushScheduled = false;
  #waiters: Set<DrainWaiter> | undefined;
  #pingCallback: ((err: Error | null) => void) | undefined;
  #closed = false;

  constructor(socket: Duplex, limits: LaneLimits) {
    this.socket = socket;
    this.limits = limits;
    this.#parser = new FrameParser(this, limits.maxFrameBytes);
  }

  /** Starts reading the socket (call once the subclass is fully constructed). */
  protected listen(): void {
    const socket = this.socket;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('drain', () => this.#onDrain());
    socket.on('error', (err: Error) => {
      this.failure ??= errorMessage(err);
    });
    socket.once('close', () => this.#onClose());
    socket.resume();
  }

  /** Queues this end's magic and SETTINGS. */
  protected sendPreface(): void {
    this.batch.raw(LANE_MAGIC);
    const limits = this.limits;
    this.batch.settings([
      [SETTING_MAX_CONCURRENT_STREAMS, limits.maxConcurrentStreams],
      [SETTING_INITIAL_WINDOW, limits.initialWindow],
      [SETTING_MAX_FRAME_BYTES, limits.maxFrameBytes],
    ]);
    this.schedule();
  }

  get destroyed(): boolean {
    return this.#closed || this.socket.destroyed;
  }

  /** True once the connection takes no more calls (going away, or gone). */
  abstract get closed(): boolean;

  /** Writes what this turn of the event loop produced once its I/O callbacks have run. */
  schedule(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    flushAfterTurn(this);
  }

  /** Writes the gathered frames now (one write, or one writev for several pieces). */
  flush(): void {
    this.#flushScheduled = false;
    const socket = this.socket;
    if (this.batch.size === 0) return;
    const pieces = this.batch.take();
    if (socket.destroyed || !socket.writable) return;
    if (!writePieces(socket, pieces)) this.congested = true;
  }

  /** Asks to be told when the socket drains (only while congested). */
  waitForDrain(waiter: DrainWaiter): void {
    (this.#waiters ??= new Set()).add(waiter);
  }

  /** PING the peer; `callback` runs on its answer. One at a time. */
  ping(callback: (err: Error | null) => void): boolean {
    if (this.#pingCallback !== undefined || this.destroyed) return false;
    this.#pingCallback = callback;
    this.batch.frame(PING, 0, 0, [PING_PAYLOAD], 8);
    this.schedule();
    return true;
  }

  /** Closes the connection now, failing whatever is open with `reason`. */
  destroy(reason: string): void {
    this.failure ??= reason;
    this.#parser.stop();
    this.socket.destroy();
  }

  /** The peer broke the protocol: tell it (GOAWAY with the code), then drop the connection. */
  protocolError(code: number, reason: string): void {
    if (this.destroyed) return;
    this.failure ??= `protocol error: ${reason}`;
    this.#parser.stop();
    this.batch.goaway(this.lastPeerStream(), code, reason);
    this.flush();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  // --- FrameHandler ------------------------------------------------------------------------------

  frame(type: number, flags: number, stream: number, payload: Buffer): boolean {
    if (!this.#settingsSeen) {
      if (type !== SETTINGS || stream !== 0) {
        this.protocolError(PROTOCOL_ERROR, 'the first frame was not SETTINGS');
        return false;
      }
      this.#settingsSeen = true;
      this.#readSettings(payload);
      this.established();
      return !this.destroyed;
    }
    try {
      switch (type) {
        case PING:
          if ((flags & FLAG_ACK) !== 0) {
            const callback = this.#pingCallback;
            this.#pingCallback = undefined;
            callback?.(null);
          } else {
            this.batch.frame(PING, FLAG_ACK, 0, [payload], payload.length);
            this.schedule();
          }
          break;
        case GOAWAY: {
          const reader = new PayloadReader(payload);
          const lastStreamId = reader.u32();
          const code = reader.u32();
          this.goawayReceived(lastStreamId, code, reader.rest());
          break;
        }
        case SETTINGS:
          // Sent once, first; later ones carry nothing this version acts on.
          break;
        default:
          this.streamFrame(type, flags, stream, payload);
      }
    } catch (err) {
      // A payload shorter than its fields (PayloadReader's RangeError).
      this.protocolError(PROTOCOL_ERROR, `malformed frame of type ${type}: ${errorMessage(err)}`);
      return false;
    }
    return !this.destroyed;
  }

  oversized(length: number): void {
    this.protocolError(FRAME_SIZE_ERROR, `a frame of ${length} bytes is over the limit of ${this.limits.maxFrameBytes}`);
  }

  // --- for the subclasses ------------------------------------------------------------------------

  /** The peer's magic and SETTINGS arrived. */
  protected abstract established(): void;
  /** A frame of a stream (OPEN, MESSAGE, HALF_CLOSE, HEADERS, TRAILERS, RESET, WINDOW). */
  protected abstract streamFrame(type: number, flags: number, stream: number, payload: Buffer): void;
  protected abstract goawayReceived(lastStreamId: number, code: number, reason: string): void;
  /** The socket is closed: fail what is still open. */
  protected abstract connectionClosed(): void;
  /** The peer's first bytes were not the lane magic. */
  protected abstract notLane(): void;
  /** The highest stream id the peer opened that this end processed (for GOAWAY). */
  protected abstract lastPeerStream(): number;

  // --- internals ---------------------------------------------------------------------------------

  #onData(chunk: Buffer): void {
    this.bytesReceived += chunk.length;
    if (this.#magicMatched < LANE_MAGIC.length) {
      const need = LANE_MAGIC.length - this.#magicMatched;
      const take = Math.min(need, chunk.length);
      if (chunk.compare(LANE_MAGIC, this.#magicMatched, this.#magicMatched + take, 0, take) !== 0) {
        this.#parser.stop();
        this.notLane();
        return;
      }
      this.#magicMatched += take;
      if (take === chunk.length) return;
      chunk = chunk.subarray(take);
    }
    this.#parser.push(chunk);
  }

  #onDrain(): void {
    this.congested = false;
    const waiters = this.#waiters;
    if (waiters === undefined || waiters.size === 0) return;
    this.#waiters = undefined;
    for (const waiter of waiters) {
      if (this.congested) {
        this.waitForDrain(waiter);
        continue;
      }
      waiter.connectionDrained();
    }
  }

  #onClose(): void {
    this.#closed = true;
    this.#parser.stop();
    this.#waiters = undefined;
    const callback = this.#pingCallback;
    this.#pingCallback = undefined;
    callback?.(new Error('the connection closed'));
    this.connectionClosed();
  }

  #readSettings(payload: Buffer): void {
    let { maxConcurrentStreams, initialWindow, maxFrameBytes } = DEFAULT_LIMITS;
    for (let pos = 0; pos + 6 <= payload.length; pos += 6) {
      const id = payload.readUInt16BE(pos);
      const value = payload.readUInt32BE(pos + 2);
      if (id === SETTING_MAX_CONCURRENT_STREAMS) maxConcurrentStreams = value;
      else if (id === SETTING_INITIAL_WINDOW) initialWindow = value;
      else if (id === SETTING_MAX_FRAME_BYTES) maxFrameBytes = Math.max(16 * 1024, value);
    }
    this.peerLimits = { maxConcurrentStreams, initialWindow, maxFrameBytes };
  }
}
