import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { describe, test } from 'node:test';
import { CourierError } from '../errors/index.js';
import { verifiedCsrPublicKey } from './csr.js';
import { decodePem } from './pem.js';
import { formatSpiffeId } from './spiffe.js';
import { HOUR_MS, issue, newCa, spiffe } from './testing/helpers.js';
import { certificateInfo, createKeyAndCsr } from './workload.js';
import { x509 } from './x509.js';

describe('createKeyAndCsr', () => {
  test('makes a fresh Ed25519 key and a CSR that proves it and names the SPIFFE ID', async () => {
    const id = spiffe('orders', 'shop');
    const { privateKeyPem, csrPem } = await createKeyAndCsr(id);
    const key = createPrivateKey(privateKeyPem);
    assert.equal(key.asymmetricKeyType, 'ed25519');
    const csrKey = await verifiedCsrPublicKey(csrPem);
    const fromCsr = createPublicKey({ key: Buffer.from(csrKey.rawData), format: 'der', type: 'spki' });
    assert.equal(fromCsr.export({ format: 'der', type: 'spki' }).toString('hex'), createPublicKey(key).export({ format: 'der', type: 'spki' }).toString('hex'));
    const csr = new x509.Pkcs10CertificateRequest(decodePem(csrPem)[0]?.der ?? new Uint8Array());
    const san = csr.extensions.find((e): e is x509.SubjectAlternativeNameExtension => e instanceof x509.SubjectAlternativeNameExtension);
    assert.deepEqual(san?.names.items.map((n) => n.value), [formatSpiffeId(id)]);
    const other = await createKeyAndCsr();
    assert.notEqual(other.privateKeyPem, privateKeyPem, 'every call makes a new key');
    const otherCsr = new x509.Pkcs10CertificateRequest(decodePem(other.csrPem)[0]?.der ?? new Uint8Array());
    assert.equal(otherCsr.extensions.some((e) => e instanceof x509.SubjectAlternativeNameExtension), false, 'no SAN without an id');
  });
});

describe('certificateInfo', () => {
  test('reads validity, SPIFFE ID, CA flag and serial of the first certificate of a chain', async () => {
    const { ca, material } = await newCa();
    const now = new Date('2026-11-24T10:00:00Z');
    const id = spiffe('orders', 'shop');
    const { cert } = await issue(ca, id, { ttlMs: 2 * HOUR_MS, now });
    const info = certificateInfo(cert);
    assert.deepEqual(info.spiffeId, id);
    assert.equal(info.isCa, false);
    assert.equal(info.notAfter.getTime() - now.getTime(), 2 * HOUR_MS);
    assert.ok(info.notBefore.getTime() < now.getTime(), 'backdated by the clock-skew allowance');
    assert.match(info.serial, /^[0-9a-f]+$/);
    const root = certificateInfo(material.rootCertPem);
    assert.equal(root.isCa, true);
    assert.equal(root.spiffeId, undefined);
  });

  test('refuses text without a readable certificate', () => {
    assert.throws(() => certificateInfo('no pem here'), (err: unknown) => err instanceof CourierError && err.code === 'ERR_INVALID_CONFIG' && /holds no certificate/.test(err.message));
    assert.throws(() => certificateInfo('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'), /not a valid X.509 certificate/);
  });
});
