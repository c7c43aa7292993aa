/**
 * HPACK (RFC 7541), the header compression of HTTP/2, for the gRPC connections Courier speaks itself.
 *
 * The decoder takes what nghttp2 (Node's http2, grpc-js, h2load), grpc-go and grpc-java send: every
 * representation, the dynamic table, Huffman-coded strings. It runs on every call, so it makes no
 * objects besides the strings it hands out, keeps the dynamic table in a ring of slots, and decodes
 * Huffman codes four bits at a time through a table built when the module loads.
 *
 * The encoder is deliberately simple: it uses the static table and plain literals, never the dynamic
 * table and never Huffman. What Courier sends (a response's status and content type, gRPC trailers) is a
 * few short fields, so compression would save a handful of bytes at the cost of state shared with the
 * peer; without it the encoder keeps nothing between blocks and the peer's SETTINGS_HEADER_TABLE_SIZE
 * never matters.
 */

/** Why a header block could not be decoded: the connection must be closed with COMPRESSION_ERROR. */
export class HpackError extends Error {}

export const DECODED = 0;
/**
 * The decoded list exceeded maxHeaderListBytes. Fields past the limit were not passed to `field`, but
 * the whole block was still decoded, so the dynamic table stays in step with the peer's.
 */
export const LIST_TOO_LARGE = 1;
/**
 * A field was malformed (RFC 9113 §8.2.1 and §8.3): its name was empty, had an uppercase letter or a
 * character that is not a token character, or it was a pseudo-header after a regular header, or its
 * value had NUL, CR or LF or began or ended with a space or tab. Such fields are not passed to `field`;
 * the rest of the block was still decoded (the table is in step), and the caller resets just the
 * stream. Takes precedence over LIST_TOO_LARGE when both happen.
 */
export const MALFORMED_FIELD = 2;
export type DecodeResult = typeof DECODED | typeof LIST_TOO_LARGE | typeof MALFORMED_FIELD;

export interface HpackDecoderOptions {
  /** SETTINGS_HEADER_TABLE_SIZE this side advertises: the most the peer may use for the dynamic table. Default 4096. */
  readonly maxTableSize?: number;
  /** Limit on the decoded header list: sum over fields of name length + value length + 32 (RFC 9113 SETTINGS_MAX_HEADER_LIST_SIZE accounting). Default 65536. */
  readonly maxHeaderListBytes?: number;
}

/** The dynamic table's size before either side's SETTINGS (RFC 9113 §6.5.2). */
const DEFAULT_TABLE_SIZE = 4096;
const DEFAULT_MAX_HEADER_LIST_BYTES = 65536;
/** What an entry costs in the table beyond its name and value octets (RFC 7541 §4.1). */
const ENTRY_OVERHEAD = 32;
/** Integers above this are refused: no index, length or table size of a sane peer comes near it. */
const MAX_INTEGER = 0x7fff_ffff;

/**
 * Node's Buffer methods under `toString('latin1', …)` and `write(…, 'latin1')` (on every Buffer, not in
 * its type definitions). `latin1Slice` also works on a plain Uint8Array when called on it.
 */
interface RawBuffer extends Buffer {
  latin1Slice: (this: Uint8Array, start: number, end: number) => string;
  latin1Write: (this: Buffer, text: string, offset: number, length: number) => number;
}
const latin1Slice = (Buffer.prototype as RawBuffer).latin1Slice;

// ---------------------------------------------------------------------------------------------------
// The static table (RFC 7541 Appendix A).

/** The static table's entries, index 1 first. */
const STATIC_TABLE: readonly (readonly [name: string, value: string])[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''],
  ['etag', ''], ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''],
  ['if-modified-since', ''], ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''],
  ['last-modified', ''], ['link', ''], ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''],
  ['proxy-authorization', ''], ['range', ''], ['referer', ''], ['refresh', ''], ['retry-after', ''],
  ['server', ''], ['set-cookie', ''], ['strict-transport-security', ''], ['transfer-encoding', ''],
  ['user-agent', ''], ['vary', ''], ['via', ''], ['www-authenticate', ''],
];
/** Names and values by HPACK index (0 is not an index). */
const STATIC_NAMES: readonly string[] = ['', ...STATIC_TABLE.map(([name]) => name)];
const STATIC_VALUES: readonly string[] = ['', ...STATIC_TABLE.map(([, value]) => value)];
/** Indexes 1 to 14 are the pseudo-headers (:authority, :method, :path, :scheme, :status). */
const LAST_STATIC_PSEUDO = 14;

/** For the encoder: a static name's first index, and the full index of each of its values. */
interface StaticName {
  readonly index: number;
  readonly values: Map<string, number>;
}
const STATIC_BY_NAME = new Map<string, StaticName>();
STATIC_TABLE.forEach(([name, value], i) => {
  let entry = STATIC_BY_NAME.get(name);
  if (entry === undefined) {
    entry = { index: i + 1, values: new Map() };
    STATIC_BY_NAME.set(name, entry);
  }
  entry.values.set(value, i + 1);
});
/** The last static index; dynamic entries follow it, newest first. */
const STATIC_COUNT = STATIC_NAMES.length - 1;
if (STATIC_COUNT !== 61) throw new Error(`the static table has ${STATIC_COUNT} entries, not 61`);

// ---------------------------------------------------------------------------------------------------
// Huffman code (RFC 7541 Appendix B).

/**
 * The length in bits of the Huffman code of each symbol, 0 to 255 and EOS (256), one base-32 digit per
 * symbol, 32 symbols a line. The code is canonical (codes are handed out in order of length, then
 * symbol), so the lengths are the whole code.
 */
const HUFFMAN_LENGTH_DIGITS =
  'dnsssssssoussussssssssusssssssss' + // 0x00-0x1f: control characters
  '6aacd68baa8b8666555666666678f6ca' + // 0x20-0x3f: space, punctuation, digits
  'd67777777777777777777777878djde6' + // 0x40-0x5f: @, uppercase letters, [\]^_
  'f56565666577666567655677777fbeds' + // 0x60-0x7f: `, lowercase letters, {|}~, DEL
  'kmkkmmmnmnnnnnonoomnonnnnlmnmnno' + // 0x80-0x9f
  'mlkmmnnlnmmolmnnllmlnmnnkmmmnmmn' + // 0xa0-0xbf
  'qqkjmnmpqqqrrqopjlqrrqrollqqsrrr' + // 0xc0-0xdf
  'koklmllnmmppooqnqrqqrrrrrsrrrrrq' + // 0xe0-0xff
  'u'; // EOS

const EOS = 256;
const MAX_CODE_LENGTH = 30;

function huffmanLengths(): Uint8Array {
  if (HUFFMAN_LENGTH_DIGITS.length !== EOS + 1) throw new Error('the Huffman table does not have 257 lengths');
  const lengths = new Uint8Array(EOS + 1);
  for (let sym = 0; sym <= EOS; sym++) lengths[sym] = parseInt(HUFFMAN_LENGTH_DIGITS.charAt(sym), 32);
  return lengths;
}

/** The canonical codes for `lengths`: within each length, consecutive codes in order of symbol. */
function huffmanCodes(lengths: Uint8Array): Uint32Array {
  const codes = new Uint32Array(lengths.length);
  let code = 0;
  for (let length = 1; length <= MAX_CODE_LENGTH; length++) {
    for (let sym = 0; sym < lengths.length; sym++) if (lengths[sym] === length) codes[sym] = code++;
    if (length < MAX_CODE_LENGTH) code *= 2;
  }
  // A complete code uses up every 30-bit pattern: the decoder never meets a bit string with no symbol.
  if (code !== 2 ** MAX_CODE_LENGTH) throw new Error('the Huffman code lengths do not make a complete code');
  return codes;
}

/** Decoder states: the 256 inner nodes of the code's tree (0 is the root), and DEAD after EOS. */
const DEAD = 256;
/**
 * Transitions, 16 per state (one per 4-bit input): the next state times 16 in bits 13 and up (so it is
 * the next row's offset), 1 in bit 8 when a symbol was completed, that symbol in bits 0-7. Four bits
 * complete at most one symbol, since no code is shorter than five.
 */
const HUFFMAN_STEPS = new Uint32Array((DEAD + 1) * 16);
/**
 * States a string may end in: the root, or a node reached from the root by one to seven 1 bits, the
 * only padding allowed (the leading bits of EOS, shorter than a byte).
 */
const HUFFMAN_ENDS = new Uint8Array(DEAD + 1);

function buildHuffmanDecoder(): void {
  const lengths = huffmanLengths();
  const codes = huffmanCodes(lengths);
  // The tree: children of inner node n at zero[n] and one[n]; a leaf is -1 - symbol; 0 is unset
  // (the root is nobody's child).
  const zero = new Int16Array(DEAD);
  const one = new Int16Array(DEAD);
  let nodes = 1;
  for (let sym = 0; sym <= EOS; sym++) {
    const length = lengths[sym] as number;
    const code = codes[sym] as number;
    let node = 0;
    for (let bit = length - 1; bit >= 0; bit--) {
      const children = (code >>> bit) & 1 ? one : zero;
      const child = children[node] as number;
      if (bit === 0) {
        if (child !== 0) throw new Error('Huffman codes overlap');
        children[node] = -1 - sym;
      } else if (child === 0) {
        if (nodes === DEAD) throw new Error('the Huffman tree has too many nodes');
        children[node] = nodes;
        node = nodes++;
      } else if (child < 0) {
        throw new Error('Huffman codes overlap');
      } else {
        node = child;
      }
    }
  }
  for (let state = 0; state < DEAD; state++) {
    for (let input = 0; input < 16; input++) {
      let node = state;
      let step = 0;
      for (let bit = 3; bit >= 0; bit--) {
        const child = ((input >>> bit) & 1 ? one[node] : zero[node]) as number;
        if (child >= 0) {
          node = child;
        } else if (child === -1 - EOS) {
          node = DEAD;
          break;
        } else {
          step = 0x100 | (-1 - child);
          node = 0;
        }
      }
      HUFFMAN_STEPS[state * 16 + input] = (node << 13) | (node === DEAD ? 0 : step);
    }
  }
  for (let input = 0; input < 16; input++) HUFFMAN_STEPS[DEAD * 16 + input] = DEAD << 13;
  let node = 0;
  HUFFMAN_ENDS[node] = 1;
  for (let padding = 1; padding <= 7; padding++) {
    node = one[node] as number;
    if (node <= 0) throw new Error('a Huffman code of all ones is shorter than eight bits');
    HUFFMAN_ENDS[node] = 1;
  }
}
buildHuffmanDecoder();

/**
 * Decodes the Huffman-coded `src[start, end)` into `out` (which must hold (end - start) * 8 / 5 + 1
 * bytes) and returns the number of bytes written.
 */
function huffmanDecode(src: Uint8Array, start: number, end: number, out: Uint8Array): number {
  let row = 0;
  let n = 0;
  for (let i = start; i < end; i++) {
    const byte = src[i] as number;
    // Writing the symbol byte unconditionally and counting it only when one was completed saves a branch.
    let step = HUFFMAN_STEPS[row | (byte >>> 4)] as number;
    out[n] = step;
    n += (step >>> 8) & 1;
    step = HUFFMAN_STEPS[(step >>> 9) | (byte & 0xf)] as number;
    out[n] = step;
    n += (step >>> 8) & 1;
    row = step >>> 9;
  }
  if (HUFFMAN_ENDS[row >>> 4] === 0) {
    throw new HpackError(row >>> 4 === DEAD ? 'EOS inside a Huffman-coded string' : 'invalid Huffman padding');
  }
  return n;
}

/** Where Huffman-coded strings are decoded before becoming JS strings; shared, as decoding is synchronous. */
let huffmanScratch: Buffer = Buffer.allocUnsafeSlow(1024);
/** Scratch space up to this size is kept for the next string; a larger need gets a one-off buffer. */
const SCRATCH_KEPT_BYTES = 64 * 1024;

function scratchFor(bytes: number): Buffer {
  if (bytes <= huffmanScratch.length) return huffmanScratch;
  if (bytes > SCRATCH_KEPT_BYTES) return Buffer.allocUnsafeSlow(bytes);
  huffmanScratch = Buffer.allocUnsafeSlow(Math.min(SCRATCH_KEPT_BYTES, Math.max(bytes, huffmanScratch.length * 2)));
  return huffmanScratch;
}

// ---------------------------------------------------------------------------------------------------
// Primitive types (RFC 7541 §5).

/** The position after the integer or string last read by `continuedInteger` or `readString`. */
let cursor = 0;

/**
 * The rest of an integer whose N-bit prefix was all ones (`prefixMax`, 2^N - 1), its continuation bytes
 * starting at `pos`. Sets `cursor` past them.
 */
function continuedInteger(block: Uint8Array, pos: number, end: number, prefixMax: number): number {
  let value = prefixMax;
  let scale = 1;
  for (;;) {
    if (pos >= end) throw new HpackError('integer runs past the end of the header block');
    const byte = block[pos++] as number;
    value += (byte & 0x7f) * scale;
    if (value > MAX_INTEGER) throw new HpackError('integer larger than 2^31 - 1');
    if (byte < 0x80) break;
    scale *= 128;
    // Five continuation bytes already hold 35 bits; a sixth could only add zeros or overflow.
    if (scale > 2 ** 28) throw new HpackError('integer larger than 2^31 - 1');
  }
  cursor = pos;
  return value;
}

/** The string literal at `pos` as a latin1 string (one char per octet). Sets `cursor` past it. */
function readString(block: Uint8Array, pos: number, end: number): string {
  if (pos >= end) throw new HpackError('string missing at the end of the header block');
  const first = block[pos++] as number;
  let length = first & 0x7f;
  if (length === 0x7f) {
    length = continuedInteger(block, pos, end, 0x7f);
    pos = cursor;
  }
  if (length > end - pos) throw new HpackError('string runs past the end of the header block');
  cursor = pos + length;
  if (first < 0x80) return latin1Slice.call(block, pos, pos + length);
  const out = scratchFor(((length * 8) / 5 + 1) | 0);
  const n = huffmanDecode(block, pos, pos + length, out);
  return (out as RawBuffer).latin1Slice(0, n);
}

// ---------------------------------------------------------------------------------------------------
// Field validation (RFC 9113 §8.2.1).

/** Flags of a decoded field, also kept with each dynamic table entry. */
const NAME_INVALID = 1;
const VALUE_INVALID = 2;
const PSEUDO = 4;
const INVALID = NAME_INVALID | VALUE_INVALID;

/** 1 for the characters allowed in a field name: lowercase token characters (RFC 9110 §5.6.2). */
const NAME_CHARS = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz") NAME_CHARS[c.charCodeAt(0)] = 1;

/** PSEUDO when `name` is a pseudo-header's, plus NAME_INVALID when it is not a valid name. */
function nameFlags(name: string): number {
  const length = name.length;
  let i = 0;
  let flags = 0;
  if (length > 0 && name.charCodeAt(0) === 0x3a) {
    flags = PSEUDO;
    i = 1;
  }
  if (i === length) return flags | NAME_INVALID;
  for (; i < length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 0x80 || NAME_CHARS[c] === 0) return flags | NAME_INVALID;
  }
  return flags;
}

function isSpaceOrTab(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/** VALUE_INVALID when `value` holds NUL, CR or LF, or begins or ends with a space or tab; else 0. */
function valueFlags(value: string): number {
  const length = value.length;
  if (length === 0) return 0;
  if (isSpaceOrTab(value.charCodeAt(0)) || isSpaceOrTab(value.charCodeAt(length - 1))) return VALUE_INVALID;
  for (let i = 0; i < length; i++) {
    const c = value.charCodeAt(i);
    if (c <= 0x0d && (c === 0 || c === 0x0a || c === 0x0d)) return VALUE_INVALID;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------------
// Decoder.

/** Reads a decoder's table size for the tests (set by the class's static block, which can see `#bytes`). */
let tableBytes: (decoder: HpackDecoder) => number;

/** Slots the dynamic table starts with; it doubles when full (an entry takes at least 32 octets of size). */
const INITIAL_SLOTS = 16;

export class HpackDecoder {
  /** The most a size update may set the table to. */
  readonly #maxTableSize: number;
  readonly #maxListBytes: number;
  /** The table's current maximum size, as the peer's last size update set it. */
  #capacity: number;
  /** The table's size: name octets + value octets + 32 over its entries. */
  #bytes = 0;
  /** The entries, in a ring of slots: the newest at `#newest`, older ones before it. */
  #names: string[] = new Array<string>(INITIAL_SLOTS).fill('');
  #values: string[] = new Array<string>(INITIAL_SLOTS).fill('');
  #flags = new Uint8Array(INITIAL_SLOTS);
  #newest = INITIAL_SLOTS - 1;
  #count = 0;

  static {
    tableBytes = (decoder) => decoder.#bytes;
  }

  constructor(options?: HpackDecoderOptions) {
    const maxTableSize = options?.maxTableSize ?? DEFAULT_TABLE_SIZE;
    const maxListBytes = options?.maxHeaderListBytes ?? DEFAULT_MAX_HEADER_LIST_BYTES;
    if (!Number.isSafeInteger(maxTableSize) || maxTableSize < 0) throw new RangeError(`invalid maxTableSize ${maxTableSize}`);
    if (!Number.isSafeInteger(maxListBytes) || maxListBytes < 0) throw new RangeError(`invalid maxHeaderListBytes ${maxListBytes}`);
    this.#maxTableSize = maxTableSize;
    this.#maxListBytes = maxListBytes;
    // The peer's encoder starts from the protocol's 4096 whatever this side advertises, and may send
    // blocks before it has read this side's SETTINGS; a smaller or larger size takes effect when its
    // size update comes.
    this.#capacity = DEFAULT_TABLE_SIZE;
  }

  /**
   * Decodes one complete header block (the concatenated HEADERS + CONTINUATION fragments) in
   * block[start, end), calling field(name, value) for each field in order.
   * Throws HpackError for any encoding error (bad index, integer overflow past 2^31 or past the block, string past the block, bad Huffman padding/EOS, a table size update larger than maxTableSize or not at the start of the block).
   *
   * Names and values are latin1 strings (one char per octet). When `field` throws, the block is left
   * half decoded and the table out of step with the peer's: the connection cannot go on.
   */
  decode(block: Uint8Array, start: number, end: number, field: (name: string, value: string) => void): DecodeResult {
    if (!(start >= 0 && start <= end && end <= block.length)) {
      throw new RangeError(`header block [${start}, ${end}) is outside the ${block.length}-byte buffer`);
    }
    let pos = start;
    let listBytes = 0;
    let result: DecodeResult = DECODED;
    /** A field has been decoded: size updates are no longer allowed. */
    let sawField = false;
    /** A regular (non-pseudo) field has been decoded: pseudo-headers are no longer allowed. */
    let sawRegular = false;
    while (pos < end) {
      const first = block[pos++] as number;
      let name: string;
      let value: string;
      let flags: number;
      if (first >= 0x80) {
        // Indexed field (RFC 7541 §6.1).
        let index = first & 0x7f;
        if (index === 0x7f) {
          index = continuedInteger(block, pos, end, 0x7f);
          pos = cursor;
        }
        if (index <= STATIC_COUNT) {
          if (index === 0) throw new HpackError('index 0');
          name = STATIC_NAMES[index] as string;
          value = STATIC_VALUES[index] as string;
          flags = index <= LAST_STATIC_PSEUDO ? PSEUDO : 0;
        } else {
          const slot = this.#slot(index);
          name = this.#names[slot] as string;
          value = this.#values[slot] as string;
          flags = this.#flags[slot] as number;
        }
      } else if (first >= 0x20 && first < 0x40) {
        // Dynamic table size update (RFC 7541 §6.3).
        if (sawField) throw new HpackError('dynamic table size update after a field');
        let size = first & 0x1f;
        if (size === 0x1f) {
          size = continuedInteger(block, pos, end, 0x1f);
          pos = cursor;
        }
        if (size > this.#maxTableSize) {
          throw new HpackError(`dynamic table size update to ${size}, above the ${this.#maxTableSize} allowed`);
        }
        this.#capacity = size;
        this.#evictTo(size);
        continue;
      } else {
        // Literal field with incremental indexing (01xxxxxx, RFC 7541 §6.2.1), without indexing
        // (0000xxxx, §6.2.2) or never indexed (0001xxxx, §6.2.3).
        const indexing = first >= 0x40;
        const prefixMax = indexing ? 0x3f : 0x0f;
        let index = first & prefixMax;
        if (index === prefixMax) {
          index = continuedInteger(block, pos, end, prefixMax);
          pos = cursor;
        }
        if (index === 0) {
          name = readString(block, pos, end);
          pos = cursor;
          flags = nameFlags(name);
        } else if (index <= STATIC_COUNT) {
          name = STATIC_NAMES[index] as string;
          flags = index <= LAST_STATIC_PSEUDO ? PSEUDO : 0;
        } else {
          const slot = this.#slot(index);
          name = this.#names[slot] as string;
          flags = (this.#flags[slot] as number) & ~VALUE_INVALID;
        }
        value = readString(block, pos, end);
        pos = cursor;
        flags |= valueFlags(value);
        if (indexing) this.#insert(name, value, flags);
      }
      sawField = true;
      if ((flags & PSEUDO) === 0) sawRegular = true;
      else if (sawRegular) flags |= NAME_INVALID;
      listBytes += name.length + value.length + ENTRY_OVERHEAD;
      if ((flags & INVALID) !== 0) result = MALFORMED_FIELD;
      else if (listBytes > this.#maxListBytes) {
        if (result === DECODED) result = LIST_TOO_LARGE;
      } else field(name, value);
    }
    return result;
  }

  /** The slot of the dynamic table entry at HPACK index `index` (above the static table). */
  #slot(index: number): number {
    const age = index - STATIC_COUNT - 1;
    if (age >= this.#count) throw new HpackError(`index ${index} is past the dynamic table's ${this.#count} entries`);
    return (this.#newest - age) & (this.#names.length - 1);
  }

  /** Adds an entry, evicting the oldest ones to make room (RFC 7541 §4.4). */
  #insert(name: string, value: string, flags: number): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    if (size > this.#capacity) {
      // An entry larger than the table empties it and is not added.
      this.#evictTo(0);
      return;
    }
    this.#evictTo(this.#capacity - size);
    if (this.#count === this.#names.length) this.#grow();
    const slot = (this.#newest + 1) & (this.#names.length - 1);
    this.#names[slot] = name;
    this.#values[slot] = value;
    this.#flags[slot] = flags;
    this.#newest = slot;
    this.#count++;
    this.#bytes += size;
  }

  /** Evicts the oldest entries until the table's size is at most `bytes`. */
  #evictTo(bytes: number): void {
    const names = this.#names;
    const values = this.#values;
    const mask = names.length - 1;
    while (this.#bytes > bytes) {
      const slot = (this.#newest - this.#count + 1) & mask;
      this.#bytes -= (names[slot] as string).length + (values[slot] as string).length + ENTRY_OVERHEAD;
      // Let go of the strings, so an evicted entry does not keep them alive.
      names[slot] = '';
      values[slot] = '';
      this.#count--;
    }
  }

  /** Doubles the ring, moving the entries to slots 0 (oldest) to count - 1 (newest). */
  #grow(): void {
    const oldNames = this.#names;
    const oldValues = this.#values;
    const oldFlags = this.#flags;
    const slots = oldNames.length * 2;
    const names = new Array<string>(slots).fill('');
    const values = new Array<string>(slots).fill('');
    const flags = new Uint8Array(slots);
    const mask = oldNames.length - 1;
    for (let i = 0; i < this.#count; i++) {
      const from = (this.#newest - this.#count + 1 + i) & mask;
      names[i] = oldNames[from] as string;
      values[i] = oldValues[from] as string;
      flags[i] = oldFlags[from] as number;
    }
    this.#names = names;
    this.#values = values;
    this.#flags = flags;
    this.#newest = this.#count - 1;
  }
}

// ---------------------------------------------------------------------------------------------------
// Encoder.

/** The size a fresh encoder's buffer starts with; it doubles when a block needs more. */
const INITIAL_ENCODER_BYTES = 256;
/** Strings up to this length are copied char by char, which beats a call into Node for short ones. */
const SHORT_STRING = 32;
/** The most bytes an integer takes here: a prefix byte and five continuation bytes hold 2^31. */
const MAX_INTEGER_BYTES = 6;

export class HpackEncoder {
  #buffer: Buffer = Buffer.allocUnsafeSlow(INITIAL_ENCODER_BYTES);
  #length = 0;

  /** Starts a new block, reusing an internal growable buffer. */
  begin(): void {
    this.#length = 0;
  }

  /**
   * Adds a field (name lowercase; name and value latin1/ASCII). Encoding: fully indexed from the static
   * table when it holds both name and value (e.g. ':status' '200' is the byte 0x88); otherwise
   * "literal without indexing" with the static table's name index when the name is in the static table,
   * else with a literal name. Never Huffman, never the dynamic table (so the peer's
   * SETTINGS_HEADER_TABLE_SIZE never matters and the encoder keeps no state between blocks).
   */
  add(name: string, value: string): void {
    const known = STATIC_BY_NAME.get(name);
    if (known !== undefined) {
      const full = known.values.get(value);
      if (full !== undefined) {
        // Every static index fits in the 7-bit prefix of an indexed field.
        this.#reserve(1);
        this.#buffer[this.#length++] = 0x80 | full;
        return;
      }
      this.#reserve(2 * MAX_INTEGER_BYTES + value.length);
      let pos = writeInteger(this.#buffer, this.#length, 0x00, 0x0f, known.index);
      pos = writeString(this.#buffer, pos, value);
      this.#length = pos;
      return;
    }
    this.#reserve(1 + 2 * MAX_INTEGER_BYTES + name.length + value.length);
    const buffer = this.#buffer;
    buffer[this.#length] = 0x00;
    let pos = writeString(buffer, this.#length + 1, name);
    pos = writeString(buffer, pos, value);
    this.#length = pos;
  }

  /** Ends the block and returns a new Buffer holding exactly its bytes (the caller may keep it). */
  end(): Buffer {
    const length = this.#length;
    const block = Buffer.allocUnsafe(length);
    const buffer = this.#buffer;
    if (length <= SHORT_STRING) for (let i = 0; i < length; i++) block[i] = buffer[i] as number;
    else buffer.copy(block, 0, 0, length);
    return block;
  }

  /** Makes room for `bytes` more bytes, doubling the buffer as often as needed. */
  #reserve(bytes: number): void {
    const needed = this.#length + bytes;
    if (needed <= this.#buffer.length) return;
    let size = this.#buffer.length * 2;
    while (size < needed) size *= 2;
    const buffer = Buffer.allocUnsafeSlow(size);
    this.#buffer.copy(buffer, 0, 0, this.#length);
    this.#buffer = buffer;
  }
}

/** Writes `value` as an integer with the prefix `prefixMax` (2^N - 1) in the byte `high | …`. */
function writeInteger(buffer: Buffer, pos: number, high: number, prefixMax: number, value: number): number {
  if (value < prefixMax) {
    buffer[pos] = high | value;
    return pos + 1;
  }
  buffer[pos++] = high | prefixMax;
  let rest = value - prefixMax;
  while (rest >= 0x80) {
    buffer[pos++] = (rest & 0x7f) | 0x80;
    rest = Math.floor(rest / 0x80);
  }
  buffer[pos] = rest;
  return pos + 1;
}

/** Writes `text` as a plain (not Huffman-coded) string literal: its length, then its latin1 octets. */
function writeString(buffer: Buffer, pos: number, text: string): number {
  const length = text.length;
  pos = writeInteger(buffer, pos, 0x00, 0x7f, length);
  if (length <= SHORT_STRING) {
    for (let i = 0; i < length; i++) buffer[pos + i] = text.charCodeAt(i);
  } else {
    (buffer as RawBuffer).latin1Write(text, pos, length);
  }
  return pos + length;
}

export const forTests = {
  /** The dynamic table's size in octets (name + value + 32 per entry). */
  tableBytes: (decoder: HpackDecoder): number => tableBytes(decoder),
  /** The Huffman code's length in bits for each symbol, 0 to 255 and EOS (256). */
  huffmanLengths: (): Uint8Array => huffmanLengths(),
  /**
   * The octets of a Huffman-coded string, as latin1. Through a decoder, octets a field may not hold
   * (NUL, CR, LF) would only make the field malformed; this reaches every octet.
   */
  huffmanDecode: (coded: Uint8Array): string => {
    const out = Buffer.allocUnsafe(((coded.length * 8) / 5 + 1) | 0);
    return latin1Slice.call(out, 0, huffmanDecode(coded, 0, coded.length, out));
  },
};
