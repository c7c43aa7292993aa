import type { Logger } from '../observability/logging/index.js';

/**
 * This sidecar, as other sidecars should find it. The runtime fills it from its flags once its
 * listeners are bound, and hands it to {@link NameResolver.register}.
 */
export interface SelfInstance {
  /** The app id this sidecar serves; the key other sidecars resolve. */
  appId: string;
  /** The namespace of the app (Dapr's `NAMESPACE`); resolvers that have no namespaces ignore it. */
  namespace: string;
  /**
   * The address other sidecars dial to reach this one, e.g. "127.0.0.1" or "::1". Written bare: a
   * resolver that publishes "host:port" strings brackets IPv6 hosts itself ("[::1]:50002").
   */
  host: string;
  /** The internal gRPC port (sidecar-to-sidecar traffic); the port a resolved address carries. */
  internalPort: number;
  /** The public HTTP API port; published by resolvers whose registry can carry it (mDNS TXT records, Consul meta). */
  httpPort: number;
  /** The app's own port, when the app listens on one. */
  appPort?: number;
}

/** What a caller asks a resolver for: every live sidecar of one app id in one namespace. */
export interface ResolveRequest {
  appId: string;
  namespace: string;
}

/** One live instance of the requested app, as a dialable address. */
export interface ResolvedAddress {
  /** "host:port" for names and IPv4, "[v6]:port" for IPv6: directly usable as a gRPC target. */
  address: string;
  /**
   * Epoch milliseconds at which this entry stops being trustworthy, when the resolver knows it
   * (e.g. the end of a heartbeat's liveness window). A caller that caches results drops the
   * instance at this time instead of guessing a TTL; absent means "ask again when in doubt".
   */
  expiresAtMs?: number;
}

/**
 * A name resolution component: publishes this sidecar and finds others. One instance lives for the
 * whole sidecar process; the runtime calls `register` once at start and `close` on shutdown.
 */
export interface NameResolver {
  /** The component name it was created for, e.g. "sqlite"; for logs and the metadata API. */
  readonly component: string;
  /**
   * Announces this sidecar so that others can resolve it. Called at most once; resolves when the
   * announcement is visible to other sidecars (so the runtime can report readiness honestly).
   */
  register(instance: SelfInstance): Promise<void>;
  /**
   * Every live instance of `request.appId`, in a stable order (so callers can round-robin or pick by
   * hash deterministically). Resolves to `[]` when there is none; producing the "app not found"
   * error is the caller's job, since only it knows the request that failed.
   */
  resolve(request: ResolveRequest): Promise<readonly ResolvedAddress[]>;
  /**
   * Optional: forget what is cached for `request` (a call to one of its addresses just failed), so
   * the next resolve asks the registry again.
   */
  invalidate?(request: ResolveRequest): void;
  /**
   * Optional: what the last lookup for `request` did, in words ("looked up x-dapr.default.svc…: NXDOMAIN"),
   * for the error a caller gets when no instance was found.
   */
  lastLookup?(request: ResolveRequest): string | undefined;
  /**
   * Optional: the health of the registry behind the resolver, as this process last saw it, and the
   * answers it falls back on while the registry is unhealthy. For `courier resolve` and the
   * metadata API; JSON-serialisable.
   */
  status?(): ResolverStatus;
  /**
   * Withdraws the registration, stops background timers and releases handles. Idempotent, and safe
   * when `register` was never called; the sidecar shuts down through it on every path.
   */
  close(): Promise<void>;
}

/** See {@link NameResolver.status}. */
export interface ResolverStatus {
  /** Where the registry is, e.g. the database file. */
  store: string;
  healthy: boolean;
  /** ISO time the registry turned unhealthy. */
  unhealthySince?: string;
  /** Why, in words ("SQLITE_BUSY: database is locked"). */
  cause?: string;
  /** The last answers read while the registry was healthy, by `namespace/appId`: what is used while it is not. */
  lastKnown: Record<string, { readAt: string; addresses: string[] }>;
}

/** What the runtime gives every resolver it creates. */
export interface ResolverDeps {
  logger: Logger;
  /** Courier's home directory (e.g. `~/.courier`); resolvers keep their default state files here. */
  courierHome: string;
  /**
   * Caps how long the resolver may wait at start for a registry that is busy (a locked database),
   * below its own configured bound; for a CLI command that should answer promptly.
   */
  startupWaitMs?: number;
}

/**
 * A name resolution plug-in: parses its `configuration` block and creates resolvers. Parsing is a
 * separate step so that `courier` can validate a Configuration file without opening anything.
 */
export interface NameResolverFactory<M = unknown> {
  /** The name used in `spec.nameResolution.component`, lower case, e.g. "sqlite". */
  readonly component: string;
  /** Other names accepted for the same plug-in. */
  readonly aliases?: readonly string[];
  /** Accepted `spec.nameResolution.version` values, e.g. ["v1"]; the first is used when none is given. */
  readonly versions: readonly string[];
  /**
   * Validates `spec.nameResolution.configuration` (anything YAML can hold; usually a map or absent).
   * `where` locates it for messages, e.g. "config.yaml: spec.nameResolution.configuration".
   * @throws CourierError `ERR_INVALID_CONFIG` naming the offending key and the reason.
   */
  parseMetadata(configuration: unknown, where: string): M;
  /** Creates a resolver from parsed metadata; may open files, but starts no network traffic. */
  create(metadata: M, deps: ResolverDeps): NameResolver;
}
