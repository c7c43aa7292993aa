import { resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import { isNotRegular, readRegularFile } from '../config/regular-file.js';
import type { ResourceDocument } from '../config/resources.js';
import { schemaError } from '../config/schema-errors.js';
import { CourierError, errorMessage } from '../errors/index.js';

/**
 * The two secret stores Dapr users run in self-hosted mode, as `Component` resources in
 * `--resources-path` (components-contrib `secretstores/local/env` and `secretstores/local/file`).
 * Courier has no secrets API: the stores exist to resolve `secretKeyRef`s of other resources
 * (HTTPEndpoint headers and TLS material). Both are read once, at start.
 */
export interface SecretStore {
  readonly name: string;
  /** `secretstores.local.env` or `secretstores.local.file`. */
  readonly type: string;
  /**
   * The value under `key` of the secret `secret`. Throws ERR_INVALID_CONFIG saying what is missing;
   * messages never contain a secret's value.
   */
  value(secret: string, key: string): string;
}

export const ENV_STORE = 'secretstores.local.env';
export const FILE_STORE = 'secretstores.local.file';
export const secretStoreTypes: ReadonlySet<string> = new Set([ENV_STORE, FILE_STORE]);

const metadataItem = z
  .object({
    name: z.string({ error: 'is required' }).min(1, 'must not be empty'),
    value: z.union([z.string(), z.number(), z.boolean()]).optional(),
    secretKeyRef: z.unknown().optional(),
    envRef: z.string().optional(),
  })
  .strict();

const componentSchema = z
  .object({
    spec: z
      .object({
        type: z.string(),
        version: z.string().optional(),
        metadata: z.array(metadataItem).nullish(),
        ignoreErrors: z.boolean().optional(),
        initTimeout: z.string().optional(),
      })
      .strict(),
  })
  .loose();

/**
 * Builds the secret stores among `resources` (Components of the two local types; other resources are
 * ignored). `env` is the sidecar's environment. Errors name the file, the store and what is wrong.
 * `warn` receives notes about metadata that has no effect.
 */
export function loadSecretStores(resources: readonly ResourceDocument[], env: NodeJS.ProcessEnv, warn: (message: string) => void): Map<string, SecretStore> {
  const stores = new Map<string, SecretStore>();
  for (const resource of resources) {
    if (resource.kind !== 'Component' || resource.type === undefined || !secretStoreTypes.has(resource.type)) continue;
    const parsed = componentSchema.safeParse(resource.value);
    if (!parsed.success) throw schemaError(resource.where, parsed.error);
    const version = parsed.data.spec.version;
    if (version !== undefined && version !== '' && version !== 'v1') {
      throw configError(resource, `spec.version ${version} is not a version of ${resource.type} (v1)`);
    }
    const metadata = new Map<string, string>();
    for (const [i, item] of (parsed.data.spec.metadata ?? []).entries()) {
      if (item.secretKeyRef !== undefined || item.envRef !== undefined) {
        throw configError(resource, `spec.metadata.${i} (${item.name}): a secret store's metadata takes a plain value`);
      }
      metadata.set(item.name, item.value === undefined ? '' : String(item.value));
    }
    const store = resource.type === ENV_STORE ? envStore(resource, metadata, env, warn) : fileStore(resource, metadata, warn);
    stores.set(resource.name, store);
  }
  return stores;
}

/** Environment variables no store or resource may read: the sidecar's own tokens and settings. */
export function isForbiddenVariable(name: string): boolean {
  const upper = name.toUpperCase();
  return upper === 'APP_API_TOKEN' || upper.startsWith('DAPR_');
}

/**
 * `secretstores.local.env`: secret `X` is the environment variable `<prefix>X`, with one key, `X`.
 * `APP_API_TOKEN` and `DAPR_*` are never exposed.
 */
function envStore(resource: ResourceDocument, metadata: Map<string, string>, env: NodeJS.ProcessEnv, warn: (message: string) => void): SecretStore {
  const prefix = metadata.get('prefix') ?? '';
  warnUnknown(resource, metadata, ['prefix'], warn);
  const name = resource.name;
  return {
    name,
    type: ENV_STORE,
    value(secret, key) {
      const variable = prefix + secret;
      if (isForbiddenVariable(variable)) {
        throw new CourierError('ERR_INVALID_CONFIG', `secret store ${name} (${ENV_STORE}) does not expose ${variable}: APP_API_TOKEN and DAPR_* variables are never read as secrets`);
      }
      if (key !== secret) {
        throw new CourierError('ERR_INVALID_CONFIG', `secret ${secret} of store ${name} (${ENV_STORE}) has one key, "${secret}", not "${key}"`);
      }
      const value = env[variable];
      if (value === undefined) throw new CourierError('ERR_INVALID_CONFIG', `secret store ${name} (${ENV_STORE}): the environment variable ${variable} is not set`);
      return value;
    },
  };
}

/**
 * `secretstores.local.file`: a JSON file read at start. By default every value is a secret, named by
 * its path of keys joined with `nestedSeparator` (default `:`), with one key, its name; with
 * `multiValued`, each top-level key is a secret and the values under it are its keys.
 */
function fileStore(resource: ResourceDocument, metadata: Map<string, string>, warn: (message: string) => void): SecretStore {
  warnUnknown(resource, metadata, ['secretsFile', 'nestedSeparator', 'multiValued'], warn);
  const file = metadata.get('secretsFile') ?? '';
  if (file === '') throw configError(resource, 'spec.metadata secretsFile is required (the JSON file holding the secrets)');
  const separator = metadata.get('nestedSeparator') || ':';
  const multiValuedText = metadata.get('multiValued') ?? 'false';
  const multiValued = parseBool(multiValuedText);
  if (multiValued === undefined) throw configError(resource, `spec.metadata multiValued: "${multiValuedText}" is not true or false`);
  const path = resolvePath(file);
  const secrets = readSecretsFile(resource, path, separator, multiValued);
  const name = resource.name;
  return {
    name,
    type: FILE_STORE,
    value(secret, key) {
      const keys = secrets.get(secret);
      if (keys === undefined) throw new CourierError('ERR_INVALID_CONFIG', `secret store ${name} (${FILE_STORE}, ${path}) has no secret "${secret}"`);
      const value = keys.get(key);
      if (value === undefined) {
        throw new CourierError('ERR_INVALID_CONFIG', `secret "${secret}" of store ${name} (${FILE_STORE}, ${path}) has no key "${key}" (its keys: ${[...keys.keys()].map((k) => `"${k}"`).join(', ')})`);
      }
      return value;
    },
  };
}

function readSecretsFile(resource: ResourceDocument, path: string, separator: string, multiValued: boolean): Map<string, Map<string, string>> {
  let text: string;
  try {
    const read = readRegularFile(path);
    if (isNotRegular(read)) throw new Error(`it is ${read.notRegular}, not a regular file`);
    text = read;
  } catch (err) {
    throw configError(resource, `secretsFile ${path} cannot be read: ${errorMessage(err)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    // The parser's own message quotes the text around the mistake: only the position is reported.
    throw configError(resource, `secretsFile ${path} is not valid JSON${jsonPosition(text, err)}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw configError(resource, `secretsFile ${path} must hold a JSON object`);
  const secrets = new Map<string, Map<string, string>>();
  const top = json as Record<string, unknown>;
  if (multiValued) {
    for (const [name, value] of Object.entries(top)) {
      const keys = new Map<string, string>();
      if (value !== null && typeof value === 'object') flatten(value, [], separator, keys, resource, path);
      else keys.set(name, scalarText(value));
      secrets.set(name, keys);
    }
    return secrets;
  }
  const flat = new Map<string, string>();
  flatten(top, [], separator, flat, resource, path);
  for (const [name, value] of flat) secrets.set(name, new Map([[name, value]]));
  return secrets;
}

/** Every scalar under `value`, by its path of keys (array indices included) joined with `separator`. */
function flatten(value: object, path: string[], separator: string, out: Map<string, string>, resource: ResourceDocument, file: string): void {
  for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
    const childPath = [...path, key];
    if (child !== null && typeof child === 'object') {
      flatten(child, childPath, separator, out, resource, file);
      continue;
    }
    const name = childPath.join(separator);
    if (out.has(name)) throw configError(resource, `secretsFile ${file}: the key "${name}" appears twice once nested keys are joined with "${separator}"`);
    out.set(name, scalarText(child));
  }
}

function scalarText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === null || value === undefined) return '';
  return JSON.stringify(value);
}

/** Go's `strconv.ParseBool`, which Dapr's metadata decoding uses. */
function parseBool(text: string): boolean | undefined {
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(text)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(text)) return false;
  return undefined;
}

function jsonPosition(text: string, err: unknown): string {
  const at = /position (\d+)/.exec(errorMessage(err));
  if (at?.[1] === undefined) return '';
  const offset = Number(at[1]);
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - before.lastIndexOf('\n');
  return ` (line ${line}, column ${column})`;
}

function warnUnknown(resource: ResourceDocument, metadata: Map<string, string>, known: readonly string[], warn: (message: string) => void): void {
  for (const key of metadata.keys()) {
    if (!known.includes(key)) warn(`${resource.where}: spec.metadata ${key} has no effect on ${resource.type} (it takes ${known.join(', ')})`);
  }
}

function configError(resource: ResourceDocument, message: string): CourierError {
  return new CourierError('ERR_INVALID_CONFIG', `${resource.where}: secret store ${resource.name}: ${message}`);
}
