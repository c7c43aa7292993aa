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
 * Entries keyed by non-negative integer ids (stream ids): an object's indexed elements, which V8
 * keeps in an array while the ids are dense and in a number dictionary once they are not.
 */
export class IdTable<V> {
  #entries: Record<number, V> = Object.create(null) as Record<number, V>;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  get(id: number): V | undefined {
    return this.#entries[id];
  }

  /** Adds or replaces the entry of `id` (`value` must not be undefined). */
  set(id: number, value: V): void {
    if (this.#entries[id] === undefined) this.#size++;
    this.#entries[id] = value;
  }

  delete(id: number): boolean {
    if (this.#entries[id] === undefined) return false;
    delete this.#entries[id];
    this.#size--;
    return true;
  }

  /** The values, in ascending id order (a copy: the table may change while it is walked). */
  values(): V[] {
    return Object.values(this.#entries);
  }

  /** [id, value] pairs, in ascending id order (a copy). */
  entries(): [number, V][] {
    return Object.entries(this.#entries).map(([id, value]) => [Number(id), value]);
  }

  clear(): void {
    this.#entries = Object.create(null) as Record<number, V>;
    this.#size = 0;
  }
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
