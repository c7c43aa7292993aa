import { webcrypto } from 'node:crypto';
import { CourierError } from '../errors/index.js';
import { encodePem } from './pem.js';
import { isValidTrustDomain } from './spiffe.js';
import { ED25519, generateEd25519, randomSerialHex, x509 } from './x509.js';

/**
 * A certificate authority as three PEM texts, the contents of Dapr's three files: `ca.crt` (the
 * root(s), the trust anchors every sidecar is given), `issuer.crt` (the certificate that signs
 * workload certificates, optionally followed by intermediates up to a root) and `issuer.key` (its
 * PKCS#8 private key).
 */
export interface CaMaterial {
  rootCertPem: string;
  issuerCertPem: string;
  issuerKeyPem: string;
}

export interface GenerateCaOptions {
  /** Recorded in the subjects (`OU=<trustDomain>`) so that one can tell CAs apart; must be a valid SPIFFE trust domain. */
  trustDomain: string;
  /** How long the root and the issuer live. Default 365 days, as Dapr's self-generated CA. */
  ttlMs?: number;
  /**
   * How far the certificates' NotBefore lies before `now`, so that a machine whose clock is a little
   * behind accepts the chain at once. Default 15 minutes, Dapr's allowed clock skew.
   */
  clockSkewMs?: number;
  /** The moment of creation (tests). Default: the current time. */
  now?: Date;
}

/** Dapr's lifetime for a self-generated root and issuer. */
export const DEFAULT_CA_TTL_MS = 365 * 24 * 3_600_000;
const DEFAULT_CA_CLOCK_SKEW_MS = 15 * 60_000;
const CA_KEY_USAGES = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign;

/**
 * Creates a new two-level CA: an Ed25519 root (self-signed, CA, path length 1) and an Ed25519
 * issuer (CA, path length 0) signed by it.
 *
 * The root's private key is generated non-extractable and dropped once the issuer is signed: the
 * Sentry signs with the issuer key only, exactly what Dapr's self-generated CA needs (`issuer.key`),
 * and a root key that never touches the disk cannot be stolen from it. The price is that the issuer
 * cannot be re-signed: when it nears expiry, generate a new CA and roll the trust anchors (append
 * the new root, wait, switch the Sentry, remove the old root).
 */
export async function generateCaMaterial(options: GenerateCaOptions): Promise<CaMaterial> {
  const { trustDomain, ttlMs = DEFAULT_CA_TTL_MS, clockSkewMs = DEFAULT_CA_CLOCK_SKEW_MS, now = new Date() } = options;
  if (!isValidTrustDomain(trustDomain)) {
    throw new CourierError('ERR_INVALID_CONFIG', `"${trustDomain}" is not a valid trust domain (lower-case letters, digits, ".", "-", "_")`);
  }
  if (!(Number.isFinite(ttlMs) && ttlMs > 0)) throw new CourierError('ERR_INVALID_CONFIG', `the CA lifetime must be a positive number of milliseconds, not ${ttlMs}`);
  if (!(Number.isFinite(clockSkewMs) && clockSkewMs >= 0)) {
    throw new CourierError('ERR_INVALID_CONFIG', `the CA clock skew must be zero or a positive number of milliseconds, not ${clockSkewMs}`);
  }
  const notBefore = new Date(now.getTime() - clockSkewMs);
  const notAfter = new Date(now.getTime() + ttlMs);

  const rootKeys = await generateEd25519(false);
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    name: `O=Courier, OU=${trustDomain}, CN=courier root ca`,
    keys: rootKeys,
    signingAlgorithm: ED25519,
    serialNumber: randomSerialHex(),
    notBefore,
    notAfter,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(CA_KEY_USAGES, true),
      await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey),
    ],
  });

  const issuerKeys = await generateEd25519(true);
  const issuer = await x509.X509CertificateGenerator.create({
    subject: `O=Courier, OU=${trustDomain}, CN=courier issuer ca`,
    issuer: root.subjectName,
    publicKey: issuerKeys.publicKey,
    signingKey: rootKeys.privateKey,
    signingAlgorithm: ED25519,
    serialNumber: randomSerialHex(),
    notBefore,
    notAfter,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(CA_KEY_USAGES, true),
      await x509.SubjectKeyIdentifierExtension.create(issuerKeys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(rootKeys.publicKey),
    ],
  });

  return {
    rootCertPem: encodePem('CERTIFICATE', root.rawData),
    issuerCertPem: encodePem('CERTIFICATE', issuer.rawData),
    issuerKeyPem: encodePem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', issuerKeys.privateKey)),
  };
}
