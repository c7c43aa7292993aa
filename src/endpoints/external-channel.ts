import { constants as cryptoConstants } from 'node:crypto';
import { newPool, type Pool } from '../util/undici-pool.js';
import { AppResponse, type DescribeFailure } from '../channel/app-response.js';
import { transportErrorText } from '../channel/protocol-mismatch.js';
import { Semaphore } from '../channel/semaphore.js';
import { CourierError, errorMessage, GrpcStatus } from '../errors/index.js';
import { appRequestHeaders, identityHeaders } from '../invoke/headers.js';
import { methodToPath } from '../invoke/method.js';
import { externalPath } from '../invoke/target.js';
import { cancelledError, type ExternalTarget, type Invoke, type InvokeRequest, type ResponseSink } from '../invoke/types.js';
import { unusableVerbProblem } from '../invoke/verbs.js';
import type { Logger } from '../observability/logging/index.js';
import type { EndpointTls, HttpEndpointConfig } from './http-endpoint.js';

export interface ExternalChannelOptions {
  /** The loaded HTTPEndpoint resources: each gets its own connection pool, built now. */
  readonly endpoints: readonly HttpEndpointConfig[];
  /** `--app-max-concurrency`, applied per endpoint and once more to all URL targets together; 0 or less is unlimited. */
  readonly maxConcurrency: number;
  readonly logger: Logger;
  /** URL targets: at most this many origins keep a pool (least recently used first out). Default 64. */
  readonly maxUrlPools?: number;
  /** URL targets: a pool unused this long is closed. Default 2 minutes. */
  readonly urlPoolIdleMs?: number;
}

/** Dapr's dial and TLS handshake timeouts for HTTPEndpoints (15 s each); undici's covers both. */
const CONNECT_TIMEOUT_MS = 15_000;
const DEFAULT_MAX_URL_POOLS = 64;
const DEFAULT_URL_POOL_IDLE_MS = 120_000;

/** Headers of the caller that never reach a service outside the Dapr world. */
const notForExternal: ReadonlySet<string> = new Set<string>(identityHeaders);

/** Errors that happen before anything was sent: the request may be sent again. */
const notSentCodes: ReadonlySet<string> = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);
/** The connection broke after the request went out and before any answer: only idempotent requests may be sent again. */
const sentNoAnswerCodes: ReadonlySet<string> = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);
/** Node's codes for a server certificate that does not verify. */
const untrustedCodes: ReadonlySet<string> = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_REVOKED',
  'CERT_CHAIN_TOO_LONG',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);
/** TLS alerts a server sends when it does not accept the client's certificate (or lack of one). */
const clientCertificateAlert = /ALERT_(CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|UNSUPPORTED_CERTIFICATE|CERTIFICATE_REVOKED|CERTIFICATE_EXPIRED|ACCESS_DENIED|DECRYPT_ERROR|HANDSHAKE_FAILURE)/;

/** One destination's connection pool and what every call to it shares. */
interface Route {
  readonly origin: string;
  readonly pool: Pool;
  /** The endpoint's configured headers (`[lower-case name, value]`), and their names. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly headerNames: ReadonlySet<string>;
  readonly semaphore: Semaphore | undefined;
  readonly describeFailure: DescribeFailure;
  lastUsedMs: number;
}

/**
 * Calls non-Dapr HTTP services (Dapr's HTTPEndpoint channels, `pkg/runtime/channels/channels.go`):
 * one keep-alive pool per HTTPEndpoint, built at start with its TLS settings, and for URL targets one
 * pool per origin, made on first use, kept in a bounded LRU and closed when idle. Connecting (TLS
 * handshake included) may take 15 s; a call has no overall timeout. Requests and responses stream
 * through the same handler and `ResponseSink` as calls to the local app, so statuses, headers and
 * bodies pass through unchanged and large bodies are never held in memory. `--app-max-concurrency`
 * holds a slot per call until its response body has been passed on.
 */
export class ExternalChannel implements Invoke<ExternalTarget> {
  readonly #logger: Logger;
  readonly #maxConcurrency: number;
  readonly #endpoints = new Map<string, Route>();
  /** URL targets by origin, least recently used first. */
  readonly #urls = new Map<string, Route>();
  readonly #urlSemaphore: Semaphore | undefined;
  readonly #maxUrlPools: number;
  readonly #urlIdleMs: number;
  #sweeper: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: ExternalChannelOptions) {
    this.#logger = options.logger;
    this.#maxConcurrency = options.maxConcurrency;
    this.#maxUrlPools = options.maxUrlPools ?? DEFAULT_MAX_URL_POOLS;
    this.#urlIdleMs = options.urlPoolIdleMs ?? DEFAULT_URL_POOL_IDLE_MS;
    this.#urlSemaphore = this.#newSemaphore();
    for (const endpoint of options.endpoints) {
      const origin = endpoint.target.origin;
      const hint = endpoint.tls?.ca !== undefined ? 'it is checked against spec.clientTLS.rootCA' : 'set spec.clientTLS.rootCA of the HTTPEndpoint to trust its CA';
      this.#endpoints.set(endpoint.name, {
        origin,
        pool: originPool(origin, endpoint.tls),
        headers: endpoint.headers,
        headerNames: new Set(endpoint.headers.map(([name]) => name)),
        semaphore: this.#newSemaphore(),
        describeFailure: externalFailure(origin, hint, endpoint.tls?.cert !== undefined),
        lastUsedMs: 0,
      });
    }
  }

  /** URL-target origins that currently have a pool (for tests and diagnostics). */
  get urlPoolCount(): number {
    return this.#urls.size;
  }

  invoke(request: InvokeRequest<ExternalTarget>, sink: ResponseSink): void {
    const verbProblem = unusableVerbProblem(request.verb);
    if (verbProblem !== undefined) {
      sink.error(new CourierError('ERR_MALFORMED_REQUEST', verbProblem, { grpcCode: GrpcStatus.INVALID_ARGUMENT }));
      return;
    }
    if (this.#closed) {
      sink.error(new CourierError('ERR_DIRECT_INVOKE', 'the sidecar is shutting down', { grpcCode: GrpcStatus.UNAVAILABLE }));
      return;
    }
    const target = request.target;
    const route = target.kind === 'endpoint' ? this.#endpoints.get(target.id) : this.#urlRoute(target.origin);
    if (route === undefined) {
      sink.error(new CourierError('ERR_INTERNAL', `the HTTPEndpoint ${target.id} has no connection pool`));
      return;
    }
    const semaphore = route.semaphore;
    if (semaphore === undefined) {
      this.#dispatch(request, sink, route, undefined);
      return;
    }
    semaphore.acquire(
      request.signal,
      () => this.#dispatch(request, sink, route, semaphore),
      () => sink.error(cancelledError()),
    );
  }

  /** Closes every pool; calls in flight are cut off. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    const routes = [...this.#endpoints.values(), ...this.#urls.values()];
    this.#urls.clear();
    await Promise.all(routes.map((route) => route.pool.destroy()));
  }

  #dispatch(request: InvokeRequest<ExternalTarget>, sink: ResponseSink, route: Route, semaphore: Semaphore | undefined): void {
    const headers = appRequestHeaders(request.metadata, undefined);
    // Drop what an external service must not receive, and what the endpoint sets itself (configured
    // headers replace the caller's of the same name, as Dapr's Header.Set does).
    let kept = 0;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i] as string;
      if (notForExternal.has(name) || route.headerNames.has(name)) continue;
      headers[kept++] = name;
      headers[kept++] = headers[i + 1] as string;
    }
    headers.length = kept;
    for (const [name, value] of route.headers) headers.push(name, value);
    if (request.contentType !== '') headers.push('content-type', request.contentType);
    if (request.contentLength !== undefined && request.body !== null) headers.push('content-length', String(request.contentLength));
    const path = externalPath(request.target, methodToPath(request.method), request.query);
    const handler = new AppResponse(request, sink, semaphore, route.describeFailure);
    try {
      route.pool.dispatch({ origin: route.origin, method: request.verb, path, headers, body: request.body }, handler);
    } catch (err) {
      handler.fail(err);
    }
  }

  /** The pool of a URL target's origin, made on first use; the least recently used goes when there are too many. */
  #urlRoute(origin: string): Route {
    const now = Date.now();
    let route = this.#urls.get(origin);
    if (route !== undefined) {
      this.#urls.delete(origin);
      this.#urls.set(origin, route);
      route.lastUsedMs = now;
      return route;
    }
    route = {
      origin,
      pool: originPool(origin, undefined),
      headers: [],
      headerNames: new Set(),
      semaphore: this.#urlSemaphore,
      describeFailure: externalFailure(origin, 'declare an HTTPEndpoint with spec.clientTLS.rootCA, or add the CA to NODE_EXTRA_CA_CERTS', false),
      lastUsedMs: now,
    };
    this.#urls.set(origin, route);
    if (this.#urls.size > this.#maxUrlPools) {
      const [oldest] = this.#urls.keys();
      if (oldest !== undefined) this.#retire(oldest);
    }
    if (this.#sweeper === undefined) {
      this.#sweeper = setInterval(() => this.#sweep(), Math.max(100, Math.floor(this.#urlIdleMs / 2)));
      this.#sweeper.unref();
    }
    return route;
  }

  /** Closes URL pools unused for the idle time (and with nothing in flight). */
  #sweep(): void {
    const idleSince = Date.now() - this.#urlIdleMs;
    for (const [origin, route] of this.#urls) {
      const stats = route.pool.stats;
      if (route.lastUsedMs <= idleSince && stats.running === 0 && stats.pending === 0) this.#retire(origin);
    }
    if (this.#urls.size === 0 && this.#sweeper !== undefined) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  /** Takes a URL pool out of use; it closes once the calls still using it have finished. */
  #retire(origin: string): void {
    const route = this.#urls.get(origin);
    if (route === undefined) return;
    this.#urls.delete(origin);
    this.#logger.debug({ origin }, 'closing the connection pool of a URL target');
    route.pool.close().catch((err: unknown) => this.#logger.debug({ origin, err: errorMessage(err) }, 'closing a URL target pool failed'));
  }

  #newSemaphore(): Semaphore | undefined {
    return this.#maxConcurrency > 0 ? new Semaphore(this.#maxConcurrency) : undefined;
  }
}

function originPool(origin: string, tls: EndpointTls | undefined): Pool {
  const https = origin.startsWith('https:');
  return newPool(origin, {
    // Long-running calls (streams, server-sent events) are bounded by the caller, never by a timer here.
    headersTimeout: 0,
    bodyTimeout: 0,
    connectTimeout: CONNECT_TIMEOUT_MS,
    pipelining: 1,
    ...(https
      ? {
          connect: {
            minVersion: 'TLSv1.2' as const,
            ...(tls?.ca === undefined ? {} : { ca: tls.ca }),
            ...(tls?.cert === undefined || tls.key === undefined ? {} : { cert: tls.cert, key: tls.key }),
            // Go's client (and so Dapr's) refuses renegotiation unless asked to allow it.
            ...(tls?.allowRenegotiation === true ? {} : { secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION }),
          },
        }
      : {}),
  });
}

/**
 * How a failed call to an external service is reported: what went wrong in words a user can act on,
 * and whether sending it again is safe (the built-in retry rules, see invoke/retry.ts). `trustHint`
 * says how to make the server's certificate trusted; `hasClientCertificate`, whether one was offered.
 */
export function externalFailure(origin: string, trustHint: string, hasClientCertificate: boolean): (error: unknown, waiting: boolean) => CourierError {
  const https = origin.startsWith('https:');
  const certificateHint = !https
    ? ''
    : hasClientCertificate
      ? ' (it may not accept the client certificate of spec.clientTLS)'
      : ' (it may require a client certificate: spec.clientTLS.certificate and privateKey of an HTTPEndpoint)';
  return (error, waiting) => {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    const message = transportErrorText(errorMessage(error));
    if (notSentCodes.has(code) && waiting) {
      return new CourierError('ERR_DIRECT_INVOKE', `cannot connect to ${origin}: ${message}`, { retry: 'safe', grpcCode: GrpcStatus.UNAVAILABLE });
    }
    if (untrustedCodes.has(code)) {
      return new CourierError('ERR_DIRECT_INVOKE', `the TLS certificate of ${origin} is not trusted: ${message}; ${trustHint}`);
    }
    if (clientCertificateAlert.test(code)) {
      const why = hasClientCertificate ? 'refused the client certificate' : 'requires a client certificate (set spec.clientTLS.certificate and privateKey of the HTTPEndpoint)';
      return new CourierError('ERR_DIRECT_INVOKE', `${origin} ${why}: ${message}`);
    }
    if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) {
      return new CourierError('ERR_DIRECT_INVOKE', `the TLS handshake with ${origin} failed: ${message}`);
    }
    if (code === 'ECONNRESET' && message.includes('before secure TLS connection was established') && waiting) {
      // Nothing was sent: the server hung up during the handshake (as Node servers do with a client certificate they refuse, in TLS 1.2).
      return new CourierError('ERR_DIRECT_INVOKE', `the TLS handshake with ${origin} failed: the server closed the connection${certificateHint}`, {
        retry: 'safe',
        grpcCode: GrpcStatus.UNAVAILABLE,
      });
    }
    if (sentNoAnswerCodes.has(code) && waiting) {
      // A new connection that never delivered a byte: with TLS 1.3 this is how a server that refuses
      // the client certificate without an alert looks (Node's servers do so).
      const fresh = (error as { socket?: { bytesRead?: number } }).socket?.bytesRead === 0;
      const detail = fresh ? `closed a new connection without answering${certificateHint}` : 'closed the connection before answering';
      return new CourierError('ERR_DIRECT_INVOKE', `${origin} ${detail}: ${message}`, { retry: 'idempotent', grpcCode: GrpcStatus.UNAVAILABLE });
    }
    return new CourierError('ERR_DIRECT_INVOKE', `error calling ${origin}: ${message}`);
  };
}

