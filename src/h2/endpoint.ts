import type { Socket } from 'node:net';
import { errorMessage } from '../errors/index.js';
import { flushAfterTurn, writePieces } from '../util/turn-flush.js';
import type { Pingable } from '../grpc/keepalive.js';
import { isReservedHeader, type Metadata } from '../grpc/metadata.js';
import { HpackDecoder, HpackEncoder, HpackError } from './hpack.js';
import {
  CLIENT_PREFACE,
  CONTINUATION,
  DATA,
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_WINDOW,
  ENHANCE_YOUR_CALM,
  FLAG_ACK,
  FLAG_END_HEADERS,
  FLAG_PADDED,
  FLAG_PRIORITY,
  FLOW_CONTROL_ERROR,
  FRAME_HEAD_BYTES,
  FRAME_SIZE_ERROR,
  FrameOutput,
  GOAWAY,
  HEADERS,
  MAX_FRAME_BYTES_LIMIT,
  MAX_WINDOW,
  PING,
  PRIORITY,
  PROTOCOL_ERROR,
  PUSH_PROMISE,
  RST_STREAM,
  SETTINGS,
  SETTINGS_ENABLE_PUSH,
  SETTINGS_HEADER_TABLE_SIZE,
  COMPRESSION_ERROR,
  SETTINGS_INITIAL_WINDOW_SIZE,
  SETTINGS_MAX_CONCURRENT_STREAMS,
  SETTINGS_MAX_FRAME_SIZE,
  WINDOW_UPDATE,
} from './frames.js';

/** What this end allows its peer. */
export interface H2Limits {
  /** Streams the peer may open at once (a server's limit on its clients). */
  readonly maxConcurrentStreams: number;
  /** The connection's receive window (bytes of DATA, all streams together, before credit returns). */
  readonly connectionWindow: number;
  /** Largest header block accepted, decoded (RFC 9113 SETTINGS_MAX_HEADER_LIST_SIZE accounting). */
  readonly maxHeaderListBytes: number;
}

/** An end waiting for the connection's flow-control window or for its socket to drain. */
export interface SendWaiter {
  /** The connection can take more DATA: send what is queued. */
  sendMore(): void;
}

/** Connection credit is returned once this much of its window has been consumed. */
const CONNECTION_CREDIT_FRACTION = 4;
/** Over this much unwritten output, the connection is congested: senders wait for `drain`. */
const CONGESTED_BYTES = 1024 * 1024;
/** A peer whose control frames (PING, SETTINGS acknowledgements) pile up this much unread output is cut off. */
const FLOOD_BYTES = 16 * 1024 * 1024;
/** Header blocks (HEADERS plus CONTINUATION, frame heads counted) larger than this, before decoding, are refused. */
const MAX_HEADER_BLOCK_BYTES = 256 * 1024;
/**
 * CONTINUATION frames one header block may take: a block at the size limit in 16 KiB frames needs
 * 16. Counting frames, not only bytes, stops a flood of empty ones.
 */
const MAX_CONTINUATIONS = 64;
/** Streams a peer may reset within one second before the connection is closed (a "rapid reset" flood). */
const MAX_RESETS_PER_SECOND = 1000;

const PING_PAYLOAD = Buffer.from('courier!', 'latin1');
/** An HPACK dynamic table size update to 0 (001 prefix, value 0). */
const TABLE_SIZE_ZERO = Buffer.from([0x20]);

/** Characters RFC 9110 allows in a field value (Node's check): tab, visible ASCII, obs-text. */
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
/** Lowercase token characters, for metadata names. */
const VALID_NAME = /^[a-z0-9!#$%&'*+\-.^_`|~]+$/;

/**
 * Adds `metadata`'s application fields (reserved ones skipped, names lowercased, arrays as repeated
 * fields) to the block being built. Throws, naming the field, for an invalid name or value, which
 * Node's http2 would refuse too. Returns whether a `user-agent` was among them.
 */
export function encodeMetadata(encoder: HpackEncoder, metadata: Metadata | undefined): boolean {
  let userAgent = false;
  if (metadata === undefined) return userAgent;
  for (const name in metadata) {
    const value = metadata[name];
    if (value === undefined) continue;
    const key = name.toLowerCase();
    if (isReservedHeader(key)) continue;
    if (!VALID_NAME.test(key)) throw new Error(`invalid metadata name "${key}"`);
    if (key === 'user-agent') userAgent = true;
    const values = typeof value === 'object' ? value : [value];
    for (const one of values) {
      const text = String(one);
      if (INVALID_VALUE.test(text)) throw new Error(`invalid value for metadata "${key}"`);
      encoder.add(key, text);
    }
  }
  return userAgent;
}

/**
 * What both ends of an HTTP/2 connection share: frame parsing, header blocks reassembled from
 * CONTINUATION frames, SETTINGS, PING, the connection's flow-control windows both ways, and output
 * gathered per turn of the event loop. The server end (and a client end) add streams on top.
 */
export abstract class H2Endpoint implements Pingable {
  readonly socket: Socket;
  readonly out = new FrameOutput();
  readonly limits: H2Limits;
  readonly encoder = new HpackEncoder();
  readonly decoder: HpackDecoder;
  /** The peer's SETTINGS: its window for each new stream, and the largest frame it takes. */
  peerInitialWindow = DEFAULT_WINDOW;
  peerMaxFrameBytes = DEFAULT_MAX_FRAME_BYTES;
  /** Streams the peer takes at once (a server's limit, for a client end). */
  peerMaxConcurrentStreams = Number.POSITIVE_INFINITY;
  /** DATA bytes the peer will still take on the connection. */
  sendWindow = DEFAULT_WINDOW;
  /** The socket's buffer is over its mark: senders wait for `drain`. */
  congested = false;
  /** Why the connection failed, once it did (the first reason wins). */
  failure: string | undefined;
  /** Bytes read from the socket so far. */
  bytesReceived = 0;

  #pending: Buffer | undefined;
  /** Preface bytes still expected (a server reads the client's 24), then whether SETTINGS came first. */
  #prefaceLeft: number;
  #settingsSeen = false;
  /** A header block being reassembled: its stream, flags of the HEADERS frame, and fragments. */
  #blockStream = 0;
  #blockFlags = 0;
  #blockParts: Buffer[] | undefined;
  #blockBytes = 0;
  /** DATA bytes the peer may still send on the connection, and those consumed but not yet credited. */
  #receiveWindow = DEFAULT_WINDOW;
  #consumed = 0;
  #waiters: SendWaiter[] = [];
  #flushScheduled = false;
  #pingCallback: ((err: Error | null) => void) | undefined;
  #closed = false;
  #stopped = false;
  #resets = 0;
  #resetWindowStart = 0;
  /**
   * The peer lowered SETTINGS_HEADER_TABLE_SIZE: the next header block must start with a table
   * size update (RFC 7541 §4.2). Ours is 0, always allowed: the encoder never uses the table.
   */
  #tableSizeUpdate = false;
  #peerTableSize = 4096;
  /** The header object being filled by the decoder, and what decoding the last block gave. */
  #fields: Record<string, string | string[]> | undefined;
  decodeResult = 0;
  readonly #onField = (name: string, value: string): void => {
    const fields = this.#fields as Record<string, string | string[]>;
    const existing = fields[name];
    if (existing === undefined) fields[name] = value;
    else if (typeof existing === 'string') fields[name] = [existing, value];
    else existing.push(value);
  };

  constructor(socket: Socket, limits: H2Limits, server: boolean) {
    this.socket = socket;
    this.limits = limits;
    this.decoder = new HpackDecoder({ maxHeaderListBytes: limits.maxHeaderListBytes });
    this.#prefaceLeft = server ? CLIENT_PREFACE.length : 0;
  }

  /** Starts reading the socket (once the subclass is constructed). */
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

  /** Queues this end's SETTINGS and the connection window beyond the protocol's default. */
  protected sendSettings(settings: readonly (readonly [number, number])[]): void {
    this.out.head(SETTINGS, 0, 0, settings.length * 6);
    for (const [id, value] of settings) {
      const entry = Buffer.allocUnsafe(6);
      entry.writeUInt16BE(id, 0);
      entry.writeUInt32BE(value, 2);
      this.out.bytes(entry);
    }
    const extra = this.limits.connectionWindow - DEFAULT_WINDOW;
    if (extra > 0) {
      this.out.frameU32(WINDOW_UPDATE, 0, extra);
      this.#receiveWindow += extra;
    }
    this.schedule();
  }

  get destroyed(): boolean {
    return this.#closed || this.socket.destroyed;
  }

  /** True once the connection takes no more streams (going away, or gone). */
  abstract get closed(): boolean;

  /** Writes the gathered frames at the end of this turn of the event loop. */
  schedule(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    flushAfterTurn(this);
  }

  /** Writes the gathered frames now (one write, or one writev of several pieces). */
  flush(): void {
    this.#flushScheduled = false;
    if (this.out.size === 0) return;
    const pieces = this.out.take();
    const socket = this.socket;
    if (socket.destroyed || !socket.writable) return;
    writePieces(socket, pieces);
    if (socket.writableLength > CONGESTED_BYTES) this.congested = true;
  }

  /** Asks to be told when the connection can take more DATA (window or socket). */
  waitToSend(waiter: SendWaiter): void {
    if (!this.#waiters.includes(waiter)) this.#waiters.push(waiter);
  }

  /** The connection's share of `length` DATA bytes about to be sent. */
  spend(length: number): void {
    this.sendWindow -= length;
  }

  /**
   * DATA bytes a stream has consumed (delivered to its reader, or dropped): they return to the
   * connection's window once a quarter of it is used.
   */
  consumed(length: number): void {
    this.#consumed += length;
    if (this.#consumed >= this.limits.connectionWindow / CONNECTION_CREDIT_FRACTION) {
      this.out.frameU32(WINDOW_UPDATE, 0, this.#consumed);
      this.#receiveWindow += this.#consumed;
      this.#consumed = 0;
      this.schedule();
    }
  }

  /**
   * Decodes a header block into a header object (repeated fields as arrays; `decodeResult` says
   * whether every field was fine). Undefined when the block could not be decoded: the connection is
   * then failed with COMPRESSION_ERROR, since the peer's table and ours are no longer in step.
   */
  decodeFields(block: Buffer, start: number, end: number): Record<string, string | string[]> | undefined {
    const fields = Object.create(null) as Record<string, string | string[]>;
    this.#fields = fields;
    try {
      this.decodeResult = this.decoder.decode(block, start, end, this.#onField);
    } catch (err) {
      this.protocolError(COMPRESSION_ERROR, err instanceof HpackError ? err.message : 'header block could not be decoded');
      return undefined;
    } finally {
      this.#fields = undefined;
    }
    return fields;
  }

  /** Sends the header block `encoder` built for `stream` (HEADERS, and CONTINUATION when it is large). */
  sendBlock(stream: number, endStream: boolean): void {
    let block = this.encoder.end();
    if (this.#tableSizeUpdate) {
      this.#tableSizeUpdate = false;
      block = Buffer.concat([TABLE_SIZE_ZERO, block]);
    }
    this.out.headerBlock(stream, block, endStream, this.peerMaxFrameBytes);
    this.schedule();
  }

  /** RST_STREAM with `code`. */
  sendReset(stream: number, code: number): void {
    if (this.destroyed) return;
    this.out.frameU32(RST_STREAM, stream, code);
    this.schedule();
  }

  /** Returns `length` consumed DATA bytes of `stream` to the peer's stream window. */
  streamConsumed(stream: number, length: number): void {
    this.out.frameU32(WINDOW_UPDATE, stream, length);
    this.schedule();
  }

  /**
   * Counts a stream the peer reset while it was still being served; past the limit within a second
   * the connection is closed (ENHANCE_YOUR_CALM): opening and resetting streams in a loop would
   * otherwise make this end start work that no concurrency limit bounds. False when it was closed.
   */
  countPeerReset(): boolean {
    const now = performance.now();
    if (now - this.#resetWindowStart >= 1000) {
      this.#resetWindowStart = now;
      this.#resets = 0;
    }
    if (++this.#resets <= MAX_RESETS_PER_SECOND) return true;
    this.protocolError(ENHANCE_YOUR_CALM, 'too many streams reset');
    return false;
  }

  /** PINGs the peer; `callback` runs on its answer. One at a time. */
  ping(callback: (err: Error | null) => void): boolean {
    if (this.#pingCallback !== undefined || this.destroyed) return false;
    this.#pingCallback = callback;
    this.out.frame(PING, 0, 0, PING_PAYLOAD);
    this.schedule();
    return true;
  }

  /** Sends GOAWAY with `code`, telling the peer the last stream this end processed. */
  protected sendGoaway(lastStreamId: number, code: number, reason: string): void {
    const debug = Buffer.from(reason, 'utf8');
    this.out.head(GOAWAY, 0, 0, 8 + debug.length);
    this.out.u32(lastStreamId);
    this.out.u32(code);
    this.out.bytes(debug);
  }

  /** Closes the connection now, failing whatever is open with `reason`. */
  destroy(reason: string): void {
    this.failure ??= reason;
    this.#stopped = true;
    this.socket.destroy();
  }

  /** The peer broke the protocol: GOAWAY with `code`, then the connection is dropped. */
  protocolError(code: number, reason: string): void {
    if (this.destroyed || this.#stopped) return;
    this.failure ??= `protocol error: ${reason}`;
    this.#stopped = true;
    this.sendGoaway(this.lastPeerStream(), code, reason);
    this.flush();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  // --- for the subclasses ------------------------------------------------------------------------

  /** The peer's preface (a client's) and first SETTINGS arrived. */
  protected abstract established(): void;
  /** A complete header block of `stream` (HEADERS with its CONTINUATIONs), still encoded. */
  protected abstract headerBlock(stream: number, endStream: boolean, block: Buffer, start: number, end: number): void;
  /** A DATA frame's payload (padding removed); `length` is what it counts against flow control. */
  protected abstract data(stream: number, endStream: boolean, payload: Buffer, length: number): void;
  protected abstract reset(stream: number, code: number): void;
  /** A WINDOW_UPDATE of a stream. */
  protected abstract streamCredit(stream: number, increment: number): void;
  /** The peer's initial stream window changed by `delta` (applies to every open stream). */
  protected abstract initialWindowChanged(delta: number): void;
  protected abstract goawayReceived(lastStreamId: number, code: number): void;
  /** The socket is closed: fail what is still open. */
  protected abstract connectionClosed(): void;
  /** The highest stream id of the peer this end processed (for GOAWAY). */
  protected abstract lastPeerStream(): number;

  /**
   * Checks DATA against the connection's receive window; false (after a connection error) when the
   * peer sent more than it was allowed.
   */
  #receive(length: number): boolean {
    if (length > this.#receiveWindow) {
      this.protocolError(FLOW_CONTROL_ERROR, 'DATA beyond the connection window');
      return false;
    }
    this.#receiveWindow -= length;
    return true;
  }

  // --- internals ---------------------------------------------------------------------------------

  #onData(chunk: Buffer): void {
    if (this.#stopped) return;
    this.bytesReceived += chunk.length;
    if (this.#prefaceLeft > 0) {
      const at = CLIENT_PREFACE.length - this.#prefaceLeft;
      const take = Math.min(this.#prefaceLeft, chunk.length);
      if (chunk.compare(CLIENT_PREFACE, at, at + take, 0, take) !== 0) {
        this.destroy('the client did not send the HTTP/2 preface');
        return;
      }
      this.#prefaceLeft -= take;
      if (take === chunk.length) return;
      chunk = chunk.subarray(take);
    }
    if (!this.#settingsSeen && this.#pending === undefined && !this.#notHttp2(chunk)) return;
    let buf = this.#pending === undefined ? chunk : Buffer.concat([this.#pending, chunk]);
    this.#pending = undefined;
    let pos = 0;
    while (buf.length - pos >= FRAME_HEAD_BYTES) {
      const length = (buf[pos]! << 16) | (buf[pos + 1]! << 8) | buf[pos + 2]!;
      if (length > DEFAULT_MAX_FRAME_BYTES) {
        this.protocolError(FRAME_SIZE_ERROR, `a frame of ${length} bytes is over the limit of ${DEFAULT_MAX_FRAME_BYTES}`);
        return;
      }
      const end = pos + FRAME_HEAD_BYTES + length;
      if (end > buf.length) break;
      const type = buf[pos + 3]!;
      const flags = buf[pos + 4]!;
      const stream = buf.readUInt32BE(pos + 5) & 0x7fff_ffff;
      const start = pos + FRAME_HEAD_BYTES;
      pos = end;
      if (!this.#frame(type, flags, stream, buf, start, end)) return;
    }
    if (pos < buf.length) {
      // Keep the partial frame; copy it out of a large chunk so the chunk can be freed.
      buf = buf.subarray(pos);
      this.#pending = buf.length < 4096 ? Buffer.from(buf) : buf;
    }
  }

  /**
   * The peer's first bytes, checked for another protocol before they are read as frames, so the
   * failure says what the peer speaks: an HTTP/1.x answer (a protocol error), or a TLS record (the
   * connection closes as if nothing was answered, and the caller may probe for TLS). False when
   * the connection was dropped.
   */
  #notHttp2(chunk: Buffer): boolean {
    if (chunk.length < 2) return true;
    if (chunk.toString('latin1', 0, 5) === 'HTTP/') {
      this.failure ??= 'protocol error: the peer answered in HTTP/1.x, not HTTP/2';
      this.destroy(this.failure);
      return false;
    }
    if ((chunk[0] === 0x15 || chunk[0] === 0x16) && chunk[1] === 0x03) {
      this.failure ??= 'the connection closed before HTTP/2 was established (the peer answered in TLS)';
      this.destroy(this.failure);
      return false;
    }
    return true;
  }

  /** One frame; false when the connection failed on it. */
  #frame(type: number, flags: number, stream: number, buf: Buffer, start: number, end: number): boolean {
    const length = end - start;
    if (this.#blockParts !== undefined && (type !== CONTINUATION || stream !== this.#blockStream)) {
      this.protocolError(PROTOCOL_ERROR, 'a header block was interrupted by another frame');
      return false;
    }
    if (!this.#settingsSeen) {
      if (type !== SETTINGS || (flags & FLAG_ACK) !== 0) {
        this.protocolError(PROTOCOL_ERROR, 'the first frame was not SETTINGS');
        return false;
      }
    }
    switch (type) {
      case DATA: {
        if (stream === 0) return this.#fail(PROTOCOL_ERROR, 'DATA on stream 0');
        if (!this.#receive(length)) return false;
        let from = start;
        let to = end;
        if ((flags & FLAG_PADDED) !== 0) {
          if (length < 1 || buf[start]! >= length) return this.#fail(PROTOCOL_ERROR, 'DATA padding is longer than the frame');
          to -= buf[start]!;
          from += 1;
        }
        this.data(stream, (flags & 0x1) !== 0, buf.subarray(from, to), length);
        break;
      }
      case HEADERS: {
        if (stream === 0) return this.#fail(PROTOCOL_ERROR, 'HEADERS on stream 0');
        let from = start;
        let to = end;
        if ((flags & FLAG_PADDED) !== 0) {
          if (length < 1 || buf[start]! >= length) return this.#fail(PROTOCOL_ERROR, 'HEADERS padding is longer than the frame');
          to -= buf[start]!;
          from += 1;
        }
        if ((flags & FLAG_PRIORITY) !== 0) from += 5;
        if (from > to) return this.#fail(PROTOCOL_ERROR, 'HEADERS frame too short');
        if ((flags & FLAG_END_HEADERS) !== 0) {
          if (!this.#block(stream, flags, buf, from, to)) return false;
        } else {
          this.#blockStream = stream;
          this.#blockFlags = flags;
          this.#blockParts = [Buffer.from(buf.subarray(from, to))];
          this.#blockBytes = to - from;
        }
        break;
      }
      case CONTINUATION: {
        const parts = this.#blockParts;
        if (parts === undefined) return this.#fail(PROTOCOL_ERROR, 'CONTINUATION without HEADERS');
        this.#blockBytes += FRAME_HEAD_BYTES + length;
        if (this.#blockBytes > MAX_HEADER_BLOCK_BYTES || parts.length > MAX_CONTINUATIONS) return this.#fail(ENHANCE_YOUR_CALM, 'header block too large');
        parts.push(Buffer.from(buf.subarray(start, end)));
        if ((flags & FLAG_END_HEADERS) !== 0) {
          this.#blockParts = undefined;
          const block = Buffer.concat(parts);
          if (!this.#block(this.#blockStream, this.#blockFlags, block, 0, block.length)) return false;
        }
        break;
      }
      case PRIORITY:
        if (length !== 5) return this.#fail(FRAME_SIZE_ERROR, 'PRIORITY frame of the wrong size');
        break;
      case RST_STREAM:
        if (length !== 4) return this.#fail(FRAME_SIZE_ERROR, 'RST_STREAM frame of the wrong size');
        if (stream === 0) return this.#fail(PROTOCOL_ERROR, 'RST_STREAM on stream 0');
        this.reset(stream, buf.readUInt32BE(start));
        break;
      case SETTINGS:
        if (stream !== 0) return this.#fail(PROTOCOL_ERROR, 'SETTINGS on a stream');
        if ((flags & FLAG_ACK) !== 0) {
          if (length !== 0) return this.#fail(FRAME_SIZE_ERROR, 'SETTINGS acknowledgement with a payload');
          break;
        }
        if (length % 6 !== 0) return this.#fail(FRAME_SIZE_ERROR, 'SETTINGS frame of the wrong size');
        if (!this.#settings(buf, start, end)) return false;
        if (this.socket.writableLength > FLOOD_BYTES) return this.#fail(ENHANCE_YOUR_CALM, 'the peer does not read what it asked for');
        this.out.head(SETTINGS, FLAG_ACK, 0, 0);
        this.schedule();
        if (!this.#settingsSeen) {
          this.#settingsSeen = true;
          this.established();
        }
        break;
      case PUSH_PROMISE:
        return this.#fail(PROTOCOL_ERROR, 'PUSH_PROMISE is not accepted');
      case PING:
        if (length !== 8) return this.#fail(FRAME_SIZE_ERROR, 'PING frame of the wrong size');
        if (stream !== 0) return this.#fail(PROTOCOL_ERROR, 'PING on a stream');
        if ((flags & FLAG_ACK) !== 0) {
          const callback = this.#pingCallback;
          this.#pingCallback = undefined;
          callback?.(null);
        } else {
          if (this.socket.writableLength > FLOOD_BYTES) return this.#fail(ENHANCE_YOUR_CALM, 'the peer does not read what it asked for');
          this.out.head(PING, FLAG_ACK, 0, 8);
          this.out.bytes(buf, start, end);
          this.schedule();
        }
        break;
      case GOAWAY:
        if (length < 8) return this.#fail(FRAME_SIZE_ERROR, 'GOAWAY frame too short');
        if (stream !== 0) return this.#fail(PROTOCOL_ERROR, 'GOAWAY on a stream');
        this.goawayReceived(buf.readUInt32BE(start) & 0x7fff_ffff, buf.readUInt32BE(start + 4));
        break;
      case WINDOW_UPDATE: {
        if (length !== 4) return this.#fail(FRAME_SIZE_ERROR, 'WINDOW_UPDATE frame of the wrong size');
        const increment = buf.readUInt32BE(start) & 0x7fff_ffff;
        if (stream !== 0) {
          this.streamCredit(stream, increment);
          break;
        }
        if (increment === 0) return this.#fail(PROTOCOL_ERROR, 'a WINDOW_UPDATE of 0');
        if (this.sendWindow + increment > MAX_WINDOW) return this.#fail(FLOW_CONTROL_ERROR, 'the connection window is over 2^31-1');
        const was = this.sendWindow;
        this.sendWindow += increment;
        if (was <= 0 && this.sendWindow > 0) this.#wakeWaiters();
        break;
      }
      default:
        // Unknown frame types are ignored (RFC 9113 §4.1).
        break;
    }
    return !this.destroyed && !this.#stopped;
  }

  #block(stream: number, flags: number, buf: Buffer, start: number, end: number): boolean {
    if (end - start > MAX_HEADER_BLOCK_BYTES) return this.#fail(ENHANCE_YOUR_CALM, 'header block too large');
    this.headerBlock(stream, (flags & 0x1) !== 0, buf, start, end);
    return !this.destroyed && !this.#stopped;
  }

  #settings(buf: Buffer, start: number, end: number): boolean {
    for (let at = start; at < end; at += 6) {
      const id = buf.readUInt16BE(at);
      const value = buf.readUInt32BE(at + 2);
      switch (id) {
        case SETTINGS_ENABLE_PUSH:
          if (value > 1) return this.#fail(PROTOCOL_ERROR, 'SETTINGS_ENABLE_PUSH is neither 0 nor 1');
          break;
        case SETTINGS_INITIAL_WINDOW_SIZE: {
          if (value > MAX_WINDOW) return this.#fail(FLOW_CONTROL_ERROR, 'SETTINGS_INITIAL_WINDOW_SIZE is over 2^31-1');
          const delta = value - this.peerInitialWindow;
          this.peerInitialWindow = value;
          if (delta !== 0) this.initialWindowChanged(delta);
          break;
        }
        case SETTINGS_MAX_FRAME_SIZE:
          if (value < DEFAULT_MAX_FRAME_BYTES || value > MAX_FRAME_BYTES_LIMIT) return this.#fail(PROTOCOL_ERROR, 'SETTINGS_MAX_FRAME_SIZE out of range');
          this.peerMaxFrameBytes = value;
          break;
        case SETTINGS_MAX_CONCURRENT_STREAMS:
          this.peerMaxConcurrentStreams = value;
          break;
        case SETTINGS_HEADER_TABLE_SIZE:
          if (value < this.#peerTableSize) this.#tableSizeUpdate = true;
          this.#peerTableSize = value;
          break;
        default:
          break;
      }
    }
    return true;
  }

  #fail(code: number, reason: string): false {
    this.protocolError(code, reason);
    return false;
  }

  #wakeWaiters(): void {
    const waiters = this.#waiters;
    if (waiters.length === 0) return;
    this.#waiters = [];
    for (const waiter of waiters) {
      if (this.sendWindow <= 0 || this.congested) {
        this.#waiters.push(waiter);
        continue;
      }
      waiter.sendMore();
    }
  }

  #onDrain(): void {
    this.congested = false;
    if (this.sendWindow > 0) this.#wakeWaiters();
  }

  #onClose(): void {
    this.#closed = true;
    this.#stopped = true;
    this.#waiters = [];
    const callback = this.#pingCallback;
    this.#pingCallback = undefined;
    callback?.(new Error('the connection closed'));
    this.connectionClosed();
  }
}
