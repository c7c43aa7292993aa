import { request, type Agent } from 'undici';
import { CourierError, errorMessage } from '../../errors/index.js';
import { readAtMost } from '../../util/read-bounded.js';
import { apiServerAgent, bearerAuthorization } from './api-credentials.js';

/** Dapr's annotation naming a pod's app id. */
export const APP_ID_ANNOTATION = 'dapr.io/app-id';

/** What the Sentry reads of a pod. */
export interface PodFacts {
  readonly name: string;
  readonly uid: string;
  readonly serviceAccountName: string;
  /** `dapr.io/app-id`, or the app id the injector defaulted it to (the pod's name, or its generateName without the trailing dash). */
  readonly appId: string;
}

export type PodLookup = { readonly found: true; readonly pod: PodFacts } | { readonly found: false };

export interface PodDirectoryOptions {
  /** The API server's base URL (`https://kubernetes.default.svc` in a pod); plain http on loopback only. */
  readonly apiServer: string;
  /** PEM CAs the API server's certificate is checked against (the cluster CA). */
  readonly caPem?: string | undefined;
  /** A file holding the bearer token, re-read at each request (the kubelet rotates it). */
  readonly tokenFile?: string | undefined;
  readonly timeoutMs?: number;
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);
const DEFAULT_TIMEOUT_MS = 5000;
/** A Pod object is a few KB; anything far larger is not read. */
const MAX_BODY_BYTES = 1024 * 1024;
const NAME = /^[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?$/;

/**
 * Reads pods from the API server (`GET /api/v1/namespaces/<ns>/pods/<name>`, which needs `get` on
 * `pods`): how the Sentry learns, as Dapr's does, whether the pod a token was issued for still exists
 * and which app id it is annotated with. One connection pool, closed with {@link close}.
 */
export class PodDirectory {
  readonly description: string;
  readonly #base: URL;
  readonly #tokenFile: string | undefined;
  readonly #timeoutMs: number;
  readonly #dispatcher: Agent;

  constructor(options: PodDirectoryOptions) {
    let base: URL;
    try {
      base = new URL(options.apiServer);
    } catch {
      throw new CourierError('ERR_INVALID_CONFIG', `the API server address "${options.apiServer}" is not a URL`);
    }
    if (base.protocol !== 'https:' && !(base.protocol === 'http:' && LOOPBACK_HOSTS.has(base.hostname))) {
      throw new CourierError('ERR_INVALID_CONFIG', `the API server ${base.href} must be reached over https (plain http is allowed on loopback only)`);
    }
    this.#base = base;
    this.description = base.origin;
    this.#tokenFile = options.tokenFile;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#dispatcher = apiServerAgent(options.caPem, 4);
  }

  /** The pod, or `found: false` when the API server says it does not exist; throws when it cannot tell. */
  async get(namespace: string, name: string): Promise<PodLookup> {
    if (!NAME.test(namespace) || !NAME.test(name)) return { found: false };
    const url = new URL(`${this.#base.pathname.replace(/\/$/, '')}/api/v1/namespaces/${namespace}/pods/${name}`, this.#base);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.#tokenFile !== undefined) headers.authorization = bearerAuthorization(this.#tokenFile, 'the API server');
    let status: number;
    let text: string;
    try {
      const res = await request(url, { method: 'GET', headers, dispatcher: this.#dispatcher, headersTimeout: this.#timeoutMs, bodyTimeout: this.#timeoutMs, signal: AbortSignal.timeout(this.#timeoutMs) });
      status = res.statusCode;
      const body = await readAtMost(res.body, MAX_BODY_BYTES);
      if (body === undefined) {
        res.body.destroy();
        throw new Error(`the answer is larger than ${MAX_BODY_BYTES} bytes`);
      }
      text = body.toString('utf8');
    } catch (err) {
      throw new CourierError('ERR_INTERNAL', `GET ${url.pathname} from ${this.description} failed: ${errorMessage(err)}`);
    }
    if (status === 404) return { found: false };
    if (status !== 200) {
      throw new CourierError('ERR_INTERNAL', `GET ${url.pathname} from ${this.description} answered ${status}${status === 401 || status === 403 ? ' (the Sentry needs get on pods)' : ''}: ${statusMessage(text)}`);
    }
    const pod = parsePod(text);
    if (pod === undefined) throw new CourierError('ERR_INTERNAL', `GET ${url.pathname} from ${this.description}: the answer is not a Pod`);
    return { found: true, pod };
  }

  close(): Promise<void> {
    return this.#dispatcher.close();
  }
}

/** The message of a `Status` the API server answers errors with, or the start of the text. */
function statusMessage(text: string): string {
  try {
    const message = (JSON.parse(text) as { message?: unknown }).message;
    if (typeof message === 'string') return message.slice(0, 200);
  } catch {
    // not JSON
  }
  return text.slice(0, 200);
}

function parsePod(text: string): PodFacts | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  const object = (v: unknown): Record<string, unknown> | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);
  const pod = object(doc);
  const metadata = object(pod?.metadata);
  const spec = object(pod?.spec);
  if (pod?.kind !== 'Pod' || metadata === undefined || spec === undefined) return undefined;
  const name = metadata.name;
  const uid = metadata.uid;
  if (typeof name !== 'string' || typeof uid !== 'string') return undefined;
  const annotations = object(metadata.annotations) ?? {};
  const annotated = annotations[APP_ID_ANNOTATION];
  const generateName = metadata.generateName;
  const fallback = typeof generateName === 'string' && generateName !== '' ? generateName.replace(/-$/, '') : name;
  const serviceAccountName = typeof spec.serviceAccountName === 'string' && spec.serviceAccountName !== '' ? spec.serviceAccountName : 'default';
  return {
    name,
    uid,
    serviceAccountName,
    appId: typeof annotated === 'string' && annotated.trim() !== '' ? annotated.trim() : fallback,
  };
}
