import { createRequire } from 'node:module';

/**
 * The time slice a sidecar asks Linux for by default, in microseconds: the kernel's shortest.
 *
 * A sidecar runs in short bursts, tens to hundreds of microseconds for each call it relays, and each
 * burst starts when a socket becomes readable. Linux's fair scheduler (EEVDF) gives a thread that
 * wakes a deadline of its eligible time plus its slice (about 1.4 ms by default on a 2-core machine),
 * so on a busy machine the sidecar waits behind whatever runs until that deadline comes. Since Linux
 * 6.12 a thread may ask for a shorter slice (0.1 to 100 ms): it gets the same share of the CPU, in
 * shorter turns that start sooner. Measured in docs/decisions/scheduler-slice.md.
 */
export const DEFAULT_SCHEDULER_SLICE_US = 100;

/** What asking for a slice came to. */
export type SliceOutcome =
  | { readonly kind: 'set'; readonly sliceUs: number }
  /** The kernel keeps no slice for this thread: before Linux 6.12, or a real-time policy, left alone. */
  | { readonly kind: 'ignored' }
  /** Not on Linux, the native module is not built, or the system call failed. */
  | { readonly kind: 'unavailable'; readonly reason: string };

interface NativeModule {
  setSlice(ns: number): number;
}

/** Courier's native module (`native/`, built by `npm install` with node-gyp), or why it cannot be loaded. */
function loadNative(): NativeModule | string {
  if (process.platform !== 'linux') return `not on Linux (${process.platform})`;
  try {
    return createRequire(import.meta.url)('../../build/Release/courier_native.node') as NativeModule;
  } catch (err) {
    return `the native module is not built (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`;
  }
}

/**
 * Asks the kernel for a time slice of `us` microseconds for the calling thread (the event loop's),
 * keeping its policy and nice value. It never throws: a kernel, platform or installation that
 * cannot do it leaves the thread as it was.
 */
export function requestSchedulerSlice(us: number): SliceOutcome {
  const native = loadNative();
  if (typeof native === 'string') return { kind: 'unavailable', reason: native };
  try {
    const ns = native.setSlice(Math.round(us * 1000));
    return ns === 0 ? { kind: 'ignored' } : { kind: 'set', sliceUs: ns / 1000 };
  } catch (err) {
    return { kind: 'unavailable', reason: err instanceof Error ? err.message : String(err) };
  }
}
