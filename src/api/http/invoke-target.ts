/**
 * Finds the target app id and the raw (still unnormalized) method of an invocation, in Dapr's order
 * (`pkg/api/http/directmessaging.go` findTargetIDAndMethod):
 *  1. the `dapr-app-id` header: the whole path is the method;
 *  2. HTTP Basic auth with user `dapr-app-id` (any case) and the app id as password: the whole path is the method;
 *  3. the URL `/v1.0/invoke/<id>/method/<method…>`.
 * `headers` holds the request's first `dapr-app-id` and `Authorization` header values; `path` is the
 * decoded request path. Returns undefined when no app id is found.
 */
export function findTargetAndMethod(
  headers: { readonly appId: string | undefined; readonly authorization: string | undefined },
  path: string,
  isInvokeRoute: boolean,
): { target: string; method: string } | undefined {
  const fromHeader = headers.appId;
  if (fromHeader !== undefined && fromHeader !== '') return { target: fromHeader.trim(), method: path };
  const fromAuth = basicAuthAppId(headers.authorization);
  if (fromAuth !== undefined) return { target: fromAuth, method: path };
  if (!isInvokeRoute) return undefined;
  // Past the "v1.0" and "invoke" segments, tolerating repeated slashes.
  const match = /^\/*v1\.0\/+invoke\/+(.*)$/s.exec(path);
  const rest = match?.[1];
  if (rest === undefined) return undefined;
  const at = rest.indexOf('/method/');
  if (at <= 0) return undefined;
  return { target: rest.slice(0, at), method: rest.slice(at + '/method'.length) };
}

function basicAuthAppId(authorization: string | undefined): string | undefined {
  if (authorization === undefined || !/^basic /i.test(authorization)) return undefined;
  const decoded = Buffer.from(authorization.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0 || decoded.slice(0, colon).toLowerCase() !== 'dapr-app-id') return undefined;
  const appId = decoded.slice(colon + 1);
  return appId === '' ? undefined : appId;
}
