import { CourierError } from '../../errors/index.js';
import { parseDuration } from '../../util/duration.js';

/** The mDNS resolver's settings (`spec.nameResolution.configuration`), validated, units in the names. */
export interface MdnsMetadata {
  /**
   * `interfaces`: the network interfaces (names such as `eth1`) to announce on and browse on. Absent:
   * the interface that holds the sidecar's internal listen address, so a sidecar on 127.0.0.1 (the
   * default) stays on the loopback interface and nothing leaves the machine.
   */
  interfaces: readonly string[] | undefined;
  /** `ipv6` (default false): also announce and browse on IPv6 (ff02::fb), with AAAA records. */
  ipv6: boolean;
  /** `refreshInterval` (default 30s, Dapr's): how often the instances of every app id in use are asked for again. */
  refreshIntervalMs: number;
  /** `addressTTL` (default 60s, Dapr's): an instance not heard from for this long leaves rotation. */
  addressTtlMs: number;
  /** `browseTimeout` (default 1s, Dapr's): how long a first lookup waits for answers. */
  browseTimeoutMs: number;
  /** `port` (default 5353): the mDNS port; another one keeps a test fleet apart from real mDNS traffic. */
  port: number;
}

const defaults = { refreshIntervalMs: 30_000, addressTtlMs: 60_000, browseTimeoutMs: 1000, port: 5353 };

export function parseMdnsMetadata(configuration: unknown, where: string): MdnsMetadata {
  const fail = (key: string, why: string): CourierError => new CourierError('ERR_INVALID_CONFIG', `${where}.${key}: ${why}`);
  if (configuration === undefined || configuration === null) return { interfaces: undefined, ipv6: false, ...defaults };
  if (typeof configuration !== 'object' || Array.isArray(configuration)) {
    throw new CourierError('ERR_INVALID_CONFIG', `${where}: must be a map of settings`);
  }
  const out: MdnsMetadata = { interfaces: undefined, ipv6: false, ...defaults };
  const duration = (key: string, value: unknown): number => {
    const ms = typeof value === 'string' || typeof value === 'number' ? parseDuration(value) : undefined;
    if (ms === undefined || ms <= 0) throw fail(key, `"${String(value)}" is not a positive duration (e.g. 30s)`);
    return ms;
  };
  for (const [key, value] of Object.entries(configuration as Record<string, unknown>)) {
    switch (key.toLowerCase()) {
      case 'interfaces': {
        const list = typeof value === 'string' ? value.split(',').map((s) => s.trim()) : value;
        if (!Array.isArray(list) || list.length === 0 || !list.every((v) => typeof v === 'string' && v.trim() !== '')) {
          throw fail(key, 'must be a list of interface names, e.g. [eth1]');
        }
        out.interfaces = list.map((v: string) => v.trim());
        break;
      }
      case 'ipv6':
        if (typeof value !== 'boolean' && value !== 'true' && value !== 'false') throw fail(key, `"${String(value)}" is not true or false`);
        out.ipv6 = value === true || value === 'true';
        break;
      case 'refreshinterval':
        out.refreshIntervalMs = duration(key, value);
        break;
      case 'addressttl':
        out.addressTtlMs = duration(key, value);
        break;
      case 'browsetimeout':
        out.browseTimeoutMs = duration(key, value);
        break;
      case 'port': {
        const port = Number(value);
        if (!Number.isInteger(port) || port < 1 || port > 65535) throw fail(key, `"${String(value)}" is not a port number`);
        out.port = port;
        break;
      }
      default:
        throw fail(key, 'unknown setting (known: interfaces, ipv6, refreshInterval, addressTTL, browseTimeout, port)');
    }
  }
  if (out.addressTtlMs <= out.refreshIntervalMs) throw fail('addressTTL', 'must be longer than refreshInterval, or instances would expire between refreshes');
  return out;
}
