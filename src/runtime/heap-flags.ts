import { setFlagsFromString } from 'node:v8';

/**
 * The V8 flags every Courier process runs with, set by the launcher (the `courier` executable's
 * interpreter line, the container image's entry point, and `courier run` for the sidecars and the
 * Sentry it starts), never by the user.
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
 * - `--no-maglev`: no mid-tier compiler (Maglev runs by default from V8 12, Node 22; on Node 20 the
 *   flag changes nothing). Hot code goes from Sparkplug straight to TurboFan, which is what a
 *   sidecar's request path ends up in anyway; Maglev's own machine code (pages of the node binary)
 *   and its compile zones then never become resident. Two sidecars on Node 24 at 1000 requests/s,
 *   six interleaved windows each: peak RSS 84–90 / 88–93 MB against 89–95 / 94–100, the same CPU
 *   per call within the spread (docs/performance.md, "Heap and runtime").
 *
 * - `--heap-growing-percent=30`: after each full collection the next starts once the heap has grown
 *   by 30 % over what was alive, instead of the factor V8 picks, which for a small heap is often 3
 *   or more (a gRPC proxy's caller collected at 48.6 MB a heap that came down to 15.1). A sidecar
 *   that speaks HTTP/2 (the gRPC API, gRPC proxying) gets every header value it receives from Node
 *   as a string V8 allocates in the old generation, where only a full collection frees it; with
 *   V8's factor 20-34 MB of them and their like piled up before one came, and the longest pause of
 *   a run (finalizing every one of them) was 34-127 ms. With 30 % no pause of the gRPC proxy's
 *   sidecars exceeded 28 ms, at the same CPU per call (docs/performance.md, "Heap and runtime"). The HTTP path makes next to no old-generation
 *   garbage and runs as before.
 *
 * Keep in step with the interpreter line of src/cli/main.ts and the Dockerfile's ENTRYPOINT.
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--single-threaded-gc', '--initial-old-space-size=8', '--no-maglev', '--heap-growing-percent=30'];

/**
 * The C allocator's settings every Courier process starts with, set by the launcher as NODE_FLAGS are
 * (glibc reads them when the process starts; other C libraries ignore them).
 *
 * - `MALLOC_MMAP_THRESHOLD_=32768`: blocks of 32 KB and more get their own mapping, returned to the
 *   system when freed. V8's compilers work in zones of 32 KB segments; once a sidecar's calls got hot,
 *   the segments of its optimizing compiles stayed in the allocator's heap as free but resident memory
 *   (the allocator's default threshold rises to 32 MB after the first large block is freed). Two
 *   sidecars at 1000 requests/s, RSS after 20 s of load: Node 24 100 / 108 MB → 86 / 92 MB, Node 20
 *   68 / 75 → 67 / 69. The steady-state price is about 30–90 mmap/munmap pairs per second at that
 *   rate (`strace -c`), a few milliseconds of system time per second. 64 KB did not help.
 *
 * Keep in step with the interpreter line of src/cli/main.ts and the Dockerfile.
 */
export const MALLOC_ENV: Readonly<Record<string, string>> = { MALLOC_MMAP_THRESHOLD_: '32768' };

/** `env` with the launcher's allocator settings: the environment of a Courier process the launcher starts. */
export function withLauncherEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...env, ...MALLOC_ENV };
}

/**
 * `env` without the allocator settings the launcher gave this process (MALLOC_ENV, with exactly its
 * values): what an app started by `courier run` inherits, so that an app runs as it would without
 * Courier. A value the user set differently is kept.
 */
export function withoutLauncherEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const [name, value] of Object.entries(MALLOC_ENV)) if (out[name] === value) delete out[name];
  return out;
}


/** V8's compilers above the interpreter that this runtime has (Maglev ships from V8 12, Node 22). */
function compilerTiers(v8Version = process.versions.v8): readonly string[] {
  const major = Number(v8Version.split('.')[0]);
  return major >= 12 ? ['sparkplug', 'maglev', 'opt'] : ['sparkplug', 'opt'];
}

/** The compilers a serving Courier process runs: Maglev stays off (NODE_FLAGS) even where it ships. */
const SERVING_TIERS: readonly string[] = ['sparkplug', 'opt'];

/**
 * No compilers above the interpreter (Sparkplug, Maglev where the runtime has it, TurboFan) from now on, for this process only
 * (the processes it starts keep NODE_FLAGS). Loading the CLI's modules is hot enough for TurboFan to
 * compile the ES module loader's URL and path functions, and the compilers' own machine code (pages
 * of the node binary) then stays resident: in a supervisor, which runs nothing hot, for good; in a
 * sidecar, which may wait idle for hours, until `compileWhenServing` (docs/performance.md, "Heap and
 * runtime"). Start-up is no slower (it compiles less).
 */
export function interpretOnly(): void {
  for (const tier of compilerTiers()) setFlagsFromString(`--no-${tier}`);
}

/**
 * Turns on again, for the calls a started sidecar serves, Sparkplug and TurboFan; Maglev stays off,
 * as NODE_FLAGS have it, also in a sidecar started without the launcher's flags.
 */
export function compileWhenServing(): void {
  for (const tier of SERVING_TIERS) setFlagsFromString(`--${tier}`);
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
