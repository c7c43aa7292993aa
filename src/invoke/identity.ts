import { CourierError } from '../errors/index.js';

/** Who an app is: its app id and namespace. */
export interface AppIdentity {
  readonly appId: string;
  readonly namespace: string;
}

const appIdPattern = /^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62}[A-Za-z0-9_])?$/;

/**
 * Checks this sidecar's own `--app-id`. Dapr's self-hosted rule forbids dots (a dot separates the
 * namespace in invocation targets); Courier also keeps ids to what works as a DNS label, a SPIFFE path
 * segment and a file name: letters, digits, `-` and `_`, at most 64 characters.
 */
export function validateAppId(appId: string): string | undefined {
  if (appId === '') return 'the app id must not be empty';
  if (appId.includes('.')) return `the app id "${appId}" must not contain dots (a dot separates a target's namespace)`;
  if (!appIdPattern.test(appId)) {
    return `the app id "${appId}" may contain only letters, digits, "-" and "_", start and end with a letter or digit, and be at most 64 characters`;
  }
  return undefined;
}

/**
 * Parses an app target: `appid` (this sidecar's namespace) or `appid.namespace`.
 * More than one dot is refused, as Dapr does (`invalid app id`).
 */
export function parseTarget(raw: string, ownNamespace: string): AppIdentity {
  if (/^https?:\/\//i.test(raw)) {
    // Reached only where an app is required (gRPC proxying): the invocation APIs take URLs first (see target.ts).
    throw invokeError(raw, 'an external URL is not an app id: URLs can be called through the HTTP API and InvokeService, not through gRPC proxying');
  }
  const parts = raw.split('.');
  if (raw === '' || parts.length > 2 || parts.some((p) => p === '')) {
    throw invokeError(raw, `invalid app id ${raw}`);
  }
  const [appId = '', namespace = ownNamespace] = parts;
  return { appId, namespace };
}

/** Dapr's wording for a failed invocation: `failed to invoke, id: <target>, err: <reason>`. */
export function invokeError(target: string, reason: string, options: ConstructorParameters<typeof CourierError>[2] = {}): CourierError {
  return new CourierError('ERR_DIRECT_INVOKE', `failed to invoke, id: ${target}, err: ${reason}`, options);
}

export function sameIdentity(a: AppIdentity, b: AppIdentity): boolean {
  return a.appId === b.appId && a.namespace === b.namespace;
}
