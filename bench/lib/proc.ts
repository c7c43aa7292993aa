// What a process costs, read from /proc (Linux): CPU time and resident set size.
import { readFileSync } from 'node:fs';

/** USER_HZ, the unit of the CPU times in /proc/<pid>/stat (100 on Linux everywhere). */
const TICKS_PER_SECOND = 100;

/** Bytes as whole MiB. */
export function mb(bytes: number): number {
  return Math.round(bytes / (1024 * 1024));
}

/** User + system CPU seconds a process has used so far (/proc/<pid>/stat fields 14 and 15). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** Resident set size in bytes (VmRSS of /proc/<pid>/status). */
export function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) * 1024;
}

/** Samples the RSS of `pids` every `everyMs` until stopped; `stop()` returns each one's peak. */
export function sampleRss(pids: readonly number[], everyMs: number): { stop(): number[] } {
  const peaks = pids.map(rssBytes);
  const timer = setInterval(() => {
    pids.forEach((pid, i) => {
      peaks[i] = Math.max(peaks[i] ?? 0, rssBytes(pid));
    });
  }, everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      return peaks;
    },
  };
}

/** The machine, for the report: CPU model and count, memory, kernel, Node. */
export function machineDescription(): string {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim() ?? 'unknown CPU';
  const cpus = (cpuinfo.match(/^processor\s*:/gm) ?? []).length;
  const memKb = Number(/MemTotal:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0);
  const kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  return `${cpus} × ${model}, ${Math.round(memKb / 1024 / 1024)} GiB, Linux ${kernel}, Node ${process.version}`;
}
