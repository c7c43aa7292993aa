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
}

export interface SignedCertificate {
  readonly certificateChainPem: string;
  readonly trustAnchorsPem: string;
  readonly validUntil: Date;
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

  async sign(request: SignRequest): Promise<SignedCertificate> {
    const bytes = signCertificateRequestCodec.encode({
      id: request.appId,
      namespace: request.namespace,
      certificateSigningRequest: Buffer.from(request.csrPem),
      token: request.token ?? '',
      tokenValidator: request.token === undefined ? TokenValidator.UNKNOWN : TokenValidator.JWKS,
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
