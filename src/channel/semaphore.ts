import type { CallSignal } from '../invoke/call-signal.js';

/**
 * A counting semaphore for `--app-max-concurrency`. A waiter whose signal aborts leaves the queue,
 * so a caller that gives up never takes a slot later.
 */
export class Semaphore {
  #available: number;
  readonly #waiters: Array<{ grant: () => void; signal: CallSignal; onAbort: () => void }> = [];

  constructor(permits: number) {
    this.#available = permits;
  }

  get available(): number {
    return this.#available;
  }

  get waiting(): number {
    return this.#waiters.length;
  }

  /** Takes a slot now if one is free. */
  tryAcquire(): boolean {
    if (this.#available > 0 && this.#waiters.length === 0) {
      this.#available--;
      return true;
    }
    return false;
  }

  /** Calls `granted` once a slot is taken, or `aborted` if `signal` fires first. */
  acquire(signal: CallSignal, granted: () => void, aborted: () => void): void {
    if (this.tryAcquire()) {
      granted();
      return;
    }
    if (signal.aborted) {
      aborted();
      return;
    }
    const waiter = {
      grant: () => {
        signal.removeEventListener('abort', waiter.onAbort);
        granted();
      },
      signal,
      onAbort: () => {
        const at = this.#waiters.indexOf(waiter);
        if (at >= 0) this.#waiters.splice(at, 1);
        aborted();
      },
    };
    signal.addEventListener('abort', waiter.onAbort, { once: true });
    this.#waiters.push(waiter);
  }

  release(): void {
    const next = this.#waiters.shift();
    if (next !== undefined) next.grant();
    else this.#available++;
  }
}
