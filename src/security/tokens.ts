import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import { CourierError } from '../errors/index.js';
import { createFileAtomic, ensurePrivateDirectory, PRIVATE_FILE_MODE, readPrivateFile } from './files.js';

/**
 * What a join token lets its holder obtain: certificates for `appId` in `namespace`, until
 * `expiresAtMs` (milliseconds since the epoch; absent: no expiry). `appId: '*'` covers every app
 * id in the namespace, for a machine that runs several apps; namespaces have no wildcard.
 */
export interface JoinTokenClaims {
  appId: string;
  namespace: string;
  expiresAtMs?: number;
}

export type JoinTokenVerdict = { ok: true } | { ok: false; reason: string };

/** Covers any app id of the namespace; not a valid app id itself (SPIFFE paths have no `*`), so unambiguous. */
export const ANY_APP_ID = '*';
/**
 * How long a token made by `courier sentry token` can be used unless told otherwise: long enough to
 * hand it to a machine and start its sidecars, short enough that one found later in a file, a shell
 * history or a backup is useless. A running sidecar renews with its certificate, not with the token.
 */
export const DEFAULT_JOIN_TOKEN_TTL_MS = 24 * 3_600_000;
/** The file, in the Sentry's credentials directory, holding the key join tokens are signed with. */
export const TOKEN_SECRET_FILE = 'token.key';

const VERSION = 'courier1';
const SECRET_BYTES = 32;
const MAC_BYTES = 32;
/** Far above any real token (~150 characters); longer input is refused before any work. */
const MAX_TOKEN_LENGTH = 4096;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
/** The largest time a JavaScript Date can hold, in milliseconds from the epoch either way. */
const MAX_TIME_MS = 8.64e15;

/**
 * A join token: `courier1.<base64url JSON claims>.<base64url HMAC-SHA256>`, printable and safe in
 * environment variables and files. The MAC covers the version and the claims, so neither can be
 * changed; the claims are readable (not encrypted): they name an app, they are not secret.
 * Dapr's self-hosted Sentry signs for anyone who asks; Courier's asks for one of these.
 */
export function mintJoinToken(secret: Uint8Array, claims: JoinTokenClaims): string {
  checkSecret(secret);
  const invalid = claimsProblem(claims);
  if (invalid !== undefined) throw new CourierError('ERR_INVALID_CONFIG', `cannot mint a join token: ${invalid}`);
  const body: JoinTokenClaims = { appId: claims.appId, namespace: claims.namespace };
  if (claims.expiresAtMs !== undefined) body.expiresAtMs = claims.expiresAtMs;
  const payload = Buffer.from(JSON.stringify(body), 'utf8').toString('base64url');
  return `${VERSION}.${payload}.${mac(secret, payload).toString('base64url')}`;
}

/**
 * Whether `token` has the shape of a join token (its version prefix); anything else a sidecar holds is
 * another kind of credential, such as a Kubernetes ServiceAccount token (a JWT, which starts `eyJ`).
 */
export function isJoinToken(token: string): boolean {
  return token.trimStart().startsWith(`${VERSION}.`);
}

/**
 * Whether `token` lets its holder obtain a certificate for `request.appId` in `request.namespace` at
 * `nowMs`. The MAC is checked first, in constant time, and nothing in the token is trusted before
 * that. Reasons name what failed and the requested names only: never the secret or the expected MAC.
 * Surrounding whitespace (a token read from a file) is ignored.
 */
export function verifyJoinToken(secret: Uint8Array, token: string, request: { appId: string; namespace: string }, nowMs: number): JoinTokenVerdict {
  checkSecret(secret);
  const deny = (reason: string): JoinTokenVerdict => ({ ok: false, reason });
  if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) return deny('malformed token');
  const parts = token.trim().split('.');
  const [version, payload, signature] = parts;
  if (parts.length !== 3 || version !== VERSION || payload === undefined || signature === undefined) return deny('malformed token');
  if (!BASE64URL.test(payload) || !BASE64URL.test(signature)) return deny('malformed token');
  const given = Buffer.from(signature, 'base64url');
  // Only the canonical encoding of a 32-byte MAC is accepted, so each token has one spelling.
  if (given.length !== MAC_BYTES || given.toString('base64url') !== signature) return deny('malformed token');
  if (!timingSafeEqual(given, mac(secret, payload))) return deny('bad signature');

  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return deny('malformed token');
  }
  if (claimsProblem(claims) !== undefined) return deny('malformed token');
  const { appId, namespace, expiresAtMs } = claims as JoinTokenClaims;
  if (expiresAtMs !== undefined && nowMs >= expiresAtMs) return deny(`expired at ${new Date(expiresAtMs).toISOString()}`);
  if (request.namespace === '' || request.namespace !== namespace) {
    return deny(`the token does not cover namespace ${JSON.stringify(request.namespace)}`);
  }
  if (request.appId === '' || request.appId === ANY_APP_ID || (appId !== ANY_APP_ID && request.appId !== appId)) {
    return deny(`the token does not cover app id ${JSON.stringify(request.appId)}`);
  }
  return { ok: true };
}

/**
 * The join-token key in `dir/token.key`: 32 random bytes, created (mode 0600, directory 0700) when
 * missing. Creation never replaces an existing file, so two processes starting together agree on
 * one key. Replacing the file (and restarting the Sentry) revokes every token minted with the old one.
 * A file supplied by an operator may hold any content of at least 32 bytes; it is used as is, but only
 * if no one but its owner can read or write it (see {@link readPrivateFile}).
 */
export function loadOrCreateTokenSecret(dir: string): Uint8Array {
  const file = join(dir, TOKEN_SECRET_FILE);
  const existing = readSecret(file);
  if (existing !== undefined) return existing;
  ensurePrivateDirectory(dir);
  const fresh = randomBytes(SECRET_BYTES);
  if (createFileAtomic(file, fresh, PRIVATE_FILE_MODE)) return new Uint8Array(fresh);
  const raced = readSecret(file);
  if (raced === undefined) throw new CourierError('ERR_INVALID_CONFIG', `join-token key ${file} vanished while it was being created`);
  return raced;
}

function readSecret(file: string): Uint8Array | undefined {
  const bytes = readPrivateFile(file, 'join-token key');
  if (bytes === undefined) return undefined;
  if (bytes.length < SECRET_BYTES) {
    throw new CourierError('ERR_INVALID_CONFIG', `join-token key ${file} holds ${bytes.length} bytes; it needs at least ${SECRET_BYTES}`);
  }
  return new Uint8Array(bytes);
}

function mac(secret: Uint8Array, payload: string): Buffer {
  return createHmac('sha256', secret).update(`${VERSION}.${payload}`).digest();
}

function checkSecret(secret: Uint8Array): void {
  if (!(secret instanceof Uint8Array) || secret.length < SECRET_BYTES) {
    throw new CourierError('ERR_INVALID_CONFIG', `a join-token key must be at least ${SECRET_BYTES} bytes`);
  }
}

/** What is wrong with a claims object, or `undefined` when it is well formed. */
function claimsProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'the claims are not an object';
  const { appId, namespace, expiresAtMs, ...rest } = value as Record<string, unknown>;
  if (typeof appId !== 'string' || appId === '' || appId.length > 256) return 'appId must be a non-empty string';
  if (typeof namespace !== 'string' || namespace === '' || namespace.length > 256) return 'namespace must be a non-empty string';
  // Within the range of a Date (±8.64e15), so that an expiry can always be reported as a time.
  if (expiresAtMs !== undefined && !(typeof expiresAtMs === 'number' && Math.abs(expiresAtMs) <= MAX_TIME_MS)) {
    return 'expiresAtMs must be a finite number (milliseconds since the epoch, within the range of a Date)';
  }
  const unknown = Object.keys(rest);
  if (unknown.length > 0) return `unknown claims: ${unknown.join(', ')}`;
  return undefined;
}
