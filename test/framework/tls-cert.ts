// A self-signed server certificate for test apps that serve TLS (HTTPS and gRPC over TLS), made when
// a test asks for it: nothing is committed, nothing is written to disk.
import { webcrypto } from 'node:crypto';
import { encodePem } from '../../src/security/pem.js';
import { randomSerialHex, x509 } from '../../src/security/x509.js';

export interface TestCertificate {
  /** PEM of the PKCS#8 private key. */
  readonly key: string;
  /** PEM of the self-signed certificate, for `localhost`, 127.0.0.1 and ::1. */
  readonly cert: string;
}

const ECDSA = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** A fresh ECDSA P-256 key and a self-signed certificate valid for an hour, as apps in development use. */
export async function selfSignedCertificate(commonName = 'localhost'): Promise<TestCertificate> {
  const keys = await webcrypto.subtle.generateKey(ECDSA, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${commonName}`,
    keys,
    signingAlgorithm: ECDSA,
    serialNumber: randomSerialHex(),
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 3_600_000),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension([
        { type: 'dns', value: commonName },
        { type: 'ip', value: '127.0.0.1' },
        { type: 'ip', value: '::1' },
      ]),
    ],
  });
  const key = encodePem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { key, cert: cert.toString('pem') };
}
