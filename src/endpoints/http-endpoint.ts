import { z } from 'zod';
import type { ResourceDocument } from '../config/resources.js';
import { schemaError } from '../config/schema-errors.js';
import { tls } from '../util/builtins.js';
import { CourierError, errorMessage } from '../errors/index.js';
import { hopByHopHeaders } from '../invoke/headers.js';
import type { ExternalTarget } from '../invoke/types.js';
import { isForbiddenVariable, type SecretStore } from './secret-stores.js';

/**
 * Dapr's `HTTPEndpoint` resource (`dapr.io/v1alpha1`, `pkg/apis/httpEndpoint/v1alpha1/types.go`):
 * a non-Dapr HTTP service that apps call by the resource's name. Validated at start; every secret
 * it references is resolved then, so a call never waits on a secret store.
 */
export interface HttpEndpointConfig {
  readonly name: string;
  /** Where it was defined, for messages. */
  readonly where: string;
  /** The target that calls to this endpoint carry. */
  readonly target: ExternalTarget;
  /** Headers set on every request, replacing the caller's headers of the same name: `[lower-case name, value]`. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** TLS settings for an `https://` base URL; undefined for the defaults (Node's trusted CAs, no client certificate). */
  readonly tls: EndpointTls | undefined;
}

export interface EndpointTls {
  /** PEM certificates trusted for the server, instead of Node's default CAs. */
  readonly ca: string | undefined;
  /** The client certificate (PEM chain) and its private key. */
  readonly cert: string | undefined;
  readonly key: string | undefined;
  /** `renegotiation` other than `Never`: the server may renegotiate (TLS 1.2 only). */
  readonly allowRenegotiation: boolean;
}

export const HTTP_ENDPOINT_KIND = 'HTTPEndpoint';
export const HTTP_ENDPOINT_API_VERSION = 'dapr.io/v1alpha1';

/** Dapr's `DynamicValue`: any YAML scalar, used as its text. */
const dynamicValue = z.union([z.string(), z.number(), z.boolean()]);
const secretKeyRef = z.object({ name: z.string({ error: 'is required' }).min(1, 'must not be empty'), key: z.string().optional() }).strict();
const tlsDocument = z.object({ value: dynamicValue.optional(), secretKeyRef: secretKeyRef.optional() }).strict();
const header = z
  .object({
    name: z.string({ error: 'is required' }).min(1, 'must not be empty'),
    value: dynamicValue.optional(),
    secretKeyRef: secretKeyRef.optional(),
    envRef: z.string().optional(),
  })
  .strict();
const endpointSchema = z
  .object({
    apiVersion: z.literal(HTTP_ENDPOINT_API_VERSION, { error: `must be "${HTTP_ENDPOINT_API_VERSION}"` }),
    spec: z
      .object({
        version: z.string().optional(),
        baseUrl: z.string({ error: 'is required' }).min(1, 'must not be empty'),
        headers: z.array(header).nullish(),
        clientTLS: z
          .object({
            rootCA: tlsDocument.optional(),
            certificate: tlsDocument.optional(),
            privateKey: tlsDocument.optional(),
            renegotiation: z.enum(['Never', 'OnceAsClient', 'FreelyAsClient'], { error: 'must be Never, OnceAsClient or FreelyAsClient' }).optional(),
          })
          .strict()
          .nullish(),
      })
      .strict(),
    auth: z.object({ secretStore: z.string().optional() }).strict().nullish(),
  })
  .loose();

/** Headers an endpoint may not set: Courier computes them (length, host) or they belong to one connection. */
const unsettableHeaders: ReadonlySet<string> = new Set(['host', 'content-length', 'expect', ...hopByHopHeaders]);
const tokenPattern = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export interface EndpointLoadOptions {
  /** The loaded secret stores, by name. */
  readonly secretStores: ReadonlyMap<string, SecretStore>;
  /** The sidecar's environment, for `envRef`. */
  readonly env: NodeJS.ProcessEnv;
  readonly warn: (message: string) => void;
}

/** Validates and resolves one HTTPEndpoint resource. Errors are ERR_INVALID_CONFIG naming the file, the key and the reason. */
export function loadHttpEndpoint(resource: ResourceDocument, options: EndpointLoadOptions): HttpEndpointConfig {
  const parsed = endpointSchema.safeParse(resource.value);
  if (!parsed.success) throw schemaError(resource.where, parsed.error);
  const { spec, auth } = parsed.data;
  const fail = (key: string, reason: string): CourierError =>
    new CourierError('ERR_INVALID_CONFIG', `${resource.where}: HTTPEndpoint ${resource.name}: ${key} ${reason}`);
  const storeName = auth?.secretStore ?? '';
  let store: SecretStore | undefined;
  /** A value given inline, from a secret or from the environment; `key` names it in messages. */
  const resolveValue = (key: string, source: { value?: string | number | boolean | undefined; secretKeyRef?: { name: string; key?: string | undefined } | undefined; envRef?: string | undefined }): string => {
    const given = [source.value !== undefined, source.secretKeyRef !== undefined, source.envRef !== undefined].filter(Boolean).length;
    if (given !== 1) throw fail(key, 'needs exactly one of value, secretKeyRef or envRef');
    if (source.value !== undefined) return String(source.value);
    if (source.envRef !== undefined) {
      const variable = source.envRef;
      if (variable === '' || variable.includes(' ') || isForbiddenVariable(variable) || !allowedByEnvKeys(variable, options.env)) {
        throw fail(`${key}.envRef`, `may not read ${variable === '' ? 'an unnamed variable' : variable} (APP_API_TOKEN and DAPR_* are never exposed)`);
      }
      const value = options.env[variable];
      if (value === undefined) throw fail(`${key}.envRef`, `names ${variable}, which is not set in the sidecar's environment`);
      return value;
    }
    const ref = source.secretKeyRef as { name: string; key?: string | undefined };
    if (store === undefined) {
      if (storeName === '') throw fail(`${key}.secretKeyRef`, 'needs auth.secretStore: the name of the secret store that holds the secret');
      store = options.secretStores.get(storeName);
      if (store === undefined) {
        const loaded = [...options.secretStores.keys()];
        throw fail('auth.secretStore', `names ${storeName}, which is not a loaded secret store (${loaded.length === 0 ? 'none is loaded' : `loaded: ${loaded.join(', ')}`}; Courier provides secretstores.local.env and secretstores.local.file)`);
      }
    }
    const secretKey = ref.key === undefined || ref.key === '' ? ref.name : ref.key;
    try {
      return store.value(ref.name, secretKey);
    } catch (err) {
      throw fail(`${key}.secretKeyRef:`, err instanceof CourierError ? err.message : errorMessage(err));
    }
  };

  const baseUrl = parseBaseUrl(spec.baseUrl, (reason) => fail('spec.baseUrl', reason));
  const headers: Array<readonly [string, string]> = [];
  const names = new Set<string>();
  for (const [i, h] of (spec.headers ?? []).entries()) {
    const key = `spec.headers.${i} (${h.name})`;
    const lower = h.name.toLowerCase();
    if (!tokenPattern.test(h.name)) throw fail(key, 'is not a valid header name');
    if (unsettableHeaders.has(lower)) throw fail(key, `cannot be set: Courier sets ${h.name} itself`);
    if (names.has(lower)) throw fail(key, 'is given twice');
    names.add(lower);
    const value = resolveValue(key, h);
    // eslint-disable-next-line no-control-regex
    if (/[\r\n\u0000]/.test(value)) throw fail(key, 'has a value with a line break or NUL, which a header cannot carry');
    headers.push([lower, value]);
  }

  let tls: EndpointTls | undefined;
  const clientTLS = spec.clientTLS;
  if (clientTLS !== undefined && clientTLS !== null) {
    const pem = (key: string, doc: z.infer<typeof tlsDocument> | undefined): string | undefined =>
      doc === undefined || (doc.value === undefined && doc.secretKeyRef === undefined) ? undefined : resolveValue(key, doc);
    const ca = pem('spec.clientTLS.rootCA', clientTLS.rootCA);
    const cert = pem('spec.clientTLS.certificate', clientTLS.certificate);
    const key = pem('spec.clientTLS.privateKey', clientTLS.privateKey);
    if ((cert === undefined) !== (key === undefined)) throw fail('spec.clientTLS', 'needs both certificate and privateKey for a client certificate');
    checkTlsMaterial(ca, cert, key, fail);
    tls = { ca, cert, key, allowRenegotiation: clientTLS.renegotiation === 'OnceAsClient' || clientTLS.renegotiation === 'FreelyAsClient' };
    if (baseUrl.protocol === 'http:') options.warn(`${resource.where}: HTTPEndpoint ${resource.name}: spec.clientTLS has no effect on an http:// baseUrl`);
  }
  return {
    name: resource.name,
    where: resource.where,
    target: { kind: 'endpoint', id: resource.name, origin: baseUrl.origin, basePath: baseUrl.pathname },
    headers,
    tls,
  };
}

function parseBaseUrl(text: string, fail: (reason: string) => CourierError): URL {
  if (!/^https?:\/\//i.test(text)) throw fail(`must start with http:// or https:// (got "${text}")`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw fail(`is not a valid URL ("${text}")`);
  }
  if (url.username !== '' || url.password !== '') throw fail('may not carry a user name or password: set an Authorization header instead (with a secretKeyRef)');
  if (url.search !== '' || url.hash !== '' || text.includes('?') || text.includes('#')) throw fail('may not carry a query or a fragment');
  return url;
}

/** Dapr's `DAPR_ENV_KEYS`: when set (a space-separated list), only the variables it names may be read. */
function allowedByEnvKeys(variable: string, env: NodeJS.ProcessEnv): boolean {
  const list = env.DAPR_ENV_KEYS;
  if (list === undefined || list === '') return true;
  return list.split(' ').includes(variable.toUpperCase()) || list.split(' ').includes(variable);
}

/** Loads the PEM material into a TLS context once, so a mistake is reported at start rather than on the first call. */
function checkTlsMaterial(ca: string | undefined, cert: string | undefined, key: string | undefined, fail: (key: string, reason: string) => CourierError): void {
  if (ca !== undefined) {
    if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw fail('spec.clientTLS.rootCA', 'is not a PEM certificate');
    try {
      tls().createSecureContext({ ca });
    } catch (err) {
      throw fail('spec.clientTLS.rootCA', `cannot be used: ${errorMessage(err)}`);
    }
  }
  if (cert !== undefined && key !== undefined) {
    if (!cert.includes('-----BEGIN CERTIFICATE-----')) throw fail('spec.clientTLS.certificate', 'is not a PEM certificate');
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) throw fail('spec.clientTLS.privateKey', 'is not a PEM private key');
    try {
      tls().createSecureContext({ cert, key });
    } catch (err) {
      throw fail('spec.clientTLS', `certificate and privateKey cannot be used together: ${errorMessage(err)}`);
    }
  }
}
