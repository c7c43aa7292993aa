import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, sign, verify, X509Certificate } from 'node:crypto';
import { describe, test } from 'node:test';
import { verifiedCsrPublicKey } from './csr.js';
import { decodePem, encodePem, splitPemCertificates } from './pem.js';
import { formatSpiffeId } from './spiffe.js';
import { HOUR_MS, issue, newCa, rejectsWith, SKEW_MS, spiffe } from './testing/helpers.js';
import { certificateInfo, createKeyAndCsr } from './workload.js';
import { ED25519, generateEd25519, x509 } from './x509.js';

const spki = (key: ReturnType<typeof createPublicKey>): string => key.export({ format: 'der', type: 'spki' }).toString('hex');

function csrOf(csrPem: string): x509.Pkcs10CertificateRequest {
  const blocks = decodePem(csrPem);
  assert.deepEqual(blocks.map((b) => b.label), ['CERTIFICATE REQUEST']);
  return new x509.Pkcs10CertificateRequest(blocks[0]?.der ?? new Uint8Array());
}


/** A self-signed certificate with the given serial and URI SANs, made directly with the library. */
async function selfSigned(serialNumber: string, uris: string[]): Promise<string> {
  const keys = await generateEd25519(false);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    keys,
    signingAlgorithm: ED25519,
    serialNumber,
    name: 'CN=test',
    notBefore: new Date('2026-01-01T00:00:00Z'),
    notAfter: new Date('2027-01-01T00:00:00Z'),
    extensions: uris.length === 0 ? [] : [new x509.SubjectAlternativeNameExtension(uris.map((value) => ({ type: 'url' as const, value })))],
  });
  return encodePem('CERTIFICATE', cert.rawData);
}

describe('createKeyAndCsr', () => {
  // The code makes Ed25519 keys (what Courier's CA issues for and Dapr sidecars generate), not P-256.
  test('makes an Ed25519 PKCS#8 key and a CSR for it that verifies', async () => {
    const { privateKeyPem, csrPem } = await createKeyAndCsr();
    assert.deepEqual(decodePem(privateKeyPem).map((b) => b.label), ['PRIVATE KEY']);
    const key = createPrivateKey(privateKeyPem);
    assert.equal(key.type, 'private');
    assert.equal(key.asymmetricKeyType, 'ed25519');

    const csrKey = await verifiedCsrPublicKey(csrPem);
    const fromCsr = createPublicKey({ key: Buffer.from(csrKey.rawData), format: 'der', type: 'spki' });
    assert.equal(spki(fromCsr), spki(createPublicKey(key)), 'the CSR carries the public half of the key');
    // And the key really signs for it.
    const message = Buffer.from('proof of possession');
    assert.ok(verify(null, message, fromCsr, sign(null, message, key)));

    const csr = csrOf(csrPem);
    assert.equal(csr.subject, '', 'the subject is left empty');
    assert.deepEqual(csr.publicKey.algorithm, { name: 'Ed25519' });
    assert.equal(csr.extensions.length, 0, 'no SAN (nor anything else) without an id');
  });

  test('with a SPIFFE ID, the CSR carries it as its one URI SAN', async () => {
    const id = spiffe('orders', 'shop');
    const { privateKeyPem, csrPem } = await createKeyAndCsr(id);
    const csr = csrOf(csrPem);
    assert.ok(await csr.verify());
    assert.equal(csr.extensions.length, 1);
    const san = csr.extensions.find((e): e is x509.SubjectAlternativeNameExtension => e instanceof x509.SubjectAlternativeNameExtension);
    assert.ok(san !== undefined, 'no SAN extension');
    assert.deepEqual(san.names.items.map((n) => [n.type, n.value]), [['url', 'spiffe://public/ns/shop/orders']]);
    assert.equal(formatSpiffeId(id), 'spiffe://public/ns/shop/orders');
    assert.equal(spki(createPublicKey(privateKeyPem)), Buffer.from(csr.publicKey.rawData).toString('hex'));
  });

  test('every call makes a new key', async () => {
    const a = await createKeyAndCsr();
    const b = await createKeyAndCsr();
    assert.notEqual(a.privateKeyPem, b.privateKeyPem);
    assert.notEqual(a.csrPem, b.csrPem);
    assert.notEqual(spki(createPublicKey(a.privateKeyPem)), spki(createPublicKey(b.privateKeyPem)));
    // Even for the same id.
    const c = await createKeyAndCsr(spiffe('orders'));
    const d = await createKeyAndCsr(spiffe('orders'));
    assert.notEqual(spki(createPublicKey(c.privateKeyPem)), spki(createPublicKey(d.privateKeyPem)));
  });
});

describe('certificateInfo', () => {
  test('reads validity, SPIFFE ID, CA flag and serial of the first certificate of an issued chain', async () => {
    const { ca, material } = await newCa();
    // A whole second (X.509 times have no fractions), inside the CA's validity whatever the date.
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const id = spiffe('orders', 'shop');
    const { cert } = await issue(ca, id, { ttlMs: 2 * HOUR_MS, now });
    const [leafPem, issuerPem] = splitPemCertificates(cert);
    assert.ok(leafPem !== undefined && issuerPem !== undefined);

    const info = certificateInfo(cert);
    assert.deepEqual(Object.keys(info).sort(), ['isCa', 'notAfter', 'notBefore', 'serial', 'spiffeId']);
    assert.deepEqual(info.spiffeId, id);
    assert.equal(info.isCa, false);
    assert.equal(info.notBefore.toISOString(), new Date(now.getTime() - SKEW_MS).toISOString());
    assert.equal(info.notAfter.toISOString(), new Date(now.getTime() + 2 * HOUR_MS).toISOString());
    // The leaf's serial, as Node (OpenSSL) reads it, in lower case.
    assert.match(info.serial, /^[0-9a-f]+$/);
    assert.equal(info.serial, new X509Certificate(leafPem).serialNumber.toLowerCase());
    // The leaf alone reads the same.
    assert.deepEqual(certificateInfo(leafPem), info);

    const issuer = certificateInfo(issuerPem);
    assert.equal(issuer.isCa, true);
    assert.equal(issuer.spiffeId, undefined);
    assert.equal(issuer.serial, new X509Certificate(issuerPem).serialNumber.toLowerCase());
    assert.notEqual(issuer.serial, info.serial);
    assert.equal(issuer.notAfter.getTime(), ca.notAfter.getTime());
    const root = certificateInfo(material.rootCertPem);
    assert.equal(root.isCa, true);
    assert.equal(root.spiffeId, undefined);
  });

  test('skips blocks before the first certificate', async () => {
    const { ca } = await newCa();
    const { key, cert } = await issue(ca, spiffe('orders'), { ttlMs: HOUR_MS });
    const info = certificateInfo(key + cert);
    assert.deepEqual(info.spiffeId, spiffe('orders'));
    assert.deepEqual(info, certificateInfo(cert));
  });

  test('the serial has no sign octet and is lower case; the SPIFFE ID is undefined unless exactly one', async () => {
    const high = await selfSigned('F0E1D2C3B4A5968778695A4B3C2D1E0F', ['spiffe://public/ns/a/b']);
    const highInfo = certificateInfo(high);
    assert.equal(highInfo.serial, 'f0e1d2c3b4a5968778695a4b3c2d1e0f');
    assert.equal(highInfo.isCa, false);
    assert.deepEqual(highInfo.spiffeId, spiffe('b', 'a'));
    assert.equal(highInfo.notBefore.toISOString(), '2026-01-01T00:00:00.000Z');
    assert.equal(highInfo.notAfter.toISOString(), '2027-01-01T00:00:00.000Z');
    assert.equal(certificateInfo(await selfSigned('01', [])).serial, '01');

    assert.equal(certificateInfo(await selfSigned('02', [])).spiffeId, undefined);
    assert.equal(certificateInfo(await selfSigned('03', ['https://example.com/x'])).spiffeId, undefined);
    assert.equal(certificateInfo(await selfSigned('04', ['spiffe://public/ns/a/b', 'spiffe://public/ns/a/c'])).spiffeId, undefined);
    assert.equal(certificateInfo(await selfSigned('05', ['spiffe://Not Valid/ns/a/b'])).spiffeId, undefined);
  });

  test('refuses text without a readable certificate with ERR_INVALID_CONFIG', async () => {
    const noCertificate = /^the PEM text holds no certificate$/;
    assert.throws(() => certificateInfo(''), rejectsWith('ERR_INVALID_CONFIG', noCertificate));
    assert.throws(() => certificateInfo('no pem here'), rejectsWith('ERR_INVALID_CONFIG', noCertificate));
    const { privateKeyPem, csrPem } = await createKeyAndCsr();
    assert.throws(() => certificateInfo(privateKeyPem + csrPem), rejectsWith('ERR_INVALID_CONFIG', noCertificate));

    const notX509 = /^the first PEM certificate is not a valid X\.509 certificate$/;
    assert.throws(() => certificateInfo('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'), rejectsWith('ERR_INVALID_CONFIG', notX509));
    // A CSR under the CERTIFICATE label is not a certificate either.
    const csrDer = decodePem(csrPem)[0]?.der ?? new Uint8Array();
    assert.throws(() => certificateInfo(encodePem('CERTIFICATE', csrDer)), (err: unknown) => {
      rejectsWith('ERR_INVALID_CONFIG', notX509)(err);
      assert.ok((err as Error).cause !== undefined, 'the parse error is kept as the cause');
      return true;
    });
    // Broken PEM is refused by the PEM reader, with the same code.
    assert.throws(() => certificateInfo('-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n'), rejectsWith('ERR_INVALID_CONFIG', /not valid base64/));
    assert.throws(() => certificateInfo('-----BEGIN CERTIFICATE-----\nAAAA\n'), rejectsWith('ERR_INVALID_CONFIG', /not terminated/));
  });
});
