import { jwtVerify, type JWSAlgorithm, type JWTPayload } from 'jose';
import { errorMessage } from '../../errors/index.js';
import { AppIdPolicy, NAMESPACE_NAME, SERVICE_ACCOUNT_NAME } from './app-ids.js';
import type { KeySet } from './key-set.js';
import type { PodDirectory } from './pod-directory.js';

/**
 * What Kubernetes signs ServiceAccount tokens with: RSA (the default) or ECDSA keys, per the key's type
 * and size. Everything else is refused before a key is even looked up, in particular `none` and the
 * HMAC algorithms (which would let a public key be used as a shared secret).
 */
export const KUBERNETES_TOKEN_ALGORITHMS: readonly JWSAlgorithm[] = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512'];
/** Clocks of the API server and the Sentry may differ this much (the API server's own leeway is 60 s). */
export const DEFAULT_TOKEN_CLOCK_TOLERANCE_MS = 60_000;
/** A projected token is about 1 KB; anything far larger is refused before it is parsed. */
const MAX_TOKEN_LENGTH = 16 * 1024;
/** Values from a token are cut to this length in refusal reasons. */
const MAX_ECHOED = 80;

/** Why a token was refused; each has its own reason text too. */
export type KubernetesTokenFailure =
  | 'malformed'
  | 'algorithm_not_allowed'
  | 'unknown_key'
  | 'bad_signature'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'expired'
  | 'not_yet_valid'
  | 'missing_claims'
  | 'subject_mismatch'
  | 'wrong_namespace'
  | 'app_id_not_allowed'
  | 'pod_not_found'
  | 'pod_mismatch'
  | 'key_set_unavailable'
  | 'api_unavailable';

/** Where a pod's app id comes from: its ServiceAccount (and the mapping), or its `dapr.io/app-id` annotation as Dapr's Sentry reads it. */
export const appIdSources = ['serviceaccount', 'pod'] as const;
export type AppIdSource = (typeof appIdSources)[number];

/** The workload a valid token speaks for. */
export interface ServiceAccountIdentity {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly pod: string;
}

export type KubernetesTokenVerdict =
  | { readonly ok: true; readonly identity: ServiceAccountIdentity }
  | { readonly ok: false; readonly failure: KubernetesTokenFailure; readonly reason: string };

export interface KubernetesTokenValidatorOptions {
  readonly keys: KeySet;
  /** The cluster's ServiceAccount issuer (`--service-account-issuer`), compared exactly with `iss`. */
  readonly issuer: string;
  /** Must be one of the token's `aud` values: the audience of the projected token volume. */
  readonly audience: string;
  readonly appIds?: AppIdPolicy;
  readonly clockToleranceMs?: number;
  /**
   * The API server's pods: with it, the pod a token was issued for must still exist with the token's
   * uid and ServiceAccount (a token outliving its pod is refused).
   */
  readonly pods?: PodDirectory | undefined;
  /** Default `serviceaccount`; `pod` needs `pods`. */
  readonly appIdFrom?: AppIdSource | undefined;
}

/**
 * Checks a projected ServiceAccount token, as the Sentry's Kubernetes validator: signed by the cluster
 * (a key of the JWKS, an algorithm Kubernetes uses), issued by the configured issuer for this audience,
 * current (`exp`, `nbf`, with a small tolerance), bound to a pod, and naming a ServiceAccount whose
 * namespace is the one requested and which may use the requested app id ({@link AppIdPolicy}).
 * Nothing in the token is trusted before its signature is verified; the token itself is never
 * included in a reason.
 */
export class KubernetesTokenValidator {
  readonly #options: KubernetesTokenValidatorOptions;
  readonly #appIds: AppIdPolicy;

  constructor(options: KubernetesTokenValidatorOptions) {
    if (options.appIdFrom === 'pod' && options.pods === undefined) throw new Error('app ids from pods need the API server (pods)');
    this.#options = options;
    this.#appIds = options.appIds ?? new AppIdPolicy();
  }

  /** Whether `token` proves the right to certificates for `request.appId` in `request.namespace`. */
  async validate(token: string, request: { readonly appId: string; readonly namespace: string }): Promise<KubernetesTokenVerdict> {
    const deny = (failure: KubernetesTokenFailure, reason: string): KubernetesTokenVerdict => ({ ok: false, failure, reason });
    if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) return deny('malformed', 'the token is not a JWT');
    const { issuer, audience } = this.#options;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token.trim(), this.#options.keys.resolve, {
        algorithms: [...KUBERNETES_TOKEN_ALGORITHMS],
        issuer,
        audience,
        clockTolerance: Math.round((this.#options.clockToleranceMs ?? DEFAULT_TOKEN_CLOCK_TOLERANCE_MS) / 1000),
        requiredClaims: ['exp', 'sub'],
      }));
    } catch (err) {
      const [failure, reason] = this.#explain(err);
      return deny(failure, reason);
    }

    const k8s = payload['kubernetes.io'];
    const namespace = field(k8s, 'namespace');
    const serviceAccount = field(field(k8s, 'serviceaccount'), 'name');
    const pod = field(k8s, 'pod');
    const podName = field(pod, 'name');
    const podUid = field(pod, 'uid');
    const missing = [
      typeof namespace === 'string' && namespace !== '' ? undefined : 'kubernetes.io.namespace',
      typeof serviceAccount === 'string' && serviceAccount !== '' ? undefined : 'kubernetes.io.serviceaccount.name',
      // A token bound to a pod lives only as long as the pod: a leaked one dies with it.
      typeof podName === 'string' && podName !== '' ? undefined : 'kubernetes.io.pod.name',
      typeof podUid === 'string' && podUid !== '' ? undefined : 'kubernetes.io.pod.uid',
    ].filter((m) => m !== undefined);
    if (missing.length > 0 || typeof namespace !== 'string' || typeof serviceAccount !== 'string' || typeof podName !== 'string' || typeof podUid !== 'string') {
      return deny('missing_claims', `the token is not a pod's ServiceAccount token: it lacks ${missing.join(', ')}`);
    }
    if (!NAMESPACE_NAME.test(namespace) || !SERVICE_ACCOUNT_NAME.test(serviceAccount)) {
      return deny('malformed', 'the token names an invalid namespace or ServiceAccount');
    }
    if (payload.sub !== `system:serviceaccount:${namespace}:${serviceAccount}`) {
      return deny('subject_mismatch', `the token's subject is not system:serviceaccount:${namespace}:${serviceAccount}`);
    }
    if (request.namespace !== namespace) {
      return deny('wrong_namespace', `the token is for a pod in namespace "${namespace}", not "${echo(request.namespace)}"`);
    }
    const pods = this.#options.pods;
    if (pods !== undefined) {
      let lookup;
      try {
        lookup = await pods.get(namespace, podName);
      } catch (err) {
        return deny('api_unavailable', `the API server could not tell whether pod ${namespace}/${echo(podName)} exists: ${errorMessage(err)}`);
      }
      if (!lookup.found) return deny('pod_not_found', `pod ${namespace}/${echo(podName)}, which the token was issued for, does not exist (any more)`);
      if (lookup.pod.uid !== podUid) return deny('pod_mismatch', `pod ${namespace}/${echo(podName)} is not the one the token was issued for (another uid)`);
      if (lookup.pod.serviceAccountName !== serviceAccount) {
        return deny('pod_mismatch', `pod ${namespace}/${echo(podName)} runs as ServiceAccount ${lookup.pod.serviceAccountName}, not ${serviceAccount}`);
      }
      if (this.#options.appIdFrom === 'pod') {
        if (lookup.pod.appId !== request.appId) {
          return deny('app_id_not_allowed', `pod ${namespace}/${echo(podName)} has app id "${echo(lookup.pod.appId)}" (its dapr.io/app-id annotation), not "${echo(request.appId)}"`);
        }
        return { ok: true, identity: { namespace, serviceAccount, pod: podName } };
      }
    }
    if (!this.#appIds.allows(namespace, serviceAccount, request.appId)) {
      const allowed = this.#appIds.allowed(namespace, serviceAccount);
      return deny(
        'app_id_not_allowed',
        `ServiceAccount ${namespace}/${serviceAccount} may not ask for app id "${echo(request.appId)}" (it may ask for: ${allowed.join(', ')}; see --kubernetes-app-id-map)`,
      );
    }
    return { ok: true, identity: { namespace, serviceAccount, pod: podName } };
  }

  /** Closes the connections to the API server, if any. */
  async close(): Promise<void> {
    await this.#options.pods?.close();
  }

  /** jose's error, as a failure and a reason that names the rule broken. */
  #explain(err: unknown): [KubernetesTokenFailure, string] {
    const code = (err as { code?: unknown } | null)?.code;
    const { issuer, audience } = this.#options;
    switch (code) {
      case 'ERR_JWT_EXPIRED':
        return ['expired', `the token expired${expiry(err)}`];
      case 'ERR_JWT_CLAIM_VALIDATION_FAILED': {
        const { claim, reason } = err as { claim?: string; reason?: string };
        if (reason === 'missing') return ['missing_claims', `the token has no "${claim ?? '?'}" claim`];
        if (claim === 'iss') return ['wrong_issuer', `the token was not issued by ${issuer}`];
        if (claim === 'aud') return ['wrong_audience', `the token's audience does not include "${audience}"`];
        if (claim === 'nbf') return ['not_yet_valid', 'the token is not valid yet (nbf)'];
        return ['malformed', `the token's "${claim ?? '?'}" claim is invalid`];
      }
      case 'ERR_JOSE_ALG_NOT_ALLOWED':
      case 'ERR_JOSE_NOT_SUPPORTED':
        return ['algorithm_not_allowed', `the token's signing algorithm is not one Kubernetes uses (${KUBERNETES_TOKEN_ALGORITHMS.join(', ')})`];
      case 'ERR_JWS_INVALID':
      case 'ERR_JWT_INVALID':
        return ['malformed', 'the token is not a well-formed JWT'];
      case 'ERR_JWKS_NO_MATCHING_KEY':
        return ['unknown_key', `no key of the cluster's key set (${this.#options.keys.description}) matches the token's key id and algorithm`];
      case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
        return ['unknown_key', "several keys of the cluster's key set match the token's key id; it needs a distinct kid"];
      case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
        return ['bad_signature', "the token's signature does not verify"];
      default:
        return ['key_set_unavailable', `the cluster's key set (${this.#options.keys.description}) could not be used: ${errorMessage(err)}`];
    }
  }
}

/** `value[name]` when `value` is a plain object, else undefined. */
function field(value: unknown, name: string): unknown {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>)[name] : undefined;
}

function expiry(err: unknown): string {
  const exp = (err as { payload?: JWTPayload }).payload?.exp;
  return typeof exp === 'number' && Number.isFinite(exp) && Math.abs(exp) < 8.64e12 ? ` at ${new Date(exp * 1000).toISOString()}` : '';
}

function echo(value: string): string {
  return value.length > MAX_ECHOED ? `${value.slice(0, MAX_ECHOED)}…` : value;
}
