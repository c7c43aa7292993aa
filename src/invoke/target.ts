import { GrpcStatus, type CourierError } from '../errors/index.js';
import { invokeError, parseTarget, type AppIdentity } from './identity.js';
import type { ExternalTarget, InvokeTarget } from './types.js';

const urlScheme = /^https?:\/\//i;
/**
 * How many distinct app targets a resolver remembers, and how long each may be (callers name them:
 * neither is left to them); other targets are parsed on every call.
 */
const MAX_REMEMBERED_APPS = 1024;
const MAX_REMEMBERED_LENGTH = 160;

/**
 * Turns the target a caller named (URL segment, `dapr-app-id` header, Basic auth, or the `id` of
 * gRPC `InvokeService`) into what is called, in Dapr's order of precedence
 * (`howto-invoke-non-dapr-endpoints.md`):
 *  1. the name of a loaded `HTTPEndpoint` resource (exact match);
 *  2. an `http://` or `https://` URL (scheme in any case);
 *  3. an app id, `appid` or `appid.namespace`.
 * Built once at start with the loaded endpoints; `resolve` allocates nothing for endpoint names or
 * for app targets it has seen before.
 */
export class TargetResolver {
  readonly #namespace: string;
  readonly #endpoints: ReadonlyMap<string, ExternalTarget>;
  /** App targets already parsed (an app calls the same few targets on every call); never URLs or errors. */
  readonly #apps = new Map<string, AppIdentity>();

  constructor(ownNamespace: string, endpoints: ReadonlyMap<string, ExternalTarget> = new Map()) {
    this.#namespace = ownNamespace;
    this.#endpoints = endpoints;
  }

  /** Throws ERR_DIRECT_INVOKE (`failed to invoke, id: <text>, err: …`) for a target that is none of the three. */
  resolve(text: string): InvokeTarget {
    const endpoint = this.#endpoints.get(text);
    if (endpoint !== undefined) return endpoint;
    const app = this.#apps.get(text);
    if (app !== undefined) return app;
    if (urlScheme.test(text)) return externalUrlTarget(text);
    return this.#parse(text);
  }

  /**
   * An app target only, `appid` or `appid.namespace` (gRPC proxying, where neither endpoint names nor
   * URLs are targets): throws as `parseTarget` does, and remembers what it parsed as `resolve` does.
   */
  app(text: string): AppIdentity {
    return this.#apps.get(text) ?? this.#parse(text);
  }

  /** Parses an app target and remembers it (bounded: callers name their targets). */
  #parse(text: string): AppIdentity {
    const parsed = parseTarget(text, this.#namespace);
    if (this.#apps.size < MAX_REMEMBERED_APPS && text.length <= MAX_REMEMBERED_LENGTH) this.#apps.set(text, parsed);
    return parsed;
  }
}

/**
 * An `http(s)://` URL given as the target. Scheme and host may be in any case; the URL may carry a
 * path (the method is appended to it), but no user name or password (put credentials in an
 * HTTPEndpoint's headers), no query (the call's own query is used) and no fragment.
 */
export function externalUrlTarget(text: string): ExternalTarget {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalidUrl(text, 'it is not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalidUrl(text, 'only http:// and https:// URLs can be called');
  if (url.username !== '' || url.password !== '') throw invalidUrl(text, 'a URL target may not carry a user name or password');
  if (url.search !== '' || url.hash !== '' || text.includes('?') || text.includes('#')) {
    throw invalidUrl(text, 'a URL target may not carry a query or a fragment (the query of the call is passed on)');
  }
  return { kind: 'url', id: text, origin: url.origin, basePath: url.pathname };
}

function invalidUrl(text: string, reason: string): CourierError {
  return invokeError(text, `invalid external URL: ${reason}`, { grpcCode: GrpcStatus.INVALID_ARGUMENT });
}

/**
 * The path of a request to an external target: Dapr's `baseUrl + "/" + method + "?" + query`, without
 * doubling a slash the base URL ends with. An empty method calls the base URL itself. `methodPath` is
 * the method encoded for a URL path, with its leading `/` (see `methodToPath`).
 */
export function externalPath(target: ExternalTarget, methodPath: string, query: string): string {
  let path: string;
  if (methodPath === '/') path = target.basePath;
  else path = target.basePath.endsWith('/') ? target.basePath + methodPath.slice(1) : target.basePath + methodPath;
  return query === '' ? path : `${path}?${query}`;
}

/** A target as messages and logs name it. */
export function describeTarget(target: InvokeTarget, ownNamespace: string): string {
  if ('origin' in target) return target.id;
  return target.namespace === ownNamespace ? target.appId : `${target.appId}.${target.namespace}`;
}

