/** The gRPC method of Dapr's certificate authority. */
export const SIGN_CERTIFICATE = '/dapr.proto.sentry.v1.CA/SignCertificate';

/**
 * The Sentry's own identity, as Dapr names it: `spiffe://<controlPlaneTrustDomain>/ns/<controlPlaneNamespace>/dapr-sentry`.
 * Sidecars check the Sentry's certificate against it, so Courier sidecars can also use Dapr's Sentry.
 */
export const SENTRY_APP_ID = 'dapr-sentry';

/** Dapr's defaults for the control plane (`--control-plane-trust-domain`, `--control-plane-namespace`). */
export const DEFAULT_CONTROL_PLANE_TRUST_DOMAIN = 'localhost';
export const DEFAULT_CONTROL_PLANE_NAMESPACE = 'default';

/** The trust domain of app certificates in self-hosted mode (Dapr's `public`). */
export const DEFAULT_WORKLOAD_TRUST_DOMAIN = 'public';

/** Dapr's Sentry defaults. */
export const DEFAULT_WORKLOAD_CERT_TTL_MS = 24 * 3_600_000;
export const DEFAULT_ALLOWED_CLOCK_SKEW_MS = 15 * 60_000;
export const DEFAULT_SENTRY_PORT = 50001;
