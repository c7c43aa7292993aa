import type { Metadata, ReceivedMetadata } from '../grpc/metadata.js';
import { readName, utf8At } from '../util/wire-names.js';

/**
 * The wire format of `courier-lane/1`, the Courier-to-Courier lane (docs/decisions/internal-lane.md):
 * after a 16-byte magic each way, a connection carries frames of a 10-byte head (payload length u32,
 * stream id u32, type u8, flags u8, all big-endian) and a payload. Calls are multiplexed by stream id,
 * chosen by the client, odd and increasing.
 */
export const LANE_PROTOCOL = 'courier-lane/1';
/** Sent first by each end of a plaintext or TLS connection; a peer that answers anything else is not a Courier lane. */
export const LANE_MAGIC: Buffer = Buffer.from('COURIER-LANE/1\r\n', 'latin1');
export const FRAME_HEAD_BYTES = 10;

// Frame types.
/** Connection settings, the first frame each way: pairs of (id u16, value u32). */
export const SETTINGS = 0;
/** Opens a call: remaining deadline u32 ms (0xffffffff: none), path (u16 length, UTF-8), metadata block. */
export const OPEN = 1;
/** One message, or one piece of it (FLAG_MORE: it continues in the stream's next MESSAGE frame). */
export const MESSAGE = 2;
/** The client sends no more messages. */
export const HALF_CLOSE = 3;
/** The server's response headers: a metadata block. */
export const HEADERS = 4;
/** The server ends the call: code u32, message (u32 length, UTF-8), metadata block. */
export const TRAILERS = 5;
/** Either end abandons the call: code u32 (HTTP/2 error codes: CANCEL, REFUSED_STREAM, ...). */
export const RESET = 6;
/** Flow-control credit for a stream: increment u32 of message bytes. */
export const WINDOW = 7;
/** Keepalive: 8 opaque bytes, echoed with FLAG_ACK. */
export const PING = 8;
/** Graceful shutdown: last stream id processed u32, code u32, reason (UTF-8, the rest). */
export const GOAWAY = 9;

// Flags.
export const FLAG_MORE = 0x1;
/** On OPEN or MESSAGE: the client half-closes after this frame (saves a HALF_CLOSE frame). */
export const FLAG_END = 0x2;
/**
 * On the first MESSAGE frame of a message sent in several frames: the payload starts with the
 * message's whole length (u32), so the receiver can refuse one over its limit before buffering any
 * of it, and gather it into one buffer of the right size.
 */
export const FLAG_TOTAL = 0x4;
export const FLAG_ACK = 0x1;

// Settings ids.
export const SETTING_MAX_CONCURRENT_STREAMS = 1;
export const SETTING_INITIAL_WINDOW = 2;
export const SETTING_MAX_FRAME_BYTES = 3;

// Reset codes: HTTP/2's error codes, so a reset classifies exactly as over HTTP/2.
export const NO_ERROR = 0x0;
export const PROTOCOL_ERROR = 0x1;
export const INTERNAL_ERROR = 0x2;
export const FLOW_CONTROL_ERROR = 0x3;
export const FRAME_SIZE_ERROR = 0x6;
export const REFUSED_STREAM = 0x7;
export const CANCEL = 0x8;

/** The largest frame payload an end accepts unless its SETTINGS say otherwise. */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;
/** Messages are sent in frames of at most this many bytes, so large messages interleave with other calls. */
export const MESSAGE_FRAME_BYTES = 256 * 1024;
/** Message bytes a stream may have in flight before the receiver grants more. */
export const DEFAULT_INITIAL_WINDOW = 512 * 1024;
export const NO_TIMEOUT = 0xffff_ffff;

/** Payloads up to this size are copied into the batch's buffer; larger ones are written as they are. */
const COPY_LIMIT = 4096;
const SLAB_BYTES = 64 * 1024;

function utf8Bound(text: string): number {
  return text.length * 3;
}

/** An upper bound of the encoded size of a metadata block. */
export function metadataBound(metadata: Metadata | undefined): number {
  let bound = 2;
  if (metadata === undefined) return bound;
  for (const name of Object.keys(metadata)) {
    const value = metadata[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const item of value) bound += 6 + utf8Bound(name) + utf8Bound(String(item));
    else bound += 6 + utf8Bound(name) + utf8Bound(String(value));
  }
  return bound;
}

/** An upper bound of the payload size of an OPEN frame (checked against the peer's frame limit). */
export function openFrameBound(path: string, metadata: Metadata | undefined): number {
  return 6 + utf8Bound(path) + metadataBound(metadata);
}

/**
 * Frames to be written to one connection, gathered until the end of the tick and then written at
 * once. Heads and small payloads are written into a reusable buffer and copied out in one piece per
 * write, so a whole call (OPEN and its message) is usually one buffer and one syscall; large payloads
 * are passed on as they are, never copied.
 */
export class FrameBatch {
  #slab: Buffer = Buffer.allocUnsafeSlow(SLAB_BYTES);
  #used = 0;
  #pieces: Uint8Array[] = [];
  #bytes = 0;

  /** Bytes gathered and not yet taken. */
  get size(): number {
    return this.#bytes + this.#used;
  }

  /** The gathered pieces, in order; the batch is empty afterwards. */
  take(): Uint8Array[] {
    this.#seal();
    const pieces = this.#pieces;
    this.#pieces = [];
    this.#bytes = 0;
    return pieces;
  }

  /** A frame with a fixed-size payload written by the caller at the returned offset of {@link slab}. */
  head(type: number, flags: number, stream: number, length: number): number {
    const at = this.#reserve(FRAME_HEAD_BYTES + length);
    this.#writeHead(at, type, flags, stream, length);
    this.#used = at + FRAME_HEAD_BYTES + length;
    return at + FRAME_HEAD_BYTES;
  }

  /** The buffer `head` returned an offset into (valid until the next call on the batch). */
  get slab(): Buffer {
    return this.#slab;
  }

  /** A frame whose payload is `parts`, consecutive (small ones are copied, large ones referenced). */
  frame(type: number, flags: number, stream: number, parts: readonly Uint8Array[], length: number): void {
    const at = this.#reserve(FRAME_HEAD_BYTES);
    this.#writeHead(at, type, flags, stream, length);
    this.#used = at + FRAME_HEAD_BYTES;
    for (const part of parts) this.#payload(part);
  }

  /** A frame whose payload is the slice [start, end) of `bytes`. */
  slice(type: number, flags: number, stream: number, bytes: Uint8Array, start: number, end: number): void {
    const at = this.#reserve(FRAME_HEAD_BYTES);
    this.#writeHead(at, type, flags, stream, end - start);
    this.#used = at + FRAME_HEAD_BYTES;
    this.#payload(start === 0 && end === bytes.byteLength ? bytes : bytes.subarray(start, end));
  }

  open(stream: number, flags: number, timeoutMs: number, path: string, metadata: Metadata | undefined): void {
    const at = this.#reserve(FRAME_HEAD_BYTES + 6 + utf8Bound(path) + metadataBound(metadata));
    const slab = this.#slab;
    let pos = at + FRAME_HEAD_BYTES;
    slab.writeUInt32BE(timeoutMs, pos);
    pos = this.#string16(path, pos + 4);
    pos = this.#metadata(metadata, pos);
    this.#writeHead(at, OPEN, flags, stream, pos - at - FRAME_HEAD_BYTES);
    this.#used = pos;
  }

  headers(stream: number, metadata: Metadata | undefined): void {
    const at = this.#reserve(FRAME_HEAD_BYTES + metadataBound(metadata));
    const pos = this.#metadata(metadata, at + FRAME_HEAD_BYTES);
    this.#writeHead(at, HEADERS, 0, stream, pos - at - FRAME_HEAD_BYTES);
    this.#used = pos;
  }

  trailers(stream: number, code: number, message: string, metadata: Metadata | undefined): void {
    const at = this.#reserve(FRAME_HEAD_BYTES + 8 + utf8Bound(message) + metadataBound(metadata));
    const slab = this.#slab;
    let pos = at + FRAME_HEAD_BYTES;
    slab.writeUInt32BE(code, pos);
    const written = slab.write(message, pos + 8, 'utf8');
    slab.writeUInt32BE(written, pos + 4);
    pos = this.#metadata(metadata, pos + 8 + written);
    this.#writeHead(at, TRAILERS, 0, stream, pos - at - FRAME_HEAD_BYTES);
    this.#used = pos;
  }

  u32(type: number, flags: number, stream: number, value: number): void {
    const at = this.head(type, flags, stream, 4);
    this.#slab.writeUInt32BE(value, at);
  }

  goaway(lastStreamId: number, code: number, reason: string): void {
    const at = this.#reserve(FRAME_HEAD_BYTES + 8 + utf8Bound(reason));
    const slab = this.#slab;
    slab.writeUInt32BE(lastStreamId, at + FRAME_HEAD_BYTES);
    slab.writeUInt32BE(code, at + FRAME_HEAD_BYTES + 4);
    const written = slab.write(reason, at + FRAME_HEAD_BYTES + 8, 'utf8');
    this.#writeHead(at, GOAWAY, 0, 0, 8 + written);
    this.#used = at + FRAME_HEAD_BYTES + 8 + written;
  }

  settings(values: readonly (readonly [number, number])[]): void {
    const at = this.head(SETTINGS, 0, 0, values.length * 6);
    let pos = at;
    for (const [id, value] of values) {
      this.#slab.writeUInt16BE(id, pos);
      this.#slab.writeUInt32BE(value, pos + 2);
      pos += 6;
    }
  }

  /** Raw bytes (the magic). */
  raw(bytes: Uint8Array): void {
    this.#payload(bytes);
  }

  #writeHead(at: number, type: number, flags: number, stream: number, length: number): void {
    const slab = this.#slab;
    slab.writeUInt32BE(length, at);
    slab.writeUInt32BE(stream, at + 4);
    slab[at + 8] = type;
    slab[at + 9] = flags;
  }

  #string16(text: string, pos: number): number {
    const written = this.#slab.write(text, pos + 2, 'utf8');
    this.#slab.writeUInt16BE(written, pos);
    return pos + 2 + written;
  }

  #metadata(metadata: Metadata | undefined, start: number): number {
    const slab = this.#slab;
    let count = 0;
    let pos = start + 2;
    if (metadata !== undefined) {
      for (const name of Object.keys(metadata)) {
        const value = metadata[name];
        if (value === undefined) continue;
        const key = name.toLowerCase();
        if (Array.isArray(value)) {
          for (const item of value) {
            pos = this.#entry(key, String(item), pos);
            count++;
          }
        } else {
          pos = this.#entry(key, String(value), pos);
          count++;
        }
      }
    }
    slab.writeUInt16BE(count, start);
    return pos;
  }

  #entry(name: string, value: string, pos: number): number {
    const slab = this.#slab;
    pos = this.#string16(name, pos);
    const written = slab.write(value, pos + 4, 'utf8');
    slab.writeUInt32BE(written, pos);
    return pos + 4 + written;
  }

  #payload(bytes: Uint8Array): void {
    const length = bytes.byteLength;
    if (length === 0) return;
    if (length <= COPY_LIMIT) {
      const at = this.#reserve(length);
      this.#slab.set(bytes, at);
      this.#used = at + length;
      return;
    }
    this.#seal();
    this.#pieces.push(bytes);
    this.#bytes += length;
  }

  /** Room for `length` more bytes in the slab; returns where they start. */
  #reserve(length: number): number {
    if (this.#slab.length - this.#used >= length) return this.#used;
    this.#seal();
    if (length > this.#slab.length) this.#slab = Buffer.allocUnsafeSlow(Math.max(length, SLAB_BYTES));
    return 0;
  }

  /** Copies what the slab holds out as one piece (pooled for small sizes) so the slab can be reused. */
  #seal(): void {
    const used = this.#used;
    if (used === 0) return;
    const piece = Buffer.allocUnsafe(used);
    this.#slab.copy(piece, 0, 0, used);
    this.#pieces.push(piece);
    this.#bytes += used;
    this.#used = 0;
  }
}

/** What a {@link FrameParser} hands its frames to. */
export interface FrameHandler {
  /** One whole frame; `payload` may be a view of a received chunk. Return false to stop parsing. */
  frame(type: number, flags: number, stream: number, payload: Buffer): boolean;
  /** The peer announced a frame over the limit: the connection is unusable. */
  oversized(length: number): void;
}

/**
 * Splits received bytes into frames. A payload within one chunk is passed as a view of it (no copy);
 * one spread over several chunks is gathered once into a buffer of its declared length, after the
 * length was checked against the limit.
 */
export class FrameParser {
  readonly #handler: FrameHandler;
  readonly #maxFrameBytes: number;
  readonly #head = Buffer.allocUnsafe(FRAME_HEAD_BYTES);
  #headFilled = 0;
  #payload: Buffer | undefined;
  #payloadFilled = 0;
  #type = 0;
  #flags = 0;
  #stream = 0;
  #stopped = false;

  constructor(handler: FrameHandler, maxFrameBytes: number) {
    this.#handler = handler;
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** Stops delivering frames for good (the connection is closing). */
  stop(): void {
    this.#stopped = true;
  }

  push(chunk: Buffer): void {
    let offset = 0;
    const end = chunk.length;
    while (offset < end && !this.#stopped) {
      const payload = this.#payload;
      if (payload !== undefined) {
        const take = Math.min(payload.length - this.#payloadFilled, end - offset);
        chunk.copy(payload, this.#payloadFilled, offset, offset + take);
        this.#payloadFilled += take;
        offset += take;
        if (this.#payloadFilled < payload.length) return;
        this.#payload = undefined;
        if (!this.#handler.frame(this.#type, this.#flags, this.#stream, payload)) this.#stopped = true;
        continue;
      }
      let length: number;
      if (this.#headFilled === 0 && end - offset >= FRAME_HEAD_BYTES) {
        length = chunk.readUInt32BE(offset);
        this.#stream = chunk.readUInt32BE(offset + 4);
        this.#type = chunk[offset + 8] as number;
        this.#flags = chunk[offset + 9] as number;
        offset += FRAME_HEAD_BYTES;
      } else {
        const take = Math.min(FRAME_HEAD_BYTES - this.#headFilled, end - offset);
        chunk.copy(this.#head, this.#headFilled, offset, offset + take);
        this.#headFilled += take;
        offset += take;
        if (this.#headFilled < FRAME_HEAD_BYTES) return;
        this.#headFilled = 0;
        const head = this.#head;
        length = head.readUInt32BE(0);
        this.#stream = head.readUInt32BE(4);
        this.#type = head[8] as number;
        this.#flags = head[9] as number;
      }
      if (length > this.#maxFrameBytes) {
        this.#stopped = true;
        this.#handler.oversized(length);
        return;
      }
      if (end - offset >= length) {
        const view = chunk.subarray(offset, offset + length);
        offset += length;
        if (!this.#handler.frame(this.#type, this.#flags, this.#stream, view)) this.#stopped = true;
        continue;
      }
      this.#payload = Buffer.allocUnsafe(length);
      this.#payloadFilled = 0;
    }
  }
}

/** Reads the fields of frame payloads; a malformed payload throws a RangeError (a protocol error). */
export class PayloadReader {
  #buffer: Buffer;
  #pos: number;

  constructor(buffer: Buffer, pos = 0) {
    this.#buffer = buffer;
    this.#pos = pos;
  }

  get position(): number {
    return this.#pos;
  }

  u16(): number {
    const value = this.#buffer.readUInt16BE(this.#pos);
    this.#pos += 2;
    return value;
  }

  u32(): number {
    const value = this.#buffer.readUInt32BE(this.#pos);
    this.#pos += 4;
    return value;
  }

  string(length: number): string {
    return utf8At(this.#buffer, this.#skip(length), length);
  }

  /** A metadata name: a string, read as `readName` reads names (see util/wire-names.ts). */
  name(length: number): string {
    return readName(this.#buffer, this.#skip(length), length);
  }

  /** Moves past the next `length` bytes, which must lie inside the frame; returns where they start. */
  #skip(length: number): number {
    const start = this.#pos;
    if (start + length > this.#buffer.length) throw new RangeError('a string runs past the end of its frame');
    this.#pos = start + length;
    return start;
  }

  rest(): string {
    return this.string(this.#buffer.length - this.#pos);
  }

  /** A metadata block: repeated names become arrays, as in the HTTP/2 model (`ReceivedMetadata`). */
  metadata(into: ReceivedMetadata): ReceivedMetadata {
    const count = this.u16();
    const out = into as Record<string, string | string[]>;
    for (let i = 0; i < count; i++) {
      const name = this.name(this.u16());
      const value = this.string(this.u32());
      const existing = out[name];
      if (existing === undefined) out[name] = value;
      else if (typeof existing === 'string') out[name] = [existing, value];
      else existing.push(value);
    }
    return into;
  }
}

/** An empty metadata object of the shape received metadata has. */
export function emptyMetadata(): ReceivedMetadata {
  return Object.create(null) as ReceivedMetadata;
}
