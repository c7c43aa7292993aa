import { createPrivateKey, randomBytes, verify, webcrypto, X509Certificate } from 'node:crypto';
import { CourierError, errorMessage } from '../errors/index.js';
import type { CaMaterial } from './ca-material.js';
import { verifiedCsrPublicKey } from './csr.js';
import { encodePem, readPkcs8PrivateKeyPem, splitPemCertificates } from './pem.js';
import { formatSpiffeId, parseSpiffeId, type SpiffeId } from './spiffe.js';
import { ED25519, randomSerialHex, x509 } from './x509.js';

export interface SignWorkloadOptions {
  /** Lifetime from `now` (Dapr's `workloadCertTTL`, default 24 h there); capped at the issuer's expiry. */
  ttlMs: number;
  /** How far NotBefore lies before `now` (Dapr's `allowedClockSkew`, default 15 min there). */
  clockSkewMs: number;
  /** DNS SANs besides the SPIFFE ID: only for control-plane services (the Sentry's own serving certificate). */
  dnsNames?: readonly string[];
  /** The moment of issue (tests). Default: the current time. */
  now?: Date;
}

export interface SignedWorkloadCertificate {
  /** The workload certificate followed by the issuer chain, PEM: what a TLS endpoint presents. */
  certificateChainPem: string;
  /** The certificate's own validity, as encoded (whole seconds). */
  notBefore: Date;
  notAfter: Date;
}

const LABEL_RE = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/**
 * Signs workload certificates with an issuer certificate and key (the Sentry's engine). Built only
 * by {@link CertificateAuthority.fromMaterial}, which refuses material that would issue certificates
 * no peer accepts, so that a broken CA fails at start rather than at the first handshake.
 */
export class CertificateAuthority {
  /** The root certificate(s), PEM: the trust anchors given to every sidecar. */
  readonly trustAnchorsPem: string;
  /** The issuer certificate, followed by any intermediates, PEM: appended to every workload certificate. */
  readonly issuerCertPem: string;
  /** The earliest expiry in the chain: no certificate is issued beyond it. */
  readonly notAfter: Date;
  readonly #issuer: x509.X509Certificate;
  readonly #signingKey: webcrypto.CryptoKey;

  private constructor(trustAnchorsPem: string, issuerCertPem: string, issuer: x509.X509Certificate, signingKey: webcrypto.CryptoKey, notAfter: Date) {
    this.trustAnchorsPem = trustAnchorsPem;
    this.issuerCertPem = issuerCertPem;
    this.#issuer = issuer;
    this.#signingKey = signingKey;
    this.notAfter = notAfter;
  }

  /**
   * Checks and loads a CA: every certificate of `issuer.crt` is a CA, valid now, and signed by the
   * next one, the last by a root of `ca.crt` (also a CA, valid now); `issuer.key` is an Ed25519
   * PKCS#8 key that belongs to the first certificate (checked by signing a random message with it
   * and verifying with the certificate). Any failure is an `ERR_INVALID_CONFIG` naming the file.
   */
  static async fromMaterial(material: CaMaterial): Promise<CertificateAuthority> {
    const now = new Date();
    const roots = parseBundle(material.rootCertPem, 'ca.crt');
    const chain = parseBundle(material.issuerCertPem, 'issuer.crt');
    const issuer = chain[0];
    if (issuer === undefined) throw caError('issuer.crt holds no certificate');
    chain.forEach((cert, i) => checkCa(cert, `issuer.crt certificate ${i + 1}`, now));
    for (let i = 0; i + 1 < chain.length; i++) {
      const [child, parent] = [chain[i], chain[i + 1]];
      if (child !== undefined && parent !== undefined && !signedBy(child.node, parent.node)) {
        throw caError(`issuer.crt certificate ${i + 1} is not signed by certificate ${i + 2}`);
      }
    }
    const top = chain[chain.length - 1] ?? issuer;
    const anchor = roots.find((root) => signedBy(top.node, root.node));
    if (anchor === undefined) throw caError('issuer.crt does not chain to any root in ca.crt (wrong or tampered issuer certificate)');
    checkCa(anchor, 'the root of ca.crt that signed the issuer', now);

    const signingKey = await importIssuerKey(material.issuerKeyPem, issuer.node);
    const notAfter = new Date(Math.min(...[...chain, anchor].map((c) => c.lib.notAfter.getTime())));
    return new CertificateAuthority(
      roots.map((c) => c.pem).join(''),
      chain.map((c) => c.pem).join(''),
      issuer.lib,
      signingKey,
      notAfter,
    );
  }

  /**
   * Issues a workload certificate for `id` to the holder of the CSR's key. The CSR is verified
   * (see `verifiedCsrPublicKey`: bad ones are `ERR_CSR_INVALID`), and only its public key is used:
   * the certificate names exactly `id` as its one URI SAN, whatever the CSR asked for, plus
   * `dnsNames` when given. It is not a CA, has KeyUsage digitalSignature (critical) and ExtKeyUsage
   * serverAuth + clientAuth, an empty subject (so the SAN extension is critical, per RFC 5280), and
   * is valid from `now − clockSkewMs` to `now + ttlMs`, but never beyond the CA's own expiry.
   */
  async signWorkload(csr: string | Uint8Array, id: SpiffeId, options: SignWorkloadOptions): Promise<SignedWorkloadCertificate> {
    const { ttlMs, clockSkewMs, dnsNames = [], now = new Date() } = options;
    const uri = formatSpiffeId(id);
    const parsed = parseSpiffeId(uri);
    if (parsed === undefined || parsed.appId !== id.appId || parsed.namespace !== id.namespace) {
      throw new CourierError('ERR_BAD_REQUEST', `cannot issue a certificate for ${JSON.stringify(uri)}: not a valid SPIFFE ID`);
    }
    if (!(Number.isFinite(ttlMs) && ttlMs > 0)) throw caError(`the workload certificate TTL must be a positive number of milliseconds, not ${ttlMs}`);
    if (!(Number.isFinite(clockSkewMs) && clockSkewMs >= 0)) throw caError(`the allowed clock skew must be zero or a positive number of milliseconds, not ${clockSkewMs}`);
    const badDns = dnsNames.find((name) => !isDnsName(name));
    if (badDns !== undefined) throw caError(`${JSON.stringify(badDns)} is not a DNS name`);
    if (now.getTime() >= this.notAfter.getTime()) {
      throw caError(`the CA expired at ${this.notAfter.toISOString()}; create or install a new one`);
    }

    const publicKey = await verifiedCsrPublicKey(csr);
    const leaf = await x509.X509CertificateGenerator.create({
      issuer: this.#issuer.subjectName,
      publicKey,
      signingKey: this.#signingKey,
      signingAlgorithm: ED25519,
      serialNumber: randomSerialHex(),
      notBefore: new Date(now.getTime() - clockSkewMs),
      notAfter: new Date(Math.min(now.getTime() + ttlMs, this.notAfter.getTime())),
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: uri }, ...dnsNames.map((value) => ({ type: 'dns' as const, value }))], true),
        await x509.AuthorityKeyIdentifierExtension.create(this.#issuer.publicKey),
      ],
    });
    return {
      certificateChainPem: encodePem('CERTIFICATE', leaf.rawData) + this.issuerCertPem,
      notBefore: leaf.notBefore,
      notAfter: leaf.notAfter,
    };
  }
}

/** A certificate as Node reads it (chain checks) and as the library reads it (extensions, dates, signing). */
interface ParsedCert {
  readonly pem: string;
  readonly node: X509Certificate;
  readonly lib: x509.X509Certificate;
}

function parseBundle(pem: string, file: string): ParsedCert[] {
  let certs: string[];
  try {
    certs = splitPemCertificates(pem);
  } catch (err) {
    throw caError(`${file}: ${errorMessage(err)}`, err);
  }
  if (certs.length === 0) throw caError(`${file} holds no PEM certificate`);
  return certs.map((c) => ({ pem: c, node: new X509Certificate(c), lib: new x509.X509Certificate(c) }));
}

function checkCa(cert: ParsedCert, what: string, now: Date): void {
  const { notBefore, notAfter, subject } = cert.lib;
  if (cert.lib.getExtension(x509.BasicConstraintsExtension)?.ca !== true) throw caError(`${what} (${subject}) is not a CA certificate`);
  if (now < notBefore) throw caError(`${what} (${subject}) is not valid before ${notBefore.toISOString()}`);
  if (now > notAfter) throw caError(`${what} (${subject}) expired at ${notAfter.toISOString()}`);
  const usage = cert.lib.getExtension(x509.KeyUsagesExtension);
  if (usage !== null && (usage.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
    throw caError(`${what} (${subject}) may not sign certificates (no keyCertSign key usage)`);
  }
}

/** `child` names `parent` as its issuer and its signature verifies with `parent`'s key. */
function signedBy(child: X509Certificate, parent: X509Certificate): boolean {
  try {
    return child.checkIssued(parent) && child.verify(parent.publicKey);
  } catch {
    return false;
  }
}

async function importIssuerKey(pem: string, issuer: X509Certificate): Promise<webcrypto.CryptoKey> {
  let der: Uint8Array;
  try {
    der = readPkcs8PrivateKeyPem(pem);
  } catch (err) {
    throw caError(`issuer.key: ${errorMessage(err)}`, err);
  }
  let keyType: string | undefined;
  try {
    keyType = createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' }).asymmetricKeyType;
  } catch (err) {
    throw caError(`issuer.key is not a readable PKCS#8 private key: ${errorMessage(err)}`, err);
  }
  if (keyType !== 'ed25519') throw caError(`issuer.key must be an Ed25519 key, not ${keyType ?? 'an unknown type'}`);
  const key = await webcrypto.subtle.importKey('pkcs8', der, ED25519, false, ['sign']);
  const probe = randomBytes(32);
  const signature = Buffer.from(await webcrypto.subtle.sign(ED25519, key, probe));
  let matches: boolean;
  try {
    matches = verify(null, probe, issuer.publicKey, signature);
  } catch {
    matches = false;
  }
  if (!matches) {
    throw caError('issuer.key does not belong to the certificate in issuer.crt');
  }
  return key;
}

/** A DNS host name: dot-separated labels of letters, digits and inner hyphens; no wildcards. */
function isDnsName(name: string): boolean {
  return name.length <= 253 && name.split('.').every((label) => LABEL_RE.test(label));
}

function caError(message: string, cause?: unknown): CourierError {
  return new CourierError('ERR_INVALID_CONFIG', message, cause === undefined ? {} : { cause });
}
