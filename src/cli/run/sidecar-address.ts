// Where a sidecar's HTTP API is reached, and the headers every call to it carries. No HTTP client
// here: `courier run` (which only sets metadata) must not load node:http for it.
import type { RunRecord } from '../../runtime/run-registry.js';

/** The part of a run record needed to reach a sidecar's HTTP API. */
export type SidecarAddress = Pick<RunRecord, 'httpPort' | 'listenAddresses' | 'httpSocket'>;

/** The host to call a sidecar's HTTP API on: loopback where it listens there, else its first address. */
export function sidecarHost(record: SidecarAddress): string {
  const addresses = record.listenAddresses.map((a) => a.replace(/^\[(.*)\]$/, '$1').toLowerCase());
  if (addresses.length === 0 || addresses.some((a) => a === '127.0.0.1' || a === '0.0.0.0' || a === 'localhost' || a === '::')) return '127.0.0.1';
  if (addresses.includes('::1')) return '::1';
  return addresses[0] ?? '127.0.0.1';
}

/** Headers every call to a sidecar's API carries: `dapr-api-token` when `DAPR_API_TOKEN` is set. */
export function apiHeaders(env: NodeJS.ProcessEnv): Record<string, string> {
  const token = env.DAPR_API_TOKEN;
  return token === undefined || token === '' ? {} : { 'dapr-api-token': token };
}
