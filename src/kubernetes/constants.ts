// Constants shared by Courier's Kubernetes pieces: the sidecar injector writes them into Pods, the Sentry's
// Kubernetes validator checks what the sidecar presents against them.

/**
 * The audience of the projected ServiceAccount token the injector mounts into every sidecar. The Sentry
 * accepts only tokens minted for this audience, so a token stolen from the app (whose default token has the
 * API server's audience) cannot be used to get a certificate.
 */
export const SENTRY_TOKEN_AUDIENCE = 'courier-sentry';

/** The directory of that token in the sidecar container (Dapr's path, so tooling written for Dapr finds it). */
export const SENTRY_TOKEN_DIR = '/var/run/secrets/dapr.io/sentrytoken';

/** The token file itself, given to the sidecar as `DAPR_SENTRY_TOKEN_FILE`. */
export const SENTRY_TOKEN_FILE = `${SENTRY_TOKEN_DIR}/token`;

/** In a pod: the API server, its CA and the pod's own ServiceAccount token (mounted by the kubelet). */
export const IN_CLUSTER_API_SERVER = 'https://kubernetes.default.svc';
export const IN_CLUSTER_SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
export const IN_CLUSTER_CA_FILE = `${IN_CLUSTER_SERVICE_ACCOUNT_DIR}/ca.crt`;
export const IN_CLUSTER_TOKEN_FILE = `${IN_CLUSTER_SERVICE_ACCOUNT_DIR}/token`;
