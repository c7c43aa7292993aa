import { CourierError, errorMessage } from '../../errors/index.js';
import type { Logger } from '../../observability/logging/index.js';
import { parseDuration } from '../../util/duration.js';
import { joinHostPort } from '../address.js';
import type { NameResolver, NameResolverFactory, ResolvedAddress, ResolveRequest, SelfInstance } from '../name-resolver.js';

/** The Kubernetes resolver's settings: Dapr's keys (`clusterDomain`, `template`) plus Courier's cache bound. */
export interface KubernetesMetadata {
  /** `clusterDomain` (default `cluster.local`). */
  clusterDomain: string;
  /**
   * `template` (Dapr's, over the request: `{{.ID}}`, `{{.Namespace}}`, `{{.Port}}`, `{{.Data.key}}`):
   * the `host[:port]` to look up instead of `<id>-dapr.<namespace>.svc.<clusterDomain>`.
   */
  template: string | undefined;
  /** `cacheTTL` (default 20s, daprd's): how long a lookup's addresses are reused; a failed call drops them at once. */
  cacheTtlMs: number;
}

export function parseKubernetesMetadata(configuration: unknown, where: string): KubernetesMetadata {
  const out: KubernetesMetadata = { clusterDomain: 'cluster.local', template: undefined, cacheTtlMs: 20_000 };
  if (configuration === undefined || configuration === null) return out;
  if (typeof configuration !== 'object' || Array.isArray(configuration)) throw new CourierError('ERR_INVALID_CONFIG', `${where}: must be a map of settings`);
  for (const [key, value] of Object.entries(configuration as Record<string, unknown>)) {
    const fail = (why: string): CourierError => new CourierError('ERR_INVALID_CONFIG', `${where}.${key}: ${why}`);
    switch (key.toLowerCase()) {
      case 'clusterdomain':
        if (typeof value !== 'string' || !/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(value)) throw fail(`"${String(value)}" is not a DNS domain`);
        out.clusterDomain = value;
        break;
      case 'template':
        if (typeof value !== 'string' || value.trim() === '') throw fail('must be a non-empty template, e.g. "{{.ID}}-dapr.{{.Namespace}}.svc.cluster.local:{{.Port}}"');
        out.template = value;
        break;
      case 'cachettl': {
        const ms = typeof value === 'string' || typeof value === 'number' ? parseDuration(value) : undefined;
        if (ms === undefined || ms < 0) throw fail(`"${String(value)}" is not a duration (e.g. 20s; 0 turns the cache off)`);
        out.cacheTtlMs = ms;
        break;
      }
      default:
        throw fail('unknown setting (known: clusterDomain, template, cacheTTL)');
    }
  }
  return out;
}

/** Fills Dapr's Go-template fields; anything else in `{{ }}` is refused when the template is used. */
export function expandTemplate(template: string, request: { id: string; namespace: string; port: number; data?: Record<string, string> }): string {
  return template.replace(/\{\{\s*([^}]*?)\s*\}\}/g, (_all, field: string) => {
    if (field === '.ID') return request.id;
    if (field === '.Namespace') return request.namespace;
    if (field === '.Port') return String(request.port);
    const data = /^\.Data\.([A-Za-z0-9_]+)$/.exec(field);
    if (data !== null) return request.data?.[data[1] ?? ''] ?? '';
    throw new CourierError('ERR_INVALID_CONFIG', `kubernetes name resolution template: unknown field {{${field}}} (known: .ID, .Namespace, .Port, .Data.<key>)`);
  });
}

/** Every address of a host name (the system resolver by default). */
export type LookupAll = (host: string) => Promise<readonly { address: string; family: number }[]>;

/**
 * The machine's resolver. `node:dns/promises` is loaded on the first lookup, not when this module is:
 * every sidecar loads the resolvers' registry, and only one on Kubernetes looks names up this way.
 */
const systemLookup: LookupAll = async (host) => {
  const { lookup } = await import('node:dns/promises');
  return lookup(host, { all: true, verbatim: true });
};

interface Cached {
  atMs: number;
  addresses: ResolvedAddress[];
}

/**
 * Kubernetes name resolution as Dapr does it: `<app-id>-dapr.<namespace>.svc.<clusterDomain>`, the
 * headless Service the Dapr operator (or your own manifest) creates for each app, looked up with the
 * system resolver. Every address it returns is an instance (client-side load balancing); the port is
 * this sidecar's own internal gRPC port, as every sidecar of a cluster uses the same one. Nothing is
 * registered: Kubernetes publishes the pods.
 */
export class KubernetesNameResolver implements NameResolver {
  readonly component = 'kubernetes';
  readonly #meta: KubernetesMetadata;
  readonly #logger: Logger;
  readonly #cache = new Map<string, Cached>();
  readonly #lastLookup = new Map<string, string>();
  readonly #lookup: LookupAll;
  #port = 50002;

  constructor(meta: KubernetesMetadata, logger: Logger, lookupAll: LookupAll = systemLookup) {
    this.#meta = meta;
    this.#logger = logger;
    this.#lookup = lookupAll;
  }

  register(instance: SelfInstance): Promise<void> {
    this.#port = instance.internalPort;
    return Promise.resolve();
  }

  /** The `host:port` looked up for a request. */
  target(request: ResolveRequest): { host: string; port: number } {
    if (this.#meta.template === undefined) {
      return { host: `${request.appId}-dapr.${request.namespace}.svc.${this.#meta.clusterDomain}`, port: this.#port };
    }
    const expanded = expandTemplate(this.#meta.template, { id: request.appId, namespace: request.namespace, port: this.#port });
    const m = /^(.*?)(?::(\d+))?$/.exec(expanded);
    return { host: m?.[1] ?? expanded, port: m?.[2] === undefined ? this.#port : Number(m[2]) };
  }

  async resolve(request: ResolveRequest): Promise<readonly ResolvedAddress[]> {
    const key = `${request.namespace}/${request.appId}`;
    const cached = this.#cache.get(key);
    const now = Date.now();
    if (cached !== undefined && now - cached.atMs < this.#meta.cacheTtlMs) return cached.addresses;
    const { host, port } = this.target(request);
    let found: readonly { address: string; family: number }[];
    try {
      found = await this.#lookup(host);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      this.#lastLookup.set(key, `looked up ${host}: ${code ?? errorMessage(err)}`);
      if (code === 'ENOTFOUND' || code === 'ENODATA') {
        this.#cache.delete(key);
        return [];
      }
      throw err;
    }
    const addresses = [...new Set(found.map((a) => a.address))].sort().map((ip) => ({ address: joinHostPort(ip, port) }));
    this.#lastLookup.set(key, `looked up ${host}: ${addresses.length} address(es)`);
    this.#logger.debug({ host, addresses: addresses.map((a) => a.address) }, 'kubernetes DNS lookup');
    this.#cache.set(key, { atMs: now, addresses });
    return addresses;
  }

  invalidate(request: ResolveRequest): void {
    this.#cache.delete(`${request.namespace}/${request.appId}`);
  }

  lastLookup(request: ResolveRequest): string | undefined {
    return this.#lastLookup.get(`${request.namespace}/${request.appId}`);
  }

  close(): Promise<void> {
    this.#cache.clear();
    return Promise.resolve();
  }
}

export const kubernetesResolverFactory: NameResolverFactory<KubernetesMetadata> = {
  component: 'kubernetes',
  versions: ['v1'],
  parseMetadata: parseKubernetesMetadata,
  create: (metadata, deps) => new KubernetesNameResolver(metadata, deps.logger),
};
