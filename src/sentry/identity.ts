import { setTimeout as sleep } from 'node:timers/promises';
import { CourierError, errorMessage } from '../errors/index.js';
import type { Logger } from '../observability/logging/index.js';
import { certificateInfo, createKeyAndCsr, formatSpiffeId, type SpiffeId } from '../security/index.js';
import { isJoinToken } from '../security/tokens.js';
import type { SentryClient } from './client.js';
import { kubernetesTokenFile, readKubernetesToken } from './kubernetes-token.js';
import type { TrustAnchors } from './trust-anchors.js';

/** This sidecar's current key and certificate chain. */
export interface Credentials {
  readonly privateKeyPem: string;
  readonly certificateChainPem: string;
  readonly spiffeId: SpiffeId;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** When this sidecar received the certificate. */
  readonly obtainedAt: Date;
}

export interface WorkloadIdentityOptions {
  readonly appId: string;
  readonly namespace: string;
  readonly sentry: SentryClient;
  readonly trustAnchors: TrustAnchors;
  /** The join token proving the app id to the Sentry, if any. */
  readonly token: string | undefined;
  /**
   * Without a join token: the projected ServiceAccount token file, sent when it exists (default: see
   * {@link kubernetesTokenFile}).
   */
  readonly kubernetesTokenFile?: { readonly file: string; readonly explicit: boolean };
  readonly logger: Logger;
  /** Pause between failed renewals (Dapr: 10 s). */
  readonly retryIntervalMs?: number;
  /** Attempts for the first certificate before the sidecar gives up starting. */
  readonly startAttempts?: number;
}

/**
 * A sidecar's identity, kept fresh: at start a new Ed25519 key and CSR are signed by the Sentry (the
 * join token, or in a Kubernetes pod its projected ServiceAccount token, proves the app id); at half the certificate's lifetime a new key and certificate replace
 * them (the current certificate proves it, shown as the TLS client certificate, with the token too); a failed renewal is
 * retried every 10 s while the current certificate keeps serving until it expires. Listeners (the
 * internal server, the transport) are told of every change so new connections use the new
 * credentials; connections already established are not disturbed.
 */
export class WorkloadIdentity {
  readonly #options: WorkloadIdentityOptions;
  readonly #listeners = new Set<() => void>();
  #current: Credentials | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: WorkloadIdentityOptions) {
    this.#options = options;
    options.trustAnchors.onChange(() => this.#notify());
    // Renewals prove the identity with the current certificate, so they outlive the join token.
    options.sentry.presentCertificate(() => this.#current);
  }

  get current(): Credentials {
    const current = this.#current;
    if (current === undefined) throw new CourierError('ERR_INTERNAL', 'the workload identity has not been obtained yet');
    return current;
  }

  get trustAnchorsPem(): string {
    return this.#options.trustAnchors.pem;
  }

  onChange(listener: () => void): void {
    this.#listeners.add(listener);
  }

  /** Obtains the first certificate, retrying a few times (the Sentry may still be starting). */
  async start(): Promise<Credentials> {
    const attempts = this.#options.startAttempts ?? 5;
    let lastError: unknown;
    for (let attempt = 1; attempt <= attempts && !this.#closed; attempt++) {
      try {
        this.#current = await this.#fetch();
        this.#scheduleRenewal();
        return this.#current;
      } catch (err) {
        lastError = err;
        this.#options.logger.warn({ attempt, err: errorMessage(err) }, 'could not get a certificate from the Sentry');
        if (attempt < attempts) await sleep(Math.min(attempt * 1000, 3000));
      }
    }
    throw new CourierError('ERR_INVALID_CONFIG', `mTLS: could not get a certificate from the Sentry: ${errorMessage(lastError)}`);
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#options.trustAnchors.close();
  }

  async #fetch(): Promise<Credentials> {
    const { appId, namespace } = this.#options;
    const { privateKeyPem, csrPem } = await createKeyAndCsr();
    // A join token wins; else a pod's projected token, read now (not at start) as the kubelet rotates it.
    const given = this.#options.token;
    const projected = given !== undefined && isJoinToken(given) ? undefined : readKubernetesToken(this.#options.kubernetesTokenFile ?? kubernetesTokenFile());
    const signed = await this.#options.sentry.sign(
      projected === undefined ? { appId, namespace, csrPem, token: given } : { appId, namespace, csrPem, token: projected, tokenKind: 'kubernetes' },
    );
    const info = certificateInfo(signed.certificateChainPem);
    if (info.spiffeId === undefined || info.spiffeId.appId !== appId || info.spiffeId.namespace !== namespace) {
      throw new CourierError(
        'ERR_INTERNAL',
        `the Sentry issued ${info.spiffeId === undefined ? 'no SPIFFE ID' : formatSpiffeId(info.spiffeId)}, not an identity for ${appId} in ${namespace}`,
      );
    }
    this.#options.logger.info({ spiffe_id: formatSpiffeId(info.spiffeId), not_after: info.notAfter.toISOString() }, 'workload certificate obtained');
    return {
      privateKeyPem,
      certificateChainPem: signed.certificateChainPem,
      spiffeId: info.spiffeId,
      notBefore: info.notBefore,
      notAfter: info.notAfter,
      obtainedAt: new Date(),
    };
  }

  #scheduleRenewal(): void {
    const current = this.#current;
    if (current === undefined || this.#closed) return;
    // Halfway through the time left when it was obtained. (Measuring from NotBefore, as Dapr does, would
    // count the clock-skew allowance NotBefore is backdated by, and renew short-lived certificates late.)
    const renewAt = current.obtainedAt.getTime() + (current.notAfter.getTime() - current.obtainedAt.getTime()) / 2;
    this.#schedule(Math.max(0, renewAt - Date.now()));
  }

  #schedule(delayMs: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#renew(), delayMs);
    this.#timer.unref();
  }

  async #renew(): Promise<void> {
    if (this.#closed) return;
    try {
      this.#current = await this.#fetch();
      this.#notify();
      this.#scheduleRenewal();
    } catch (err) {
      const expired = this.#current !== undefined && this.#current.notAfter.getTime() <= Date.now();
      this.#options.logger.error(
        { err: errorMessage(err), retry_in_ms: this.#options.retryIntervalMs ?? 10_000, expired },
        expired ? 'renewing the workload certificate failed and it has expired' : 'renewing the workload certificate failed; the current one keeps serving',
      );
      this.#schedule(this.#options.retryIntervalMs ?? 10_000);
    }
  }

  #notify(): void {
    for (const listener of this.#listeners) listener();
  }
}
