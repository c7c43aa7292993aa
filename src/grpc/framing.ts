import { GrpcStatus } from '../errors/index.js';

/**
 * gRPC message framing (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md,
 * "Length-Prefixed-Message"): a 1-byte compressed flag, a 4-byte big-endian length, then the
 * message. Courier never compresses, so the flag it writes is always 0.
 */
export const MESSAGE_HEAD_BYTES = 5;

/** The 5-byte prefix of an uncompressed message of `length` bytes. */
export function messageHead(length: number): Buffer {
  const head = Buffer.allocUnsafe(MESSAGE_HEAD_BYTES);
  head[0] = 0;
  head.writeUInt32BE(length, 1);
  return head;
}

/** Why a stream of DATA bytes could not be parsed into messages. */
export interface FramingError {
  readonly code: GrpcStatus;
  readonly message: string;
}

/**
 * Splits DATA chunks into messages. A message that lies within one chunk is returned as a view of
 * it (no copy); only a message spread over several chunks is copied once into its own buffer. The
 * declared length is checked against the limit before anything is buffered.
 */
export class MessageParser {
  readonly #maxMessageBytes: number;
  #head = Buffer.alloc(MESSAGE_HEAD_BYTES);
  #headFilled = 0;
  #body: Buffer | undefined;
  #bodyFilled = 0;

  constructor(maxMessageBytes: number) {
    this.#maxMessageBytes = maxMessageBytes;
  }

  /** True when no partial message is pending (a stream may end here). */
  get idle(): boolean {
    return this.#headFilled === 0 && this.#body === undefined;
  }

  /**
   * Feeds one chunk; calls `onMessage` for every complete message in it. Returns an error (and stops)
   * when a message is compressed or too large.
   */
  push(chunk: Buffer, onMessage: (message: Buffer) => void): FramingError | undefined {
    let at = 0;
    while (at < chunk.length) {
      if (this.#body === undefined) {
        // Fast path: a whole message inside the chunk.
        if (this.#headFilled === 0 && chunk.length - at >= MESSAGE_HEAD_BYTES) {
          const flag = chunk[at] as number;
          const length = chunk.readUInt32BE(at + 1);
          const error = this.#check(flag, length);
          if (error !== undefined) return error;
          if (chunk.length - at - MESSAGE_HEAD_BYTES >= length) {
            onMessage(chunk.subarray(at + MESSAGE_HEAD_BYTES, at + MESSAGE_HEAD_BYTES + length));
            at += MESSAGE_HEAD_BYTES + length;
            continue;
          }
          this.#body = Buffer.allocUnsafe(length);
          this.#bodyFilled = 0;
          at += MESSAGE_HEAD_BYTES;
          continue;
        }
        const take = Math.min(MESSAGE_HEAD_BYTES - this.#headFilled, chunk.length - at);
        chunk.copy(this.#head, this.#headFilled, at, at + take);
        this.#headFilled += take;
        at += take;
        if (this.#headFilled < MESSAGE_HEAD_BYTES) break;
        const length = this.#head.readUInt32BE(1);
        const error = this.#check(this.#head[0] as number, length);
        if (error !== undefined) return error;
        this.#headFilled = 0;
        if (length === 0) {
          onMessage(Buffer.alloc(0));
          continue;
        }
        this.#body = Buffer.allocUnsafe(length);
        this.#bodyFilled = 0;
        continue;
      }
      const body = this.#body;
      const take = Math.min(body.length - this.#bodyFilled, chunk.length - at);
      chunk.copy(body, this.#bodyFilled, at, at + take);
      this.#bodyFilled += take;
      at += take;
      if (this.#bodyFilled === body.length) {
        this.#body = undefined;
        onMessage(body);
      }
    }
    return undefined;
  }

  #check(flag: number, length: number): FramingError | undefined {
    if (flag !== 0) {
      return { code: GrpcStatus.INTERNAL, message: 'received a compressed message, but no compression was negotiated' };
    }
    if (length > this.#maxMessageBytes) {
      return { code: GrpcStatus.RESOURCE_EXHAUSTED, message: `received message larger than max (${length} vs. ${this.#maxMessageBytes})` };
    }
    return undefined;
  }
}

/** Small messages are sent as one buffer (one DATA frame); large ones as prefix + parts, without copying. */
const COALESCE_BELOW_BYTES = 16 * 1024;

/** The buffers to write for a message made of `parts`. */
export function framedParts(parts: readonly Uint8Array[]): Uint8Array[] {
  let length = 0;
  for (const p of parts) length += p.length;
  const head = messageHead(length);
  if (length < COALESCE_BELOW_BYTES) return [Buffer.concat([head, ...parts], length + MESSAGE_HEAD_BYTES)];
  return [head, ...parts];
}

export function framedLength(parts: readonly Uint8Array[]): number {
  let length = 0;
  for (const p of parts) length += p.length;
  return length;
}
