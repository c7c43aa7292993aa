import assert from 'node:assert/strict';
import { createPublicKey, webcrypto } from 'node:crypto';
import { describe, test } from 'node:test';
import { CourierError } from '../errors/index.js';
import { verifiedCsrPublicKey } from './csr.js';
import { decodePem, encodePem } from './pem.js';
import { createKeyAndCsr } from './workload.js';
import { x509 } from './x509.js';

async function csrWith(
  algorithm: webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams,
  signing: webcrypto.EcdsaParams | webcrypto.RsaHashedImportParams,
): Promise<Uint8Array> {
  const keys = await webcrypto.subtle.generateKey(algorithm, false, ['sign', 'verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: signing, name: 'CN=test' });
  return new Uint8Array(csr.rawData);
}

function refused(pattern: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof CourierError, String(err));
    assert.equal(err.code, 'ERR_CSR_INVALID');
    assert.match(err.message, pattern);
    return true;
  };
}

describe('verifiedCsrPublicKey', () => {
  test('accepts an Ed25519 CSR as PEM text, PEM bytes and DER', async () => {
    const { csrPem } = await createKeyAndCsr();
    const der = decodePem(csrPem)[0]?.der;
    assert.ok(der);
    for (const input of [csrPem, Buffer.from(csrPem), der]) {
      const key = createPublicKey({ key: Buffer.from((await verifiedCsrPublicKey(input)).rawData), format: 'der', type: 'spki' });
      assert.equal(key.asymmetricKeyType, 'ed25519');
    }
  });

  test('accepts an ECDSA P-256 CSR; refuses P-384 and RSA by name', async () => {
    const p256 = await csrWith({ name: 'ECDSA', namedCurve: 'P-256' }, { name: 'ECDSA', hash: 'SHA-256' });
    const key = createPublicKey({ key: Buffer.from((await verifiedCsrPublicKey(p256)).rawData), format: 'der', type: 'spki' });
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const p384 = await csrWith({ name: 'ECDSA', namedCurve: 'P-384' }, { name: 'ECDSA', hash: 'SHA-384' });
    await assert.rejects(verifiedCsrPublicKey(p384), refused(/ECDSA on curve secp384r1; only Ed25519 and ECDSA P-256/));
    const rsa = await csrWith({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' });
    await assert.rejects(verifiedCsrPublicKey(rsa), refused(/RSA \(2048 bits\)/));
  });

  test('refuses a CSR whose signature was altered', async () => {
    const { csrPem } = await createKeyAndCsr();
    const der = new Uint8Array(decodePem(csrPem)[0]?.der ?? []);
    der[der.length - 3] = (der[der.length - 3] ?? 0) ^ 0xff;
    await assert.rejects(verifiedCsrPublicKey(der), refused(/signature does not verify/));
  });

  test('refuses empty, oversized, non-PKCS#10, multi-block and wrongly labelled input', async () => {
    const { csrPem } = await createKeyAndCsr();
    const der = decodePem(csrPem)[0]?.der ?? new Uint8Array();
    await assert.rejects(verifiedCsrPublicKey(''), refused(/is empty/));
    await assert.rejects(verifiedCsrPublicKey(new Uint8Array(0)), refused(/is empty/));
    await assert.rejects(verifiedCsrPublicKey(new Uint8Array(70 * 1024).fill(0x30)), refused(/larger than 65536 bytes/));
    await assert.rejects(verifiedCsrPublicKey(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00])), refused(/not a PKCS#10 request/));
    await assert.rejects(verifiedCsrPublicKey(csrPem + csrPem), refused(/one PEM block, not 2/));
    await assert.rejects(verifiedCsrPublicKey(encodePem('PRIVATE KEY', der)), refused(/a PEM PRIVATE KEY is not a certificate signing request/));
    await assert.rejects(verifiedCsrPublicKey('-----BEGIN CERTIFICATE REQUEST-----\n!!!\n'), refused(/not valid PEM|not a PKCS#10/));
  });
});
