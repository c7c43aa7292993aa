import { readFileSync } from 'node:fs';

/**
 * A thread's time slice as Linux shows it (`se.slice` in `/proc/<pid>/sched`, Linux 6.6 and newer),
 * in nanoseconds: of process `pid`'s main thread, or of the calling thread when `pid` is 'thread-self'.
 */
export function shownSlice(pid: number | 'thread-self'): number | undefined {
  const line = /^se\.slice\s*:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/sched`, 'utf8'));
  return line?.[1] === undefined ? undefined : Number(line[1]);
}

/** The running kernel's release, e.g. "6.18.44". */
export const kernelRelease = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();

/** Linux 6.12 and newer keep a slice a fair thread asks for with sched_setattr. */
export function kernelKeepsSlices(): boolean {
  const [major = 0, minor = 0] = (/^(\d+)\.(\d+)/.exec(kernelRelease) ?? []).slice(1).map(Number);
  return major > 6 || (major === 6 && minor >= 12);
}
