import type {
  Any,
  InternalInvokeRequest,
  InternalInvokeRequestStream,
  InternalInvokeResponse,
  InternalInvokeResponseStream,
  InvokeRequest,
  InvokeResponse,
  ListStringValue,
  MetadataMap,
  Status,
  StreamPayload,
} from './types.js';
import { readName, utf8At } from '../util/wire-names.js';

/**
 * Encoders and decoders for the two messages every call carries between sidecars
 * (`InternalInvokeRequestStream` and `InternalInvokeResponseStream`), written for them: the size is
 * computed first and the message written into one buffer, with none of the per-field operation objects
 * a generic writer allocates, and decoding builds the plain objects Courier uses directly. The wire
 * format is protobuf's, as `proto/dapr/proto/internals/v1/service_invocation.proto` defines it:
 * `fast-codec.test.ts` checks both directions against protobufjs. Decoding skips fields it does not
 * know and accepts any field order, as protobuf requires.
 */

// --- writing --------------------------------------------------------------------------------

function varintSize(value: number): number {
  if (value < 0) return 10; // negative int32: ten bytes, sign-extended
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    size++;
  }
  return size;
}

/** Strings up to this many ASCII characters are copied byte by byte (see `Out.string`). */
const SHORT_ASCII = 64;

function stringSize(value: string): number {
  const length = Buffer.byteLength(value);
  return varintSize(length) + length;
}

/** A buffer being filled: position kept in `at`. */
class Out {
  readonly buf: Buffer;
  at = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }
  byte(value: number): void {
    this.buf[this.at++] = value;
  }
  varint(value: number): void {
    if (value < 0) {
      // int32 negative values are written as 64-bit two's complement.
      let low = value >>> 0;
      for (let i = 0; i < 4; i++) {
        this.buf[this.at++] = (low & 0x7f) | 0x80;
        low >>>= 7;
      }
      this.buf[this.at++] = (low & 0x0f) | 0x70 | 0x80;
      for (let i = 0; i < 4; i++) this.buf[this.at++] = 0xff;
      this.buf[this.at++] = 0x01;
      return;
    }
    while (value >= 0x80) {
      this.buf[this.at++] = (value % 128) | 0x80;
      value = Math.floor(value / 128);
    }
    this.buf[this.at++] = value;
  }
  string(value: string): void {
    const length = Buffer.byteLength(value);
    this.varint(length);
    if (length === value.length && length <= SHORT_ASCII) {
      // ASCII (one byte per UTF-16 unit exactly when the UTF-8 length equals the string's length)
      // and short, as header names and most values are: copied here, which costs less than a call
      // into the runtime.
      const buf = this.buf;
      let at = this.at;
      for (let i = 0; i < length; i++) buf[at++] = value.charCodeAt(i);
      this.at = at;
      return;
    }
    this.at += this.buf.write(value, this.at, length, 'utf8');
  }
  bytes(value: Uint8Array): void {
    this.varint(value.length);
    this.buf.set(value, this.at);
    this.at += value.length;
  }
}

function anySize(any: Any): number {
  let size = 0;
  if (any.typeUrl !== undefined && any.typeUrl !== '') size += 1 + stringSize(any.typeUrl);
  if (any.value !== undefined && any.value.length > 0) size += 1 + varintSize(any.value.length) + any.value.length;
  return size;
}

function writeAny(out: Out, any: Any, size: number): void {
  out.varint(size);
  if (any.typeUrl !== undefined && any.typeUrl !== '') {
    out.byte(0x0a);
    out.string(any.typeUrl);
  }
  if (any.value !== undefined && any.value.length > 0) {
    out.byte(0x12);
    out.bytes(any.value);
  }
}

function listSize(list: ListStringValue): number {
  let size = 0;
  for (const value of list.values ?? []) size += 1 + stringSize(value);
  return size;
}

/** Size of the map entries of field `field` (each entry: 1 = key, 2 = ListStringValue). */
function mapSize(map: MetadataMap | undefined): number {
  if (map === undefined) return 0;
  let size = 0;
  for (const key of Object.keys(map)) {
    const list = map[key] as ListStringValue;
    const inner = listSize(list);
    const entry = 1 + stringSize(key) + 1 + varintSize(inner) + inner;
    size += 1 + varintSize(entry) + entry;
  }
  return size;
}

function writeMap(out: Out, tag: number, map: MetadataMap | undefined): void {
  if (map === undefined) return;
  for (const key of Object.keys(map)) {
    const list = map[key] as ListStringValue;
    const inner = listSize(list);
    const entry = 1 + stringSize(key) + 1 + varintSize(inner) + inner;
    out.byte(tag);
    out.varint(entry);
    out.byte(0x0a);
    out.string(key);
    out.byte(0x12);
    out.varint(inner);
    for (const value of list.values ?? []) {
      out.byte(0x0a);
      out.string(value);
    }
  }
}

function invokeRequestSize(message: InvokeRequest): number {
  let size = 0;
  if (message.method !== undefined && message.method !== '') size += 1 + stringSize(message.method);
  if (message.data !== undefined && message.data !== null) {
    const inner = anySize(message.data);
    size += 1 + varintSize(inner) + inner;
  }
  if (message.contentType !== undefined && message.contentType !== '') size += 1 + stringSize(message.contentType);
  const ext = message.httpExtension;
  if (ext !== undefined && ext !== null) {
    const inner = extensionSize(ext.verb ?? 0, ext.querystring ?? '');
    size += 1 + varintSize(inner) + inner;
  }
  return size;
}

function extensionSize(verb: number, query: string): number {
  return (verb === 0 ? 0 : 1 + varintSize(verb)) + (query === '' ? 0 : 1 + stringSize(query));
}

function writeInvokeRequest(out: Out, message: InvokeRequest, size: number): void {
  out.varint(size);
  if (message.method !== undefined && message.method !== '') {
    out.byte(0x0a);
    out.string(message.method);
  }
  if (message.data !== undefined && message.data !== null) {
    out.byte(0x12);
    writeAny(out, message.data, anySize(message.data));
  }
  if (message.contentType !== undefined && message.contentType !== '') {
    out.byte(0x1a);
    out.string(message.contentType);
  }
  const ext = message.httpExtension;
  if (ext !== undefined && ext !== null) {
    const verb = ext.verb ?? 0;
    const query = ext.querystring ?? '';
    out.byte(0x22);
    out.varint(extensionSize(verb, query));
    if (verb !== 0) {
      out.byte(0x08);
      out.varint(verb);
    }
    if (query !== '') {
      out.byte(0x12);
      out.string(query);
    }
  }
}

function internalRequestSize(request: InternalInvokeRequest): number {
  let size = 0;
  if (request.ver !== undefined && request.ver !== 0) size += 1 + varintSize(request.ver);
  size += mapSize(request.metadata);
  if (request.message !== undefined && request.message !== null) {
    const inner = invokeRequestSize(request.message);
    size += 1 + varintSize(inner) + inner;
  }
  return size;
}

function payloadSize(payload: StreamPayload): number {
  let size = 0;
  if (payload.data !== undefined && payload.data.length > 0) size += 1 + varintSize(payload.data.length) + payload.data.length;
  if (payload.seq !== undefined && payload.seq !== 0) size += 1 + varintSize(payload.seq);
  return size;
}

function writePayload(out: Out, payload: StreamPayload, size: number): void {
  out.byte(0x12);
  out.varint(size);
  if (payload.data !== undefined && payload.data.length > 0) {
    out.byte(0x0a);
    out.bytes(payload.data);
  }
  if (payload.seq !== undefined && payload.seq !== 0) {
    out.byte(0x10);
    out.varint(payload.seq);
  }
}

export function encodeInternalInvokeRequestStream(message: InternalInvokeRequestStream): Uint8Array {
  const request = message.request;
  const requestSize = request === undefined || request === null ? -1 : internalRequestSize(request);
  const payload = message.payload;
  const payloadInner = payload === undefined || payload === null ? -1 : payloadSize(payload);
  const total = (requestSize < 0 ? 0 : 1 + varintSize(requestSize) + requestSize) + (payloadInner < 0 ? 0 : 1 + varintSize(payloadInner) + payloadInner);
  const out = new Out(total);
  if (request !== undefined && request !== null) {
    out.byte(0x0a);
    out.varint(requestSize);
    if (request.ver !== undefined && request.ver !== 0) {
      out.byte(0x08);
      out.varint(request.ver);
    }
    writeMap(out, 0x12, request.metadata);
    if (request.message !== undefined && request.message !== null) {
      out.byte(0x1a);
      writeInvokeRequest(out, request.message, invokeRequestSize(request.message));
    }
  }
  if (payload !== undefined && payload !== null) writePayload(out, payload, payloadInner);
  return out.buf;
}

function statusSize(status: Status): number {
  let size = 0;
  if (status.code !== undefined && status.code !== 0) size += 1 + varintSize(status.code);
  if (status.message !== undefined && status.message !== '') size += 1 + stringSize(status.message);
  for (const detail of status.details ?? []) {
    const inner = anySize(detail);
    size += 1 + varintSize(inner) + inner;
  }
  return size;
}

function invokeResponseSize(message: InvokeResponse): number {
  let size = 0;
  if (message.data !== undefined && message.data !== null) {
    const inner = anySize(message.data);
    size += 1 + varintSize(inner) + inner;
  }
  if (message.contentType !== undefined && message.contentType !== '') size += 1 + stringSize(message.contentType);
  return size;
}

function internalResponseSize(response: InternalInvokeResponse): number {
  let size = 0;
  if (response.status !== undefined && response.status !== null) {
    const inner = statusSize(response.status);
    size += 1 + varintSize(inner) + inner;
  }
  size += mapSize(response.headers) + mapSize(response.trailers);
  if (response.message !== undefined && response.message !== null) {
    const inner = invokeResponseSize(response.message);
    size += 1 + varintSize(inner) + inner;
  }
  return size;
}

export function encodeInternalInvokeResponseStream(message: InternalInvokeResponseStream): Uint8Array {
  const response = message.response;
  const responseSize = response === undefined || response === null ? -1 : internalResponseSize(response);
  const payload = message.payload;
  const payloadInner = payload === undefined || payload === null ? -1 : payloadSize(payload);
  const total = (responseSize < 0 ? 0 : 1 + varintSize(responseSize) + responseSize) + (payloadInner < 0 ? 0 : 1 + varintSize(payloadInner) + payloadInner);
  const out = new Out(total);
  if (response !== undefined && response !== null) {
    out.byte(0x0a);
    out.varint(responseSize);
    const status = response.status;
    if (status !== undefined && status !== null) {
      out.byte(0x0a);
      out.varint(statusSize(status));
      if (status.code !== undefined && status.code !== 0) {
        out.byte(0x08);
        out.varint(status.code);
      }
      if (status.message !== undefined && status.message !== '') {
        out.byte(0x12);
        out.string(status.message);
      }
      for (const detail of status.details ?? []) {
        out.byte(0x1a);
        writeAny(out, detail, anySize(detail));
      }
    }
    writeMap(out, 0x12, response.headers);
    writeMap(out, 0x1a, response.trailers);
    const message = response.message;
    if (message !== undefined && message !== null) {
      out.byte(0x22);
      out.varint(invokeResponseSize(message));
      if (message.data !== undefined && message.data !== null) {
        out.byte(0x0a);
        writeAny(out, message.data, anySize(message.data));
      }
      if (message.contentType !== undefined && message.contentType !== '') {
        out.byte(0x12);
        out.string(message.contentType);
      }
    }
  }
  if (payload !== undefined && payload !== null) writePayload(out, payload, payloadInner);
  return out.buf;
}

// --- reading --------------------------------------------------------------------------------

/** A message being read: the bytes, the position, and where the current message ends. */
class In {
  readonly buf: Buffer;
  at: number;
  constructor(buf: Buffer, at: number) {
    this.buf = buf;
    this.at = at;
  }
  varint(end: number): number {
    let result = 0;
    let shift = 1;
    for (let i = 0; i < 10; i++) {
      if (this.at >= end) throw new RangeError('a varint runs past the end of its message');
      const byte = this.buf[this.at++] as number;
      if (i < 8) result += (byte & 0x7f) * shift;
      shift *= 128;
      if (byte < 0x80) return result;
    }
    throw new RangeError('a varint is longer than 10 bytes');
  }
  /** An int32 field: a varint whose low 32 bits are the signed value. */
  int32(end: number): number {
    const start = this.at;
    const value = this.varint(end);
    if (this.at - start === 10) {
      // A negative value: take its low 32 bits.
      let low = 0;
      for (let i = 4; i >= 0; i--) low = low * 128 + ((this.buf[start + i] as number) & 0x7f);
      return low | 0;
    }
    return value | 0;
  }
  /** Reads a length prefix and returns where the field it announces ends. */
  end(end: number): number {
    const length = this.length(end);
    return this.at + length;
  }
  length(end: number): number {
    const length = this.varint(end);
    if (this.at + length > end) throw new RangeError('a field runs past the end of its message');
    return length;
  }
  string(end: number): string {
    const length = this.length(end);
    return this.#slice(this.at, length);
  }
  /** A metadata key: a name, read as `readName` reads names (see util/wire-names.ts). */
  name(end: number): string {
    const length = this.length(end);
    const start = this.at;
    this.at = start + length;
    return readName(this.buf, start, length);
  }
  /** The UTF-8 string of `length` bytes at `start`, read past. */
  #slice(start: number, length: number): string {
    this.at = start + length;
    return utf8At(this.buf, start, length);
  }
  bytes(end: number): Buffer {
    const length = this.length(end);
    const value = this.buf.subarray(this.at, this.at + length);
    this.at += length;
    return value;
  }
  skip(wireType: number, end: number): void {
    switch (wireType) {
      case 0:
        this.varint(end);
        return;
      case 1:
        this.at += 8;
        break;
      case 2: {
        const length = this.length(end);
        this.at += length;
        return;
      }
      case 5:
        this.at += 4;
        break;
      default:
        throw new RangeError(`invalid wire type ${wireType}`);
    }
    if (this.at > end) throw new RangeError('a field runs past the end of its message');
  }
}

function readAny(input: In, end: number): Any {
  const any: Any = {};
  while (input.at < end) {
    const tag = input.varint(end);
    if (tag === 0x0a) any.typeUrl = input.string(end);
    else if (tag === 0x12) any.value = input.bytes(end);
    else input.skip(tag & 7, end);
  }
  return any;
}

/** One map entry (1 = key, 2 = ListStringValue) added to `map`; a repeated key keeps the last entry, as protobuf maps do. */
function readMapEntry(input: In, end: number, map: MetadataMap): void {
  let key = '';
  let values: string[] = [];
  while (input.at < end) {
    const tag = input.varint(end);
    if (tag === 0x0a) key = input.name(end);
    else if (tag === 0x12) {
      const listEnd = input.end(end);
      values = [];
      while (input.at < listEnd) {
        const inner = input.varint(listEnd);
        if (inner === 0x0a) values.push(input.string(listEnd));
        else input.skip(inner & 7, listEnd);
      }
    } else input.skip(tag & 7, end);
  }
  map[key] = { values };
}

function readPayload(input: In, end: number): StreamPayload {
  const payload: StreamPayload = {};
  while (input.at < end) {
    const tag = input.varint(end);
    if (tag === 0x0a) payload.data = input.bytes(end);
    else if (tag === 0x10) payload.seq = input.varint(end);
    else input.skip(tag & 7, end);
  }
  return payload;
}

function readInvokeRequest(input: In, end: number): InvokeRequest {
  const message: InvokeRequest = {};
  while (input.at < end) {
    const tag = input.varint(end);
    if (tag === 0x0a) message.method = input.string(end);
    else if (tag === 0x12) message.data = readAny(input, input.end(end));
    else if (tag === 0x1a) message.contentType = input.string(end);
    else if (tag === 0x22) {
      const extEnd = input.end(end);
      const ext: { verb?: number; querystring?: string } = {};
      while (input.at < extEnd) {
        const inner = input.varint(extEnd);
        if (inner === 0x08) ext.verb = input.int32(extEnd);
        else if (inner === 0x12) ext.querystring = input.string(extEnd);
        else input.skip(inner & 7, extEnd);
      }
      message.httpExtension = ext;
    } else input.skip(tag & 7, end);
  }
  return message;
}

function readInternalRequest(input: In, end: number): InternalInvokeRequest {
  const request: InternalInvokeRequest = {};
  while (input.at < end) {
    const tag = input.varint(end);
    if (tag === 0x08) request.ver = input.int32(end);
    else if (tag === 0x12) readMapEntry(input, input.end(end), (request.metadata ??= Object.create(null) as MetadataMap));
    else if (tag === 0x1a) request.message = readInvokeRequest(input, input.end(end));
    else input.skip(tag & 7, end);
  }
  return request;
}

export function decodeInternalInvokeRequestStream(bytes: Uint8Array): InternalInvokeRequestStream {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const input = new In(buf, 0);
  const end = buf.length;
  const message: InternalInvokeRequestStream = {};
  while (input.at < end) {
    const tag = input.varint(end);
    if (tag === 0x0a) message.request = readInternalRequest(input, input.end(end));
    else if (tag === 0x12) message.payload = readPayload(input, input.end(end));
    else input.skip(tag & 7, end);
  }
  return message;
}

function readStatus(input: In, end: number): Status {
  const status: Status = {};
  while (input.at < end) {
    const tag = input.varint(end);
    if (tag === 0x08) status.code = input.int32(end);
    else if (tag === 0x12) status.message = input.string(end);
    else if (tag === 0x1a) (status.details ??= []).push(readAny(input, input.end(end)));
    else input.skip(tag & 7, end);
  }
  return status;
}

function readInternalResponse(input: In, end: number): InternalInvokeResponse {
  const response: InternalInvokeResponse = {};
  while (input.at < end) {
    const tag = input.varint(end);
    if (tag === 0x0a) response.status = readStatus(input, input.end(end));
    else if (tag === 0x12) readMapEntry(input, input.end(end), (response.headers ??= Object.create(null) as MetadataMap));
    else if (tag === 0x1a) readMapEntry(input, input.end(end), (response.trailers ??= Object.create(null) as MetadataMap));
    else if (tag === 0x22) {
      const messageEnd = input.end(end);
      const message: InvokeResponse = {};
      while (input.at < messageEnd) {
        const inner = input.varint(messageEnd);
        if (inner === 0x0a) message.data = readAny(input, input.end(messageEnd));
        else if (inner === 0x12) message.contentType = input.string(messageEnd);
        else input.skip(inner & 7, messageEnd);
      }
      response.message = message;
    } else input.skip(tag & 7, end);
  }
  return response;
}

export function decodeInternalInvokeResponseStream(bytes: Uint8Array): InternalInvokeResponseStream {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const input = new In(buf, 0);
  const end = buf.length;
  const message: InternalInvokeResponseStream = {};
  while (input.at < end) {
    const tag = input.varint(end);
    if (tag === 0x0a) message.response = readInternalResponse(input, input.end(end));
    else if (tag === 0x12) message.payload = readPayload(input, input.end(end));
    else input.skip(tag & 7, end);
  }
  return message;
}
