import { request } from '../../util/builtin-http.js';
import { courierHome } from '../../runtime/options.js';
import { apiHeaders, sidecarHost, type SidecarAddress } from './sidecar-address.js';
import { isSameProcess, listRunRecords, type ProcessRef, type RunRecord } from '../../runtime/run-registry.js';

export { apiHeaders, sidecarHost, type SidecarAddress } from './sidecar-address.js';

export interface HttpResult {
  readonly status: number;
  readonly statusText: string;
  readonly body: Buffer;
}

/** One HTTP request to a sidecar with `node:http` (any verb, a body with any verb, a hard timeout). */
export function callSidecar(
  record: SidecarAddress,
  options: { method: string; path: string; headers?: Record<string, string>; body?: string | Buffer; timeoutMs: number },
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.body !== undefined) headers['content-length'] = String(Buffer.byteLength(options.body));
    const req = request(
      {
        ...(record.httpSocket === undefined ? { host: sidecarHost(record), port: record.httpPort } : { socketPath: record.httpSocket }),
        method: options.method,
        path: options.path,
        headers,
        agent: false,
        signal: AbortSignal.timeout(options.timeoutMs),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** What `GET /v1.0/metadata` tells `courier list` and `courier stop`. */
export interface SidecarMetadata {
  readonly id: string | undefined;
  readonly extended: Readonly<Record<string, string>>;
}

/** `GET /v1.0/metadata`, or undefined if the sidecar does not answer in time. */
export async function getMetadata(record: SidecarAddress, env: NodeJS.ProcessEnv, timeoutMs = 1000): Promise<SidecarMetadata | undefined> {
  try {
    const res = await callSidecar(record, { method: 'GET', path: '/v1.0/metadata', headers: apiHeaders(env), timeoutMs });
    if (res.status !== 200) return undefined;
    const body = JSON.parse(res.body.toString('utf8')) as { id?: unknown; extended?: unknown };
    const extended: Record<string, string> = {};
    if (typeof body.extended === 'object' && body.extended !== null) {
      for (const [k, v] of Object.entries(body.extended)) if (typeof v === 'string') extended[k] = v;
    }
    return { id: typeof body.id === 'string' ? body.id : undefined, extended };
  } catch {
    return undefined;
  }
}

/** A running sidecar as `courier list` shows it: its run record and what its metadata adds. */
export interface Instance {
  readonly record: RunRecord;
  /** Undefined if the sidecar did not answer. */
  readonly metadata: SidecarMetadata | undefined;
  /** The `courier run` process that started the sidecar, while it runs (a pid now held by another process counts as gone). */
  readonly cli: ProcessRef | undefined;
  /** The app started beside the sidecar, while it runs (the same check). */
  readonly app: ProcessRef | undefined;
  readonly appCommand: string;
  readonly runTemplatePath: string;
  readonly runTemplateName: string;
  readonly appLogPath: string;
  readonly daprdLogPath: string;
}

function pidOf(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d+$/.test(value.trim())) return undefined;
  const pid = Number(value);
  return pid > 0 ? pid : undefined;
}

/**
 * The process a metadata pid (`cliPID`, `appPID`) names, if it still runs: with its start time
 * (`cliStartTime`, `appStartTime`) when the metadata has one, a process that merely reuses the pid is
 * taken for gone.
 */
export function liveProcess(pidText: string | undefined, startTime: string | undefined, sameProcess = isSameProcess): ProcessRef | undefined {
  const pid = pidOf(pidText);
  if (pid === undefined) return undefined;
  const ref: ProcessRef = { pid, startTime: startTime === '' ? undefined : startTime };
  return sameProcess(ref) ? ref : undefined;
}

/** Every live sidecar of this machine's Courier home, with its metadata (fetched in parallel). */
export async function listInstances(env: NodeJS.ProcessEnv, timeoutMs = 1000): Promise<Instance[]> {
  const records = listRunRecords(courierHome(env));
  return Promise.all(
    records.map(async (record) => {
      const metadata = await getMetadata(record, env, timeoutMs);
      const ext = metadata?.extended ?? {};
      return {
        record,
        metadata,
        cli: liveProcess(ext.cliPID, ext.cliStartTime),
        app: liveProcess(ext.appPID, ext.appStartTime),
        appCommand: ext.appCommand ?? '',
        runTemplatePath: ext.runTemplatePath ?? '',
        runTemplateName: ext.runTemplateName ?? '',
        appLogPath: ext.appLogPath ?? '',
        daprdLogPath: ext.daprdLogPath ?? '',
      };
    }),
  );
}
