import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import {
  DECODED,
  HpackDecoder,
  HpackEncoder,
  HpackError,
  LIST_TOO_LARGE,
  MALFORMED_FIELD,
  forTests,
} from './hpack.js';
import type { DecodeResult } from './hpack.js';
import { frame } from './testing/raw-frames.js';

type Field = readonly [string, string];

function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

function decodeBlock(decoder: HpackDecoder, block: Uint8Array): { result: DecodeResult; fields: Field[] } {
  const fields: Field[] = [];
  const result = decoder.decode(block, 0, block.length, (name, value) => fields.push([name, value]));
  return { result, fields };
}

function assertThrowsHpack(decoder: HpackDecoder, block: Uint8Array, message?: RegExp): void {
  assert.throws(
    () => decoder.decode(block, 0, block.length, () => {}),
    (err: unknown) => err instanceof HpackError && (message === undefined || message.test(err.message)),
  );
}

// ---------------------------------------------------------------------------------------------------
// Small encoders for building blocks by hand (plain literals, any integer).

function integer(high: number, prefixBits: number, value: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [high | value];
  const bytes = [high | max];
  let rest = value - max;
  while (rest >= 0x80) {
    bytes.push((rest & 0x7f) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  bytes.push(rest);
  return bytes;
}

function plainString(text: string): number[] {
  return [...integer(0x00, 7, text.length), ...Buffer.from(text, 'latin1')];
}

function huffmanString(text: string): number[] {
  const coded = huffmanEncode(Buffer.from(text, 'latin1'));
  return [...integer(0x80, 7, coded.length), ...coded];
}

/** A literal field with a literal name: `kind` 0x40 (incremental indexing), 0x00 (without), 0x10 (never). */
function literal(kind: 0x40 | 0x00 | 0x10, name: string, value: string): number[] {
  return [kind, ...plainString(name), ...plainString(value)];
}

// ---------------------------------------------------------------------------------------------------
// The Huffman code, restated here independently of the module: the symbols of each code length, as
// RFC 7541 Appendix B lists them.

const SYMBOLS_BY_LENGTH: Readonly<Record<number, readonly number[]>> = {
  5: [48, 49, 50, 97, 99, 101, 105, 111, 115, 116],
  6: [32, 37, 45, 46, 47, 51, 52, 53, 54, 55, 56, 57, 61, 65, 95, 98, 100, 102, 103, 104, 108, 109, 110, 112, 114, 117],
  7: [58, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 89, 106, 107, 113, 118, 119, 120, 121, 122],
  8: [38, 42, 44, 59, 88, 90],
  10: [33, 34, 40, 41, 63],
  11: [39, 43, 124],
  12: [35, 62],
  13: [0, 36, 64, 91, 93, 126],
  14: [94, 125],
  15: [60, 96, 123],
  19: [92, 195, 208],
  20: [128, 130, 131, 162, 184, 194, 224, 226],
  21: [153, 161, 167, 172, 176, 177, 179, 209, 216, 217, 227, 229, 230],
  22: [129, 132, 133, 134, 136, 146, 154, 156, 160, 163, 164, 169, 170, 173, 178, 181, 185, 186, 187, 189, 190, 196, 198, 228, 232, 233],
  23: [1, 135, 137, 138, 139, 140, 141, 143, 147, 149, 150, 151, 152, 155, 157, 158, 165, 166, 168, 174, 175, 180, 182, 183, 188, 191, 197, 231, 239],
  24: [9, 142, 144, 145, 148, 159, 171, 206, 215, 225, 236, 237],
  25: [199, 207, 234, 235],
  26: [192, 193, 200, 201, 202, 205, 210, 213, 218, 219, 238, 240, 242, 243, 255],
  27: [203, 204, 211, 212, 214, 221, 222, 223, 241, 244, 245, 246, 247, 248, 250, 251, 252, 253, 254],
  28: [2, 3, 4, 5, 6, 7, 8, 11, 12, 14, 15, 16, 17, 18, 19, 20, 21, 23, 24, 25, 26, 27, 28, 29, 30, 31, 127, 220, 249],
  30: [10, 13, 22, 256],
};

const LENGTHS: number[] = new Array<number>(257).fill(0);
for (const [length, symbols] of Object.entries(SYMBOLS_BY_LENGTH)) for (const sym of symbols) LENGTHS[sym] = Number(length);

/** Canonical codes: by length, then symbol, each the previous plus one, shifted left at each new length. */
const CODES: number[] = (() => {
  const codes = new Array<number>(257).fill(0);
  const order = [...LENGTHS.keys()].sort((a, b) => (LENGTHS[a] ?? 0) - (LENGTHS[b] ?? 0) || a - b);
  let code = 0;
  let previous = 0;
  for (const sym of order) {
    const length = LENGTHS[sym] ?? 0;
    if (previous !== 0) code = (code + 1) * 2 ** (length - previous);
    codes[sym] = code;
    previous = length;
  }
  return codes;
})();

function huffmanEncode(bytes: Uint8Array): Buffer {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const byte of bytes) {
    const length = LENGTHS[byte] ?? 0;
    const code = CODES[byte] ?? 0;
    for (let bit = length - 1; bit >= 0; bit--) {
      acc = (acc << 1) | (Math.floor(code / 2 ** bit) & 1);
      if (++bits === 8) {
        out.push(acc);
        acc = 0;
        bits = 0;
      }
    }
  }
  // Padding: the leading bits of EOS (all ones).
  if (bits > 0) out.push(((acc << (8 - bits)) | ((1 << (8 - bits)) - 1)) & 0xff);
  return Buffer.from(out);
}

// ---------------------------------------------------------------------------------------------------
// RFC 7541 Appendix C.

test('C.2: literal fields of each kind and an indexed field', () => {
  let decoder = new HpackDecoder();
  // C.2.1: literal with indexing, new name.
  let { result, fields } = decodeBlock(decoder, hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'));
  assert.equal(result, DECODED);
  assert.deepEqual(fields, [['custom-key', 'custom-header']]);
  assert.equal(forTests.tableBytes(decoder), 55);

  // C.2.2: literal without indexing, indexed name.
  decoder = new HpackDecoder();
  ({ result, fields } = decodeBlock(decoder, hex('040c 2f73 616d 706c 652f 7061 7468')));
  assert.equal(result, DECODED);
  assert.deepEqual(fields, [[':path', '/sample/path']]);
  assert.equal(forTests.tableBytes(decoder), 0);

  // C.2.3: literal never indexed, new name.
  decoder = new HpackDecoder();
  ({ result, fields } = decodeBlock(decoder, hex('1008 7061 7373 776f 7264 0673 6563 7265 74')));
  assert.equal(result, DECODED);
  assert.deepEqual(fields, [['password', 'secret']]);
  assert.equal(forTests.tableBytes(decoder), 0);

  // C.2.4: indexed field.
  decoder = new HpackDecoder();
  ({ result, fields } = decodeBlock(decoder, hex('82')));
  assert.equal(result, DECODED);
  assert.deepEqual(fields, [[':method', 'GET']]);
  assert.equal(forTests.tableBytes(decoder), 0);
});

const C3_C4_FIELDS: readonly (readonly Field[])[] = [
  [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']],
  [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache']],
  [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']],
];
const C3_C4_TABLE_BYTES = [57, 110, 164];

function checkSequence(decoder: HpackDecoder, blocks: readonly Buffer[], fields: readonly (readonly Field[])[], sizes: readonly number[]): void {
  blocks.forEach((block, i) => {
    const decoded = decodeBlock(decoder, block);
    assert.equal(decoded.result, DECODED, `block ${i + 1}`);
    assert.deepEqual(decoded.fields, fields[i], `block ${i + 1}`);
    assert.equal(forTests.tableBytes(decoder), sizes[i], `table size after block ${i + 1}`);
  });
}

test('C.3: three requests without Huffman on one decoder', () => {
  checkSequence(
    new HpackDecoder(),
    [
      hex('8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d'),
      hex('8286 84be 5808 6e6f 2d63 6163 6865'),
      hex('8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65'),
    ],
    C3_C4_FIELDS,
    C3_C4_TABLE_BYTES,
  );
});

test('C.4: three requests with Huffman on one decoder', () => {
  checkSequence(
    new HpackDecoder(),
    [
      hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff'),
      hex('8286 84be 5886 a8eb 1064 9cbf'),
      hex('8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf'),
    ],
    C3_C4_FIELDS,
    C3_C4_TABLE_BYTES,
  );
});

const C5_C6_FIELDS: readonly (readonly Field[])[] = [
  [[':status', '302'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'], ['location', 'https://www.example.com']],
  [[':status', '307'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'], ['location', 'https://www.example.com']],
  [
    [':status', '200'],
    ['cache-control', 'private'],
    ['date', 'Mon, 21 Oct 2013 20:13:22 GMT'],
    ['location', 'https://www.example.com'],
    ['content-encoding', 'gzip'],
    ['set-cookie', 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1'],
  ],
];
const C5_C6_TABLE_BYTES = [222, 222, 215];
/**
 * The examples' encoder uses a 256-octet table. The decoder's table starts at the protocol's 4096 until
 * the peer says otherwise, so the first block starts with the size update such an encoder sends.
 */
const UPDATE_TO_256 = '3fe101';

test('C.5: three responses without Huffman, 256-octet table with evictions', () => {
  checkSequence(
    new HpackDecoder({ maxTableSize: 256 }),
    [
      hex(
        UPDATE_TO_256 +
          '4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
      ),
      hex('4803 3330 37c1 c0bf'),
      hex(
        '88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31',
      ),
    ],
    C5_C6_FIELDS,
    C5_C6_TABLE_BYTES,
  );
});

test('C.6: three responses with Huffman, 256-octet table with evictions', () => {
  checkSequence(
    new HpackDecoder({ maxTableSize: 256 }),
    [
      hex(
        UPDATE_TO_256 +
          '4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3',
      ),
      hex('4883 640e ffc1 c0bf'),
      hex(
        '88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07',
      ),
    ],
    C5_C6_FIELDS,
    C5_C6_TABLE_BYTES,
  );
});

test('static table: spot entries decode, and the encoder sends every entry as its one-byte index', () => {
  const spots: readonly (readonly [number, string, string])[] = [
    [1, ':authority', ''],
    [3, ':method', 'POST'],
    [5, ':path', '/index.html'],
    [7, ':scheme', 'https'],
    [14, ':status', '500'],
    [15, 'accept-charset', ''],
    [16, 'accept-encoding', 'gzip, deflate'],
    [19, 'accept', ''],
    [20, 'access-control-allow-origin', ''],
    [31, 'content-type', ''],
    [32, 'cookie', ''],
    [55, 'set-cookie', ''],
    [58, 'user-agent', ''],
    [61, 'www-authenticate', ''],
  ];
  for (const [index, name, value] of spots) {
    assert.deepEqual(decodeBlock(new HpackDecoder(), Buffer.from([0x80 | index])).fields, [[name, value]], `index ${index}`);
  }
  const encoder = new HpackEncoder();
  for (let index = 1; index <= 61; index++) {
    const [field] = decodeBlock(new HpackDecoder(), Buffer.from([0x80 | index])).fields;
    assert.ok(field !== undefined);
    encoder.begin();
    encoder.add(field[0], field[1]);
    assert.deepEqual([...encoder.end()], [0x80 | index], `${field[0]}: ${field[1]}`);
  }
  assertThrowsHpack(new HpackDecoder(), hex('be'), /index 62/);
});

// ---------------------------------------------------------------------------------------------------
// Huffman.

test('Huffman: the code lengths match the RFC and the canonical codes match known rows', () => {
  assert.deepEqual([...forTests.huffmanLengths()], LENGTHS);
  const rows: readonly (readonly [number, number, number])[] = [
    [0, 0x1ff8, 13],
    [1, 0x7fffd8, 23],
    [2, 0xfffffe2, 28],
    [9, 0xffffea, 24],
    [10, 0x3ffffffc, 30],
    [32, 0x14, 6],
    [48, 0x0, 5],
    [97, 0x3, 5],
    [256, 0x3fffffff, 30],
  ];
  for (const [sym, code, length] of rows) {
    assert.equal(LENGTHS[sym], length, `length of ${sym}`);
    assert.equal(CODES[sym], code, `code of ${sym}`);
  }
});

test('Huffman: every octet round-trips, alone and in one string', () => {
  for (let byte = 0; byte < 256; byte++) {
    const text = String.fromCharCode(byte);
    assert.equal(forTests.huffmanDecode(huffmanEncode(Buffer.from([byte]))), text, `octet ${byte}`);
    const triple = String.fromCharCode(byte, 255 - byte, byte);
    assert.equal(forTests.huffmanDecode(huffmanEncode(Buffer.from(triple, 'latin1'))), triple, `octets around ${byte}`);
  }
  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  assert.equal(forTests.huffmanDecode(huffmanEncode(all)), all.toString('latin1'));
  assert.equal(forTests.huffmanDecode(new Uint8Array(0)), '');

  // Through a decoder: every octet a field value may hold, as one Huffman-coded value.
  const allowed = String.fromCharCode(...Array.from({ length: 256 }, (_, i) => i).filter((i) => i !== 0 && i !== 10 && i !== 13));
  const value = `<${allowed}>`;
  const decoder = new HpackDecoder();
  const block = Buffer.from([0x40, ...plainString('x-all'), ...huffmanString(value)]);
  assert.deepEqual(decodeBlock(decoder, block), { result: DECODED, fields: [['x-all', value]] });
  assert.deepEqual(decodeBlock(decoder, hex('be')), { result: DECODED, fields: [['x-all', value]] });
});

test('Huffman: bad padding and EOS are rejected', () => {
  // 'a' is 00011; padded with 111 it is 0x1f.
  const decoder = new HpackDecoder();
  assert.deepEqual(decodeBlock(decoder, Buffer.from([0x00, ...plainString('x'), 0x81, 0x1f])), { result: DECODED, fields: [['x', 'a']] });
  // Padding of 11 bits: a whole byte of ones after the code.
  assertThrowsHpack(decoder, Buffer.from([0x00, ...plainString('x'), 0x82, 0x1f, 0xff]), /padding/);
  // '&' is 8 bits (0xf8): a whole byte of ones after it is 8 bits of padding, one too many.
  assert.equal(forTests.huffmanDecode(Buffer.from([0xf8])), '&');
  assert.throws(() => forTests.huffmanDecode(Buffer.from([0xf8, 0xff])), HpackError);
  // Padding with a zero bit.
  assertThrowsHpack(decoder, Buffer.from([0x00, ...plainString('x'), 0x81, 0x1e]), /padding/);
  // Padding of zeros only.
  assertThrowsHpack(decoder, Buffer.from([0x00, ...plainString('x'), 0x81, 0x18]), /padding/);
  // EOS (30 ones) after 'a', then five ones of padding.
  assertThrowsHpack(decoder, Buffer.from([0x00, ...plainString('x'), 0x85, 0x1f, 0xff, 0xff, 0xff, 0xff]), /EOS/);
  // EOS alone, then two ones.
  assertThrowsHpack(decoder, Buffer.from([0x00, ...plainString('x'), 0x84, 0xff, 0xff, 0xff, 0xff]), /EOS/);
  assert.throws(() => forTests.huffmanDecode(Buffer.from([0xff, 0xff, 0xff, 0xff])), HpackError);
  // A Huffman-coded name.
  assert.deepEqual(decodeBlock(decoder, Buffer.from([0x00, ...huffmanString('x-name'), ...plainString('v')])), {
    result: DECODED,
    fields: [['x-name', 'v']],
  });
});

// ---------------------------------------------------------------------------------------------------
// Integers, indexes, the dynamic table.

test('errors: index 0, an index past the tables, integers past 2^31 - 1 or the block, strings past the block', () => {
  const decoder = new HpackDecoder();
  assertThrowsHpack(decoder, hex('80'), /index 0/);
  assertThrowsHpack(decoder, hex('be'), /index 62/);
  // 127 + 128 = 255, with a continuation byte.
  assertThrowsHpack(decoder, hex('ff80 01'), /index 255/);
  // Literal with an indexed name past the tables.
  assertThrowsHpack(decoder, Buffer.from([0x7e, ...plainString('v')]), /index 62/);
  assertThrowsHpack(decoder, hex('ffff ffff ff0f'), /2\^31/);
  // 2^31 exactly: 127 + (2^31 - 127) in four 7-bit groups and one more.
  assertThrowsHpack(decoder, Buffer.from(integer(0x80, 7, 2 ** 31)), /2\^31/);
  // Redundant continuation bytes beyond the five that can hold 2^31.
  assertThrowsHpack(decoder, hex('ff80 8080 8080 00'), /2\^31/);
  assertThrowsHpack(decoder, hex('ff'), /past the end/);
  assertThrowsHpack(decoder, hex('ff80'), /past the end/);
  // A name of 5 octets with 2 in the block; a value missing; a value's length running past.
  assertThrowsHpack(decoder, hex('0005 6162'), /past the end/);
  assertThrowsHpack(decoder, hex('0001 61'), /missing/);
  assertThrowsHpack(decoder, hex('0001 6103 6162'), /past the end/);
  assertThrowsHpack(decoder, hex('0001 617f'), /past the end/);
  // The largest integer allowed is read (it then fails as an index, not as an integer).
  assertThrowsHpack(decoder, Buffer.from(integer(0x80, 7, 2 ** 31 - 1)), /index 2147483647/);
  assert.throws(() => decoder.decode(hex('82'), 0, 2, () => {}), RangeError);
});

test('a block may be a slice of a larger buffer', () => {
  const decoder = new HpackDecoder();
  const buffer = hex('ffff 8286 ffff');
  const fields: Field[] = [];
  assert.equal(decoder.decode(buffer, 2, 4, (name, value) => fields.push([name, value])), DECODED);
  assert.deepEqual(fields, [[':method', 'GET'], [':scheme', 'http']]);
  // A plain Uint8Array, not a Buffer.
  const plain = new Uint8Array([0x00, ...plainString('x-k'), ...plainString('v')]);
  assert.deepEqual(decodeBlock(decoder, plain), { result: DECODED, fields: [['x-k', 'v']] });
});

test('errors: a size update above maxTableSize or after a field', () => {
  const decoder = new HpackDecoder();
  // 4096 is allowed, 4097 is not.
  assert.deepEqual(decodeBlock(decoder, hex('3fe11f 82')), { result: DECODED, fields: [[':method', 'GET']] });
  assertThrowsHpack(decoder, hex('3fe21f'), /above/);
  assertThrowsHpack(decoder, hex('8220'), /after a field/);
  assertThrowsHpack(decoder, hex('3fe101 82 3fe101'), /after a field/);
  // Two updates at the start (a shrink then a grow) are allowed.
  assert.deepEqual(decodeBlock(decoder, hex('20 3fe101 82')), { result: DECODED, fields: [[':method', 'GET']] });

  const small = new HpackDecoder({ maxTableSize: 256 });
  assertThrowsHpack(small, hex('3fe201'), /above the 256/);
  assert.equal(decodeBlock(small, hex('3fe101')).result, DECODED);
});

test('the dynamic table starts at 4096 octets until the peer updates it, and an update to 0 empties it', () => {
  // The peer may send blocks before it has read this side's SETTINGS: its table is 4096 until its update.
  const decoder = new HpackDecoder({ maxTableSize: 256 });
  const big = 'v'.repeat(1000);
  assert.equal(decodeBlock(decoder, Buffer.from(literal(0x40, 'x-big', big))).result, DECODED);
  assert.equal(forTests.tableBytes(decoder), 5 + 1000 + 32);
  assert.deepEqual(decodeBlock(decoder, hex('be')).fields, [['x-big', big]]);
  // The update to 256 evicts it.
  assert.equal(decodeBlock(decoder, hex(UPDATE_TO_256)).result, DECODED);
  assert.equal(forTests.tableBytes(decoder), 0);
  assertThrowsHpack(decoder, hex('be'), /index 62/);

  const other = new HpackDecoder();
  for (const block of ['4001 6101 31', '4001 6201 32']) decodeBlock(other, hex(block));
  assert.equal(forTests.tableBytes(other), 68);
  assert.deepEqual(decodeBlock(other, hex('20')), { result: DECODED, fields: [] });
  assert.equal(forTests.tableBytes(other), 0);
  assertThrowsHpack(other, hex('be'), /index 62/);
  // With a table of 0, an insertion adds nothing; the field is still decoded.
  assert.deepEqual(decodeBlock(other, hex('4001 6101 31')), { result: DECODED, fields: [['a', '1']] });
  assert.equal(forTests.tableBytes(other), 0);
});

test('dynamic table: newest first, evictions by size, growth past its first slots, an entry larger than the table', () => {
  const decoder = new HpackDecoder();
  // Entries of 1 + 3 + 32 = 36 octets: 113 fit in 4096; 300 insertions wrap the ring many times.
  for (let i = 0; i < 300; i++) {
    const value = String(i).padStart(3, '0');
    assert.deepEqual(decodeBlock(decoder, Buffer.from(literal(0x40, 'n', value))).fields, [['n', value]]);
    const count = Math.min(i + 1, 113);
    assert.equal(forTests.tableBytes(decoder), count * 36);
    if (i % 37 === 0 || i === 299) {
      for (const age of new Set([0, Math.min(1, count - 1), Math.floor(count / 2), count - 1])) {
        const block = Buffer.from(integer(0x80, 7, 62 + age));
        assert.deepEqual(decodeBlock(decoder, block).fields, [['n', String(i - age).padStart(3, '0')]], `age ${age} after ${i}`);
      }
      assertThrowsHpack(decoder, Buffer.from(integer(0x80, 7, 62 + count)), /past the dynamic table/);
    }
  }
  // An indexed name from the dynamic table, with a new value, evicting the oldest.
  assert.deepEqual(decodeBlock(decoder, Buffer.from([0x7e, ...plainString('new')])).fields, [['n', 'new']]);
  assert.deepEqual(decodeBlock(decoder, hex('be bf')).fields, [['n', 'new'], ['n', '299']]);
  // An entry exactly the table's size fits, alone; one octet more empties the table and is not added.
  const fits = 'f'.repeat(4096 - 32 - 6);
  assert.equal(decodeBlock(decoder, Buffer.from(literal(0x40, 'x-fits', fits))).result, DECODED);
  assert.equal(forTests.tableBytes(decoder), 4096);
  assert.deepEqual(decodeBlock(decoder, hex('be')).fields, [['x-fits', fits]]);
  assertThrowsHpack(decoder, hex('bf'), /index 63/);
  assert.deepEqual(decodeBlock(decoder, Buffer.from(literal(0x40, 'x-fits', `${fits}!`))), { result: DECODED, fields: [['x-fits', `${fits}!`]] });
  assert.equal(forTests.tableBytes(decoder), 0);
  assertThrowsHpack(decoder, hex('be'), /index 62/);
  assert.equal(decodeBlock(decoder, Buffer.from(literal(0x40, 'n', 'v'))).result, DECODED);
  assert.equal(decodeBlock(decoder, Buffer.from(literal(0x40, 'x-huge', 'h'.repeat(5000)))).result, DECODED);
  assert.equal(forTests.tableBytes(decoder), 0);
});

// ---------------------------------------------------------------------------------------------------
// Malformed fields and the header list limit.

test('an uppercase name makes the block MALFORMED_FIELD; later fields are decoded and the table stays in step', () => {
  const decoder = new HpackDecoder();
  const first = Buffer.from([...literal(0x40, 'X-Upper', 'u'), ...literal(0x40, 'x-after', 'a'), 0x90]);
  assert.deepEqual(decodeBlock(decoder, first), {
    result: MALFORMED_FIELD,
    fields: [['x-after', 'a'], ['accept-encoding', 'gzip, deflate']],
  });
  assert.equal(forTests.tableBytes(decoder), 7 + 1 + 32 + (7 + 1 + 32));
  // The entry added after the malformed field is at 62, the malformed one at 63.
  assert.deepEqual(decodeBlock(decoder, hex('be')), { result: DECODED, fields: [['x-after', 'a']] });
  // The malformed entry stays malformed when referred to, by index or by name.
  assert.deepEqual(decodeBlock(decoder, hex('bf')), { result: MALFORMED_FIELD, fields: [] });
  assert.deepEqual(decodeBlock(decoder, Buffer.from([0x0f, 0x30, ...plainString('v')])), { result: MALFORMED_FIELD, fields: [] });
});

test('malformed fields: bad name characters, pseudo-header order, bad values', () => {
  const malformed: readonly (readonly [string, number[]])[] = [
    ['empty name', literal(0x00, '', 'v')],
    ['space in name', literal(0x00, 'x y', 'v')],
    ['colon inside a name', literal(0x00, 'x:y', 'v')],
    ['lone colon', literal(0x00, ':', 'v')],
    ['non-token character', literal(0x00, 'x(y)', 'v')],
    ['octet above 0x7f in name', literal(0x00, 'x\u00e9', 'v')],
    ['NUL in value', literal(0x00, 'x', 'a\u0000b')],
    ['CR in value', literal(0x00, 'x', 'a\rb')],
    ['LF in value', literal(0x00, 'x', 'a\nb')],
    ['leading space', literal(0x00, 'x', ' a')],
    ['trailing tab', literal(0x00, 'x', 'a\t')],
    ['pseudo-header after a regular one', [0x90, 0x82]],
    ['the last static pseudo-header (:status 500) after a regular one', [0x90, 0x8e]],
    ['literal pseudo-header after a regular one', [0x90, ...literal(0x00, ':x-pseudo', 'v')]],
    ['static-name pseudo-header after a regular one', [0x90, 0x04, ...plainString('/p')]],
    ['NUL in a static name literal', [0x0f, 0x10, ...plainString('a\u0000')]],
  ];
  const acceptEncoding: Field = ['accept-encoding', 'gzip, deflate'];
  for (const [what, bytes] of malformed) {
    const { result, fields } = decodeBlock(new HpackDecoder(), Buffer.from([...bytes, 0x90]));
    assert.equal(result, MALFORMED_FIELD, what);
    // The malformed field is not passed on; the fields around it are.
    assert.deepEqual(fields, bytes[0] === 0x90 ? [acceptEncoding, acceptEncoding] : [acceptEncoding], what);
  }
  const fine: readonly (readonly [string, number[]])[] = [
    ['token punctuation in name', literal(0x00, "!#$%&'*+-.^_`|~09az", 'v')],
    ['pseudo-headers first', [0x82, ...literal(0x00, ':x-pseudo', 'v'), 0x90]],
    ['inner space and tab, empty value', [...literal(0x00, 'x', 'a \tb'), ...literal(0x00, 'y', '')]],
    ['latin1 value', literal(0x00, 'x', 'caf\u00e9\u0001\u007f')],
  ];
  for (const [what, bytes] of fine) assert.equal(decodeBlock(new HpackDecoder(), Buffer.from(bytes)).result, DECODED, what);
});

test('LIST_TOO_LARGE: fields past the limit are not passed on, the block is still decoded', () => {
  const decoder = new HpackDecoder({ maxHeaderListBytes: 100 });
  const value = 'v'.repeat(30);
  // 3 + 30 + 32 = 65 each: the second goes past 100.
  const block = Buffer.from([...literal(0x00, 'x-a', value), ...literal(0x00, 'x-b', value), ...literal(0x40, 'x-c', value)]);
  assert.deepEqual(decodeBlock(decoder, block), { result: LIST_TOO_LARGE, fields: [['x-a', value]] });
  // The field past the limit was still added to the table; each block's list is counted afresh.
  assert.equal(forTests.tableBytes(decoder), 65);
  assert.deepEqual(decodeBlock(decoder, hex('be')), { result: DECODED, fields: [['x-c', value]] });
  // Exactly at the limit is fine.
  const exact = new HpackDecoder({ maxHeaderListBytes: 65 });
  assert.equal(decodeBlock(exact, Buffer.from(literal(0x00, 'x-a', value))).result, DECODED);
  // A malformed field wins over the size.
  const both = Buffer.from([...literal(0x00, 'x-a', value), ...literal(0x00, 'x-b', value), ...literal(0x00, 'X', 'v')]);
  assert.equal(decodeBlock(decoder, both).result, MALFORMED_FIELD);
});

// ---------------------------------------------------------------------------------------------------
// Encoder.

test('encoder: static indexes, static-name literals, new-name literals, multi-byte integers', () => {
  const encoder = new HpackEncoder();
  encoder.begin();
  encoder.add(':status', '200');
  assert.deepEqual([...encoder.end()], [0x88]);

  encoder.begin();
  encoder.add(':status', '200');
  encoder.add('content-type', 'application/grpc');
  encoder.add(':authority', '');
  const head = encoder.end();
  assert.deepEqual(head, Buffer.from([0x88, 0x0f, 0x10, 0x10, ...Buffer.from('application/grpc'), 0x81]));

  encoder.begin();
  encoder.add('grpc-status', '0');
  encoder.add(':path', '/x');
  encoder.add('accept-encoding', 'gzip, deflate');
  const trailers = encoder.end();
  assert.deepEqual(trailers, Buffer.from([0x00, 0x0b, ...Buffer.from('grpc-status'), 0x01, 0x30, 0x04, 0x02, 0x2f, 0x78, 0x90]));
  // Blocks returned earlier are copies: later blocks leave them alone.
  assert.equal(head[0], 0x88);
  assert.equal(head.length, 21);

  const long = 'L'.repeat(300);
  const name = 'x-'.padEnd(200, 'n');
  encoder.begin();
  encoder.add('x-long', long);
  encoder.add(name, 'v'.repeat(127));
  const block = encoder.end();
  // 300 = 127 + 173: 0x7f, then 173 = 0xad with a continuation bit, then 1.
  assert.deepEqual([...block.subarray(0, 9)], [0x00, 0x06, ...Buffer.from('x-long'), 0x7f]);
  assert.deepEqual([...block.subarray(9, 11)], [0xad, 0x01]);

  // Everything the encoder makes decodes back, across a buffer that has to grow.
  const fields: Field[] = [[':method', 'POST'], [':path', '/pkg.Svc/Method'], [':status', '204']];
  encoder.begin();
  for (let i = 0; i < 50; i++) fields.push([`x-field-${i}`, `${i}`.repeat(i * 7)], ['user-agent', `agent ${i}`], ['age', '']);
  for (const [n, v] of fields) encoder.add(n, v);
  const big = encoder.end();
  const decoded: Field[] = [];
  const decoder = new HpackDecoder({ maxHeaderListBytes: 1 << 20 });
  decoder.decode(big, 0, big.length, (n, v) => decoded.push([n, v]));
  assert.deepEqual(decoded, fields);
  assert.equal(forTests.tableBytes(decoder), 0);
  assert.deepEqual(decodeBlock(new HpackDecoder(), block).fields, [['x-long', long], [name, 'v'.repeat(127)]]);

  encoder.begin();
  assert.equal(encoder.end().length, 0);
});

// ---------------------------------------------------------------------------------------------------
// Interop with nghttp2 (Node's http2).

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
const SETTINGS_ACK = Buffer.from([0, 0, 0, 0x4, 0x1, 0, 0, 0, 0]);
const HEADERS = 0x1;
const SETTINGS = 0x4;
const CONTINUATION = 0x9;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;

interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly stream: number;
  readonly payload: Buffer;
}

/** Calls `onFrame` for each HTTP/2 frame read from `socket`, after `skip` bytes (a client's preface). */
function readFrames(socket: net.Socket, skip: number, onFrame: (frame: Frame) => void): void {
  let pending = Buffer.alloc(0);
  let toSkip = skip;
  socket.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    if (toSkip > 0) {
      const skipped = Math.min(toSkip, pending.length);
      pending = pending.subarray(skipped);
      toSkip -= skipped;
    }
    while (pending.length >= 9) {
      const length = pending.readUIntBE(0, 3);
      if (pending.length < 9 + length) break;
      onFrame({
        type: pending[3] as number,
        flags: pending[4] as number,
        stream: pending.readUInt32BE(5) & 0x7fff_ffff,
        payload: pending.subarray(9, 9 + length),
      });
      pending = pending.subarray(9 + length);
    }
  });
}

function listen(server: net.Server | http2.Http2Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function closeServer(server: net.Server | http2.Http2Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

const PRINTABLE = Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i)).join('');

test('interop: decodes header blocks from nghttp2 (node:http2 client) over many requests', { timeout: 10_000 }, async (t) => {
  const decoder = new HpackDecoder();
  const received = new Map<number, { result: DecodeResult; fields: Field[]; block: Buffer }>();
  const flagsSeen = new Set<string>();
  let failure: Error | undefined;
  let onAll: () => void = () => {};
  const requests = 8;
  const allReceived = new Promise<void>((resolve) => (onAll = resolve));
  const sockets = new Set<net.Socket>();

  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.write(EMPTY_SETTINGS);
    let block: Buffer[] = [];
    let blockStream = 0;
    const finish = (): void => {
      const whole = Buffer.concat(block);
      block = [];
      try {
        received.set(blockStream, { ...decodeBlock(decoder, whole), block: whole });
      } catch (err) {
        failure = err instanceof Error ? err : new Error(String(err));
      }
      if (received.size === requests || failure !== undefined) onAll();
    };
    readFrames(socket, PREFACE.length, ({ type, flags, stream, payload }) => {
      if (type === SETTINGS && (flags & 0x1) === 0) socket.write(SETTINGS_ACK);
      if (type === HEADERS) {
        let from = 0;
        let to = payload.length;
        if (flags & PADDED) {
          flagsSeen.add('padded');
          from = 1;
          to -= payload[0] as number;
        }
        if (flags & PRIORITY) {
          flagsSeen.add('priority');
          from += 5;
        }
        blockStream = stream;
        block = [payload.subarray(from, to)];
        if (flags & END_HEADERS) finish();
      } else if (type === CONTINUATION) {
        flagsSeen.add('continuation');
        block.push(payload);
        if (flags & END_HEADERS) finish();
      }
    });
  });
  const port = await listen(server);
  // Padding makes nghttp2 set PADDED on its HEADERS frames, a weight sets PRIORITY.
  const client = http2.connect(`http://127.0.0.1:${port}`, { paddingStrategy: http2.constants.PADDING_STRATEGY_MAX });
  client.on('error', () => {});
  t.after(async () => {
    client.destroy();
    for (const socket of sockets) socket.destroy();
    await closeServer(server);
  });

  const latin1 = Array.from({ length: 0x80 }, (_, i) => String.fromCharCode(0x80 + i)).join('');
  const sent: http2.OutgoingHttpHeaders[] = [];
  for (let i = 0; i < requests; i++) {
    const headers: http2.OutgoingHttpHeaders = {
      ':method': i % 2 === 0 ? 'POST' : 'GET',
      ':path': `/pkg.Svc/Method${i % 3}`,
      'content-type': 'application/grpc',
      te: 'trailers',
      'x-common': 'the same on every request, so it comes from the dynamic table',
      'x-long': `${i}:`.padEnd(250 + i, 'abcdefghijklmnopqrstuvwxyz0123456789-_.~'),
      'x-printable': `<${PRINTABLE}>`,
      'x-tab': 'a\tb',
      'x-latin1': latin1,
      'x-multi': ['one', `two ${i}`, 'three'],
      authorization: `Bearer secret-${i}`,
      'x-secret': `never indexed ${i}`,
      [http2.sensitiveHeaders]: ['authorization', 'x-secret'],
    };
    // Distinct names and values on each request: over the 4096-octet table, so entries are evicted.
    for (let j = 0; j < 12; j++) headers[`x-r${i}-h${j}`] = `${i}-${j}-`.padEnd(90, String.fromCharCode(0x41 + ((i + j) % 26)));
    // A block over 16384 octets even when Huffman-coded (7 bits an uppercase letter): CONTINUATION frames.
    if (i === 5) headers['x-huge'] = 'QWERTYUIOPZXCVBNM'.repeat(1200);
    sent.push(headers);
    const request = client.request(headers, { endStream: true, weight: 16 + i });
    request.on('error', () => {});
  }
  await allReceived;
  if (failure !== undefined) throw failure;

  for (let i = 0; i < requests; i++) {
    const got = received.get(1 + 2 * i);
    assert.ok(got !== undefined, `request ${i}`);
    assert.equal(got.result, DECODED, `request ${i}`);
    const headers = sent[i] as http2.OutgoingHttpHeaders;
    const expectedPseudo: Field[] = [
      [':authority', `127.0.0.1:${port}`],
      [':method', headers[':method'] as string],
      [':path', headers[':path'] as string],
      [':scheme', 'http'],
    ];
    const expectedRegular: Field[] = [];
    for (const [name, value] of Object.entries(headers)) {
      if (name.startsWith(':')) continue;
      for (const item of Array.isArray(value) ? value : [value]) expectedRegular.push([name, String(item)]);
    }
    const pseudo = got.fields.filter(([name]) => name.startsWith(':'));
    const regular = got.fields.filter(([name]) => !name.startsWith(':'));
    // Pseudo-headers come first (the decoder would have flagged them otherwise), in nghttp2's order.
    assert.deepEqual(got.fields.slice(0, pseudo.length), pseudo);
    assert.deepEqual([...pseudo].sort(), expectedPseudo);
    assert.deepEqual(regular, expectedRegular, `request ${i}`);
  }
  // The sensitive header went as "never indexed" (0001xxxx) with authorization's static index 23.
  assert.ok((received.get(1)?.block ?? Buffer.alloc(0)).includes(Buffer.from([0x1f, 0x08])));
  // nghttp2 used the dynamic table: later blocks are much smaller than the first.
  const firstBytes = received.get(1)?.block.length ?? 0;
  const secondBytes = received.get(3)?.block.length ?? Infinity;
  assert.ok(secondBytes < firstBytes * 0.8, `second block ${secondBytes} octets, first ${firstBytes}`);
  assert.ok(forTests.tableBytes(decoder) <= 4096);
  assert.ok(flagsSeen.has('continuation'), 'a block came in CONTINUATION frames');
  assert.ok(flagsSeen.has('padded'), 'HEADERS frames were padded');
});

test('interop: nghttp2 (node:http2 server) decodes header blocks from the encoder', { timeout: 10_000 }, async (t) => {
  const server = http2.createServer();
  const received = new Map<number, string[]>();
  const requests = 3;
  let onAll: () => void = () => {};
  const allReceived = new Promise<void>((resolve) => (onAll = resolve));
  server.on('stream', (stream: http2.ServerHttp2Stream, _headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
    received.set(stream.id ?? 0, rawHeaders);
    stream.on('error', () => {});
    if (received.size === requests) onAll();
  });
  server.on('sessionError', () => {});
  const port = await listen(server);
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  t.after(async () => {
    socket.destroy();
    await closeServer(server);
  });
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  readFrames(socket, 0, ({ type, flags }) => {
    if (type === SETTINGS && (flags & 0x1) === 0) socket.write(SETTINGS_ACK);
  });

  const authority = `127.0.0.1:${port}`;
  const blocks: Field[][] = [
    [
      [':method', 'GET'], // fully indexed (2)
      [':scheme', 'http'], // fully indexed (6)
      [':path', '/'], // fully indexed (4)
      [':authority', authority], // static name (1)
      ['accept-encoding', 'gzip, deflate'], // fully indexed (16)
      ['user-agent', 'courier-hpack-test'], // static name 58: a two-byte index
      ['x-new-name', 'a new name, a literal'],
    ],
    [
      [':method', 'POST'],
      [':scheme', 'https'],
      [':path', '/pkg.Svc/Method'],
      [':authority', authority],
      ['content-type', 'application/grpc'],
      ['te', 'trailers'],
      ['x-long', 'x'.repeat(300)],
      ['x-printable', `<${PRINTABLE}>`],
      ['grpc-timeout', '1S'],
    ],
    [
      [':method', 'GET'],
      [':scheme', 'http'],
      [':path', '/index.html'],
      [':authority', authority],
      ['x-127', 'y'.repeat(127)], // length exactly 2^7 - 1: a zero continuation byte
      ['x-128', 'z'.repeat(128)],
      [`x-${'n'.repeat(140)}`, 'a long name'],
      ['cache-control', 'no-cache'],
      ['x-empty', ''],
    ],
  ];
  const encoder = new HpackEncoder();
  const out: Buffer[] = [PREFACE, EMPTY_SETTINGS];
  blocks.forEach((fields, i) => {
    encoder.begin();
    for (const [name, value] of fields) encoder.add(name, value);
    out.push(frame(HEADERS, END_HEADERS | END_STREAM, 1 + 2 * i, encoder.end()));
  });
  socket.write(Buffer.concat(out));
  await allReceived;

  blocks.forEach((fields, i) => {
    const raw = received.get(1 + 2 * i);
    assert.ok(raw !== undefined, `stream ${1 + 2 * i}`);
    const pairs: Field[] = [];
    for (let j = 0; j < raw.length; j += 2) pairs.push([raw[j] as string, raw[j + 1] as string]);
    assert.deepEqual(pairs, fields, `stream ${1 + 2 * i}`);
  });
});
