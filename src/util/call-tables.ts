/**
 * Containers for what lives as long as one call (open streams, running calls), added and removed on
 * every call. They are not `Map`s or `Set`s, on purpose.
 *
 * V8 keeps a `Map`'s or `Set`'s entries in a table that it replaces by a fresh one whenever removed
 * entries have filled it, which, with one add and one delete per call, is every few dozen calls; and
 * it leaves in the old table a pointer to the new one (for iterators still walking it). Once a full
 * collection has moved the table of the moment into the old generation, every table after it stays
 * reachable from its dead predecessor, and with each table the calls it held when it was replaced:
 * the scavenger cannot know the old-generation predecessor is dead, so each scavenge promotes the
 * next tables and their calls, until the next full collection, which promotes the table of that
 * moment and starts the chain again. Under load a sidecar then promoted about 300 KB per scavenge,
 * ran a full collection every second, and spent 15–20 % more CPU per call and 20–30 MB more memory
 * (docs/performance.md, "Garbage that stays reachable"). The tables here are replaced, when they
 * are, without a link from the old one.
 */

/**
 * Entries keyed by non-negative integer ids (stream ids): an open-addressing table (linear probing
 * over two arrays, ids spread by Fibonacci hashing) that grows when half full and shrinks when
 * nearly empty. Ids only ever grow, so an object's indexed elements (the first version of this
 * table) ended in V8's number dictionary, whose inserts and deletes cost a hash, a probe and, now
 * and then, a new backing store on every call.
 */
export class IdTable<V> {
  #bits = MIN_BITS;
  #keys: number[] = emptyKeys(MIN_BITS);
  #values: (V | undefined)[] = new Array<V | undefined>(1 << MIN_BITS).fill(undefined);
  #size = 0;

  get size(): number {
    return this.#size;
  }

  get(id: number): V | undefined {
    const at = this.#find(id);
    return at < 0 ? undefined : this.#values[at];
  }

  /** Adds or replaces the entry of `id` (`value` must not be undefined). */
  set(id: number, value: V): void {
    const keys = this.#keys;
    const mask = keys.length - 1;
    let at = this.#home(id);
    for (;;) {
      const key = keys[at] as number;
      if (key === id) {
        this.#values[at] = value;
        return;
      }
      if (key === EMPTY) break;
      at = (at + 1) & mask;
    }
    keys[at] = id;
    this.#values[at] = value;
    this.#size++;
    if (this.#size * 2 > keys.length) this.#resize(this.#bits + 1);
  }

  delete(id: number): boolean {
    let hole = this.#find(id);
    if (hole < 0) return false;
    const keys = this.#keys;
    const values = this.#values;
    const mask = keys.length - 1;
    // Backward-shift deletion: later entries of the same run move into the hole unless their home
    // slot lies after it (cyclically), so that every lookup still finds them before an empty slot.
    for (let at = (hole + 1) & mask; ; at = (at + 1) & mask) {
      const key = keys[at] as number;
      if (key === EMPTY) break;
      const home = this.#home(key);
      const staysPut = hole <= at ? hole < home && home <= at : hole < home || home <= at;
      if (staysPut) continue;
      keys[hole] = key;
      values[hole] = values[at];
      hole = at;
    }
    keys[hole] = EMPTY;
    values[hole] = undefined;
    this.#size--;
    if (this.#bits > MIN_BITS && this.#size * 8 < keys.length) this.#resize(this.#bits - 1);
    return true;
  }

  /** The values, in ascending id order (a copy: the table may change while it is walked). */
  values(): V[] {
    return this.entries().map(([, value]) => value);
  }

  /** [id, value] pairs, in ascending id order (a copy). */
  entries(): [number, V][] {
    const out: [number, V][] = [];
    const keys = this.#keys;
    for (let at = 0; at < keys.length; at++) {
      const key = keys[at] as number;
      if (key !== EMPTY) out.push([key, this.#values[at] as V]);
    }
    return out.sort((a, b) => a[0] - b[0]);
  }

  /**
   * Calls `visit` for each entry in ascending id order, as a Map's forEach would: an entry removed by
   * an earlier visit is not visited (walks a copy, so visits may change the table).
   */
  forEach(visit: (value: V, id: number) => void): void {
    for (const [id, value] of this.entries()) {
      if (this.get(id) === value) visit(value, id);
    }
  }

  clear(): void {
    this.#bits = MIN_BITS;
    this.#keys = emptyKeys(MIN_BITS);
    this.#values = new Array<V | undefined>(1 << MIN_BITS).fill(undefined);
    this.#size = 0;
  }

  #home(id: number): number {
    // Math.imul works on the id's low 32 bits; ids beyond them still compare whole.
    return Math.imul(id, 0x9e3779b1) >>> (32 - this.#bits);
  }

  #find(id: number): number {
    const keys = this.#keys;
    const mask = keys.length - 1;
    for (let at = this.#home(id); ; at = (at + 1) & mask) {
      const key = keys[at] as number;
      if (key === id) return at;
      if (key === EMPTY) return -1;
    }
  }

  /** Moves every entry into fresh arrays of 2^bits slots (nothing links the old ones to the new). */
  #resize(bits: number): void {
    const keys = this.#keys;
    const values = this.#values;
    this.#bits = bits;
    this.#keys = emptyKeys(bits);
    this.#values = new Array<V | undefined>(1 << bits).fill(undefined);
    const mask = (1 << bits) - 1;
    for (let from = 0; from < keys.length; from++) {
      const key = keys[from] as number;
      if (key === EMPTY) continue;
      let at = this.#home(key);
      while (this.#keys[at] !== EMPTY) at = (at + 1) & mask;
      this.#keys[at] = key;
      this.#values[at] = values[from];
    }
  }
}

/** A free slot of an IdTable (ids are never negative). */
const EMPTY = -1;
/** An IdTable starts with (and never shrinks below) 2^4 slots. */
const MIN_BITS = 4;

function emptyKeys(bits: number): number[] {
  return new Array<number>(1 << bits).fill(EMPTY);
}

/** Where an item of a {@link SlotSet} is kept: its index there, or -1 while it is in none. */
export const SLOT: unique symbol = Symbol('courier.slot');

export interface Slotted {
  [SLOT]: number;
}

/**
 * A set of objects that each know their index in it (an item belongs to one SlotSet at a time):
 * an array, with a removal moving the last item into the freed place.
 */
export class SlotSet<T extends Slotted> {
  readonly #items: T[] = [];

  get size(): number {
    return this.#items.length;
  }

  has(item: T): boolean {
    const at = item[SLOT];
    return at >= 0 && this.#items[at] === item;
  }

  add(item: T): void {
    if (this.has(item)) return;
    item[SLOT] = this.#items.length;
    this.#items.push(item);
  }

  delete(item: T): boolean {
    if (!this.has(item)) return false;
    const at = item[SLOT];
    const last = this.#items.pop() as T;
    if (last !== item) {
      this.#items[at] = last;
      last[SLOT] = at;
    }
    item[SLOT] = -1;
    return true;
  }

  /** The items (a copy: the set may change while it is walked). */
  values(): T[] {
    return this.#items.slice();
  }
}
