import type { CourierError } from '../errors/index.js';
import { idempotentVerbs, type InvokeTarget } from './types.js';

/**
 * Courier's built-in retries for calls to another sidecar (and to external HTTP services), as the
 * service-invocation overview states them: up to 3 retries, each on the next instance; at once while
 * an untried instance is left, otherwise 1 s apart.
 *
 * What is retried (and nothing else):
 * - the connection to the target sidecar could not be made (refused, unreachable, timed out after
 *   2 s, or the TLS handshake failed), so nothing was sent;
 * - the target sidecar refused the stream without processing it (HTTP/2 REFUSED_STREAM, or a GOAWAY
 *   that excludes it, as a sidecar that is shutting down sends);
 * - the target sidecar answered UNAVAILABLE or UNAUTHENTICATED before sending any response headers
 *   (a Courier callee does this only before it dispatches to its app: app not healthy, draining,
 *   its app's port refused the connection);
 * - for idempotent methods only (GET, HEAD, OPTIONS, TRACE, PUT, DELETE): the connection broke after
 *   the request was sent but before any part of the response arrived.
 * Never retried: anything after the first byte of the response; errors the callee returned after
 * dispatching; requests whose body has outgrown the replay buffer.
 */
export interface RetryPolicy {
  readonly maxRetries: number;
  readonly backoffMs: number;
  /** Whether a failed attempt may be tried again (`isRetryable` for the built-in rules). */
  retryable(error: CourierError, verb: string): boolean;
}

export function isRetryable(error: CourierError, verb: string): boolean {
  if (error.retry === 'safe') return true;
  return error.retry === 'idempotent' && idempotentVerbs.has(verb);
}

export const builtInRetryPolicy: RetryPolicy = { maxRetries: 3, backoffMs: 1000, retryable: isRetryable };

/**
 * Where a call's retry policy comes from: the seam for Dapr's Resiliency resource (`targets.apps`,
 * `DefaultAppRetryPolicy`, …), which would return the policy it defines for a target and fall back to
 * the built-in one. Dapr keys its policies `<appid>:<method>` for an app, `<name>:<baseUrl>` for an
 * HTTPEndpoint and `<url>/<method>` for a URL target (`pkg/api/http/directmessaging.go`); the target
 * and method given here are enough to build those keys.
 */
export interface RetryPolicies {
  forCall(target: InvokeTarget, method: string): RetryPolicy;
}

/** The built-in retries for every target (nothing else is configurable yet). */
export const builtInRetryPolicies: RetryPolicies = { forCall: () => builtInRetryPolicy };
