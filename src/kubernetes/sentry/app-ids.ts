import { readFileSync } from '../../util/builtins.js';
import { parse as parseYaml } from 'yaml';
import { CourierError, errorMessage } from '../../errors/index.js';
import { validateAppId } from '../../invoke/identity.js';

/** In a mapping, lets the ServiceAccount's pods ask for any app id of their namespace (Dapr's level of trust). */
export const ANY_APP_ID = '*';

/** A Kubernetes namespace name (DNS-1123 label). */
export const NAMESPACE_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** A ServiceAccount name (DNS-1123 subdomain). */
export const SERVICE_ACCOUNT_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * Which app ids a pod running as a ServiceAccount may ask the Sentry for. Without a mapping the answer
 * is one: the ServiceAccount's own name. A token proves the namespace and the ServiceAccount, and
 * nothing else a pod is bound to without the API server; who may create or use a ServiceAccount is
 * governed by RBAC, so tying the app id to it means a workload can only claim an identity its
 * operators gave it. A mapping (`<namespace>/<serviceaccount>: [app ids]`) lets one ServiceAccount
 * serve other or several app ids; an entry replaces the default for that ServiceAccount.
 */
export class AppIdPolicy {
  readonly #map: ReadonlyMap<string, readonly string[]>;

  constructor(map: ReadonlyMap<string, readonly string[]> = new Map()) {
    this.#map = map;
  }

  /** Reads a mapping from a YAML (or JSON) file; throws `ERR_INVALID_CONFIG` naming the bad entry. */
  static fromFile(file: string): AppIdPolicy {
    let doc: unknown;
    try {
      doc = parseYaml(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new CourierError('ERR_INVALID_CONFIG', `the app id mapping ${file} cannot be read: ${errorMessage(err)}`);
    }
    return AppIdPolicy.fromObject(doc, file);
  }

  static fromObject(doc: unknown, source = 'the app id mapping'): AppIdPolicy {
    const bad = (message: string): CourierError => new CourierError('ERR_INVALID_CONFIG', `${source}: ${message}`);
    if (doc === null || doc === undefined) return new AppIdPolicy();
    if (typeof doc !== 'object' || Array.isArray(doc)) throw bad('expected a map of "<namespace>/<serviceaccount>" to lists of app ids');
    const map = new Map<string, readonly string[]>();
    for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
      const [namespace, serviceAccount, ...rest] = key.split('/');
      if (rest.length > 0 || namespace === undefined || serviceAccount === undefined || !NAMESPACE_NAME.test(namespace) || !SERVICE_ACCOUNT_NAME.test(serviceAccount)) {
        throw bad(`"${key}" is not "<namespace>/<serviceaccount>"`);
      }
      const ids = typeof value === 'string' ? [value] : value;
      if (!Array.isArray(ids) || ids.length === 0 || !ids.every((id): id is string => typeof id === 'string')) {
        throw bad(`"${key}" must map to a list of app ids`);
      }
      for (const id of ids) {
        const invalid = id === ANY_APP_ID ? undefined : validateAppId(id);
        if (invalid !== undefined) throw bad(`"${key}": ${invalid}`);
      }
      map.set(key, ids);
    }
    return new AppIdPolicy(map);
  }

  /** The app ids pods of `namespace/serviceAccount` may ask for (`*`: any). */
  allowed(namespace: string, serviceAccount: string): readonly string[] {
    return this.#map.get(`${namespace}/${serviceAccount}`) ?? [serviceAccount];
  }

  allows(namespace: string, serviceAccount: string, appId: string): boolean {
    const ids = this.allowed(namespace, serviceAccount);
    return ids.includes(appId) || ids.includes(ANY_APP_ID);
  }

  /** Entries in the mapping (for the start-up log). */
  get size(): number {
    return this.#map.size;
  }
}
