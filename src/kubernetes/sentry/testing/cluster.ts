// A stand-in for a cluster's ServiceAccount token issuer: key pairs, their JWKS, and tokens shaped as
// the kubelet's projected ones, for tests only.
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { SENTRY_TOKEN_AUDIENCE } from '../../constants.js';

export const TEST_ISSUER = 'https://kubernetes.default.svc.cluster.local';

export interface SigningKey {
  readonly kid: string;
  readonly alg: 'RS256' | 'ES256';
  readonly privateKey: CryptoKey;
  readonly jwk: JWK;
}

export async function signingKey(kid: string, alg: 'RS256' | 'ES256' = 'RS256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, jwk };
}

export function jwks(...keys: SigningKey[]): { keys: JWK[] } {
  return { keys: keys.map((k) => k.jwk) };
}

export interface TokenSpec {
  namespace?: string;
  serviceAccount?: string;
  pod?: string;
  /** The bound pod's uid (random by default). */
  podUid?: string;
  issuer?: string;
  audience?: string | string[];
  /** Seconds from now. */
  expiresIn?: number;
  /** Seconds from now (negative: in the past). */
  notBefore?: number;
  /** Replaces claims (undefined deletes one). */
  claims?: Record<string, unknown>;
  /** Overrides the header's kid. */
  kid?: string;
}

/** A projected ServiceAccount token as the kubelet would get it, signed with `key`. */
export async function serviceAccountToken(key: SigningKey, spec: TokenSpec = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const namespace = spec.namespace ?? 'shop';
  const serviceAccount = spec.serviceAccount ?? 'checkout';
  const claims: Record<string, unknown> = {
    iss: spec.issuer ?? TEST_ISSUER,
    aud: spec.audience ?? [SENTRY_TOKEN_AUDIENCE],
    sub: `system:serviceaccount:${namespace}:${serviceAccount}`,
    iat: now,
    nbf: now + (spec.notBefore ?? 0),
    exp: now + (spec.expiresIn ?? 3600),
    jti: randomUUID(),
    'kubernetes.io': {
      namespace,
      node: { name: 'node-1', uid: randomUUID() },
      pod: { name: spec.pod ?? `${serviceAccount}-7d4b9c-x2v9q`, uid: spec.podUid ?? randomUUID() },
      serviceaccount: { name: serviceAccount, uid: randomUUID() },
    },
  };
  for (const [name, value] of Object.entries(spec.claims ?? {})) {
    if (value === undefined) delete claims[name];
    else claims[name] = value;
  }
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: spec.kid ?? key.kid }).sign(key.privateKey);
}
