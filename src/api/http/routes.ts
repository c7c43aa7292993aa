/**
 * Which part of Dapr's HTTP API a request is for. Matching tolerates repeated slashes
 * (`/v1.0////invoke/...`) the way Dapr's router does. A request whose verb does not fit a route falls
 * back to invocation (Dapr makes the invoke handler its NotFound and MethodNotAllowed fallback), so
 * `dapr-app-id` routing works on any path that is not one of these routes.
 */
export type ApiRoute =
  | { readonly kind: 'healthz' }
  | { readonly kind: 'healthz-outbound' }
  | { readonly kind: 'metadata-get' }
  | { readonly kind: 'metadata-put'; readonly key: string }
  | { readonly kind: 'shutdown' }
  | { readonly kind: 'invoke-url' }
  | { readonly kind: 'unimplemented'; readonly api: string }
  | { readonly kind: 'fallback' };

/** Dapr building blocks other than service invocation: Courier answers them ERR_API_UNIMPLEMENTED. */
const otherBuildingBlocks: ReadonlySet<string> = new Set([
  'state',
  'secrets',
  'publish',
  'bindings',
  'actors',
  'configuration',
  'lock',
  'unlock',
  'crypto',
  'workflows',
  'jobs',
  'conversation',
  'subscribe',
]);

const apiVersions: ReadonlySet<string> = new Set(['v1.0', 'v1.0-alpha1', 'v1.0-alpha2', 'v1.0-beta1']);

const INVOKE_URL: ApiRoute = { kind: 'invoke-url' };

export function matchRoute(verb: string, path: string): ApiRoute {
  // The common case, decided without splitting the path.
  if (path.startsWith('/v1.0/invoke/')) return INVOKE_URL;
  const segments = path.split('/').filter((s) => s !== '');
  const [version, group, third, fourth] = segments;
  if (version === undefined || group === undefined || !apiVersions.has(version)) return { kind: 'fallback' };
  if (version === 'v1.0') {
    switch (group) {
      case 'invoke':
        return { kind: 'invoke-url' };
      case 'healthz':
        if (verb !== 'GET' || segments.length > 3) return { kind: 'fallback' };
        if (third === undefined) return { kind: 'healthz' };
        return third === 'outbound' ? { kind: 'healthz-outbound' } : { kind: 'fallback' };
      case 'metadata':
        if (third === undefined && verb === 'GET') return { kind: 'metadata-get' };
        if (third !== undefined && fourth === undefined && verb === 'PUT') return { kind: 'metadata-put', key: third };
        return { kind: 'fallback' };
      case 'shutdown':
        return verb === 'POST' && third === undefined ? { kind: 'shutdown' } : { kind: 'fallback' };
      default:
        break;
    }
  }
  if (otherBuildingBlocks.has(group)) return { kind: 'unimplemented', api: group };
  return { kind: 'fallback' };
}

/** The path with the parts that name apps, methods and keys replaced by placeholders. */
export function routePattern(route: ApiRoute, path: string): string {
  switch (route.kind) {
    case 'healthz':
      return '/v1.0/healthz';
    case 'healthz-outbound':
      return '/v1.0/healthz/outbound';
    case 'metadata-get':
      return '/v1.0/metadata';
    case 'metadata-put':
      return '/v1.0/metadata/{key}';
    case 'shutdown':
      return '/v1.0/shutdown';
    case 'invoke-url':
      return '/v1.0/invoke/{id}/method/{method}';
    case 'unimplemented':
      return `/${path.split('/').find((s) => s !== '') ?? 'v1.0'}/${route.api}/…`;
    case 'fallback':
      return '/{method}';
  }
}
