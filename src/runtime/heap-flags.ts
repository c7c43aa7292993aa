import { setFlagsFromString } from 'node:v8';

/**
 * The V8 flags every Courier process runs with, set by the launcher (the `courier` executable's
 * interpreter line, and `courier run` for the sidecars and the Sentry it starts), never by the user.
 *
 * - `--max-semi-space-size=2` (MB): a sidecar's per-call garbage dies young, and a small young
 *   generation is scavenged in well under a millisecond. Node 24's default lets the young generation
 *   grow to tens of megabytes, which cost 270-290 MB RSS under load and scavenges of several ms on
 *   this 2-core machine (docs/performance.md, "Heap").
 * - `--single-threaded-gc`: V8's parallel GC helpers compete with the event loop for the same two
 *   cores a sidecar shares with its app; doing the (small) collections on the main thread avoids
 *   the thread hand-offs that showed up as multi-millisecond stalls.
 *
 * Keep in step with the interpreter line of src/cli/main.ts.
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--single-threaded-gc'];


/**
 * For a process that only supervises (`courier run`): no optimizing compilers (TurboFan, Maglev)
 * from now on. Their generated code and the compiler's own pages are about 4 MB of a supervisor's
 * RSS (docs/performance.md, "Memory"); a supervisor runs nothing hot enough to need them. Set at run
 * time, so it applies to this process only: the sidecars it starts keep NODE_FLAGS.
 */
export function interpretOnly(): void {
  setFlagsFromString('--no-opt');
  setFlagsFromString('--no-maglev');
}
