import { CourierError } from '../../errors/index.js';
import { validateAppId } from '../../invoke/identity.js';

/** The names of the control plane's objects, in one place so that the injector and the docs agree with the manifests. */
export const DEFAULT_NAMESPACE = 'courier-system';
export const SENTRY_NAME = 'courier-sentry';
export const INJECTOR_NAME = 'courier-sidecar-injector';
/** The MutatingWebhookConfiguration follows Dapr's `<product>-sidecar-injector`, so it never replaces Dapr's own. */
export const WEBHOOK_CONFIGURATION_NAME = INJECTOR_NAME;
/** A webhook's name must be fully qualified (at least three labels). */
export const WEBHOOK_NAME = 'sidecar-injector.courier.dev';
/** Holds the trust anchors (ca.crt) that sidecars verify certificates against; public. */
export const TRUST_BUNDLE_NAME = 'courier-trust-bundle';
/** Holds the Sentry's CA files (ca.crt, issuer.crt, issuer.key, token.key); created by the operator, never generated. */
export const SENTRY_CREDENTIALS_SECRET = 'courier-sentry-credentials';
/** The injector's serving certificate (a kubernetes.io/tls Secret: tls.crt, tls.key). */
export const INJECTOR_TLS_SECRET = 'courier-sidecar-injector-tls';
export const INJECTOR_PORT = 4000;

/** Dapr's sidecar ports in Kubernetes (the injector passes them to every sidecar). */
export const SIDECAR_PORTS = { http: 3500, grpc: 50001, internal: 50002, metrics: 9090 } as const;

const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Namespaces (and Service names) are RFC 1123 labels: lowercase letters, digits and '-', at most 63 characters. */
export function checkNamespace(namespace: string, where: string): string {
  if (namespace.length > 63 || !dns1123Label.test(namespace)) {
    throw new CourierError(
      'ERR_INVALID_CONFIG',
      `${where}: "${namespace}" is not a valid namespace name: an RFC 1123 label (lowercase letters, digits and "-", starting and ending with a letter or digit, at most 63 characters)`,
    );
  }
  return namespace;
}

/**
 * An app id that can have a discovery Service: a valid Courier app id whose `<app-id>-dapr` is an
 * RFC 1123 label, since the name resolver looks up `<app-id>-dapr.<namespace>.svc.<clusterDomain>`.
 */
export function checkKubernetesAppId(appId: string, where: string): string {
  const invalid = validateAppId(appId);
  if (invalid !== undefined) throw new CourierError('ERR_INVALID_CONFIG', `${where}: ${invalid}`);
  const service = discoveryServiceName(appId);
  if (service.length > 63 || !dns1123Label.test(service)) {
    throw new CourierError(
      'ERR_INVALID_CONFIG',
      `${where}: the app id "${appId}" cannot name a Kubernetes Service: "${service}" must be an RFC 1123 label ` +
        '(lowercase letters, digits and "-", at most 63 characters, so an app id of at most 58)',
    );
  }
  return appId;
}

/** The headless Service the Kubernetes name resolver looks up for an app. */
export function discoveryServiceName(appId: string): string {
  return `${appId}-dapr`;
}
