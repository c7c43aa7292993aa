// Where the mesh views get their data: the sidecars of this machine (their run records) and any given
// by address, each read over its metrics port (src/observability/mesh/contract.ts). Used by the
// terminal views (`courier stat`, `edges`, `top`, `tap`) and by `courier dashboard`.
import { request } from 'node:http';
import { courierHome } from '../../runtime/options.js';
import { listRunRecords, runDirectory } from '../../runtime/run-registry.js';
import { CourierError, errorMessage } from '../../errors/index.js';
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

/** Why no sidecar was found, naming where the views looked (for the "nothing to show" error). */
export function noSidecarsMessage(env: NodeJS.ProcessEnv): string {
  const home = courierHome(env);
  const records = listRunRecords(home);
  const off = records.filter((r) => r.metricsEnabled === false).length;
  const where = `no running sidecar with metrics on in ${runDirectory(home)} (COURIER_HOME=${home})`;
  const why = off > 0 ? `; ${off} running with --enable-metrics=false` : '';
  return `no Courier sidecars found: ${where}${why}, and none given with --sidecar <host:port of its metrics port>`;
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
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY_BYTES) {
            req.destroy();
            fail(`${path}: the answer is larger than ${MAX_BODY_BYTES} bytes`);
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => {
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
          } catch {
            fail(`${path}: the answer is not JSON`);
          }
        });
        res.on('error', (err) => fail(requestProblem(err, timeoutMs)));
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
