import { createPublicKey } from 'node:crypto';
import { CourierError, errorMessage } from '../errors/index.js';
import { decodePem } from './pem.js';
import { x509 } from './x509.js';

/**
 * PEM labels accepted for a CSR: the standard one, OpenSSL's legacy `NEW CERTIFICATE REQUEST`, and
 * `CERTIFICATE`, which Dapr's Sentry accepts from older clients.
 */
const CSR_LABELS: ReadonlySet<string> = new Set(['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST', 'CERTIFICATE']);
/** A CSR is a few hundred bytes; anything this large is not one, and is not worth parsing. */
const MAX_CSR_BYTES = 64 * 1024;

/**
 * The public key of a PKCS#10 request, after checking what a CA must check before trusting it: the
 * request parses, its key is Ed25519 or ECDSA P-256 (what Courier and Dapr sidecars generate; RSA
 * and other curves are refused by name), and its self-signature verifies, which proves the requester
 * holds the private key. Everything else in the request (subject, SANs, extensions) is ignored.
 * The input is PEM text, PEM bytes (as Dapr's gRPC API carries it) or DER bytes.
 * Failures are {@link CourierError}s with code `ERR_CSR_INVALID` (gRPC INVALID_ARGUMENT).
 */
export async function verifiedCsrPublicKey(input: string | Uint8Array): Promise<x509.PublicKey> {
  const der = csrDer(input);
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(der);
  } catch (err) {
    throw csrError(`the certificate signing request is not a PKCS#10 request: ${errorMessage(err)}`, err);
  }
  checkKeyType(csr.publicKey.rawData);
  let valid: boolean;
  try {
    valid = await csr.verify();
  } catch {
    valid = false;
  }
  if (!valid) throw csrError("the certificate signing request's signature does not verify with its own public key");
  return csr.publicKey;
}

function csrDer(input: string | Uint8Array): Uint8Array {
  if (input.length === 0) throw csrError('the certificate signing request is empty');
  if (input.length > MAX_CSR_BYTES) throw csrError(`the certificate signing request is larger than ${MAX_CSR_BYTES} bytes`);
  const text = typeof input === 'string' ? input : looksLikePem(input) ? Buffer.from(input).toString('utf8') : undefined;
  if (text === undefined) return input as Uint8Array;
  let blocks;
  try {
    blocks = decodePem(text);
  } catch (err) {
    throw csrError(`the certificate signing request is not valid PEM: ${errorMessage(err)}`, err);
  }
  const [block] = blocks;
  if (block === undefined || blocks.length !== 1) {
    throw csrError(`the certificate signing request must be one PEM block, not ${blocks.length}`);
  }
  if (!CSR_LABELS.has(block.label)) throw csrError(`a PEM ${block.label} is not a certificate signing request`);
  return block.der;
}

/** PEM bytes start (after optional whitespace) with a dash; DER starts with a SEQUENCE tag, 0x30. */
function looksLikePem(bytes: Uint8Array): boolean {
  for (const b of bytes) {
    if (b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d) continue;
    return b === 0x2d;
  }
  return false;
}

function checkKeyType(spki: ArrayBuffer): void {
  let key;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (err) {
    throw csrError(`the certificate signing request's public key cannot be read: ${errorMessage(err)}`, err);
  }
  const type = key.asymmetricKeyType;
  if (type === 'ed25519') return;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (type === 'ec' && curve === 'prime256v1') return;
  const bits = key.asymmetricKeyDetails?.modulusLength;
  const what = type === 'ec' ? `ECDSA on curve ${curve ?? 'unknown'}` : `${(type ?? 'unknown').toUpperCase()}${bits === undefined ? '' : ` (${bits} bits)`}`;
  throw csrError(`the certificate signing request's key is ${what}; only Ed25519 and ECDSA P-256 keys are accepted`);
}

function csrError(message: string, cause?: unknown): CourierError {
  return new CourierError('ERR_CSR_INVALID', message, cause === undefined ? {} : { cause });
}
