import { GrpcStatus } from '../errors/index.js';
import type { CallStatus } from './status.js';

/**
 * gRPC message framing, PROTOCOL-HTTP2.md "Length-Prefixed-Message": a 1-byte Compressed-Flag, a
 * 4-byte big-endian Message-Length, then the message. DATA frame boundaries have no relation to
 * message boundaries (spec, "Data Frames"), so a reader must reassemble across chunks.
 */
export const MESSAGE_HEAD_BYTES = 5;

/** gRPC's customary default for both the send and the receive limit (grpc-go, grpc-java, grpc-js). */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** The largest length a 4-byte Message-Length can declare. */
export const MAX_WIRE_MESSAGE_BYTES = 0xffff_ffff;

const EMPTY = Buffer.alloc(0);

/**
 * The 5-byte prefix of an uncompressed message of `length` bytes. Written as a separate buffer ahead
 * of the payload (instead of copying the payload behind a prefix) so message bytes are never copied
 * on the way out; `allocUnsafe` of 5 bytes is served from Node's shared pool.
 */
export function messageHead(length: number): Buffer {
  const head = Buffer.allocUnsafe(MESSAGE_HEAD_BYTES);
  head[0] = 0;
  head.writeUInt32BE(length, 1);
  return head;
}

/** Sum of the byte lengths of `parts` (the Message-Length of a message sent in pieces). */
export function totalLength(parts: readonly Uint8Array[]): number {
  let total = 0;
  for (const part of parts) total += part.byteLength;
  return total;
}

/**
 * Splits the DATA bytes of one stream into messages; a pull parser (`push` chunks, `read` messages)
 * so that a paused consumer simply stops pulling and the rest stays here, without callbacks.
 *
 * Copying: a message that lies within one chunk is returned as a `subarray` of it (no copy); a message
 * spread over several chunks is copied once into a buffer of exactly its declared length. The declared
 * length is checked against the receive limit before anything is allocated, so an oversized message is
 * refused without being buffered (`RESOURCE_EXHAUSTED`, as grpc-go words it). Courier never negotiates
 * compression, so a set Compressed-Flag is a protocol violation (`INTERNAL`; the spec: "If the
 * Message-Encoding header is omitted then the Compressed-Flag must be 0").
 */
export class MessageDecoder {
  readonly #maxMessageBytes: number;
  #chunk: Buffer | undefined;
  #offset = 0;
  /** Chunks pushed while an earlier one is still being read (rare: only when the reader pauses). */
  #queue: Buffer[] | undefined;
  /** Bytes of the 5-byte head gathered so far when it is split across chunks. */
  #headFilled = 0;
  #flag = 0;
  #length = 0;
  /** The message being reassembled from several chunks. */
  #body: Buffer | undefined;
  #bodyFilled = 0;
  #failure: CallStatus | undefined;

  constructor(maxMessageBytes: number) {
    this.#maxMessageBytes = maxMessageBytes;
  }

  /** Why parsing stopped, once a violation was found; `read` returns nothing more after that. */
  get failure(): CallStatus | undefined {
    return this.#failure;
  }

  /**
   * True when the decoder holds no bytes: everything pushed has been returned as messages. Checked
   * when the stream ends, after `read` returned undefined: false then means the peer ended the stream
   * inside a message.
   */
  get atBoundary(): boolean {
    return this.#headFilled === 0 && this.#body === undefined && !this.#hasUnread();
  }

  /** Hands over one DATA chunk; the decoder keeps a reference to it (no copy). */
  push(chunk: Buffer): void {
    if (this.#failure !== undefined || chunk.length === 0) return;
    if (this.#chunk === undefined) {
      this.#chunk = chunk;
      this.#offset = 0;
    } else if (this.#queue === undefined) {
      this.#queue = [chunk];
    } else {
      this.#queue.push(chunk);
    }
  }

  /** The next complete message, or undefined when more bytes are needed (or after a failure). */
  read(): Buffer | undefined {
    if (this.#failure !== undefined) return undefined;
    for (;;) {
      const chunk = this.#chunk;
      if (chunk === undefined) return undefined;
      let at = this.#offset;
      const available = chunk.length - at;
      if (available === 0) {
        this.#nextChunk();
        continue;
      }
      if (this.#body !== undefined) {
        // Continue a message that spans chunks.
        const body = this.#body;
        const n = Math.min(body.length - this.#bodyFilled, available);
        chunk.copy(body, this.#bodyFilled, at, at + n);
        this.#bodyFilled += n;
        this.#offset = at + n;
        if (this.#bodyFilled < body.length) continue;
        this.#body = undefined;
        this.#bodyFilled = 0;
        return body;
      }
      if (this.#headFilled === 0 && available >= MESSAGE_HEAD_BYTES) {
        // Fast path: the head is whole in this chunk, and usually the message too.
        const flag = chunk[at] as number;
        const length = chunk.readUInt32BE(at + 1);
        if (!this.#accept(flag, length)) return undefined;
        at += MESSAGE_HEAD_BYTES;
        if (chunk.length - at >= length) {
          this.#offset = at + length;
          return chunk.subarray(at, at + length);
        }
        this.#offset = at;
        this.#startBody(length);
        continue;
      }
      // The head itself is split across chunks: gather it byte by byte.
      while (this.#headFilled < MESSAGE_HEAD_BYTES && at < chunk.length) {
        const byte = chunk[at++] as number;
        if (this.#headFilled === 0) this.#flag = byte;
        else this.#length = this.#length * 256 + byte;
        this.#headFilled++;
      }
      this.#offset = at;
      if (this.#headFilled < MESSAGE_HEAD_BYTES) continue;
      const length = this.#length;
      this.#headFilled = 0;
      this.#length = 0;
      if (!this.#accept(this.#flag, length)) return undefined;
      if (length === 0) return EMPTY;
      if (chunk.length - at >= length) {
        this.#offset = at + length;
        return chunk.subarray(at, at + length);
      }
      this.#startBody(length);
    }
  }

  #startBody(length: number): void {
    this.#body = Buffer.allocUnsafe(length);
    this.#bodyFilled = 0;
  }

  #nextChunk(): void {
    const next = this.#queue?.shift();
    this.#chunk = next;
    this.#offset = 0;
  }

  #hasUnread(): boolean {
    if (this.#chunk !== undefined && this.#offset < this.#chunk.length) return true;
    return this.#queue !== undefined && this.#queue.length > 0;
  }

  #accept(flag: number, length: number): boolean {
    if (flag === 1) {
      this.#fail(GrpcStatus.INTERNAL, 'received a compressed message, but no message compression was negotiated (grpc-encoding is identity)');
      return false;
    }
    if (flag !== 0) {
      this.#fail(GrpcStatus.INTERNAL, `received a message with an invalid compressed flag ${flag}`);
      return false;
    }
    if (length > this.#maxMessageBytes) {
      this.#fail(GrpcStatus.RESOURCE_EXHAUSTED, `received message larger than max (${length} vs. ${this.#maxMessageBytes})`);
      return false;
    }
    return true;
  }

  #fail(code: GrpcStatus, message: string): void {
    this.#failure = { code, message };
    this.#chunk = undefined;
    this.#queue = undefined;
    this.#body = undefined;
  }
}
