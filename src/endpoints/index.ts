import type { ResourceDocument } from '../config/resources.js';
import type { ExternalTarget } from '../invoke/types.js';
import { HTTP_ENDPOINT_KIND, loadHttpEndpoint, type HttpEndpointConfig } from './http-endpoint.js';
import { loadSecretStores, secretStoreTypes, type SecretStore } from './secret-stores.js';

export { ExternalChannel, type ExternalChannelOptions } from './external-channel.js';
export { HTTP_ENDPOINT_API_VERSION, HTTP_ENDPOINT_KIND, type EndpointTls, type HttpEndpointConfig } from './http-endpoint.js';
export { ENV_STORE, FILE_STORE, type SecretStore } from './secret-stores.js';

/** The HTTPEndpoints and secret stores among a sidecar's resources. */
export interface EndpointResources {
  readonly endpoints: readonly HttpEndpointConfig[];
  readonly secretStores: ReadonlyMap<string, SecretStore>;
  /** The endpoints' targets by name, for the target resolver. */
  readonly targets: ReadonlyMap<string, ExternalTarget>;
}

/**
 * Builds the secret stores, then the HTTPEndpoints (resolving their secrets), from the resources
 * that apply to this sidecar (see `selectResources`). Throws ERR_INVALID_CONFIG on the first mistake.
 */
export function loadEndpointResources(applied: readonly ResourceDocument[], env: NodeJS.ProcessEnv, warn: (message: string) => void): EndpointResources {
  const secretStores = loadSecretStores(applied, env, warn);
  const endpoints: HttpEndpointConfig[] = [];
  const targets = new Map<string, ExternalTarget>();
  for (const resource of applied) {
    if (resource.kind !== HTTP_ENDPOINT_KIND) continue;
    const endpoint = loadHttpEndpoint(resource, { secretStores, env, warn });
    endpoints.push(endpoint);
    targets.set(endpoint.name, endpoint.target);
  }
  return { endpoints, secretStores, targets };
}

/** Whether Courier acts on a resource of this kind and type (the others are reported as unused at start). */
export function isEndpointResource(resource: ResourceDocument): boolean {
  return resource.kind === HTTP_ENDPOINT_KIND || (resource.kind === 'Component' && resource.type !== undefined && secretStoreTypes.has(resource.type));
}
