/** Something to run when a call is cancelled: a function, or an object with `handleEvent` (as DOM events take). */
export type AbortListener = (() => void) | { handleEvent(): void };

/**
 * The part of an `AbortSignal` Courier's call path uses: whether the caller gave up, and listeners
 * for the moment it does. An `AbortSignal` is one; `CallAbort` is a cheaper one for the objects
 * that carry a call (no EventTarget, no event objects, one listener slot before an array).
 */
export interface CallSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: AbortListener, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: AbortListener): void;
}

/**
 * A `CallSignal` to extend: the object that represents a call (the HTTP API's response writer, say)
 * is its own cancellation signal, so a call costs no AbortController. Listeners run once, in the
 * order added, when `abort` is first called; a listener added after that never runs (as with
 * `AbortSignal`).
 */
export class CallAbort implements CallSignal {
  #aborted = false;
  #reason: unknown = undefined;
  #first: AbortListener | undefined;
  #more: AbortListener[] | undefined;

  get aborted(): boolean {
    return this.#aborted;
  }

  get reason(): unknown {
    return this.#reason;
  }

  addEventListener(_type: 'abort', listener: AbortListener): void {
    if (this.#aborted) return;
    if (this.#first === undefined) this.#first = listener;
    else (this.#more ??= []).push(listener);
  }

  removeEventListener(_type: 'abort', listener: AbortListener): void {
    if (this.#first === listener) {
      this.#first = this.#more?.shift();
      return;
    }
    const more = this.#more;
    if (more === undefined) return;
    const at = more.indexOf(listener);
    if (at >= 0) more.splice(at, 1);
  }

  /** Cancels the call: every listener runs once. Later calls do nothing. */
  abort(reason?: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    const first = this.#first;
    const more = this.#more;
    this.#first = undefined;
    this.#more = undefined;
    if (first !== undefined) run(first);
    if (more !== undefined) for (const listener of more) run(listener);
  }
}

function run(listener: AbortListener): void {
  if (typeof listener === 'function') listener();
  else listener.handleEvent();
}
