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
 * - `--initial-old-space-size=8` (MB): until its first full collection V8 lets the old generation
 *   grow to a limit sized for big applications, so a sidecar that starts taking calls filled it with
 *   garbage promoted from the young generation (a caller grew by about 30 MB in its first seconds at
 *   1000 requests/s). From a small start the first full collection comes early, and from then on
 *   the limit follows what is really alive.
 *
 * Keep in step with the interpreter line of src/cli/main.ts.
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--single-threaded-gc', '--initial-old-space-size=8'];


/** V8's compilers above the interpreter that this runtime runs by default (Maglev ships from V8 12, Node 22). */
function compilerTiers(v8Version = process.versions.v8): readonly string[] {
  const major = Number(v8Version.split('.')[0]);
  return major >= 12 ? ['sparkplug', 'maglev', 'opt'] : ['sparkplug', 'opt'];
}

/**
 * No compilers above the interpreter (Sparkplug, Maglev, TurboFan) from now on, for this process only
 * (the processes it starts keep NODE_FLAGS). Loading the CLI's modules is hot enough for TurboFan to
 * compile the ES module loader's URL and path functions, and the compilers' own machine code (pages
 * of the node binary) then stays resident: in a supervisor, which runs nothing hot, for good; in a
 * sidecar, which may wait idle for hours, until `compileWhenServing` (docs/performance.md, "Heap and
 * runtime"). Start-up is no slower (it compiles less).
 */
export function interpretOnly(): void {
  for (const tier of compilerTiers()) setFlagsFromString(`--no-${tier}`);
}

/** Turns on again, for the calls a started sidecar serves, the compilers `interpretOnly` held back. */
export function compileWhenServing(): void {
  for (const tier of compilerTiers()) setFlagsFromString(`--${tier}`);
}

/**
 * Run by the `courier` executable before any other module of the CLI loads: `courier run` interprets
 * only, `courier sidecar` interprets until it serves (sidecarMain calls `compileWhenServing`); other
 * commands keep V8's defaults.
 */
export function setCompilersForCommand(command: string | undefined): void {
  if (command === 'run' || command === 'sidecar') interpretOnly();
}

export const forTests = { compilerTiers };
