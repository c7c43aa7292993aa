/**
 * Method names, from the URL a caller sent to the path an app receives.
 *
 * Dapr reads the *decoded* request path (`%2F` becomes `/`), cleans it like Go's `path.Clean`
 * (resolving `.` and `..`, dropping empty segments and the trailing slash) and refuses methods with
 * `#`, `?`, NUL or control characters (`pkg/messaging/method/normalize.go`). Courier does the same and
 * additionally refuses a literal `%` left after decoding: `%25` would otherwise be decoded a second
 * time by whatever parses the app's URL, so `%252F..%252F` could turn into `/../` behind the policy
 * checks. Both behaviours match the path-correctness table Dapr's own tests pin (scenario S37).
 */

/** Percent-decodes a URL path; undefined if it has a malformed escape such as `%zz`. */
export function decodePath(raw: string): string | undefined {
  if (!raw.includes('%')) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

/** A path with nothing to clean has none of these: `//`, a `.` or `..` segment, a trailing `/`. */
const unclean = /\/\/|(?:^|\/)\.{1,2}(?:\/|$)|.\/$/;

/** Go's `path.Clean`: the shortest equivalent path by purely lexical processing. */
export function cleanPath(path: string): string {
  if (path === '') return '.';
  // Most paths are already clean: returned as they are, without splitting and joining.
  if (!unclean.test(path)) return path;
  const rooted = path.startsWith('/');
  const out: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
      else if (!rooted) out.push('..');
      continue;
    }
    out.push(segment);
  }
  const joined = out.join('/');
  if (rooted) return `/${joined}`;
  return joined === '' ? '.' : joined;
}

// eslint-disable-next-line no-control-regex
const forbidden = /[#?%\u0000-\u001f\u007f]/;

/**
 * Normalizes a decoded method for invocation: cleans it, strips leading `/` and `../`, and maps `.`
 * to the empty method. Returns undefined when the method contains a forbidden character.
 */
export function normalizeMethod(decoded: string): string | undefined {
  if (forbidden.test(decoded)) return undefined;
  let method = cleanPath(decoded);
  if (method === '.' || method === '/') return '';
  while (method.startsWith('/')) method = method.slice(1);
  while (method.startsWith('../')) method = method.slice(3);
  if (method === '..') return '';
  return method;
}

/**
 * Encodes a normalized method as the path of the request sent to an HTTP app: `/` + the method with
 * every byte that may not appear in a URL path segment percent-encoded (RFC 3986 `pchar` plus `/`
 * are kept). The app decodes it back to the same method.
 */
export function methodToPath(method: string): string {
  if (/^[A-Za-z0-9\-._~!$&'()*+,;=:@/]*$/.test(method)) return `/${method}`;
  let out = '/';
  for (const ch of method) {
    if (/[A-Za-z0-9\-._~!$&'()*+,;=:@/]/.test(ch)) out += ch;
    else out += encodeURIComponent(ch).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  }
  return out;
}
