import { networkInterfaces, hostname } from 'node:os';
import { isIPv4, isIPv6 } from 'node:net';
import { createRequire } from 'node:module';
import type makeMdnsType from 'multicast-dns';
import type { Answer } from 'dns-packet';
import { CourierError, errorMessage } from '../../errors/index.js';
import type { Logger } from '../../observability/logging/index.js';
import type { NameResolver, ResolvedAddress, ResolveRequest, SelfInstance } from '../name-resolver.js';
import type { MdnsMetadata } from './metadata.js';

/** The TTL of the records this sidecar announces, in seconds. */
const RECORD_TTL_S = 120;
/** After the first answer of a lookup, how long to wait for other instances' answers. */
const SETTLE_MS = 150;

/** One instance of an app as seen on the network. */
interface Seen {
  /** The DNS-SD instance name, e.g. `host:1234.orders.local`. */
  instance: string;
  address: string;
  family: 4 | 6;
  firstSeenMs: number;
  lastSeenMs: number;
}

/** What `courier resolve` shows: the instances of an app id and how old their news is. */
export interface MdnsView {
  appId: string;
  instances: { instance: string; address: string; ageMs: number; expiresInMs: number }[];
}

type Mdns = ReturnType<typeof makeMdnsType>;

let loadedMdns: typeof makeMdnsType | undefined;
/** multicast-dns, loaded when the first mDNS socket opens: sidecars using another resolver never load it. */
function makeMdns(options: Parameters<typeof makeMdnsType>[0]): Mdns {
  loadedMdns ??= createRequire(import.meta.url)('multicast-dns') as typeof makeMdnsType;
  return loadedMdns(options);
}
type Socket = { mdns: Mdns; family: 4 | 6; iface: string };

/**
 * Dapr's mDNS name resolution, wire-compatible with daprd (zeroconf): the DNS-SD service type is the
 * bare app id in `local.`, the instance is `<hostname>:<pid>`, the SRV record carries the internal
 * gRPC port and the TXT record exactly the app id. Resolution browses for the app id, caches every
 * instance that answers (on every host), refreshes the app ids in use every `refreshInterval`, and
 * drops an instance on its goodbye packet (TTL 0, sent when a sidecar stops) or when it has not been
 * heard from for `addressTTL`. Answers nobody asked for (a sidecar starting up announces itself) are
 * taken in too, so a restarted instance is used at once.
 */
export class MdnsResolver implements NameResolver {
  readonly component = 'mdns';
  readonly #meta: MdnsMetadata;
  readonly #logger: Logger;
  readonly #now: () => number;
  #sockets: Socket[] | undefined;
  #self: SelfInstance | undefined;
  #records: Answer[] = [];
  readonly #cache = new Map<string, Map<string, Seen>>();
  readonly #tracked = new Set<string>();
  readonly #waiters = new Map<string, Set<() => void>>();
  #refreshTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(meta: MdnsMetadata, logger: Logger, now: () => number = Date.now) {
    this.#meta = meta;
    this.#logger = logger;
    this.#now = now;
  }

  async register(instance: SelfInstance): Promise<void> {
    this.#self = instance;
    this.#open(instance.host);
    const service = `${instance.appId}.local`;
    const name = `${hostname()}:${process.pid}.${service}`;
    const target = `${hostname()}.local`;
    const ips = this.#announcedAddresses(instance.host);
    this.#records = [
      { name: service, type: 'PTR', ttl: RECORD_TTL_S, data: name },
      { name, type: 'SRV', ttl: RECORD_TTL_S, data: { port: instance.internalPort, target, priority: 0, weight: 0 } },
      { name, type: 'TXT', ttl: RECORD_TTL_S, data: [instance.appId] },
      ...ips.map((ip): Answer => (isIPv4(ip) ? { name: target, type: 'A', ttl: RECORD_TTL_S, data: ip } : { name: target, type: 'AAAA', ttl: RECORD_TTL_S, data: ip })),
    ];
    this.#logger.info({ instance: name, port: instance.internalPort, addresses: ips, interfaces: this.#sockets?.map((s) => s.iface) }, 'announcing this sidecar with mDNS');
    // RFC 6762 §8.3: announce twice, a second apart; the first one is awaited.
    await this.#announce(this.#records);
    setTimeout(() => void this.#announce(this.#records), 1000).unref();
  }

  async resolve(request: ResolveRequest): Promise<readonly ResolvedAddress[]> {
    if (this.#closed) return [];
    this.#open(this.#self?.host);
    const appId = request.appId;
    if (!this.#tracked.has(appId)) {
      this.#tracked.add(appId);
      this.#scheduleRefresh();
      await this.#browse(appId, this.#meta.browseTimeoutMs);
    } else if (this.#live(appId).length === 0) {
      // Nothing live in the cache: ask the network again before saying there is nobody.
      await this.#browse(appId, this.#meta.browseTimeoutMs);
    }
    return this.#live(appId);
  }

  /** What the resolver knows of `appId` right now (browsing first if it has not yet). */
  async view(appId: string): Promise<MdnsView> {
    await this.resolve({ appId, namespace: '' });
    const now = this.#now();
    const instances = [...(this.#cache.get(appId)?.values() ?? [])].map((s) => ({
      instance: s.instance,
      address: s.address,
      ageMs: now - s.firstSeenMs,
      expiresInMs: s.lastSeenMs + this.#meta.addressTtlMs - now,
    }));
    return { appId, instances };
  }

  /** Interfaces and families in use, for error messages. */
  describe(): string {
    const where = this.#sockets?.map((s) => `${s.iface} (IPv${s.family})`).join(', ') ?? 'no interface yet';
    return `mDNS on ${where}, port ${this.#meta.port}`;
  }

  lastLookup(request: ResolveRequest): string | undefined {
    const heard = this.#cache.get(request.appId)?.size ?? 0;
    return `browsed for ${request.appId}.local with ${this.describe()}; ${heard === 0 ? 'no answer' : `${heard} instance(s) heard, none live`}`;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#refreshTimer !== undefined) clearInterval(this.#refreshTimer);
    for (const wake of [...this.#waiters.values()].flatMap((s) => [...s])) wake();
    this.#waiters.clear();
    if (this.#records.length > 0) {
      // Goodbye: the same records with TTL 0, so every cache drops this instance now.
      await this.#announce(this.#records.map((r) => ({ ...r, ttl: 0 }) as Answer));
    }
    await Promise.all((this.#sockets ?? []).map((s) => new Promise<void>((resolve) => s.mdns.destroy(() => resolve()))));
    this.#sockets = [];
  }

  // --- internals -------------------------------------------------------------------------------

  /** Instances of `appId` not expired, IPv4 first (IPv6 only when there is no IPv4, as Dapr does), sorted. */
  #live(appId: string): ResolvedAddress[] {
    const entries = this.#cache.get(appId);
    if (entries === undefined) return [];
    const now = this.#now();
    const live: Seen[] = [];
    for (const [key, seen] of entries) {
      if (now - seen.lastSeenMs >= this.#meta.addressTtlMs) entries.delete(key);
      else live.push(seen);
    }
    const v4 = live.filter((s) => s.family === 4);
    const chosen = v4.length > 0 ? v4 : live;
    return chosen
      .map((s) => ({ address: s.address, expiresAtMs: s.lastSeenMs + this.#meta.addressTtlMs }))
      .sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  }

  #scheduleRefresh(): void {
    if (this.#refreshTimer !== undefined) return;
    this.#refreshTimer = setInterval(() => {
      for (const appId of this.#tracked) this.#query(appId);
    }, this.#meta.refreshIntervalMs);
    this.#refreshTimer.unref();
  }

  /** Asks for `appId` and waits for the first answer (plus a moment for the others), or the timeout. */
  async #browse(appId: string, timeoutMs: number): Promise<void> {
    await new Promise<void>((resolve) => {
      let settle: NodeJS.Timeout | undefined;
      const done = (): void => {
        clearTimeout(timer);
        if (settle !== undefined) clearTimeout(settle);
        this.#waiters.get(appId)?.delete(onAnswer);
        resolve();
      };
      const onAnswer = (): void => {
        settle ??= setTimeout(done, SETTLE_MS);
      };
      const timer = setTimeout(done, timeoutMs);
      let set = this.#waiters.get(appId);
      if (set === undefined) this.#waiters.set(appId, (set = new Set()));
      set.add(onAnswer);
      this.#query(appId);
    });
  }

  #query(appId: string): void {
    for (const { mdns } of this.#sockets ?? []) {
      mdns.query({ questions: [{ name: `${appId}.local`, type: 'PTR' }] }, (err: Error | null) => {
        if (err) this.#logger.debug({ err: errorMessage(err) }, 'mDNS query not sent');
      });
    }
  }

  #announce(records: Answer[]): Promise<void> {
    return Promise.all(
      (this.#sockets ?? []).map(
        (s) =>
          new Promise<void>((resolve) => {
            const own = records.filter((r) => (s.family === 4 ? r.type !== 'AAAA' : r.type !== 'A'));
            s.mdns.respond({ answers: own }, (err: Error | null) => {
              if (err) this.#logger.debug({ err: errorMessage(err) }, 'mDNS announcement not sent');
              resolve();
            });
          }),
      ),
    ).then(() => undefined);
  }

  /** Answers a query for our service, instance or host name with our records. */
  #onQuery(mdns: Mdns, family: 4 | 6, questions: readonly { name: string; type: string }[]): void {
    if (this.#records.length === 0 || this.#closed) return;
    const names = new Set(this.#records.map((r) => r.name.toLowerCase()));
    const asked = questions.some((q) => names.has(q.name.toLowerCase()) && (q.type === 'ANY' || this.#records.some((r) => r.type === q.type && r.name.toLowerCase() === q.name.toLowerCase())));
    if (!asked) return;
    const own = this.#records.filter((r) => (family === 4 ? r.type !== 'AAAA' : r.type !== 'A'));
    mdns.respond({ answers: own.slice(0, 1), additionals: own.slice(1) }, (err: Error | null) => {
      if (err) this.#logger.debug({ err: errorMessage(err) }, 'mDNS answer not sent');
    });
  }

  /** Takes in every instance of a tracked app id found in a response (answers and additionals together). */
  #onResponse(records: readonly Answer[]): void {
    const srv = new Map<string, { port: number; target: string; ttl: number }>();
    const txt = new Map<string, string[]>();
    const hosts = new Map<string, { v4: string[]; v6: string[] }>();
    for (const r of records) {
      const name = r.name.toLowerCase();
      if (r.type === 'SRV') srv.set(name, { port: r.data.port, target: r.data.target.toLowerCase(), ttl: r.ttl ?? RECORD_TTL_S });
      else if (r.type === 'TXT') {
        const data = Array.isArray(r.data) ? r.data : [r.data];
        txt.set(name, data.map((d) => (typeof d === 'string' ? d : Buffer.from(d).toString('utf8'))));
      } else if (r.type === 'A' || r.type === 'AAAA') {
        const h = hosts.get(name) ?? { v4: [], v6: [] };
        (r.type === 'A' ? h.v4 : h.v6).push(r.data);
        hosts.set(name, h);
      }
    }
    const now = this.#now();
    for (const [instance, s] of srv) {
      const dot = instance.indexOf('.');
      // `<host>:<pid>.<appId>.local`: the app id sits between the first dot and ".local".
      if (dot < 0 || !instance.endsWith('.local')) continue;
      const rest = instance.slice(dot + 1, -'.local'.length);
      const appId = [...this.#tracked].find((id) => id.toLowerCase() === rest);
      if (appId === undefined) continue;
      const text = txt.get(instance);
      if (text !== undefined && !(text.length === 1 && text[0] === appId)) continue; // Dapr: the TXT must be the app id
      const addresses = hosts.get(s.target);
      const entries = this.#cache.get(appId) ?? new Map<string, Seen>();
      this.#cache.set(appId, entries);
      for (const key of [...entries.keys()]) if (key.startsWith(`${instance}|`)) entries.delete(key);
      if (s.ttl === 0) continue; // goodbye
      const v4 = addresses?.v4[0];
      const v6 = addresses?.v6[0];
      for (const [ip, family] of [
        [v4, 4],
        [v6, 6],
      ] as const) {
        if (ip === undefined) continue;
        const address = family === 4 ? `${ip}:${s.port}` : `[${ip}]:${s.port}`;
        entries.set(`${instance}|${family}`, { instance, address, family, firstSeenMs: now, lastSeenMs: now });
      }
      for (const wake of this.#waiters.get(appId) ?? []) wake();
    }
  }

  /** Opens the sockets on first use: one per interface and family. */
  #open(host: string | undefined): void {
    if (this.#sockets !== undefined || this.#closed) return;
    const chosen = this.#interfaces(host);
    const sockets: Socket[] = [];
    for (const { name, v4, v6 } of chosen) {
      const families: [4 | 6, string | undefined][] = [[4, v4]];
      if (this.#meta.ipv6) families.push([6, v6]);
      for (const [family, address] of families) {
        if (address === undefined) continue;
        const mdns =
          family === 4
            ? makeMdns({ interface: address, bind: '0.0.0.0', port: this.#meta.port, loopback: true, reuseAddr: true, type: 'udp4', ip: '224.0.0.251' })
            : makeMdns({ interface: `::%${name}`, bind: '::', port: this.#meta.port, loopback: true, reuseAddr: true, type: 'udp6', ip: 'ff02::fb' });
        mdns.on('warning', (err: Error) => this.#logger.debug({ iface: name, err: err.message }, 'mDNS warning'));
        mdns.on('error', (err: Error) => this.#logger.warn({ iface: name, err: err.message }, 'mDNS socket error'));
        mdns.on('query', (packet) => this.#onQuery(mdns, family, packet.questions ?? []));
        mdns.on('response', (packet) => this.#onResponse([...(packet.answers ?? []), ...(packet.additionals ?? [])]));
        sockets.push({ mdns, family, iface: name });
      }
    }
    if (sockets.length === 0) {
      throw new CourierError('ERR_INVALID_CONFIG', `mDNS: no usable interface (${chosen.map((c) => c.name).join(', ') || 'none found'}); set spec.nameResolution.configuration.interfaces`);
    }
    this.#sockets = sockets;
  }

  /** The interfaces to use: the configured ones, or the one that holds `host` (loopback for 127.0.0.1). */
  #interfaces(host: string | undefined): { name: string; v4: string | undefined; v6: string | undefined }[] {
    const all = networkInterfaces();
    const describe = (name: string): { name: string; v4: string | undefined; v6: string | undefined } => {
      const addrs = all[name] ?? [];
      return {
        name,
        v4: addrs.find((a) => a.family === 'IPv4')?.address,
        v6: addrs.find((a) => a.family === 'IPv6')?.address,
      };
    };
    if (this.#meta.interfaces !== undefined) {
      const missing = this.#meta.interfaces.filter((n) => all[n] === undefined);
      if (missing.length > 0) {
        throw new CourierError('ERR_INVALID_CONFIG', `mDNS: no network interface named ${missing.join(', ')} (this machine has ${Object.keys(all).join(', ')})`);
      }
      return this.#meta.interfaces.map(describe);
    }
    const wanted = host === undefined || host === '' || host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
    for (const [name, addrs] of Object.entries(all)) {
      if ((addrs ?? []).some((a) => a.address === wanted)) return [describe(name)];
    }
    const loopback = Object.entries(all).find(([, addrs]) => (addrs ?? []).some((a) => a.internal));
    return loopback === undefined ? [] : [describe(loopback[0])];
  }

  /** The addresses announced: the listen address when it is a specific one, else the interfaces' own. */
  #announcedAddresses(host: string): string[] {
    if (host !== '' && host !== '0.0.0.0' && host !== '::' && (isIPv4(host) || isIPv6(host))) return [host];
    const all = networkInterfaces();
    const names = this.#sockets?.map((s) => s.iface) ?? [];
    const ips: string[] = [];
    for (const name of new Set(names)) {
      for (const a of all[name] ?? []) {
        if (a.family === 'IPv4' && !ips.some(isIPv4)) ips.push(a.address);
        if (a.family === 'IPv6' && this.#meta.ipv6 && !ips.some(isIPv6)) ips.push(a.address);
      }
    }
    return ips;
  }
}
