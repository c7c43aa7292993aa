import type { Socket } from 'node:net';
import type { PeerCertificate } from 'node:tls';
import { CourierError, errorMessage, GrpcStatus } from '../errors/index.js';
import { GrpcServer, tlsServer, type ServerCall } from '../grpc/index.js';
import { validateAppId } from '../invoke/identity.js';
import type { Logger } from '../observability/logging/index.js';
import type { KubernetesTokenValidator } from '../kubernetes/sentry/token-validator.js';
import { signCertificateRequestCodec, signCertificateResponseCodec, TokenValidator, type SignCertificateRequest } from '../proto/index.js';
import { createKeyAndCsr, formatSpiffeId, spiffeIdFromPeerCertificate, verifyJoinToken, type CertificateAuthority, type SpiffeId } from '../security/index.js';
import { isJoinToken } from '../security/tokens.js';
import { SENTRY_APP_ID, SIGN_CERTIFICATE } from './names.js';
import { clientKey, ConnectionCounter, RateLimiter, type RateLimit } from './rate-limit.js';
import { RefusalLog, type RefusalKind } from './refusal-log.js';

/**
 * How much one client may ask of the Sentry. Each client address (an IPv6 client: its /64) and each
 * identity (app id and namespace) has a token bucket; a request over either is refused with
 * RESOURCE_EXHAUSTED before any costly work.
 */
export interface SentryLimits {
  /** Certificate requests per client address. */
  readonly perAddress: RateLimit;
  /** Certificate requests per identity, counted once the requester has proved it (token or certificate). */
  readonly perIdentity: RateLimit;
  /** Addresses, and identities, each limiter remembers at most. */
  readonly maxTrackedClients: number;
  /** Open connections per client address at most; 0: no limit. */
  readonly maxConnectionsPerAddress: number;
  /** How often refusals are summarised in the log. */
  readonly refusalLogIntervalMs: number;
}

/**
 * The defaults, sized so that legitimate use never meets them: a sidecar asks once at start and then
 * once per half certificate lifetime (every 12 h with 24 h certificates), so a machine starting a
 * hundred sidecars at once stays within one address's burst, and 20 renewals a second per identity
 * serve about 860 000 instances of one app renewing every 12 h. An abuser with a valid token gets at
 * most 10 signatures a second per address (each costs the Sentry about 4 ms of CPU).
 */
export const DEFAULT_SENTRY_LIMITS: SentryLimits = {
  perAddress: { perSecond: 10, burst: 100 },
  perIdentity: { perSecond: 20, burst: 500 },
  maxTrackedClients: 10_000,
  maxConnectionsPerAddress: 64,
  refusalLogIntervalMs: 10_000,
};

export interface SentryServerOptions {
  readonly ca: CertificateAuthority;
  /** The secret join tokens are checked with; undefined only in insecure mode. */
  readonly tokenSecret: Uint8Array | undefined;
  /** Sign for anyone who asks (local development only). */
  readonly insecure: boolean;
  /** The trust domain of the app certificates issued. */
  readonly workloadTrustDomain: string;
  readonly controlPlaneTrustDomain: string;
  readonly controlPlaneNamespace: string;
  readonly workloadCertTtlMs: number;
  readonly allowedClockSkewMs: number;
  readonly limits?: Partial<SentryLimits>;
  /** Checks projected ServiceAccount tokens (validator KUBERNETES); absent: such requests are refused. */
  readonly kubernetes?: KubernetesTokenValidator | undefined;
  readonly logger: Logger;
}

/** How a requester proved the identity it asked for (and, from a Kubernetes token, which pod it is). */
type Proof = { readonly proof: 'certificate' | 'token' | 'insecure' | 'kubernetes'; readonly pod?: string };

/** How long the Sentry's own serving certificate lives; it is renewed at half that. */
const SERVING_CERT_TTL_MS = 7 * 24 * 3_600_000;
/** A sidecar sends one call at a time; a few more streams per connection are plenty. */
const MAX_STREAMS_PER_CONNECTION = 32;
/** A connection that has not finished its TLS handshake by then is dropped. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Names from a request are cut to this length in log lines. */
const MAX_LOGGED_NAME = 80;

type Refusal = { readonly kind: RefusalKind; readonly code: number; readonly message: string };

/**
 * Courier's certificate authority service: `dapr.proto.sentry.v1.CA/SignCertificate` over TLS.
 * Unlike Dapr's self-hosted Sentry, it signs only for requesters that prove the app id they ask for,
 * with a join token (`courier sentry token`) or with a current certificate of that identity (a sidecar
 * renewing), unless started with `--insecure`.
 *
 * Abuse is bounded: requests are rate limited per client address (checked before the request is even
 * read) and per proved identity (checked before the token or the CSR is looked at; spent only once the
 * requester has proved the identity, so nobody can exhaust another app's allowance by naming it), open
 * connections per address are capped, and refusals are summarised in the log instead of written one by one.
 */
export class SentryServer {
  readonly #options: SentryServerOptions;
  readonly #grpc: GrpcServer;
  readonly #refreshTls: () => void;
  readonly #perAddress: RateLimiter;
  readonly #perIdentity: RateLimiter;
  readonly #connections: ConnectionCounter;
  readonly #refusals: RefusalLog;
  readonly #addressLimited: string;
  readonly #identityLimited: string;
  readonly #maintenance: NodeJS.Timeout;
  #serving: { keyPem: string; certChainPem: string } | undefined;
  #renewTimer: NodeJS.Timeout | undefined;

  constructor(options: SentryServerOptions) {
    this.#options = options;
    const limits: SentryLimits = { ...DEFAULT_SENTRY_LIMITS, ...options.limits };
    this.#perAddress = new RateLimiter(limits.perAddress, { maxEntries: limits.maxTrackedClients });
    this.#perIdentity = new RateLimiter(limits.perIdentity, { maxEntries: limits.maxTrackedClients });
    this.#connections = new ConnectionCounter(limits.maxConnectionsPerAddress);
    this.#refusals = new RefusalLog({ logger: options.logger, intervalMs: limits.refusalLogIntervalMs });
    this.#addressLimited = `too many certificate requests from this address (at most ${limits.perAddress.burst} at once, then ${limits.perAddress.perSecond} a second); retry later`;
    this.#identityLimited = `too many certificate requests for this app id (at most ${limits.perIdentity.burst} at once, then ${limits.perIdentity.perSecond} a second); retry later`;
    this.#maintenance = setInterval(() => this.#maintain(), limits.refusalLogIntervalMs);
    this.#maintenance.unref();

    const secure = tlsServer(() => {
      const serving = this.#serving;
      if (serving === undefined) throw new Error('the Sentry has no serving certificate yet');
      // A client certificate is asked for but not required: a renewing sidecar proves its identity
      // with its current certificate; a starting one has none yet and shows a join token instead.
      return {
        key: serving.keyPem,
        cert: serving.certChainPem,
        ca: options.ca.trustAnchorsPem,
        requestCert: true,
        rejectUnauthorized: false,
        handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      };
    });
    this.#refreshTls = secure.refresh;
    this.#grpc = new GrpcServer({
      maxReceiveMessageBytes: 64 * 1024,
      maxSendMessageBytes: 64 * 1024,
      maxConcurrentStreams: MAX_STREAMS_PER_CONNECTION,
      logger: options.logger,
      createServer: (serverOptions) => {
        const server = secure.createServer(serverOptions);
        server.on('connection', this.#onConnection);
        return server;
      },
    });
    this.#grpc.register(SIGN_CERTIFICATE, (call) => this.#sign(call));
  }

  /** The Sentry's SPIFFE ID, which sidecars check. */
  get identity(): SpiffeId {
    return { trustDomain: this.#options.controlPlaneTrustDomain, namespace: this.#options.controlPlaneNamespace, appId: SENTRY_APP_ID };
  }

  async listen(host: string, port: number): Promise<number> {
    await this.#issueServingCertificate();
    const address = await this.#grpc.listen(host, port);
    return address.port;
  }

  async close(graceMs = 1000): Promise<void> {
    if (this.#renewTimer !== undefined) clearTimeout(this.#renewTimer);
    clearInterval(this.#maintenance);
    await this.#grpc.close({ graceMs });
    await this.#options.kubernetes?.close();
    this.#refusals.flush();
  }

  #maintain(): void {
    this.#refusals.flush();
    this.#perAddress.sweep();
    this.#perIdentity.sweep();
  }

  readonly #onConnection = (socket: Socket): void => {
    const client = clientKey(socket.remoteAddress ?? '');
    if (!this.#connections.open(client)) {
      // Dropped before the TLS handshake, the costliest thing an unauthenticated client can ask for.
      this.#refusals.refused(client, 'too_many_connections', `more than ${this.#connections.max} open connections from this address`);
      socket.destroy();
      return;
    }
    socket.once('close', () => this.#connections.close(client));
  };

  async #issueServingCertificate(): Promise<void> {
    const { privateKeyPem, csrPem } = await createKeyAndCsr(this.identity);
    const signed = await this.#options.ca.signWorkload(csrPem, this.identity, {
      ttlMs: SERVING_CERT_TTL_MS,
      clockSkewMs: this.#options.allowedClockSkewMs,
      dnsNames: ['localhost', 'dapr-sentry'],
    });
    this.#serving = { keyPem: privateKeyPem, certChainPem: signed.certificateChainPem };
    const renewInMs = Math.max(60_000, (signed.notAfter.getTime() - Date.now()) / 2);
    this.#renewTimer = setTimeout(() => {
      this.#issueServingCertificate().then(
        () => this.#refreshTls(),
        (err: unknown) => this.#options.logger.error({ err: errorMessage(err) }, 'renewing the Sentry serving certificate failed'),
      );
    }, renewInMs);
    this.#renewTimer.unref();
  }

  #sign(call: ServerCall): void {
    const client = clientKey(call.peer.address);
    if (!this.#perAddress.take(client)) {
      // Answered before a byte of the request is read.
      this.#refusals.refused(client, 'rate_limited_address', this.#addressLimited);
      call.end({ code: GrpcStatus.RESOURCE_EXHAUSTED, message: this.#addressLimited });
      return;
    }
    const chunks: Buffer[] = [];
    call.setReader({
      message: (m) => chunks.push(Buffer.from(m)),
      end: () => {
        this.#answer(call, client, chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)).catch((err: unknown) =>
          call.end({ code: GrpcStatus.INTERNAL, message: `signing failed: ${errorMessage(err)}` }),
        );
      },
      error: () => {},
    });
  }

  async #answer(call: ServerCall, client: string, bytes: Buffer): Promise<void> {
    let request: SignCertificateRequest;
    try {
      request = signCertificateRequestCodec.decode(bytes);
    } catch (err) {
      this.#refuse(call, client, { kind: 'malformed_request', code: GrpcStatus.INVALID_ARGUMENT, message: `malformed request: ${errorMessage(err)}` });
      return;
    }
    const appId = request.id ?? '';
    const namespace = request.namespace ?? '';
    const invalid = this.#checkFields(request, appId, namespace);
    if (invalid !== undefined) {
      this.#refuse(call, client, invalid, appId, namespace);
      return;
    }
    // Checked before the proof (cheap refusal), spent after it (nobody drains another app's allowance).
    const identityKey = `${namespace}/${appId}`;
    if (!this.#perIdentity.allows(identityKey)) {
      this.#refuse(call, client, { kind: 'rate_limited_identity', code: GrpcStatus.RESOURCE_EXHAUSTED, message: this.#identityLimited }, appId, namespace);
      return;
    }
    const proved = await this.#authenticate(request, appId, namespace, call.peer.certificate);
    if ('code' in proved) {
      this.#refuse(call, client, proved, appId, namespace);
      return;
    }
    if (!this.#perIdentity.take(identityKey)) {
      this.#refuse(call, client, { kind: 'rate_limited_identity', code: GrpcStatus.RESOURCE_EXHAUSTED, message: this.#identityLimited }, appId, namespace);
      return;
    }
    const id: SpiffeId = { trustDomain: this.#options.workloadTrustDomain, namespace, appId };
    let signed;
    try {
      signed = await this.#options.ca.signWorkload(request.certificateSigningRequest ?? new Uint8Array(), id, {
        ttlMs: this.#options.workloadCertTtlMs,
        clockSkewMs: this.#options.allowedClockSkewMs,
      });
    } catch (err) {
      const message = err instanceof CourierError ? err.message : `invalid certificate signing request: ${errorMessage(err)}`;
      this.#refuse(call, client, { kind: 'invalid_csr', code: GrpcStatus.INVALID_ARGUMENT, message }, appId, namespace);
      return;
    }
    this.#options.logger.info(
      { spiffe_id: formatSpiffeId(id), not_after: signed.notAfter.toISOString(), peer: client, proof: proved.proof, ...(proved.pod === undefined ? {} : { pod: proved.pod }) },
      'issued a workload certificate',
    );
    call.sendMessage(
      signCertificateResponseCodec.encode({
        workloadCertificate: Buffer.from(signed.certificateChainPem),
        trustChainCertificates: [Buffer.from(this.#options.ca.trustAnchorsPem)],
        validUntil: { seconds: Math.floor(signed.notAfter.getTime() / 1000), nanos: (signed.notAfter.getTime() % 1000) * 1e6 },
      }),
    );
    call.end({ code: GrpcStatus.OK });
  }

  #refuse(call: ServerCall, client: string, refusal: Refusal, appId?: string, namespace?: string): void {
    this.#refusals.refused(client, refusal.kind, refusal.message, appId?.slice(0, MAX_LOGGED_NAME), namespace?.slice(0, MAX_LOGGED_NAME));
    call.end({ code: refusal.code, message: refusal.message });
  }

  /** Dapr's request rules: an app id, a namespace, this Sentry's trust domain if any, a CSR. */
  #checkFields(request: SignCertificateRequest, appId: string, namespace: string): Refusal | undefined {
    const deny = (message: string): Refusal => ({ kind: 'invalid_request', code: GrpcStatus.PERMISSION_DENIED, message });
    if (appId === '') return deny('the request names no app id');
    // Checked first so that a huge app id is not echoed back or logged.
    if (appId.length > 64) return deny(`the app id may be at most 64 characters, not ${appId.length}`);
    const badId = validateAppId(appId);
    if (badId !== undefined) return deny(badId);
    if (namespace === '') return deny('the request names no namespace');
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace)) {
      return deny(namespace.length > 63 ? 'the namespace is longer than 63 characters' : `the namespace "${namespace}" is not a valid namespace name`);
    }
    const td = request.trustDomain ?? '';
    if (td !== '' && td !== this.#options.workloadTrustDomain) {
      return deny(`this Sentry issues certificates in trust domain "${this.#options.workloadTrustDomain}", not "${td.slice(0, MAX_LOGGED_NAME)}"`);
    }
    if ((request.certificateSigningRequest?.length ?? 0) === 0) {
      return { kind: 'invalid_request', code: GrpcStatus.INVALID_ARGUMENT, message: 'the request carries no certificate signing request' };
    }
    return undefined;
  }

  /**
   * Courier's requirement that the requester proves the identity it asks for: a current certificate of
   * exactly that identity (verified against the trust anchors during the handshake), a projected
   * Kubernetes ServiceAccount token (validator KUBERNETES, as daprd sends it) that the Kubernetes
   * validator accepts, or a join token covering it. Returns how it was proved, or the refusal.
   */
  async #authenticate(request: SignCertificateRequest, appId: string, namespace: string, certificate: PeerCertificate | undefined): Promise<Proof | Refusal> {
    const deny = (kind: RefusalKind, message: string): Refusal => ({ kind, code: GrpcStatus.PERMISSION_DENIED, message });
    const token = request.token ?? '';
    const presented = certificate === undefined ? undefined : this.#certificateIdentity(certificate);
    const wanted: SpiffeId = { trustDomain: this.#options.workloadTrustDomain, namespace, appId };
    if (presented !== undefined && formatSpiffeId(presented) === formatSpiffeId(wanted)) return { proof: 'certificate' };
    if (token === '') {
      if (this.#options.insecure) return { proof: 'insecure' };
      const shown = presented === undefined ? '' : `the client certificate is for ${formatSpiffeId(presented)}, not ${formatSpiffeId(wanted)}; `;
      return deny('no_token', `${shown}a join token is required for app "${appId}" (create one with: courier sentry token --app-id ${appId})`);
    }
    // daprd marks a projected token KUBERNETES; one read from DAPR_SENTRY_TOKEN_FILE comes marked JWKS, as
    // join tokens do, but only join tokens start with their version prefix.
    if (request.tokenValidator === TokenValidator.KUBERNETES || (this.#options.kubernetes !== undefined && !isJoinToken(token))) {
      const kubernetes = this.#options.kubernetes;
      if (kubernetes === undefined) {
        return deny('kubernetes_token_refused', 'this Sentry does not accept Kubernetes ServiceAccount tokens (start it with --kubernetes-jwks-file or --kubernetes-jwks-url)');
      }
      const verdict = await kubernetes.validate(token, { appId, namespace });
      if (verdict.ok) return { proof: 'kubernetes', pod: `${verdict.identity.namespace}/${verdict.identity.pod}` };
      const message = `the Kubernetes ServiceAccount token was refused (${verdict.failure}): ${verdict.reason}`;
      // The key set or the pod could not be fetched: the token may well be good, so the sidecar should try again.
      const retryable = verdict.failure === 'key_set_unavailable' || verdict.failure === 'api_unavailable';
      return retryable ? { kind: 'kubernetes_token_refused', code: GrpcStatus.UNAVAILABLE, message } : deny('kubernetes_token_refused', message);
    }
    const secret = this.#options.tokenSecret;
    if (secret === undefined) return deny('token_refused', 'this Sentry has no token secret');
    const verdict = verifyJoinToken(secret, token, { appId, namespace }, Date.now());
    return verdict.ok ? { proof: 'token' } : deny('token_refused', `the join token was refused: ${verdict.reason}`);
  }

  /** The SPIFFE ID of a verified client certificate that is valid now; undefined otherwise. */
  #certificateIdentity(certificate: PeerCertificate): SpiffeId | undefined {
    const now = Date.now();
    // Checked at the handshake, but a connection can outlive its certificate.
    if (!(Date.parse(certificate.valid_from) <= now && now < Date.parse(certificate.valid_to))) return undefined;
    return spiffeIdFromPeerCertificate(certificate);
  }
}
