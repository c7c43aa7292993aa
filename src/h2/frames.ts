/**
 * HTTP/2 (RFC 9113) frame constants and the output side of a connection: frames are gathered into one
 * growing region and written once per turn of the event loop, with large payloads referenced, never
 * copied.
 */

export const CLIENT_PREFACE: Buffer = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
export const FRAME_HEAD_BYTES = 9;

// Frame types (RFC 9113 §6).
export const DATA = 0x0;
export const HEADERS = 0x1;
export const PRIORITY = 0x2;
export const RST_STREAM = 0x3;
export const SETTINGS = 0x4;
export const PUSH_PROMISE = 0x5;
export const PING = 0x6;
export const GOAWAY = 0x7;
export const WINDOW_UPDATE = 0x8;
export const CONTINUATION = 0x9;

// Flags.
export const FLAG_END_STREAM = 0x1;
export const FLAG_ACK = 0x1;
export const FLAG_END_HEADERS = 0x4;
export const FLAG_PADDED = 0x8;
export const FLAG_PRIORITY = 0x20;

// Settings identifiers (RFC 9113 §6.5.2).
export const SETTINGS_HEADER_TABLE_SIZE = 0x1;
export const SETTINGS_ENABLE_PUSH = 0x2;
export const SETTINGS_MAX_CONCURRENT_STREAMS = 0x3;
export const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
export const SETTINGS_MAX_FRAME_SIZE = 0x5;
export const SETTINGS_MAX_HEADER_LIST_SIZE = 0x6;

// Error codes (RFC 9113 §7).
export const NO_ERROR = 0x0;
export const PROTOCOL_ERROR = 0x1;
export const INTERNAL_ERROR = 0x2;
export const FLOW_CONTROL_ERROR = 0x3;
export const STREAM_CLOSED = 0x5;
export const FRAME_SIZE_ERROR = 0x6;
export const REFUSED_STREAM = 0x7;
export const CANCEL = 0x8;
export const COMPRESSION_ERROR = 0x9;
export const ENHANCE_YOUR_CALM = 0xb;

/** The protocol's defaults, before a peer's SETTINGS say otherwise. */
export const DEFAULT_WINDOW = 65_535;
export const DEFAULT_MAX_FRAME_BYTES = 16_384;
export const MAX_WINDOW = 0x7fff_ffff;
export const MAX_FRAME_BYTES_LIMIT = 0xff_ffff;

/** Payloads at least this large are referenced by the output, smaller ones copied into its region. */
const REFERENCE_BYTES = 1024;
/** Size of a fresh output region. */
const REGION_BYTES = 16 * 1024;
/** Gathered output up to this size leaves as one contiguous buffer; larger as a writev of its pieces. */
const CONCAT_BYTES = 32 * 1024;

/**
 * The frames one connection has to write. Frame heads and small payloads are appended to a region;
 * a large payload closes the region's current piece and is referenced as its own piece.
 */
export class FrameOutput {
  #region: Buffer = Buffer.allocUnsafe(REGION_BYTES);
  /** Where the current piece of the region starts, and where the next byte goes. */
  #start = 0;
  #pos = 0;
  #pieces: Buffer[] = [];
  #size = 0;

  /** Bytes gathered and not yet taken. */
  get size(): number {
    return this.#size;
  }

  /** Everything gathered, as pieces to write in order; the output is empty afterwards. */
  take(): Buffer[] {
    this.#seal();
    const pieces = this.#pieces;
    this.#pieces = [];
    this.#size = 0;
    if (pieces.length > 1 && this.#sizeOf(pieces) <= CONCAT_BYTES) return [Buffer.concat(pieces)];
    return pieces;
  }

  /** A frame head. */
  head(type: number, flags: number, stream: number, length: number): void {
    const region = this.#reserve(FRAME_HEAD_BYTES);
    const at = this.#pos;
    region[at] = length >>> 16;
    region[at + 1] = (length >>> 8) & 0xff;
    region[at + 2] = length & 0xff;
    region[at + 3] = type;
    region[at + 4] = flags;
    region.writeUInt32BE(stream, at + 5);
    this.#pos = at + FRAME_HEAD_BYTES;
    this.#size += FRAME_HEAD_BYTES;
  }

  /** A payload, or part of one, after its head: copied when small, referenced otherwise. */
  bytes(bytes: Uint8Array, start = 0, end = bytes.byteLength): void {
    const length = end - start;
    if (length === 0) return;
    this.#size += length;
    if (length >= REFERENCE_BYTES) {
      this.#seal();
      const view = Buffer.from(bytes.buffer, bytes.byteOffset + start, length);
      this.#pieces.push(view);
      return;
    }
    const region = this.#reserve(length);
    region.set(bytes.subarray(start, end), this.#pos);
    this.#pos += length;
  }

  u32(value: number): void {
    const region = this.#reserve(4);
    region.writeUInt32BE(value >>> 0, this.#pos);
    this.#pos += 4;
    this.#size += 4;
  }

  /** A whole frame with a 4-byte payload (RST_STREAM, WINDOW_UPDATE). */
  frameU32(type: number, stream: number, value: number): void {
    this.head(type, 0, stream, 4);
    this.u32(value);
  }

  /** A whole frame whose payload is `payload`. */
  frame(type: number, flags: number, stream: number, payload: Uint8Array): void {
    this.head(type, flags, stream, payload.byteLength);
    this.bytes(payload);
  }

  /**
   * A header block as HEADERS and, when it is larger than `maxFrameBytes`, CONTINUATION frames
   * (END_HEADERS on the last).
   */
  headerBlock(stream: number, block: Buffer, endStream: boolean, maxFrameBytes: number): void {
    const first = Math.min(block.length, maxFrameBytes);
    const flags = (endStream ? FLAG_END_STREAM : 0) | (first === block.length ? FLAG_END_HEADERS : 0);
    this.head(HEADERS, flags, stream, first);
    this.bytes(block, 0, first);
    for (let at = first; at < block.length; at += maxFrameBytes) {
      const end = Math.min(block.length, at + maxFrameBytes);
      this.head(CONTINUATION, end === block.length ? FLAG_END_HEADERS : 0, stream, end - at);
      this.bytes(block, at, end);
    }
  }

  #sizeOf(pieces: readonly Buffer[]): number {
    let size = 0;
    for (const piece of pieces) size += piece.length;
    return size;
  }

  /** Room for `length` more bytes in the region, starting a new region when it is full. */
  #reserve(length: number): Buffer {
    if (this.#pos + length <= this.#region.length) return this.#region;
    this.#seal();
    this.#region = Buffer.allocUnsafe(Math.max(REGION_BYTES, length));
    this.#start = 0;
    this.#pos = 0;
    return this.#region;
  }

  /** Ends the region's current piece (it stays valid: later bytes go after it). */
  #seal(): void {
    if (this.#pos === this.#start) return;
    this.#pieces.push(this.#region.subarray(this.#start, this.#pos));
    this.#start = this.#pos;
    if (this.#region.length - this.#pos < 256) {
      this.#region = Buffer.allocUnsafe(REGION_BYTES);
      this.#start = 0;
      this.#pos = 0;
    }
  }
}
