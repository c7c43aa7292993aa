import type { Http2Session } from 'node:http2';
import { isMap, isSet } from 'node:util/types';
import { IdTable } from '../util/call-tables.js';

/**
 * Node's HTTP/2 keeps a session's open streams in a `Map` (its `streams`, in the session's internal
 * state), with one add and one delete per call, and passes every new stream through a `Set`
 * (`pendingStreams`, until the stream has an id): the containers src/util/call-tables.ts explains are
 * bad for a long-lived connection under load. Once a full collection has moved the Map's table of
 * the moment into the old generation, every replaced table keeps the next one, and the streams it
 * held, reachable for the scavenger: each scavenge promotes streams that closed long ago, with their
 * headers, buffers and listeners, and the old generation fills at megabytes a second (a sidecar's
 * gRPC API at 3500 calls/s promoted about 5 MB/s and ran a full collection every 1-2 s, `--trace-gc`).
 *
 * `keepStreamsInIdTable` gives a session, before its first stream, an {@link IdTable} and a small
 * array in their place, with the members Node uses of them (`get`, `set`, `add`, `delete`, `size`,
 * `forEach`; the same on Node 20 and 24). Nothing a user of the session sees changes. Where the
 * runtime does not keep its streams as expected (a future Node), the session is left alone and the
 * function returns false.
 */
export function keepStreamsInIdTable(session: Http2Session): boolean {
  const state = internalState(session);
  if (state === undefined) return false;
  const streams = state.streams;
  // Node's own Map subclass (SafeMap) does not inherit from this realm's Map.prototype.
  if (!isMap(streams) || streams.size !== 0) return false;
  state.streams = new IdTable();
  if (isSet(state.pendingStreams) && state.pendingStreams.size === 0) state.pendingStreams = new PendingStreams();
  return true;
}

/**
 * A session's streams that have no id yet (a client's requests before the connection is up; every
 * stream passes through it as it is made): a few at most, kept in an array.
 */
class PendingStreams<S> {
  readonly #items: S[] = [];

  get size(): number {
    return this.#items.length;
  }

  add(stream: S): this {
    if (!this.#items.includes(stream)) this.#items.push(stream);
    return this;
  }

  delete(stream: S): boolean {
    const at = this.#items.indexOf(stream);
    if (at < 0) return false;
    this.#items.splice(at, 1);
    return true;
  }

  /** Calls `visit` for each stream in the order they came, as a Set would: one removed by an earlier visit is skipped. */
  forEach(visit: (stream: S) => void): void {
    for (const stream of this.#items.slice()) {
      if (this.#items.includes(stream)) visit(stream);
    }
  }
}

/** The session's internal state object (Node keeps it under a symbol described as "state"). */
function internalState(session: Http2Session): { streams: unknown; pendingStreams?: unknown } | undefined {
  const key = Object.getOwnPropertySymbols(session).find((symbol) => symbol.description === 'state');
  if (key === undefined) return undefined;
  const state: unknown = (session as unknown as Record<symbol, unknown>)[key];
  return typeof state === 'object' && state !== null && 'streams' in state ? state : undefined;
}

export const forTests = { PendingStreams, internalState };
