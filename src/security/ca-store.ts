import { existsSync, readFileSync } from '../util/builtins.js';
import { join } from 'node:path';
import { CourierError, errorMessage } from '../errors/index.js';
import { generateCaMaterial, type CaMaterial } from './ca-material.js';
import { ensurePrivateDirectory, PRIVATE_FILE_MODE, PUBLIC_FILE_MODE, readPrivateFile, writeFileAtomic } from './files.js';

/** Dapr's file names in an issuer-credentials directory. */
export const CA_FILES = {
  rootCert: 'ca.crt',
  issuerCert: 'issuer.crt',
  issuerKey: 'issuer.key',
} as const;

const ALL_FILES = [CA_FILES.rootCert, CA_FILES.issuerCert, CA_FILES.issuerKey] as const;

/**
 * Reads `ca.crt`, `issuer.crt` and `issuer.key` from `dir`. Only reads: whether they form a usable
 * CA is checked by `CertificateAuthority.fromMaterial`. A missing or unreadable file is an error
 * naming it, and so is an `issuer.key` its group or others may read or write.
 */
export function loadCaMaterial(dir: string): CaMaterial {
  const read = (name: string): string => {
    const file = join(dir, name);
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new CourierError('ERR_INVALID_CONFIG', `CA file ${file}: ${errorMessage(err)}`, { cause: err });
    }
  };
  const keyFile = join(dir, CA_FILES.issuerKey);
  const key = readPrivateFile(keyFile, 'CA issuer key');
  if (key === undefined) throw new CourierError('ERR_INVALID_CONFIG', `CA file ${keyFile}: no such file`);
  return {
    rootCertPem: read(CA_FILES.rootCert),
    issuerCertPem: read(CA_FILES.issuerCert),
    issuerKeyPem: key.toString('utf8'),
  };
}

/**
 * Writes the three files into `dir` (created with mode 0700 when missing), each atomically, the key
 * with mode 0600 and the certificates 0644. Existing files are replaced. The key is written first
 * and the root last, so an interrupted write leaves a set that {@link loadOrCreateCa} refuses
 * instead of one that half works.
 */
export function writeCaMaterial(dir: string, material: CaMaterial): void {
  ensurePrivateDirectory(dir);
  writeFileAtomic(join(dir, CA_FILES.issuerKey), material.issuerKeyPem, PRIVATE_FILE_MODE);
  writeFileAtomic(join(dir, CA_FILES.issuerCert), material.issuerCertPem, PUBLIC_FILE_MODE);
  writeFileAtomic(join(dir, CA_FILES.rootCert), material.rootCertPem, PUBLIC_FILE_MODE);
}

/**
 * The CA in `dir`: loaded when all three files are there, generated and written when none is
 * (`created: true`). Some but not all of them is refused with an error naming the present and the
 * missing files: it is a CA that was copied incompletely or a write that was interrupted, and
 * silently replacing it would strand every sidecar that trusts the old root.
 */
export async function loadOrCreateCa(dir: string, options: { trustDomain: string }): Promise<{ material: CaMaterial; created: boolean }> {
  const present = ALL_FILES.filter((name) => existsSync(join(dir, name)));
  if (present.length === ALL_FILES.length) return { material: loadCaMaterial(dir), created: false };
  if (present.length > 0) {
    const missing = ALL_FILES.filter((name) => !present.includes(name));
    throw new CourierError(
      'ERR_INVALID_CONFIG',
      `the CA in ${dir} is incomplete: ${present.join(', ')} present but ${missing.join(', ')} missing; ` +
        'restore the missing files, or remove the others to have a new CA created',
    );
  }
  const material = await generateCaMaterial({ trustDomain: options.trustDomain });
  writeCaMaterial(dir, material);
  return { material, created: true };
}

/**
 * Copies a CA (and the join-token key, when there is one) from `source` into `dir`, keys owner-only:
 * for credentials mounted from somewhere that cannot give them the Sentry's ownership and modes, such
 * as a Kubernetes Secret volume (root's files, group-readable with an fsGroup). The three CA files
 * must all be there; `dir` is created 0700 when missing and its files are replaced.
 */
export function copyCaMaterial(source: string, dir: string, tokenFile: string): void {
  const read = (name: string): Buffer | undefined => {
    try {
      return readFileSync(join(source, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new CourierError('ERR_INVALID_CONFIG', `credentials file ${join(source, name)}: ${errorMessage(err)}`, { cause: err });
    }
  };
  const files = ALL_FILES.map((name) => [name, read(name)] as const);
  const missing = files.filter(([, data]) => data === undefined).map(([name]) => name);
  if (missing.length > 0) throw new CourierError('ERR_INVALID_CONFIG', `${source} lacks ${missing.join(', ')}: the credentials to copy are a CA's ${ALL_FILES.join(', ')} (and ${tokenFile} if join tokens are used)`);
  ensurePrivateDirectory(dir);
  // The key first and the root last, as writeCaMaterial: an interrupted copy is refused at start-up.
  for (const [name, data] of [...files].reverse()) writeFileAtomic(join(dir, name), data ?? '', name === CA_FILES.issuerKey ? PRIVATE_FILE_MODE : PUBLIC_FILE_MODE);
  const token = read(tokenFile);
  if (token !== undefined) writeFileAtomic(join(dir, tokenFile), token, PRIVATE_FILE_MODE);
}
