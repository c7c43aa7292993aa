import type { ConnectionOptions, PeerCertificate } from 'node:tls';
import type { ChannelTarget, ServerTlsOptions } from '../grpc/index.js';
import { formatSpiffeId, spiffeIdFromPeerCertificate } from '../security/spiffe.js';
import type { WorkloadIdentity } from './identity.js';

/** The identity expected of the sidecar serving `appId` in `namespace`: the path of its SPIFFE ID. */
export function expectedPeerPath(appId: string, namespace: string): string {
  return `/ns/${namespace}/${appId}`;
}

/**
 * TLS for the internal server: this sidecar's current certificate, and clients must present a
 * certificate chained to the trust anchors (any SPIFFE ID: who may call what is the access-control
 * policy's business, as in Dapr).
 */
export function serverTls(identity: WorkloadIdentity): () => ServerTlsOptions {
  return () => {
    const creds = identity.current;
    return {
      key: creds.privateKeyPem,
      cert: creds.certificateChainPem,
      ca: identity.trustAnchorsPem,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
    };
  };
}

/**
 * TLS for calls to other sidecars: this sidecar's certificate as the client certificate, the trust
 * anchors, and the server must prove to be the target: its SPIFFE ID's path must be
 * `/ns/<target namespace>/<target app>` (any trust domain, as Dapr checks).
 */
export function clientTls(identity: WorkloadIdentity): (target: ChannelTarget) => ConnectionOptions {
  return (target) => {
    const creds = identity.current;
    const expected = target.identity;
    return {
      key: creds.privateKeyPem,
      cert: creds.certificateChainPem,
      ca: identity.trustAnchorsPem,
      minVersion: 'TLSv1.2',
      checkServerIdentity: (_host: string, cert: PeerCertificate) => {
        const id = spiffeIdFromPeerCertificate(cert);
        if (id !== undefined && expected !== undefined && `/ns/${id.namespace}/${id.appId}` === expected) return undefined;
        return Object.assign(
          new Error(`the sidecar at ${target.host}:${target.port} presented ${id === undefined ? 'no SPIFFE ID' : formatSpiffeId(id)}, not an identity with path ${expected ?? '(none)'}`),
          { code: 'ERR_TLS_CERT_ALTNAME_INVALID' },
        );
      },
    };
  };
}
