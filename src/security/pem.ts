import { X509Certificate } from 'node:crypto';
import { CourierError } from '../errors/index.js';

/** One `-----BEGIN <label>-----` block of a PEM text, decoded. */
export interface PemBlock {
  readonly label: string;
  readonly der: Uint8Array;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Every PEM block of a text, in order. Text outside blocks (comments, as OpenSSL writes them) is
 * ignored; a block that is unterminated, mislabelled at its end, carries RFC 1421 headers, or is not
 * valid base64 is refused rather than skipped, so a corrupt file is never half read.
 */
export function decodePem(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  for (const match of text.matchAll(BLOCK)) {
    const [, label = '', body = '', endLabel] = match;
    if (endLabel !== label) throw pemError(`a PEM block begins as ${label} and ends as ${endLabel}`);
    const compact = body.replace(/\s+/g, '');
    if (compact.length === 0 || compact.length % 4 !== 0 || !BASE64.test(compact)) {
      throw pemError(`the PEM block ${label} is not valid base64`);
    }
    blocks.push({ label, der: new Uint8Array(Buffer.from(compact, 'base64')) });
  }
  const begins = text.split('-----BEGIN ').length - 1;
  if (begins !== blocks.length) throw pemError('a PEM block is not terminated or has a malformed header');
  return blocks;
}

/** `der` as a PEM block labelled `label`, with 64-character lines and a final newline. */
export function encodePem(label: string, der: Uint8Array | ArrayBuffer): string {
  const base64 = Buffer.from(der instanceof ArrayBuffer ? new Uint8Array(der) : der).toString('base64');
  const lines = base64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/**
 * The certificates of a PEM bundle (a trust-anchors file, a chain), each as its own canonical PEM
 * block. Blocks of other types are skipped; a `CERTIFICATE` block that is not an X.509 certificate
 * is refused, so a truncated bundle cannot pass for a shorter valid one.
 */
export function splitPemCertificates(pem: string): string[] {
  return decodePem(pem)
    .filter((b) => b.label === 'CERTIFICATE')
    .map((b, index) => {
      try {
        new X509Certificate(b.der);
      } catch (err) {
        throw pemError(`certificate ${index + 1} of the bundle is not a valid X.509 certificate`, err);
      }
      return encodePem('CERTIFICATE', b.der);
    });
}

/**
 * The DER of the one unencrypted PKCS#8 private key (`PRIVATE KEY`) in a PEM text. Other key formats
 * (`EC PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`, ...) are refused by name: Courier writes and reads PKCS#8 only.
 */
export function readPkcs8PrivateKeyPem(pem: string): Uint8Array {
  const blocks = decodePem(pem);
  const keys = blocks.filter((b) => b.label === 'PRIVATE KEY');
  const first = keys[0];
  if (first !== undefined && keys.length === 1) return first.der;
  if (keys.length > 1) throw pemError(`expected one PRIVATE KEY block, found ${keys.length}`);
  const labels = blocks.map((b) => b.label);
  throw pemError(
    labels.length === 0
      ? 'no PEM private key found'
      : `expected an unencrypted PKCS#8 key (PRIVATE KEY), found ${labels.join(', ')}`,
  );
}

function pemError(message: string, cause?: unknown): CourierError {
  return new CourierError('ERR_INVALID_CONFIG', message, cause === undefined ? {} : { cause });
}
