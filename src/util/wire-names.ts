/**
 * Header and metadata names read from the wire (protobuf metadata maps between sidecars, the lane's
 * metadata blocks). The same few names come on every call, so a short ASCII name is looked up among
 * those read before (by a hash of its bytes, then compared byte by byte) and the string already made is
 * returned instead of a new one. That string is internalized (V8's copy for property names), so using
 * it as a key of a metadata object costs no hashing and no lookup in V8's string table either.
 */

/**
 * Node's Buffer method under `toString('utf8', …)` (on every Buffer since Node's first releases, not
 * in its type definitions): called directly, it skips the argument checks and encoding lookup.
 */
interface RawBuffer extends Buffer {
  utf8Slice(start: number, end: number): string;
}

/** Names up to this many bytes are looked up in `slots`. */
const MAX_NAME_CACHED = 48;
/** 2^SLOT_BITS slots; a name whose slot another took is decoded again, nothing more. */
const SLOT_BITS = 8;
const slots: (string | undefined)[] = new Array<string | undefined>(1 << SLOT_BITS).fill(undefined);

function sameAscii(value: string, buf: Uint8Array, start: number): boolean {
  for (let i = 0; i < value.length; i++) if (value.charCodeAt(i) !== buf[start + i]) return false;
  return true;
}

/** The internalized copy of `value` (the one V8 keeps for property names). */
function internalized(value: string): string {
  return Object.keys({ [value]: 0 })[0] ?? value;
}

/** The slot of the name in `buf[start, start + length)` (FNV-1a of its bytes), or -1 when it is not ASCII. */
function slotOf(buf: Uint8Array, start: number, length: number): number {
  let hash = 0x811c9dc5;
  for (let i = start; i < start + length; i++) {
    const byte = buf[i] as number;
    if (byte >= 0x80) return -1;
    hash = Math.imul(hash ^ byte, 0x01000193);
  }
  return hash >>> (32 - SLOT_BITS);
}

/** The UTF-8 text of `buf[start, start + length)`, the caller having checked that it lies inside `buf`. */
export function utf8At(buf: Buffer, start: number, length: number): string {
  return (buf as RawBuffer).utf8Slice(start, start + length);
}

/**
 * The name in `buf[start, start + length)` (UTF-8; the caller has checked that it lies inside `buf`):
 * for a short ASCII name the string returned when the same bytes were read last, when its slot still
 * holds it.
 */
export function readName(buf: Buffer, start: number, length: number): string {
  if (length > MAX_NAME_CACHED) return utf8At(buf, start, length);
  const slot = slotOf(buf, start, length);
  if (slot < 0) return utf8At(buf, start, length);
  const cached = slots[slot];
  if (cached !== undefined && cached.length === length && sameAscii(cached, buf, start)) return cached;
  const value = internalized(utf8At(buf, start, length));
  slots[slot] = value;
  return value;
}

export const forTests = { slotOf: (name: string): number => slotOf(Buffer.from(name, 'latin1'), 0, name.length) };
