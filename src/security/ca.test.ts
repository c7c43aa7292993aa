import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { CertificateAuthority } from './ca.js';
import { generateCaMaterial } from './ca-material.js';
import { CA_FILES, loadCaMaterial, loadOrCreateCa, writeCaMaterial } from './ca-store.js';
import { decodePem, encodePem, splitPemCertificates } from './pem.js';
import { newCa, rejectsWith, spiffe, tempDir } from './testing/helpers.js';
import { createKeyAndCsr } from './workload.js';
import { x509 } from './x509.js';

const DAY_MS = 24 * 3_600_000;


/** The PEM with one byte of its DER changed, `fromEnd` bytes before the end (the signature, for a certificate). */
function flipByte(pem: string, fromEnd: number): string {
  const [block] = decodePem(pem);
  assert.ok(block !== undefined);
  const der = new Uint8Array(block.der);
  der[der.length - fromEnd] = (der[der.length - fromEnd] ?? 0) ^ 0x01;
  return encodePem(block.label, der);
}

describe('generateCaMaterial', () => {
  test('an Ed25519 root (CA, pathLen 1) and an Ed25519 issuer (CA, pathLen 0) signed by it', async () => {
    const now = new Date();
    const material = await generateCaMaterial({ trustDomain: 'public', now });
    const root = new x509.X509Certificate(material.rootCertPem);
    const issuer = new x509.X509Certificate(material.issuerCertPem);

    assert.equal(root.subject, 'O=Courier, OU=public, CN=courier root ca');
    assert.equal(issuer.subject, 'O=Courier, OU=public, CN=courier issuer ca');
    assert.equal(issuer.issuer, root.subject);
    assert.deepEqual(root.publicKey.algorithm, { name: 'Ed25519' });
    assert.deepEqual(issuer.publicKey.algorithm, { name: 'Ed25519' });
    assert.ok(await root.isSelfSigned());
    assert.ok(await issuer.verify({ publicKey: root.publicKey, signatureOnly: true }));

    const rootBc = root.getExtension(x509.BasicConstraintsExtension);
    const issuerBc = issuer.getExtension(x509.BasicConstraintsExtension);
    assert.deepEqual([rootBc?.ca, rootBc?.pathLength, rootBc?.critical], [true, 1, true]);
    assert.deepEqual([issuerBc?.ca, issuerBc?.pathLength, issuerBc?.critical], [true, 0, true]);
    const usages = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign;
    assert.equal(root.getExtension(x509.KeyUsagesExtension)?.usages, usages);
    assert.equal(issuer.getExtension(x509.KeyUsagesExtension)?.usages, usages);

    // Valid for 365 days, from 15 minutes before now (whole seconds in X.509).
    const second = (ms: number): number => Math.floor(ms / 1000) * 1000;
    assert.equal(issuer.notBefore.getTime(), second(now.getTime() - 15 * 60_000));
    assert.equal(issuer.notAfter.getTime(), second(now.getTime() + 365 * DAY_MS));

    // Positive serials of 128 random bits (hex without the sign octet), different each time.
    assert.match(root.serialNumber, /^[0-9a-f]{1,32}$/i);
    assert.notEqual(root.serialNumber, issuer.serialNumber);

    // The root's key is not part of the material.
    assert.deepEqual(decodePem(material.issuerKeyPem).map((b) => b.label), ['PRIVATE KEY']);
    assert.equal(decodePem(material.rootCertPem + material.issuerCertPem).length, 2);
  });

  test('refuses an invalid trust domain and a non-positive lifetime', async () => {
    await assert.rejects(generateCaMaterial({ trustDomain: 'Not Valid' }), rejectsWith('ERR_INVALID_CONFIG', /trust domain/));
    await assert.rejects(generateCaMaterial({ trustDomain: 'public', ttlMs: 0 }), rejectsWith('ERR_INVALID_CONFIG', /lifetime/));
  });
});

describe('CA files', () => {
  test('loadOrCreateCa creates the three files with private modes, then reloads them', async (t) => {
    const { dir: base, remove } = tempDir();
    t.after(remove);
    const dir = join(base, 'certs');
    const first = await loadOrCreateCa(dir, { trustDomain: 'public' });
    assert.equal(first.created, true);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(join(dir, 'issuer.key')).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'ca.crt')).mode & 0o777, 0o644);
    assert.equal(statSync(join(dir, 'issuer.crt')).mode & 0o777, 0o644);
    assert.deepEqual(readdirSync(dir).sort(), ['ca.crt', 'issuer.crt', 'issuer.key']); // no temporary files left

    const second = await loadOrCreateCa(dir, { trustDomain: 'public' });
    assert.equal(second.created, false);
    assert.deepEqual(second.material, first.material);
    await CertificateAuthority.fromMaterial(second.material);
  });

  test('a half-present set is refused, naming the present and missing files', async (t) => {
    const { dir, remove } = tempDir();
    t.after(remove);
    writeCaMaterial(dir, await generateCaMaterial({ trustDomain: 'public' }));
    rmSync(join(dir, CA_FILES.issuerKey));
    await assert.rejects(
      loadOrCreateCa(dir, { trustDomain: 'public' }),
      rejectsWith('ERR_INVALID_CONFIG', /incomplete: ca\.crt, issuer\.crt present but issuer\.key missing/),
    );
    assert.ok(!existsSync(join(dir, CA_FILES.issuerKey)), 'nothing was generated');
    assert.throws(() => loadCaMaterial(dir), rejectsWith('ERR_INVALID_CONFIG', /issuer\.key/));
  });

  test('writeCaMaterial replaces existing files atomically', async (t) => {
    const { dir, remove } = tempDir();
    t.after(remove);
    writeFileSync(join(dir, 'ca.crt'), 'old');
    const material = await generateCaMaterial({ trustDomain: 'public' });
    writeCaMaterial(dir, material);
    assert.deepEqual(loadCaMaterial(dir), material);
  });
});

describe('CertificateAuthority.fromMaterial', () => {
  test('accepts a generated CA and exposes its root and issuer', async () => {
    const { material, ca } = await newCa();
    assert.equal(ca.trustAnchorsPem, material.rootCertPem);
    assert.equal(ca.issuerCertPem, material.issuerCertPem);
    assert.equal(ca.notAfter.getTime(), new x509.X509Certificate(material.issuerCertPem).notAfter.getTime());
  });

  test('accepts several roots in ca.crt (a root being rolled)', async () => {
    const a = await generateCaMaterial({ trustDomain: 'public' });
    const b = await generateCaMaterial({ trustDomain: 'public' });
    const ca = await CertificateAuthority.fromMaterial({ ...b, rootCertPem: a.rootCertPem + b.rootCertPem });
    assert.equal(splitPemCertificates(ca.trustAnchorsPem).length, 2);
  });

  test('refuses an issuer that does not chain to the root', async () => {
    const a = await generateCaMaterial({ trustDomain: 'public' });
    const b = await generateCaMaterial({ trustDomain: 'public' });
    // Another CA's issuer (and its matching key), with this CA's root.
    await assert.rejects(
      CertificateAuthority.fromMaterial({ ...b, rootCertPem: a.rootCertPem }),
      rejectsWith('ERR_INVALID_CONFIG', /does not chain to any root/),
    );
    // The right issuer with its signature tampered with.
    await assert.rejects(
      CertificateAuthority.fromMaterial({ ...a, issuerCertPem: flipByte(a.issuerCertPem, 3) }),
      rejectsWith('ERR_INVALID_CONFIG', /does not chain to any root/),
    );
  });

  test('refuses an issuer key that does not match the issuer certificate', async () => {
    const a = await generateCaMaterial({ trustDomain: 'public' });
    const b = await generateCaMaterial({ trustDomain: 'public' });
    await assert.rejects(
      CertificateAuthority.fromMaterial({ ...a, issuerKeyPem: b.issuerKeyPem }),
      rejectsWith('ERR_INVALID_CONFIG', /issuer\.key does not belong/),
    );
  });

  test('refuses unreadable material, a root as issuer key, a leaf as issuer, and an expired CA', async () => {
    const a = await generateCaMaterial({ trustDomain: 'public' });
    await assert.rejects(CertificateAuthority.fromMaterial({ ...a, rootCertPem: '' }), rejectsWith('ERR_INVALID_CONFIG', /ca\.crt holds no PEM certificate/));
    await assert.rejects(CertificateAuthority.fromMaterial({ ...a, issuerKeyPem: a.issuerCertPem }), rejectsWith('ERR_INVALID_CONFIG', /issuer\.key: .*PRIVATE KEY/));
    await assert.rejects(
      CertificateAuthority.fromMaterial({ ...a, issuerCertPem: a.issuerCertPem.replace('MII', 'M!I') }),
      rejectsWith('ERR_INVALID_CONFIG', /issuer\.crt/),
    );

    const ca = await CertificateAuthority.fromMaterial(a);
    const { privateKeyPem, csrPem } = await createKeyAndCsr();
    const leaf = await ca.signWorkload(csrPem, spiffe('orders'), { ttlMs: DAY_MS, clockSkewMs: 0 });
    await assert.rejects(
      CertificateAuthority.fromMaterial({ rootCertPem: a.rootCertPem, issuerCertPem: leaf.certificateChainPem, issuerKeyPem: privateKeyPem }),
      rejectsWith('ERR_INVALID_CONFIG', /not a CA certificate/),
    );

    const expired = await generateCaMaterial({ trustDomain: 'public', ttlMs: DAY_MS, now: new Date(Date.now() - 3 * DAY_MS) });
    await assert.rejects(CertificateAuthority.fromMaterial(expired), rejectsWith('ERR_INVALID_CONFIG', /expired at/));
  });

  test('the issued certificates verify against the root with Node', async () => {
    const { ca } = await newCa();
    const { csrPem } = await createKeyAndCsr();
    const signed = await ca.signWorkload(csrPem, spiffe('orders'), { ttlMs: DAY_MS, clockSkewMs: 0 });
    const [leafPem, issuerPem] = splitPemCertificates(signed.certificateChainPem);
    assert.ok(leafPem !== undefined && issuerPem !== undefined);
    const root = new X509Certificate(ca.trustAnchorsPem);
    const issuer = new X509Certificate(issuerPem);
    const leaf = new X509Certificate(leafPem);
    assert.ok(issuer.checkIssued(root) && issuer.verify(root.publicKey));
    assert.ok(leaf.checkIssued(issuer) && leaf.verify(issuer.publicKey));
    assert.ok(!leaf.verify(root.publicKey));
  });
});
