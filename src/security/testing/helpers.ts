// Test helpers for src/security: a fresh CA, issued credentials, and a real TLS handshake on loopback.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from '../../util/builtins.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { CourierError } from '../../errors/index.js';
import { CertificateAuthority } from '../ca.js';
import { generateCaMaterial, type CaMaterial, type GenerateCaOptions } from '../ca-material.js';
import { spiffeIdFromPeerCertificate, type SpiffeId } from '../spiffe.js';
import { createKeyAndCsr } from '../workload.js';

export const HOUR_MS = 3_600_000;

/** For `assert.rejects`/`assert.throws`: a CourierError with `code` whose message matches `pattern`. */
export function rejectsWith(code: string, pattern: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof CourierError, `not a CourierError: ${String(err)}`);
    assert.equal(err.code, code);
    assert.match(err.message, pattern);
    return true;
  };
}
export const SKEW_MS = 15 * 60_000;

export async function newCa(options: Partial<GenerateCaOptions> = {}): Promise<{ material: CaMaterial; ca: CertificateAuthority }> {
  const material = await generateCaMaterial({ trustDomain: 'public', ...options });
  return { material, ca: await CertificateAuthority.fromMaterial(material) };
}

export function spiffe(appId: string, namespace = 'default', trustDomain = 'public'): SpiffeId {
  return { trustDomain, namespace, appId };
}

export interface Credentials {
  key: string;
  cert: string;
}

/** A fresh key and a certificate for `id` from `ca`. */
export async function issue(ca: CertificateAuthority, id: SpiffeId, options: { ttlMs?: number; now?: Date } = {}): Promise<Credentials> {
  const { privateKeyPem, csrPem } = await createKeyAndCsr(id);
  const signed = await ca.signWorkload(csrPem, id, {
    ttlMs: options.ttlMs ?? 24 * HOUR_MS,
    clockSkewMs: SKEW_MS,
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  return { key: privateKeyPem, cert: signed.certificateChainPem };
}

/** A temporary directory, removed by the returned function. */
export function tempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'courier-security-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface HandshakeOutcome {
  /** The client's identity as the server saw it, when the server accepted the connection. */
  serverSaw?: SpiffeId | undefined;
  /** The server's identity as the client saw it, when the client accepted the server. */
  clientSaw?: SpiffeId | undefined;
  serverError?: Error;
  clientError?: Error;
}

/**
 * One mutual-TLS connection between a `node:tls` server and client on 127.0.0.1, each trusting only
 * its own `ca` and requiring the other's certificate. The client skips host-name checks (workload
 * certificates name no host; callers check the SPIFFE ID instead). Settles when both sides have
 * either exchanged a byte or failed.
 */
export async function handshake(server: Credentials & { ca: string }, client: Credentials & { ca: string }): Promise<HandshakeOutcome> {
  const outcome: HandshakeOutcome = {};
  let serverDone!: () => void;
  const serverSettled = new Promise<void>((resolve) => (serverDone = resolve));
  const tlsServer = createServer({ key: server.key, cert: server.cert, ca: server.ca, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' }, (socket: TLSSocket) => {
    outcome.serverSaw = spiffeIdFromPeerCertificate(socket.getPeerCertificate());
    socket.end('s');
    socket.on('error', () => {});
    serverDone();
  });
  tlsServer.on('tlsClientError', (err) => {
    outcome.serverError = err;
    serverDone();
  });
  await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
  const address = tlsServer.address();
  if (address === null || typeof address === 'string') throw new Error('no port');

  const clientSettled = new Promise<void>((resolve) => {
    const socket = connect({
      host: '127.0.0.1',
      port: address.port,
      key: client.key,
      cert: client.cert,
      ca: client.ca,
      minVersion: 'TLSv1.2',
      checkServerIdentity: () => undefined,
    });
    socket.on('secureConnect', () => {
      outcome.clientSaw = spiffeIdFromPeerCertificate(socket.getPeerCertificate());
    });
    socket.on('data', () => socket.end());
    socket.on('error', (err: Error) => {
      outcome.clientError = err;
      socket.destroy();
      resolve();
    });
    socket.on('close', () => resolve());
  });
  // A client refused by its own checks never reaches the server's handler: the server sees the
  // alert (tlsClientError) or just a closed socket, so do not wait forever for it.
  await clientSettled;
  await Promise.race([serverSettled, new Promise((resolve) => setTimeout(resolve, 200))]);
  await new Promise<void>((resolve) => tlsServer.close(() => resolve()));
  return outcome;
}
