import { readFileSync } from '../../util/builtins.js';
import { createLocalJWKSet, createRemoteJWKSet, customFetch, type FetchImplementation, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { fetch as undiciFetch } from 'undici';
import { CourierError, errorMessage } from '../../errors/index.js';
import { apiServerAgent, bearerAuthorization } from './api-credentials.js';

/** Where the cluster's ServiceAccount token signing keys (a JWKS) come from. */
export type KeySetSource =
  | { readonly file: string }
  | {
      readonly url: string;
      /** After a fetch, how long an unknown `kid` waits before it may cause another fetch (jose: 30 s). */
      readonly cooldownMs?: number;
      /** How long fetched keys are used before they are fetched again (10 min). */
      readonly cacheMaxAgeMs?: number;
      /** Per-fetch timeout (5 s). */
      readonly timeoutMs?: number;
      /** PEM CA certificates the server's certificate is checked against instead of Node's (the cluster CA). */
      readonly caPem?: string;
      /** A file holding a bearer token sent with each fetch, re-read each time (the Sentry's own projected token). */
      readonly bearerTokenFile?: string;
    };

/** The keys a token's signature is checked with, and a description for logs and refusals. */
export interface KeySet {
  readonly resolve: JWTVerifyGetKey;
  readonly description: string;
}

/** Hosts over which a plain-http JWKS URL is allowed: nothing on the network can replace the keys. */
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * Opens `source`. A file is read now (a missing or invalid one stops the Sentry from starting) and read
 * again whenever it changes, so rotated keys written to it (e.g. a ConfigMap update) are picked up without
 * a restart; if a changed file does not parse, the keys read last stay in use and `onReloadError` is told.
 * A URL is fetched on first use and cached by jose; an unknown `kid` causes one re-fetch per cooldown, so
 * a rotated cluster key is learnt within the cooldown (30 s by default) while a flood of made-up `kid`s costs one fetch per cooldown.
 * The URL must be https (or http on loopback): whoever can change the keys can mint any identity.
 */
export function openKeySet(source: KeySetSource, onReloadError: (message: string) => void = () => {}): KeySet {
  if ('file' in source) return fileKeySet(source.file, onReloadError);
  let url: URL;
  try {
    url = new URL(source.url);
  } catch {
    throw new CourierError('ERR_INVALID_CONFIG', `the JWKS URL "${source.url}" is not a URL`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname))) {
    throw new CourierError('ERR_INVALID_CONFIG', `the JWKS URL ${url.href} must use https (plain http is allowed on loopback only)`);
  }
  const remote = createRemoteJWKSet(url, {
    ...(source.cooldownMs === undefined ? {} : { cooldownDuration: source.cooldownMs }),
    ...(source.cacheMaxAgeMs === undefined ? {} : { cacheMaxAge: source.cacheMaxAgeMs }),
    ...(source.timeoutMs === undefined ? {} : { timeoutDuration: source.timeoutMs }),
    ...(source.caPem === undefined && source.bearerTokenFile === undefined ? {} : { [customFetch]: apiServerFetch(source.caPem, source.bearerTokenFile) }),
  });
  return { resolve: remote, description: url.href };
}

/**
 * A fetch for the API server's `/openid/v1/jwks`, which is served over TLS with the cluster's CA and,
 * unless anonymous discovery is allowed, only to authenticated clients: the Sentry's own ServiceAccount
 * token, read at each fetch since the kubelet rotates it.
 */
function apiServerFetch(caPem: string | undefined, bearerTokenFile: string | undefined): FetchImplementation {
  const dispatcher = caPem === undefined ? undefined : apiServerAgent(caPem);
  return async (url, init) => {
    const headers: Record<string, string> = {};
    init.headers.forEach((value, name) => (headers[name] = value));
    if (bearerTokenFile !== undefined) headers.authorization = bearerAuthorization(bearerTokenFile, 'the JWKS URL');
    return undiciFetch(url, { method: init.method, redirect: init.redirect, signal: init.signal, headers, ...(dispatcher === undefined ? {} : { dispatcher }) });
  };
}

function fileKeySet(file: string, onReloadError: (message: string) => void): KeySet {
  let text = readText(file);
  let resolver = parseJwks(file, text);
  // Read at every verification (a few KB, a few times a second at most): comparing the content catches
  // every change, also one that a coarse modification time or an unchanged size would hide.
  const resolve: JWTVerifyGetKey = (header, token) => {
    let now: string;
    try {
      now = readText(file);
    } catch (err) {
      // Reported once until the file is back (a ConfigMap update swaps it, briefly absent).
      if (text !== '') onReloadError(`${errorMessage(err)}; the keys read before stay in use`);
      text = '';
      return resolver(header, token);
    }
    if (now !== text) {
      // Remembered even if the new content is refused, so a bad file is reported once, not per request.
      text = now;
      try {
        resolver = parseJwks(file, now);
      } catch (err) {
        onReloadError(`${errorMessage(err)}; the keys read before stay in use`);
      }
    }
    return resolver(header, token);
  };
  return { resolve, description: file };
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new CourierError('ERR_INVALID_CONFIG', `the JWKS file ${file} cannot be read: ${errorMessage(err)}`);
  }
}

function parseJwks(file: string, text: string): ReturnType<typeof createLocalJWKSet> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new CourierError('ERR_INVALID_CONFIG', `the JWKS file ${file} is not valid JSON: ${errorMessage(err)}`);
  }
  const keys = (parsed as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new CourierError('ERR_INVALID_CONFIG', `the JWKS file ${file} holds no keys (it needs {"keys": [...]}, as the API server's /openid/v1/jwks serves)`);
  }
  try {
    return createLocalJWKSet(parsed as JSONWebKeySet);
  } catch (err) {
    throw new CourierError('ERR_INVALID_CONFIG', `the JWKS file ${file} is not a valid JSON Web Key Set: ${errorMessage(err)}`);
  }
}
