// SPIFFE identities read from certificates with a full X.509 parser (tests and tooling). Kept apart
// from spiffe.ts so that a sidecar without mTLS never loads the X.509 library.
import { decodePem } from './pem.js';
import { spiffeIdFromUris, type SpiffeId } from './spiffe.js';
import { x509 } from './x509.js';

/**
 * The identity in the first certificate of a PEM text (same rule: exactly one `spiffe://` URI SAN),
 * read with a real X.509 parser. For tests and tooling; TLS code uses {@link spiffeIdFromPeerCertificate}.
 */
export function spiffeIdOfPem(pem: string): SpiffeId | undefined {
  const block = decodePem(pem).find((b) => b.label === 'CERTIFICATE');
  if (block === undefined) return undefined;
  return spiffeIdOfCertificate(new x509.X509Certificate(block.der));
}

/** The identity of a parsed certificate: its URI SANs, over all its SAN extensions, by the same rule. */
export function spiffeIdOfCertificate(cert: x509.X509Certificate): SpiffeId | undefined {
  const uris = cert
    .getExtensions(x509.SubjectAlternativeNameExtension)
    .flatMap((ext) => ext.names.items)
    .filter((name) => name.type === 'url')
    .map((name) => name.value);
  return spiffeIdFromUris(uris);
}

