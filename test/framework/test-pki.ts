// Certificates for tests of TLS servers that are not sidecars (external HTTPS services): a private CA
// made by the test, server certificates for loopback and client certificates. ECDSA P-256, as most
// public services use; nothing is written to disk unless the test does so.
import { webcrypto } from 'node:crypto';
import { encodePem } from '../../src/security/index.js';
import { randomSerialHex, x509 } from '../../src/security/x509.js';

const ECDSA = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

/** A PEM certificate (chain) and its PKCS#8 private key. */
export interface KeyPairPem {
  cert: string;
  key: string;
}

export class TestCa {
  /** The CA certificate, PEM: what a client or server trusting this CA is given. */
  readonly certPem: string;
  readonly #cert: x509.X509Certificate;
  readonly #keys: webcrypto.CryptoKeyPair;

  private constructor(cert: x509.X509Certificate, keys: webcrypto.CryptoKeyPair) {
    this.#cert = cert;
    this.#keys = keys;
    this.certPem = cert.toString('pem');
  }

  static async create(name: string): Promise<TestCa> {
    const keys = (await webcrypto.subtle.generateKey(ECDSA, true, ['sign', 'verify']));
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      name: `CN=${name}`,
      keys,
      signingAlgorithm: ECDSA,
      serialNumber: randomSerialHex(),
      notBefore: new Date(now - DAY_MS),
      notAfter: new Date(now + DAY_MS),
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    return new TestCa(cert, keys);
  }

  /** A server certificate for 127.0.0.1, ::1 and localhost. */
  server(): Promise<KeyPairPem> {
    return this.#issue('CN=localhost', x509.ExtendedKeyUsage.serverAuth, [
      { type: 'ip', value: '127.0.0.1' },
      { type: 'ip', value: '::1' },
      { type: 'dns', value: 'localhost' },
    ]);
  }

  /** A client certificate with the common name `name`. */
  client(name: string): Promise<KeyPairPem> {
    return this.#issue(`CN=${name}`, x509.ExtendedKeyUsage.clientAuth, []);
  }

  async #issue(subject: string, usage: string, names: x509.JsonGeneralNames): Promise<KeyPairPem> {
    const keys = (await webcrypto.subtle.generateKey(ECDSA, true, ['sign', 'verify']));
    const now = Date.now();
    const extensions: x509.Extension[] = [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([usage]),
      await x509.AuthorityKeyIdentifierExtension.create(this.#keys.publicKey),
    ];
    if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names));
    const cert = await x509.X509CertificateGenerator.create({
      subject,
      issuer: this.#cert.subjectName,
      publicKey: keys.publicKey,
      signingKey: this.#keys.privateKey,
      signingAlgorithm: ECDSA,
      serialNumber: randomSerialHex(),
      notBefore: new Date(now - DAY_MS),
      notAfter: new Date(now + DAY_MS),
      extensions,
    });
    return { cert: cert.toString('pem'), key: encodePem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)) };
  }
}

/** A server certificate as an app in development serves one: from a throwaway CA nobody trusts. */
export async function appCertificate(): Promise<KeyPairPem> {
  return (await TestCa.create('Courier test app')).server();
}
