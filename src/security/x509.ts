// The one module that loads @peculiar/x509. Its decorators need reflect-metadata to be loaded
// first, and it signs and verifies through whatever WebCrypto provider is registered, so both are
// set up here, once, and every other module of src/security imports the library from this file.
import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto);

export { x509 };

/** The WebCrypto algorithm of every key Courier generates (CA, issuer and workload keys). */
export const ED25519 = { name: 'Ed25519' } as const;

/** A WebCrypto key pair as Node types it (the library's own declarations name the DOM types). */
export type KeyPair = webcrypto.CryptoKeyPair;

/** A fresh Ed25519 key pair; `extractable` only when the private key must be written out. */
export async function generateEd25519(extractable: boolean): Promise<KeyPair> {
  return (await webcrypto.subtle.generateKey(ED25519, extractable, ['sign', 'verify'])) as KeyPair;
}

/**
 * A random positive 128-bit serial number, as hexadecimal. RFC 5280 asks for unique positive
 * serials of at most 20 octets; 128 random bits make collisions irrelevant without any state.
 * The library prefixes a zero octet when the top bit is set, so the value stays positive.
 */
export function randomSerialHex(): string {
  const bytes = randomBytes(16);
  if (bytes.every((b) => b === 0)) bytes[15] = 1; // zero is not a valid serial (and is astronomically unlikely)
  return bytes.toString('hex');
}
