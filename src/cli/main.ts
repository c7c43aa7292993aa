#!/usr/bin/env -S MALLOC_MMAP_THRESHOLD_=32768 node --max-semi-space-size=2 --single-threaded-gc --initial-old-space-size=8 --no-maglev --heap-growing-percent=30
// The `courier` executable. Only the compiler settings load before they are made: every other module
// of the CLI loads after, so the start-up of a sidecar or of `courier run` (the busiest moment either
// has) runs on V8's interpreter and leaves no optimizing compiler's code resident.
import { setCompilersForCommand } from '../runtime/heap-flags.js';

setCompilersForCommand(process.argv[2]);
await import('./commands.js');
