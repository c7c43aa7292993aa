// Courier's PKI: SPIFFE identities, the certificate authority the Sentry signs with, workload keys
// and CSRs, and the join tokens that let the Sentry tell which sidecar may have which identity.
export { formatSpiffeId, isValidTrustDomain, parseSpiffeId, spiffeIdFromPeerCertificate } from './spiffe.js';
export { spiffeIdOfPem } from './spiffe-x509.js';
export type { SpiffeId } from './spiffe.js';
export { decodePem, encodePem, readPkcs8PrivateKeyPem, splitPemCertificates } from './pem.js';
export type { PemBlock } from './pem.js';
export { DEFAULT_CA_TTL_MS, generateCaMaterial } from './ca-material.js';
export type { CaMaterial, GenerateCaOptions } from './ca-material.js';
export { CA_FILES, copyCaMaterial, loadCaMaterial, loadOrCreateCa, writeCaMaterial } from './ca-store.js';
export { CertificateAuthority } from './ca.js';
export type { SignedWorkloadCertificate, SignWorkloadOptions } from './ca.js';
export { certificateInfo, createKeyAndCsr } from './workload.js';
export type { CertificateInfo } from './workload.js';
export { ANY_APP_ID, DEFAULT_JOIN_TOKEN_TTL_MS, loadOrCreateTokenSecret, mintJoinToken, TOKEN_SECRET_FILE, verifyJoinToken } from './tokens.js';
export type { JoinTokenClaims, JoinTokenVerdict } from './tokens.js';
