import { CourierError, errorMessage, GrpcStatus } from '../errors/index.js';
import { GrpcServer, tlsServer, type ServerCall } from '../grpc/index.js';
import { validateAppId } from '../invoke/identity.js';
import type { Logger } from '../observability/logging/index.js';
import { signCertificateRequestCodec, signCertificateResponseCodec, type SignCertificateRequest } from '../proto/index.js';
import { createKeyAndCsr, formatSpiffeId, verifyJoinToken, type CertificateAuthority, type SpiffeId } from '../security/index.js';
import { SENTRY_APP_ID, SIGN_CERTIFICATE } from './names.js';

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
  readonly logger: Logger;
}

/** How long the Sentry's own serving certificate lives; it is renewed at half that. */
const SERVING_CERT_TTL_MS = 7 * 24 * 3_600_000;

/**
 * Courier's certificate authority service: `dapr.proto.sentry.v1.CA/SignCertificate` over TLS.
 * Unlike Dapr's self-hosted Sentry, it signs only for requesters that prove the app id they ask for
 * with a join token (`courier sentry token`), unless started with `--insecure`.
 */
export class SentryServer {
  readonly #options: SentryServerOptions;
  readonly #grpc: GrpcServer;
  readonly #refreshTls: () => void;
  #serving: { keyPem: string; certChainPem: string } | undefined;
  #renewTimer: NodeJS.Timeout | undefined;

  constructor(options: SentryServerOptions) {
    this.#options = options;
    const secure = tlsServer(() => {
      const serving = this.#serving;
      if (serving === undefined) throw new Error('the Sentry has no serving certificate yet');
      return { key: serving.keyPem, cert: serving.certChainPem };
    });
    this.#refreshTls = secure.refresh;
    this.#grpc = new GrpcServer({
      maxReceiveMessageBytes: 64 * 1024,
      maxSendMessageBytes: 64 * 1024,
      logger: options.logger,
      createServer: secure.createServer,
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
    await this.#grpc.close({ graceMs });
  }

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
    const chunks: Buffer[] = [];
    call.setReader({
      message: (m) => chunks.push(Buffer.from(m)),
      end: () => {
        this.#answer(call, Buffer.concat(chunks)).catch((err: unknown) =>
          call.end({ code: GrpcStatus.INTERNAL, message: `signing failed: ${errorMessage(err)}` }),
        );
      },
      error: () => {},
    });
  }

  async #answer(call: ServerCall, bytes: Buffer): Promise<void> {
    const log = this.#options.logger;
    let request: SignCertificateRequest;
    try {
      request = signCertificateRequestCodec.decode(bytes);
    } catch (err) {
      call.end({ code: GrpcStatus.INVALID_ARGUMENT, message: `malformed request: ${errorMessage(err)}` });
      return;
    }
    const refusal = this.#validate(request);
    if (refusal !== undefined) {
      log.warn({ app_id: request.id, namespace: request.namespace, peer: call.peer.address, reason: refusal.message }, 'refused a certificate request');
      call.end(refusal);
      return;
    }
    const id: SpiffeId = { trustDomain: this.#options.workloadTrustDomain, namespace: request.namespace ?? '', appId: request.id ?? '' };
    let signed;
    try {
      signed = await this.#options.ca.signWorkload(request.certificateSigningRequest ?? new Uint8Array(), id, {
        ttlMs: this.#options.workloadCertTtlMs,
        clockSkewMs: this.#options.allowedClockSkewMs,
      });
    } catch (err) {
      const message = err instanceof CourierError ? err.message : `invalid certificate signing request: ${errorMessage(err)}`;
      log.warn({ app_id: id.appId, namespace: id.namespace, reason: message }, 'refused a certificate request');
      call.end({ code: GrpcStatus.INVALID_ARGUMENT, message });
      return;
    }
    log.info({ spiffe_id: formatSpiffeId(id), not_after: signed.notAfter.toISOString() }, 'issued a workload certificate');
    call.sendMessage(
      signCertificateResponseCodec.encode({
        workloadCertificate: Buffer.from(signed.certificateChainPem),
        trustChainCertificates: [Buffer.from(this.#options.ca.trustAnchorsPem)],
        validUntil: { seconds: Math.floor(signed.notAfter.getTime() / 1000), nanos: (signed.notAfter.getTime() % 1000) * 1e6 },
      }),
    );
    call.end({ code: GrpcStatus.OK });
  }

  /** Dapr's request rules, then Courier's requirement that the requester proves its app id. */
  #validate(request: SignCertificateRequest): { code: number; message: string } | undefined {
    const appId = request.id ?? '';
    const namespace = request.namespace ?? '';
    const deny = (message: string): { code: number; message: string } => ({ code: GrpcStatus.PERMISSION_DENIED, message });
    if (appId === '') return deny('the request names no app id');
    const badId = validateAppId(appId);
    if (badId !== undefined) return deny(badId);
    if (namespace === '') return deny('the request names no namespace');
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace)) return deny(`the namespace "${namespace}" is not a valid namespace name`);
    const td = request.trustDomain ?? '';
    if (td !== '' && td !== this.#options.workloadTrustDomain) {
      return deny(`this Sentry issues certificates in trust domain "${this.#options.workloadTrustDomain}", not "${td}"`);
    }
    if ((request.certificateSigningRequest?.length ?? 0) === 0) {
      return { code: GrpcStatus.INVALID_ARGUMENT, message: 'the request carries no certificate signing request' };
    }
    const token = request.token ?? '';
    if (token === '') {
      if (this.#options.insecure) return undefined;
      return deny(`a join token is required for app "${appId}" (create one with: courier sentry token --app-id ${appId})`);
    }
    const secret = this.#options.tokenSecret;
    if (secret === undefined) return deny('this Sentry has no token secret');
    const verdict = verifyJoinToken(secret, token, { appId, namespace }, Date.now());
    return verdict.ok ? undefined : deny(`the join token was refused: ${verdict.reason}`);
  }
}
