import type { PeerCertificate } from 'node:tls';
import { CourierError, errorMessage, GrpcStatus, grpcStatusName } from '../errors/index.js';
import { ChannelPool, tlsClient, type CallResult } from '../grpc/index.js';
import { parseAddress } from '../api/internal/transport.js';
import { signCertificateRequestCodec, signCertificateResponseCodec, TokenValidator } from '../proto/index.js';
import { formatSpiffeId, spiffeIdFromPeerCertificate, type SpiffeId } from '../security/index.js';
import { SENTRY_APP_ID, SIGN_CERTIFICATE } from './names.js';

export interface SignRequest {
  readonly appId: string;
  readonly namespace: string;
  readonly csrPem: string;
  readonly token: string | undefined;
  /** What the token is: a Courier join token (the default) or a projected Kubernetes ServiceAccount token. */
  readonly tokenKind?: 'join' | 'kubernetes';
}

export interface SignedCertificate {
  readonly certificateChainPem: string;
  readonly trustAnchorsPem: string;
  readonly validUntil: Date;
}

/** A certificate of this sidecar's identity and its key, shown to the Sentry when renewing. */
export interface PresentedCredentials {
  readonly privateKeyPem: string;
  readonly certificateChainPem: string;
  readonly notAfter: Date;
}

/** Per-attempt timeout, as Dapr's Sentry client. */
const ATTEMPT_TIMEOUT_MS = 3000;

/**
 * Asks a Sentry to sign a CSR, over TLS: the Sentry must present a certificate chained to the trust
 * anchors whose SPIFFE ID is `spiffe://<controlPlaneTrustDomain>/ns/<controlPlaneNamespace>/dapr-sentry`.
 */
export class SentryClient {
  readonly #address: { host: string; port: number };
  readonly #expected: SpiffeId;
  readonly #trustAnchors: () => string;
  readonly #pool: ChannelPool;
  #credentials: (() => PresentedCredentials | undefined) | undefined;
  /** The certificate shown on the connection opened last (undefined: none). */
  #presented: string | undefined;

  constructor(address: string, controlPlane: { trustDomain: string; namespace: string }, trustAnchors: () => string) {
    this.#address = parseAddress(address);
    this.#expected = { trustDomain: controlPlane.trustDomain, namespace: controlPlane.namespace, appId: SENTRY_APP_ID };
    this.#trustAnchors = trustAnchors;
    const expected = formatSpiffeId(this.#expected);
    this.#pool = new ChannelPool({
      connectTimeoutMs: ATTEMPT_TIMEOUT_MS,
      maxReceiveMessageBytes: 256 * 1024,
      // Short-lived: one call at renewal time, then nothing for hours.
      idleTimeoutMs: 5_000,
      ...tlsClient(() => ({
        ...this.#clientCertificate(),
        ca: this.#trustAnchors(),
        servername: 'localhost',
        checkServerIdentity: (host: string, cert: PeerCertificate) => {
          const id = spiffeIdFromPeerCertificate(cert);
          if (id !== undefined && formatSpiffeId(id) === expected) return undefined;
          return Object.assign(new Error(`the Sentry at ${host} presented ${id === undefined ? 'no SPIFFE ID' : formatSpiffeId(id)}, not ${expected}`), {
            code: 'ERR_TLS_CERT_ALTNAME_INVALID',
          });
        },
      })),
    });
  }

  /**
   * Shows `credentials()` (while they are valid) as the TLS client certificate to the Sentry, which
   * then signs for that identity without a join token: how a running sidecar renews once its token
   * has expired. A Sentry that does not ask for client certificates (Dapr's) never sees it.
   */
  presentCertificate(credentials: () => PresentedCredentials | undefined): void {
    this.#credentials = credentials;
  }

  #clientCertificate(): { key: string; cert: string } | Record<string, never> {
    const current = this.#credentials?.();
    if (current === undefined || current.notAfter.getTime() <= Date.now()) {
      this.#presented = undefined;
      return {};
    }
    this.#presented = current.certificateChainPem;
    return { key: current.privateKeyPem, cert: current.certificateChainPem };
  }

  async sign(request: SignRequest): Promise<SignedCertificate> {
    const current = this.#credentials?.();
    const wanted = current !== undefined && current.notAfter.getTime() > Date.now() ? current.certificateChainPem : undefined;
    // A connection kept from the previous request may show an older certificate, or none.
    if (wanted !== this.#presented) await this.#pool.evict(this.#address);
    const bytes = signCertificateRequestCodec.encode({
      id: request.appId,
      namespace: request.namespace,
      certificateSigningRequest: Buffer.from(request.csrPem),
      token: request.token ?? '',
      tokenValidator: request.token === undefined ? TokenValidator.UNKNOWN : request.tokenKind === 'kubernetes' ? TokenValidator.KUBERNETES : TokenValidator.JWKS,
    });
    const { result, reply } = await new Promise<{ result: CallResult; reply: Buffer | undefined }>((resolve) => {
      const call = this.#pool.get(this.#address).call(SIGN_CERTIFICATE, {}, { deadline: Date.now() + ATTEMPT_TIMEOUT_MS });
      let reply: Buffer | undefined;
      call.setReader({ headers: () => {}, message: (m) => (reply = Buffer.from(m)), end: (r) => resolve({ result: r, reply }) });
      call.sendMessage(bytes);
      call.end();
    });
    if (result.code !== GrpcStatus.OK || reply === undefined) {
      throw new CourierError(
        'ERR_INTERNAL',
        `the Sentry at ${this.#address.host}:${this.#address.port} did not sign: ${result.message === '' ? grpcStatusName(result.code) : result.message}`,
        { grpcCode: result.code === GrpcStatus.OK ? GrpcStatus.INTERNAL : (result.code as GrpcStatus) },
      );
    }
    let decoded;
    try {
      decoded = signCertificateResponseCodec.decode(reply);
    } catch (err) {
      throw new CourierError('ERR_INTERNAL', `the Sentry sent a malformed answer: ${errorMessage(err)}`);
    }
    const seconds = decoded.validUntil?.seconds ?? 0;
    return {
      certificateChainPem: Buffer.from(decoded.workloadCertificate ?? []).toString('utf8'),
      trustAnchorsPem: (decoded.trustChainCertificates ?? []).map((c) => Buffer.from(c).toString('utf8')).join('\n'),
      validUntil: new Date(seconds * 1000 + Math.floor((decoded.validUntil?.nanos ?? 0) / 1e6)),
    };
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}
