import type { DetailedPeerCertificate, PeerCertificate } from 'node:tls';

/**
 * A workload identity as Dapr spells it: `spiffe://<trustDomain>/ns/<namespace>/<appId>`.
 * The certificate's URI SAN carries it; access control and the caller headers are taken from it.
 */
export interface SpiffeId {
  trustDomain: string;
  namespace: string;
  appId: string;
}

const SCHEME = 'spiffe://';
/** The SPIFFE ID specification's limits: trust domains in lower case, path segments of unreserved characters. */
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;
const PATH_SEGMENT = /^[A-Za-z0-9._-]+$/;
/** The SPIFFE specification's upper bound on the length of an ID. */
const MAX_ID_LENGTH = 2048;

/** The URI form of an identity. Does not validate; use {@link parseSpiffeId} on untrusted input. */
export function formatSpiffeId(id: SpiffeId): string {
  return `${SCHEME}${id.trustDomain}/ns/${id.namespace}/${id.appId}`;
}

/** True when `value` is a trust domain the SPIFFE specification allows (lower-case letters, digits, `.`, `-`, `_`). */
export function isValidTrustDomain(value: string): boolean {
  return TRUST_DOMAIN.test(value);
}

/**
 * Parses a SPIFFE ID in Dapr's shape, strictly: scheme `spiffe` (lower case), a valid trust domain
 * (no port, no user info), and a path starting `/ns/<namespace>/<appId>` whose segments are all
 * non-empty, made of the characters SPIFFE allows, and not `.` or `..`. Segments after the app id
 * are allowed (and ignored), as Dapr allows them. No query, no fragment, no percent-encoding.
 * Anything else yields `undefined`: an identity is either exact or absent.
 */
export function parseSpiffeId(uri: string): SpiffeId | undefined {
  if (uri.length > MAX_ID_LENGTH || !uri.startsWith(SCHEME)) return undefined;
  const rest = uri.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  if (slash < 0) return undefined;
  const trustDomain = rest.slice(0, slash);
  if (!isValidTrustDomain(trustDomain)) return undefined;
  const segments = rest.slice(slash + 1).split('/');
  if (!segments.every((s) => PATH_SEGMENT.test(s) && s !== '.' && s !== '..')) return undefined;
  const [ns, namespace, appId] = segments;
  if (ns !== 'ns' || namespace === undefined || appId === undefined) return undefined;
  return { trustDomain, namespace, appId };
}

/**
 * The identity of a TLS peer, from Node's `subjectaltname` string (`DNS:a, URI:spiffe://…`).
 * The certificate must carry exactly one `spiffe://` URI SAN, and it must parse; with none, with
 * two (which would make the identity ambiguous), or with a malformed SAN string, the answer is
 * `undefined`. Node quotes SAN values that contain separators (`URI:"a, b"`); such values are read
 * as one value, so a crafted SAN cannot smuggle in a second identity.
 */
export function spiffeIdFromPeerCertificate(cert: PeerCertificate | DetailedPeerCertificate | undefined): SpiffeId | undefined {
  // getPeerCertificate() returns {} when there is no certificate, whatever its type says.
  const san = (cert as { subjectaltname?: unknown } | undefined)?.subjectaltname;
  if (typeof san !== 'string') return undefined;
  const names = parseSubjectAltNames(san);
  if (names === undefined) return undefined;
  return spiffeIdFromUris(names.filter((n) => n.type === 'URI').map((n) => n.value));
}

/** Each connection's verified certificate is parsed once: the calls on that connection share the identity. */
const peerIds = new WeakMap<object, SpiffeId | null>();

/** `spiffeIdFromPeerCertificate`, remembered per certificate object (one per connection). */
export function spiffeIdOfPeer(cert: PeerCertificate | DetailedPeerCertificate | undefined): SpiffeId | undefined {
  if (cert === undefined) return undefined;
  let id = peerIds.get(cert);
  if (id === undefined) {
    id = spiffeIdFromPeerCertificate(cert) ?? null;
    peerIds.set(cert, id);
  }
  return id ?? undefined;
}

/** Exactly one `spiffe://` URI (compared without case, so `SPIFFE://` counts as a second one) that parses. */
export function spiffeIdFromUris(uris: readonly string[]): SpiffeId | undefined {
  const spiffe = uris.filter((u) => u.slice(0, SCHEME.length).toLowerCase() === SCHEME);
  const only = spiffe.length === 1 ? spiffe[0] : undefined;
  return only === undefined ? undefined : parseSpiffeId(only);
}

/**
 * Splits Node's SAN string into `{ type, value }` pairs. Entries are separated by `, `; a value
 * is either bare (no `,` inside: Node quotes those) or a JSON string literal. `undefined` for
 * anything that does not follow that grammar.
 */
function parseSubjectAltNames(text: string): Array<{ type: string; value: string }> | undefined {
  const out: Array<{ type: string; value: string }> = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) return undefined;
    const type = text.slice(i, colon);
    let value: string;
    let next: number;
    if (text[colon + 1] === '"') {
      const end = endOfJsonString(text, colon + 1);
      if (end < 0) return undefined;
      try {
        value = JSON.parse(text.slice(colon + 1, end)) as string;
      } catch {
        return undefined;
      }
      next = end;
    } else {
      const comma = text.indexOf(',', colon + 1);
      next = comma < 0 ? text.length : comma;
      value = text.slice(colon + 1, next);
    }
    out.push({ type, value });
    if (next === text.length) break;
    if (!text.startsWith(', ', next)) return undefined;
    i = next + 2;
    if (i === text.length) return undefined;
  }
  return out;
}

/** The index just past the closing quote of the JSON string starting at `start`, or -1. */
function endOfJsonString(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    const c = text[i];
    if (c === '\\') i++;
    else if (c === '"') return i + 1;
  }
  return -1;
}
