import assert from 'node:assert/strict';
import { createPublicKey, webcrypto } from 'node:crypto';
import { describe, test } from 'node:test';
import { verifiedCsrPublicKey } from './csr.js';
import { decodePem, encodePem } from './pem.js';
import { newCa, rejectsWith } from './testing/helpers.js';
import { createKeyAndCsr } from './workload.js';
import { x509 } from './x509.js';

const P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** A CSR (DER) made with @peculiar/x509 for a fresh key of `algorithm`, and that key's SPKI (hex). */
async function csrWith(
  algorithm: webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams,
  signing: webcrypto.EcdsaParams | webcrypto.RsaHashedImportParams,
  name = 'CN=test',
): Promise<{ der: Uint8Array; spkiHex: string }> {
  const keys = await webcrypto.subtle.generateKey(algorithm, false, ['sign', 'verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: signing, name });
  const spki = await webcrypto.subtle.exportKey('spki', keys.publicKey);
  return { der: new Uint8Array(csr.rawData), spkiHex: Buffer.from(spki).toString('hex') };
}

const spkiHex = (key: x509.PublicKey): string => Buffer.from(key.rawData).toString('hex');


/** `der` with the byte `fromEnd` bytes before its end changed. */
function flipByte(der: Uint8Array, fromEnd: number): Uint8Array {
  const copy = new Uint8Array(der);
  copy[copy.length - fromEnd] = (copy[copy.length - fromEnd] ?? 0) ^ 0xff;
  return copy;
}

describe('verifiedCsrPublicKey', () => {
  test('accepts an ECDSA P-256 CSR as PEM text, PEM bytes and DER bytes, and returns its key', async () => {
    const { der, spkiHex: expected } = await csrWith(P256, ECDSA_SHA256);
    const pem = encodePem('CERTIFICATE REQUEST', der);
    const inputs: (string | Uint8Array)[] = [
      pem,
      `\n  ${pem}`,
      new TextEncoder().encode(pem),
      Buffer.from(`\r\n\t ${pem}`), // PEM bytes are recognised after leading whitespace
      der,
      Buffer.from(der),
    ];
    for (const input of inputs) {
      const key = await verifiedCsrPublicKey(input);
      assert.equal(spkiHex(key), expected);
      assert.equal(createPublicKey({ key: Buffer.from(key.rawData), format: 'der', type: 'spki' }).asymmetricKeyDetails?.namedCurve, 'prime256v1');
    }
  });

  test('accepts an Ed25519 CSR as PEM text, PEM bytes and DER', async () => {
    const { csrPem } = await createKeyAndCsr();
    const der = decodePem(csrPem)[0]?.der;
    assert.ok(der);
    for (const input of [csrPem, Buffer.from(csrPem), der]) {
      const key = createPublicKey({ key: Buffer.from((await verifiedCsrPublicKey(input)).rawData), format: 'der', type: 'spki' });
      assert.equal(key.asymmetricKeyType, 'ed25519');
    }
  });

  test('accepts the legacy labels NEW CERTIFICATE REQUEST and CERTIFICATE (as Dapr does), but only around a CSR', async () => {
    const { der, spkiHex: expected } = await csrWith(P256, ECDSA_SHA256);
    assert.equal(spkiHex(await verifiedCsrPublicKey(encodePem('NEW CERTIFICATE REQUEST', der))), expected);
    assert.equal(spkiHex(await verifiedCsrPublicKey(encodePem('CERTIFICATE', der))), expected);
    // A real certificate under its own label is not a request.
    const { material } = await newCa();
    await assert.rejects(verifiedCsrPublicKey(material.rootCertPem), rejectsWith('ERR_CSR_INVALID', /^the certificate signing request is not a PKCS#10 request: /));
  });

  test('refuses P-384 and RSA keys by name', async () => {
    const p384 = await csrWith({ name: 'ECDSA', namedCurve: 'P-384' }, { name: 'ECDSA', hash: 'SHA-384' });
    await assert.rejects(
      verifiedCsrPublicKey(p384.der),
      rejectsWith('ERR_CSR_INVALID', /^the certificate signing request's key is ECDSA on curve secp384r1; only Ed25519 and ECDSA P-256 keys are accepted$/),
    );
    await assert.rejects(verifiedCsrPublicKey(encodePem('CERTIFICATE REQUEST', p384.der)), rejectsWith('ERR_CSR_INVALID', /secp384r1/));
    const rsa = await csrWith(
      { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
      { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
    );
    await assert.rejects(
      verifiedCsrPublicKey(rsa.der),
      rejectsWith('ERR_CSR_INVALID', /^the certificate signing request's key is RSA \(2048 bits\); only Ed25519 and ECDSA P-256 keys are accepted$/),
    );
  });

  test('refuses a CSR whose signature or signed content was altered', async () => {
    const p256 = await csrWith(P256, ECDSA_SHA256, 'CN=orders');
    const ed25519 = decodePem((await createKeyAndCsr()).csrPem)[0]?.der ?? new Uint8Array();
    const notVerified = /^the certificate signing request's signature does not verify with its own public key$/;
    // The unaltered requests pass (the control), a byte of their signatures flipped does not.
    for (const der of [p256.der, ed25519]) {
      await verifiedCsrPublicKey(der);
      await assert.rejects(verifiedCsrPublicKey(flipByte(der, 3)), rejectsWith('ERR_CSR_INVALID', notVerified));
      await assert.rejects(verifiedCsrPublicKey(encodePem('CERTIFICATE REQUEST', flipByte(der, 3))), rejectsWith('ERR_CSR_INVALID', notVerified));
    }
    // The subject changed after signing ("orders" to "ordert"): the signature no longer covers it.
    const at = Buffer.from(p256.der).indexOf('orders');
    assert.ok(at > 0);
    const renamed = new Uint8Array(p256.der);
    renamed[at + 5] = 't'.charCodeAt(0);
    await assert.rejects(verifiedCsrPublicKey(renamed), rejectsWith('ERR_CSR_INVALID', notVerified));
  });

  test('refuses a CSR carrying another key than the one that signed it', async () => {
    // Same algorithm, same subject, so the two requests differ only in key and signature.
    const a = await csrWith(P256, ECDSA_SHA256);
    const b = await csrWith(P256, ECDSA_SHA256);
    const spkiA = Buffer.from(a.spkiHex, 'hex');
    const at = Buffer.from(a.der).indexOf(spkiA);
    assert.ok(at > 0);
    const swapped = new Uint8Array(a.der);
    swapped.set(Buffer.from(b.spkiHex, 'hex'), at);
    await assert.rejects(verifiedCsrPublicKey(swapped), rejectsWith('ERR_CSR_INVALID', /signature does not verify with its own public key/));
  });

  test('refuses empty and oversized input before parsing', async () => {
    await assert.rejects(verifiedCsrPublicKey(''), rejectsWith('ERR_CSR_INVALID', /^the certificate signing request is empty$/));
    await assert.rejects(verifiedCsrPublicKey(new Uint8Array(0)), rejectsWith('ERR_CSR_INVALID', /^the certificate signing request is empty$/));
    await assert.rejects(verifiedCsrPublicKey(new Uint8Array(65_537).fill(0x30)), rejectsWith('ERR_CSR_INVALID', /^the certificate signing request is larger than 65536 bytes$/));
    await assert.rejects(verifiedCsrPublicKey(`${'-'.repeat(65_537)}`), rejectsWith('ERR_CSR_INVALID', /is larger than 65536 bytes/));
    // A valid CSR padded past the limit is refused on its size alone.
    const { csrPem } = await createKeyAndCsr();
    await assert.rejects(verifiedCsrPublicKey(csrPem + '\n'.repeat(65_536)), rejectsWith('ERR_CSR_INVALID', /is larger than 65536 bytes/));
    // At the limit, the input is parsed (and here found not to be a request).
    await assert.rejects(verifiedCsrPublicKey(new Uint8Array(65_536).fill(0x30)), rejectsWith('ERR_CSR_INVALID', /^the certificate signing request is not a PKCS#10 request: /));
  });

  test('refuses input that is not one PEM certificate signing request', async () => {
    const { csrPem } = await createKeyAndCsr();
    const der = decodePem(csrPem)[0]?.der ?? new Uint8Array();
    // Wrong labels.
    await assert.rejects(verifiedCsrPublicKey(encodePem('PRIVATE KEY', der)), rejectsWith('ERR_CSR_INVALID', /^a PEM PRIVATE KEY is not a certificate signing request$/));
    await assert.rejects(verifiedCsrPublicKey(Buffer.from(encodePem('PUBLIC KEY', der))), rejectsWith('ERR_CSR_INVALID', /^a PEM PUBLIC KEY is not a certificate signing request$/));
    // Not exactly one block.
    await assert.rejects(verifiedCsrPublicKey(csrPem + csrPem), rejectsWith('ERR_CSR_INVALID', /^the certificate signing request must be one PEM block, not 2$/));
    await assert.rejects(verifiedCsrPublicKey('not a request'), rejectsWith('ERR_CSR_INVALID', /^the certificate signing request must be one PEM block, not 0$/));
    // Broken PEM.
    await assert.rejects(verifiedCsrPublicKey('-----BEGIN CERTIFICATE REQUEST-----\n!!!\n'), rejectsWith('ERR_CSR_INVALID', /^the certificate signing request is not valid PEM: a PEM block is not terminated/));
    await assert.rejects(
      verifiedCsrPublicKey('-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n'),
      rejectsWith('ERR_CSR_INVALID', /^the certificate signing request is not valid PEM: the PEM block CERTIFICATE REQUEST is not valid base64/),
    );
    await assert.rejects(
      verifiedCsrPublicKey(csrPem.replace('END CERTIFICATE REQUEST', 'END CERTIFICATE')),
      rejectsWith('ERR_CSR_INVALID', /not valid PEM: a PEM block begins as CERTIFICATE REQUEST and ends as CERTIFICATE/),
    );
    // Bytes that are neither PEM nor a request.
    await assert.rejects(verifiedCsrPublicKey(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00])), rejectsWith('ERR_CSR_INVALID', /^the certificate signing request is not a PKCS#10 request: /));
    await assert.rejects(verifiedCsrPublicKey(new TextEncoder().encode('hello')), rejectsWith('ERR_CSR_INVALID', /is not a PKCS#10 request/));
    await assert.rejects(verifiedCsrPublicKey(der.subarray(0, der.length - 10)), rejectsWith('ERR_CSR_INVALID', /is not a PKCS#10 request/));
    await assert.rejects(verifiedCsrPublicKey(encodePem('CERTIFICATE REQUEST', new Uint8Array([1, 2, 3]))), rejectsWith('ERR_CSR_INVALID', /is not a PKCS#10 request/));
  });
});
