// Where the mesh views get their data: the sidecars of this machine (their run records), any given
// by address, and those name resolution lists for the apps in view, each read over its metrics port
// (src/observability/mesh/contract.ts). Used by the terminal views (`courier stat`, `edges`, `top`,
// `tap`) and by `courier dashboard`.
import { request } from '../../util/builtin-http.js';
import { defaultConfiguration, loadConfiguration } from '../../config/configuration.js';
import { courierHome } from '../../runtime/options.js';
import { readAtMost } from '../../util/read-bounded.js';
import { listRunRecords, runDirectory } from '../../runtime/run-registry.js';
import { CourierError, errorMessage } from '../../errors/index.js';
import { defaultNameResolutionComponent, defaultRegistry, joinHostPort, type NameResolutionSpec, type NameResolver, type ResolvedAddress, type ResolverDeps } from '../../nameresolution/index.js';
import { createLogger } from '../../observability/logging/index.js';
import { MESH_PATHS, MESH_TOKEN_HEADER, type InboundTraffic, type MeshInfo, type OutboundTraffic, type TrafficSnapshot } from '../../observability/mesh/contract.js';
import type { MeshSample, SidecarRef, SidecarSample } from './view-types.js';

export { meshView } from './mesh-view.js';

/** How long one read of one sidecar may take by default: the views wait for the slowest sidecar. */
export const DEFAULT_SAMPLE_TIMEOUT_MS = 1500;

/** A JSON document larger than this is not what a sidecar serves; reading stops there. */
const MAX_BODY_BYTES = 16 * 1024 * 1024;

/**
 * The base URL of a metrics port given as `host:port`, `[v6]:port` or `http://host:port`; undefined if
 * it is none of those.
 */
export function parseSidecarAddress(text: string): string | undefined {
  const trimmed = text.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? trimmed : `http://${trimmed}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' || url.port === '' || url.username !== '' || url.password !== '') return undefined;
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') return undefined;
  return url.origin;
}

/**
 * Every sidecar to read: those with metrics on from this machine's run records (on loopback), then
 * those given as addresses of their metrics port; one reference per URL (a run record's, which knows
 * the app id, wins). Throws ERR_INVALID_FLAG for an address that is not `host:port`.
 */
export function discoverSidecars(env: NodeJS.ProcessEnv, addresses: readonly string[]): SidecarRef[] {
  const refs = new Map<string, SidecarRef>();
  for (const record of listRunRecords(courierHome(env))) {
    if (record.metricsEnabled === false || !(record.metricsPort > 0)) continue;
    const metricsUrl = `http://127.0.0.1:${record.metricsPort}`;
    if (!refs.has(metricsUrl)) refs.set(metricsUrl, { appId: record.appId, metricsUrl, source: 'run-record' });
  }
  for (const address of addresses) {
    const metricsUrl = parseSidecarAddress(address);
    if (metricsUrl === undefined) throw new CourierError('ERR_INVALID_FLAG', `--sidecar "${address}" is not the host:port of a sidecar's metrics port`);
    if (!refs.has(metricsUrl)) refs.set(metricsUrl, { appId: '', metricsUrl, source: 'address' });
  }
  return [...refs.values()];
}

/**
 * Why no sidecar was found, naming where the views looked (for the "nothing to show" error); with
 * `resolved`, also the app ids name resolution was asked for, and by which resolver.
 */
export function noSidecarsMessage(env: NodeJS.ProcessEnv, resolved?: MeshDiscovery['resolved']): string {
  const home = courierHome(env);
  const records = listRunRecords(home);
  const off = records.filter((r) => r.metricsEnabled === false).length;
  const where = `no running sidecar with metrics on in ${runDirectory(home)} (COURIER_HOME=${home})`;
  const why = off > 0 ? `; ${off} running with --enable-metrics=false` : '';
  const given = 'none given with --sidecar <host:port of its metrics port>';
  if (resolved === undefined || resolved.appIds.length === 0) return `no Courier sidecars found: ${where}${why}, and ${given}`;
  return `no Courier sidecars found: ${where}${why}, ${given}, and ${resolved.by} found no instance of ${resolved.appIds.join(', ')}`;
}

export interface SampleOptions {
  /** Sent as `dapr-api-token` (the sidecars' `DAPR_API_TOKEN`). */
  readonly token?: string;
  /** Per request; default {@link DEFAULT_SAMPLE_TIMEOUT_MS}. */
  readonly timeoutMs?: number;
}

/** The headers of every request to a sidecar's mesh endpoints. */
export function meshHeaders(token: string | undefined, accept = 'application/json'): Record<string, string> {
  return { accept, ...(token === undefined || token === '' ? {} : { [MESH_TOKEN_HEADER]: token }) };
}

/** What a failed HTTP answer means to the user; `body` is the start of the answer, which may say why. */
export function statusProblem(status: number, path: string, body = ''): string {
  if (status === 401 || status === 403) return `HTTP ${status} on ${path}: the API token was refused (set DAPR_API_TOKEN to the sidecar's token)`;
  if (status === 404) return `HTTP 404 on ${path}: the sidecar does not serve the mesh endpoints (not Courier, or an older version)`;
  const line = body.trim().split('\n', 1)[0]?.slice(0, 200) ?? '';
  return line === '' ? `HTTP ${status} on ${path}` : `HTTP ${status} on ${path}: ${line}`;
}

/** The first bytes of a failed answer (for {@link statusProblem}), then `done` with them as text. */
export function readProblemBody(res: NodeJS.ReadableStream, done: (text: string) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    done(Buffer.concat(chunks).toString('utf8'));
  };
  res.on('data', (chunk: Buffer) => {
    if (size < 1024) chunks.push(chunk);
    size += chunk.length;
  });
  res.on('end', finish);
  res.on('error', finish);
  res.on('close', finish);
}

/** The reason a request failed, in a few words. */
export function requestProblem(err: unknown, timeoutMs: number): string {
  const code = (err as NodeJS.ErrnoException).code;
  const name = (err as Error).name;
  if (name === 'TimeoutError' || name === 'AbortError' || code === 'ABORT_ERR') return `no answer within ${timeoutMs} ms`;
  if (code === 'ECONNREFUSED') return 'connection refused (the sidecar is gone, or metrics are off)';
  return errorMessage(err);
}

/** GET of one JSON document, with a hard timeout; rejects with a one-line reason. */
function getJson(baseUrl: string, path: string, options: SampleOptions): Promise<unknown> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_SAMPLE_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const fail = (message: string): void => reject(new Error(message));
    const req = request(
      new URL(path, baseUrl),
      { method: 'GET', headers: meshHeaders(options.token), agent: false, signal: AbortSignal.timeout(timeoutMs) },
      (res) => {
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          readProblemBody(res, (body) => fail(statusProblem(status, path, body)));
          return;
        }
        readAtMost(res, MAX_BODY_BYTES).then(
          (body) => {
            if (body === undefined) {
              req.destroy();
              fail(`${path}: the answer is larger than ${MAX_BODY_BYTES} bytes`);
              return;
            }
            try {
              resolve(JSON.parse(body.toString('utf8')));
            } catch {
              fail(`${path}: the answer is not JSON`);
            }
          },
          (err: unknown) => fail(requestProblem(err, timeoutMs)),
        );
      },
    );
    req.on('error', (err) => fail(requestProblem(err, timeoutMs)));
    req.end();
  });
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const num = (value: unknown): number => (typeof value === 'number' && Number.isFinite(value) ? value : 0);
const str = (value: unknown): string => (typeof value === 'string' ? value : '');

/** Checks the fields the views rely on; the rest is passed through as the sidecar wrote it. */
export function asMeshInfo(value: unknown): MeshInfo {
  if (!isObject(value) || typeof value.appId !== 'string' || typeof value.pid !== 'number' || typeof value.startedAt !== 'string') {
    throw new Error(`${MESH_PATHS.info}: not a sidecar description (appId, pid and startedAt expected)`);
  }
  return value as unknown as MeshInfo;
}

function counters(row: Record<string, unknown>): { calls: number; failures: number; buckets: number[]; latencySumMs: number } {
  return {
    calls: num(row.calls),
    failures: num(row.failures),
    buckets: Array.isArray(row.buckets) ? row.buckets.map(num) : [],
    latencySumMs: num(row.latencySumMs),
  };
}

/** The snapshot with every row's numbers and strings made safe to add up (missing ones count 0 or ''). */
export function asTrafficSnapshot(value: unknown): TrafficSnapshot {
  if (!isObject(value) || !Array.isArray(value.outbound) || !Array.isArray(value.inbound)) {
    throw new Error(`${MESH_PATHS.traffic}: not a traffic snapshot (outbound and inbound tables expected)`);
  }
  const outbound: OutboundTraffic[] = value.outbound.filter(isObject).map((row) => ({ dstAppId: str(row.dstAppId), ...counters(row) }));
  const inbound: InboundTraffic[] = value.inbound
    .filter(isObject)
    .map((row) => ({ srcAppId: str(row.srcAppId), srcIdentity: str(row.srcIdentity), verb: str(row.verb), route: str(row.route), ...counters(row) }));
  return { appId: str(value.appId), at: num(value.at), outbound, inbound };
}

/** Reads one sidecar's info and traffic (in parallel); never rejects. */
export async function sampleSidecar(ref: SidecarRef, options: SampleOptions): Promise<SidecarSample> {
  const [info, traffic] = await Promise.allSettled([
    getJson(ref.metricsUrl, MESH_PATHS.info, options).then(asMeshInfo),
    getJson(ref.metricsUrl, MESH_PATHS.traffic, options).then(asTrafficSnapshot),
  ]);
  const errors = [info, traffic].flatMap((r) => (r.status === 'rejected' ? [errorMessage(r.reason)] : []));
  const sample: SidecarSample = {
    ref,
    info: info.status === 'fulfilled' ? info.value : null,
    traffic: traffic.status === 'fulfilled' ? traffic.value : null,
  };
  if (errors.length === 0) return sample;
  // Both requests usually fail for the same reason (whichever path they name): say it once.
  const reason = (message: string): string => message.replace(MESH_PATHS.info, '').replace(MESH_PATHS.traffic, '');
  const [first, second] = errors;
  const same = second === undefined || reason(second) === reason(first ?? '');
  return { ...sample, error: same ? (first ?? '') : errors.join('; ') };
}

/**
 * One read of every sidecar, in parallel; `at` is when it began. A sidecar that cannot be read has
 * `error` set; this never rejects.
 */
export async function sampleMesh(refs: readonly SidecarRef[], options: SampleOptions): Promise<MeshSample> {
  const at = Date.now();
  const sidecars = await Promise.all(refs.map((ref) => sampleSidecar(ref, options)));
  return { at, sidecars };
}

/** Dapr's default metrics port: where sidecars found by name resolution are read, unless told otherwise. */
export const DEFAULT_REMOTE_METRICS_PORT = 9090;

/** How long one name resolution lookup may take by default (mDNS browses for 1 s by default). */
export const DEFAULT_RESOLVE_TIMEOUT_MS = 3000;

/**
 * The most app ids one discovery looks up. A sidecar counts up to 2000 destinations, some of them
 * made up by callers; looking each up on every refresh would be a flood, not a view.
 */
export const MAX_RESOLVED_APPS = 256;

/** The destination sidecars count calls under past their bound (src/observability/mesh/traffic.ts): no app id. */
const OTHER_GROUP = '_other';

/** What discovery needs of name resolution: instances of an app id, and a name for messages. */
export interface AppLookup {
  /** The resolver in words, e.g. `the sqlite name resolver (of config.yaml, namespace default)`. */
  readonly description: string;
  /** Every live instance of `appId`; rejects (or takes longer than `timeoutMs`) when the resolver cannot say. */
  resolve(appId: string, timeoutMs: number): Promise<readonly ResolvedAddress[]>;
  close(): Promise<void>;
}

/** Makes a resolver as `courier resolve` does; replaced in tests. */
export type ResolverMaker = (spec: NameResolutionSpec, deps: ResolverDeps, where: string) => NameResolver;

const makeResolver: ResolverMaker = (spec, deps, where) => defaultRegistry().create(spec, deps, where);

/** How long a resolver that could not be made is not tried again. */
const RETRY_MAKE_MS = 1000;

/**
 * The name resolver of one Configuration (`--config`, else the embedded default: SQLite in
 * COURIER_HOME), for the views. The file is read and checked at once, so a mistake in it is an
 * error of the command; the resolver itself is made at the first lookup and kept for every later
 * one until {@link close}: a resolver may hold a database or sockets, and mDNS only sends anything
 * when a Configuration chose it and there is an app id to look up.
 */
export class MeshNames implements AppLookup {
  readonly namespace: string;
  readonly description: string;
  readonly #spec: NameResolutionSpec;
  readonly #where: string;
  readonly #home: string;
  readonly #make: ResolverMaker;
  #resolver: NameResolver | undefined;
  #failure: { readonly error: unknown; readonly at: number } | undefined;
  #closed = false;

  /** @throws CourierError `ERR_INVALID_CONFIG` for a file that is not a valid Configuration, or an unknown resolver. */
  constructor(env: NodeJS.ProcessEnv, options: { readonly configFile?: string | undefined; readonly namespace: string }, make: ResolverMaker = makeResolver) {
    const configuration = options.configFile === undefined ? defaultConfiguration : loadConfiguration(options.configFile);
    this.#spec = configuration.nameResolution ?? {};
    this.#where = `${options.configFile ?? 'the default configuration'}: spec.nameResolution`;
    this.#home = courierHome(env);
    this.#make = make;
    this.namespace = options.namespace;
    const requested = (this.#spec.component ?? '').trim().toLowerCase();
    const component = requested === '' ? defaultNameResolutionComponent : requested;
    // Checked now, without opening anything: the plug-in exists and takes this configuration.
    const factory = defaultRegistry().get(component);
    if (factory === undefined) throw new CourierError('ERR_INVALID_CONFIG', `${this.#where}.component: unknown name resolution component "${component}"`);
    factory.parseMetadata(this.#spec.configuration, `${this.#where}.configuration`);
    this.description = `the ${component} name resolver (${options.configFile ?? 'the default configuration'}, namespace ${options.namespace})`;
  }

  async resolve(appId: string, timeoutMs: number): Promise<readonly ResolvedAddress[]> {
    const resolver = this.#open(timeoutMs);
    let timer: NodeJS.Timeout | undefined;
    // Not unref'd: a resolver's own timers are, and a command waiting for its answer must not end
    // for want of anything to wait on.
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([resolver.resolve({ appId, namespace: this.namespace }), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The resolver, made on first use. One that could not be made (a database that cannot be opened) is
   * tried again on a later discovery, not by every lookup of this one.
   */
  #open(timeoutMs: number): NameResolver {
    if (this.#closed) throw new Error('name resolution is closed');
    if (this.#resolver !== undefined) return this.#resolver;
    if (this.#failure !== undefined && Date.now() - this.#failure.at < RETRY_MAKE_MS) throw this.#failure.error;
    try {
      const logger = createLogger({ level: 'warn', json: false, destination: { write: (line: string) => void process.stderr.write(line) } });
      this.#resolver = this.#make(this.#spec, { logger, courierHome: this.#home, startupWaitMs: timeoutMs }, this.#where);
      this.#failure = undefined;
      return this.#resolver;
    } catch (error) {
      this.#failure = { error, at: Date.now() };
      throw error;
    }
  }

  /** Closes the resolver, if one was made; idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const resolver = this.#resolver;
    this.#resolver = undefined;
    await resolver?.close();
  }
}

/** The host of `host:port`, `[v6]:port`, a bare host or a bare IPv6 literal; undefined if there is none. */
function addressHost(address: string): string | undefined {
  const text = address.trim();
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    return end > 1 ? text.slice(1, end) : undefined;
  }
  const colons = text.split(':').length - 1;
  const host = colons === 1 ? text.slice(0, text.indexOf(':')) : text;
  return host === '' ? undefined : host;
}

/** An address in one spelling (host lower case, IPv6 compressed), so that two spellings of one instance compare equal. */
function addressKey(address: string): string {
  const text = address.trim();
  const colons = text.split(':').length - 1;
  try {
    return new URL(`http://${!text.startsWith('[') && colons > 1 ? `[${text}]` : text}`).host;
  } catch {
    return text.toLowerCase();
  }
}

/**
 * The metrics URL of the sidecar whose internal address (`host:port`, as name resolution gives it)
 * is `address`: the same host, `metricsPort` (name resolution does not know the metrics port);
 * undefined when the host cannot be reached over HTTP (an IPv6 zone, say).
 */
export function remoteMetricsUrl(address: string, metricsPort: number): string | undefined {
  const host = addressHost(address);
  return host === undefined ? undefined : parseSidecarAddress(joinHostPort(host, metricsPort));
}

/** One app id looked up: its instances, or why the lookup failed. */
export interface AppLookupResult {
  readonly appId: string;
  readonly addresses?: readonly ResolvedAddress[];
  readonly error?: string;
}

/**
 * The sidecars name resolution found that are not known yet: every address that is no known
 * sidecar's own (`info.address`), as a reference to `http://<host>:<remoteMetricsPort>` with the app
 * id it was found under; one per metrics URL. Failed lookups and unusable addresses become warnings.
 */
export function namedSidecars(
  lookups: readonly AppLookupResult[],
  known: { readonly refs: readonly SidecarRef[]; readonly addresses: readonly string[] },
  remoteMetricsPort: number,
  by: string,
): { refs: SidecarRef[]; warnings: string[] } {
  const ownAddresses = new Set(known.addresses.filter((a) => a !== '').map(addressKey));
  const urls = new Set(known.refs.map((r) => r.metricsUrl));
  const refs: SidecarRef[] = [];
  const warnings: string[] = [];
  // A resolver that cannot be made or read usually fails every lookup the same way: said once.
  const failed = new Map<string, string[]>();
  for (const lookup of lookups) {
    if (lookup.error !== undefined) failed.set(lookup.error, [...(failed.get(lookup.error) ?? []), lookup.appId]);
  }
  for (const [error, appIds] of failed) warnings.push(`cannot look up ${appIds.length === 1 ? 'app' : 'apps'} ${appIds.join(', ')} with ${by}: ${error}`);
  for (const lookup of lookups) {
    for (const { address } of lookup.addresses ?? []) {
      if (ownAddresses.has(addressKey(address))) continue;
      const metricsUrl = remoteMetricsUrl(address, remoteMetricsPort);
      if (metricsUrl === undefined) {
        warnings.push(`${by} gave app ${lookup.appId} the address "${address}", whose host cannot be read over HTTP`);
        continue;
      }
      if (urls.has(metricsUrl)) continue;
      urls.add(metricsUrl);
      refs.push({ appId: lookup.appId, metricsUrl, source: 'name-resolution', address });
    }
  }
  return { refs, warnings };
}

export interface DiscoverMeshOptions extends SampleOptions {
  /** `--sidecar` addresses (metrics ports). */
  readonly addresses: readonly string[];
  /** Name resolution; without it, discovery is {@link discoverSidecars}. */
  readonly names?: AppLookup | undefined;
  /** App ids to look up whether or not a sidecar calls them (`--app`). */
  readonly appIds?: readonly string[];
  /** Whether the apps the known sidecars call are looked up too; default true. */
  readonly called?: boolean;
  /** The metrics port assumed for sidecars found by name resolution; default {@link DEFAULT_REMOTE_METRICS_PORT}. */
  readonly remoteMetricsPort?: number;
  /** How long one lookup may take; default {@link DEFAULT_RESOLVE_TIMEOUT_MS}. */
  readonly resolveTimeoutMs?: number;
  /**
   * A sample taken moments ago (the dashboard's last window): the known sidecars in it are not read
   * again to learn whom they call and where they are; only those missing from it are.
   */
  readonly previous?: MeshSample | undefined;
}

export interface MeshDiscovery {
  readonly refs: readonly SidecarRef[];
  /** Lookups that failed and addresses that could not be used, one line each: the views go on without them. */
  readonly warnings: readonly string[];
  /** The app ids name resolution was asked for, and by which resolver; undefined when it was not asked. */
  readonly resolved: { readonly appIds: readonly string[]; readonly by: string } | undefined;
}

/**
 * Every sidecar to read: {@link discoverSidecars}, then, with name resolution, the instances of the
 * apps those sidecars call (from one read of their traffic) and of `appIds`, where they are not
 * known already (sidecars of other machines, or of another COURIER_HOME). Name resolution gives a
 * sidecar's internal address, not its metrics port: those are read at `remoteMetricsPort` on the
 * same host. A lookup that fails is a warning, never an error. Throws only as discoverSidecars does.
 */
export async function discoverMesh(env: NodeJS.ProcessEnv, options: DiscoverMeshOptions): Promise<MeshDiscovery> {
  const known = discoverSidecars(env, options.addresses);
  const names = options.names;
  if (names === undefined) return { refs: known, warnings: [], resolved: undefined };
  const sampleOptions: SampleOptions = { ...(options.token === undefined ? {} : { token: options.token }), ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }) };
  const previous = new Map((options.previous?.sidecars ?? []).map((s) => [s.ref.metricsUrl, s] as const));
  const unread = known.filter((ref) => !previous.has(ref.metricsUrl));
  const fresh = unread.length === 0 ? [] : (await sampleMesh(unread, sampleOptions)).sidecars;
  const read = [...known.flatMap((ref) => previous.get(ref.metricsUrl) ?? []), ...fresh];
  const wanted = new Set<string>(options.appIds ?? []);
  if (options.called !== false) {
    for (const s of read) for (const row of s.traffic?.outbound ?? []) if (row.dstAppId !== '' && row.dstAppId !== OTHER_GROUP) wanted.add(row.dstAppId);
  }
  if (wanted.size === 0) return { refs: known, warnings: [], resolved: undefined };
  const appIds = [...wanted].slice(0, MAX_RESOLVED_APPS);
  const warnings = wanted.size > appIds.length ? [`${wanted.size} apps to look up by name resolution; only the first ${MAX_RESOLVED_APPS} were`] : [];
  const timeoutMs = options.resolveTimeoutMs ?? DEFAULT_RESOLVE_TIMEOUT_MS;
  const lookups = await Promise.all(
    appIds.map(async (appId): Promise<AppLookupResult> => {
      try {
        return { appId, addresses: await names.resolve(appId, timeoutMs) };
      } catch (err) {
        return { appId, error: errorMessage(err) };
      }
    }),
  );
  const addresses = read.flatMap((s) => (typeof s.info?.address === 'string' ? [s.info.address] : []));
  const found = namedSidecars(lookups, { refs: known, addresses }, options.remoteMetricsPort ?? DEFAULT_REMOTE_METRICS_PORT, names.description);
  return { refs: [...known, ...found.refs], warnings: [...warnings, ...found.warnings], resolved: { appIds, by: names.description } };
}
