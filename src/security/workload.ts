import { webcrypto } from 'node:crypto';
import { CourierError } from '../errors/index.js';
import { decodePem, encodePem } from './pem.js';
import { formatSpiffeId, type SpiffeId } from './spiffe.js';
import { spiffeIdOfCertificate } from './spiffe-x509.js';
import { ED25519, generateEd25519, x509 } from './x509.js';

/**
 * A fresh Ed25519 key and a PKCS#10 request signed with it, both PEM (`PRIVATE KEY`, PKCS#8, and
 * `CERTIFICATE REQUEST`): what a sidecar sends to the Sentry. The key is new for every request, so
 * a renewal never reuses a key that may have leaked. With `id`, the request also carries the SPIFFE
 * ID as a URI SAN; a Sentry ignores it (it issues the identity it decided on), but it makes the
 * request self-describing for other CAs and for debugging. The subject is left empty.
 */
export async function createKeyAndCsr(id?: SpiffeId): Promise<{ privateKeyPem: string; csrPem: string }> {
  const keys = await generateEd25519(true);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: ED25519,
    extensions: id === undefined ? [] : [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: formatSpiffeId(id) }])],
  });
  return {
    privateKeyPem: encodePem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)),
    csrPem: encodePem('CERTIFICATE REQUEST', csr.rawData),
  };
}

export interface CertificateInfo {
  notBefore: Date;
  notAfter: Date;
  /** The one `spiffe://` URI SAN, parsed; `undefined` when there is none, several, or it is malformed. */
  spiffeId: SpiffeId | undefined;
  /** BasicConstraints says CA. */
  isCa: boolean;
  /** Hexadecimal, lower case, without a sign octet. */
  serial: string;
}

/**
 * What a sidecar needs to know about the first certificate of a PEM chain: its validity (to plan
 * the renewal), its identity (to check the Sentry issued the one asked for), whether it is a CA
 * (a workload certificate must not be) and its serial (for logs).
 * Throws `ERR_INVALID_CONFIG` when the text holds no readable certificate.
 */
export function certificateInfo(pem: string): CertificateInfo {
  const block = decodePem(pem).find((b) => b.label === 'CERTIFICATE');
  if (block === undefined) throw new CourierError('ERR_INVALID_CONFIG', 'the PEM text holds no certificate');
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(block.der);
  } catch (err) {
    throw new CourierError('ERR_INVALID_CONFIG', 'the first PEM certificate is not a valid X.509 certificate', { cause: err });
  }
  return {
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    spiffeId: spiffeIdOfCertificate(cert),
    isCa: cert.getExtension(x509.BasicConstraintsExtension)?.ca === true,
    serial: cert.serialNumber.toLowerCase(),
  };
}
