// The app channel's protocols (`--app-protocol https`, `h2c`, `grpcs`, and the deprecated `--app-ssl`):
// real apps serving TLS with a certificate made here, HTTP/2 without TLS, and gRPC over TLS, called
// through real sidecars; and apps that speak another protocol than the sidecar was told.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { TestEnv } from '../framework/env.js';
import { startSidecar, waitForHealthy, type SidecarProcess } from '../framework/sidecar-process.js';
import { startApp, TestApp, type Handler } from '../framework/test-app.js';
import { errorOf, jsonOf, send } from '../framework/http-client.js';
import { writeBytes } from '../framework/streams.js';
import { selfSignedCertificate, type TestCertificate } from '../framework/tls-cert.js';
import { echoClient, echoUnary, md, startGrpcApp, type GrpcTestApp } from '../framework/grpc-apps.js';
import { freePort } from '../framework/cli-process.js';

const MiB = 1024 * 1024;

/** The app's view of a request: what it got and over what. */
const describeRequest: Handler = (req, res, body) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(
    JSON.stringify({
      method: req.method,
      url: req.url,
      httpVersion: req.httpVersion,
      encrypted: (req.socket as Partial<TLSSocket>).encrypted === true,
      body: body.toString(),
    }),
  );
};

const sha256: Handler = (_req, res, body) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`${body.length} ${createHash('sha256').update(body).digest('hex')}`);
};

/** Streams `bytes` (a query parameter) of a pattern to the caller, writing only as fast as it is taken. */
const streamOut: Handler = (req, res) => {
  const total = Number(new URL(req.url ?? '', 'http://x').searchParams.get('bytes'));
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  writeBytes(res, total, 64 * 1024, (offset) => offset % 251);
};

/** Routes shared by the HTTP test apps of every protocol. */
function httpRoutes(app: TestApp): void {
  app.route('/describe', describeRequest).route('/sha256', sha256).route('/stream-out', streamOut).route('/healthz', (_req, res) => res.end('ok'));
  // Echoes the request body as it arrives (no buffering): a streaming round trip.
  app.streamRoute('/echo-stream', (req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    req.pipe(res);
  });
}

interface RoundTrip {
  status: number;
  /** SHA-256 of what was sent and of what came back. */
  sent: string;
  received: string;
  receivedBytes: number;
  /** The answer's first bytes, as text. */
  text: string;
}

/** POSTs `total` bytes (a pattern) in chunks to `path` and reads the whole answer. */
function roundTrip(port: number, path: string, total: number): Promise<RoundTrip> {
  const sentHash = createHash('sha256');
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path, headers: { 'content-type': 'application/octet-stream' } }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      let text = '';
      res.on('data', (d: Buffer) => {
        bytes += d.length;
        hash.update(d);
        if (text.length < 200) text += d.toString('latin1').slice(0, 200);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, sent: sentHash.digest('hex'), received: hash.digest('hex'), receivedBytes: bytes, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    writeBytes(req, total, 256 * 1024, (offset) => offset % 251, (piece) => sentHash.update(piece));
  });
}

/** The SHA-256 of the pattern `streamOut` and `roundTrip` write. */
function patternHash(total: number): string {
  const hash = createHash('sha256');
  for (let offset = 0; offset < total; offset += 64 * 1024) hash.update(Buffer.alloc(Math.min(64 * 1024, total - offset), offset % 251));
  return hash.digest('hex');
}

async function fetchAll(url: string): Promise<{ status: number; bytes: number; hash: string }> {
  const res = await fetch(url);
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    bytes += chunk.length;
    hash.update(chunk);
  }
  return { status: res.status, bytes, hash: hash.digest('hex') };
}

async function appConnection(sidecar: SidecarProcess): Promise<Record<string, unknown>> {
  const res = await send(sidecar.httpPort, { path: '/v1.0/metadata' });
  return jsonOf(res).appConnectionProperties as Record<string, unknown>;
}

function occurrences(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

describe('--app-protocol https', () => {
  const env = new TestEnv();
  let cert: TestCertificate;
  let app: TestApp;
  let caller: SidecarProcess;
  let callee: SidecarProcess;

  before(async () => {
    cert = await selfSignedCertificate();
    app = await startApp(env, httpRoutes, 0, { tls: cert });
    callee = await startSidecar(env, {
      appId: 'secure',
      appPort: app.port,
      waitForApp: true,
      args: ['--app-protocol', 'https', '--enable-app-health-check', '--app-health-probe-interval', '1', '--max-body-size', '64Mi'],
    });
    caller = await startSidecar(env, { appId: 'caller', args: ['--max-body-size', '64Mi'] });
  });
  after(() => env.close());

  test('calls reach the app over TLS (self-signed certificate), on kept-alive connections, with health probes over TLS', async () => {
    for (let i = 0; i < 5; i++) {
      const res = await send(caller.httpPort, { method: 'POST', path: `/v1.0/invoke/secure/method/describe?i=${i}`, body: `call ${i}` });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(jsonOf(res), { method: 'POST', url: `/describe?i=${i}`, httpVersion: '1.1', encrypted: true, body: `call ${i}` });
    }
    // Five calls one after another, and the probes: one connection kept alive.
    assert.equal(app.sockets.size, 1);
    // --enable-app-health-check: the sidecar is ready only after a probe succeeded, so GET /healthz was answered over TLS.
    assert.ok(app.seen.some((r) => r.url === '/healthz' && r.headers['user-agent'] === 'courier-health-probe'));
    assert.deepEqual(await appConnection(callee), {
      port: app.port,
      protocol: 'https',
      channelAddress: '127.0.0.1',
      health: { healthCheckPath: '/healthz', healthProbeInterval: '1s', healthProbeTimeout: '500ms', healthThreshold: 3 },
    });
  });

  test('bodies stream over TLS: 20 MiB up and 20 MiB down, intact', async () => {
    const up = await roundTrip(caller.httpPort, '/v1.0/invoke/secure/method/sha256', 20 * MiB);
    assert.equal(up.status, 200);
    assert.equal(up.text, `${20 * MiB} ${up.sent}`);
    const down = await fetchAll(caller.url(`/v1.0/invoke/secure/method/stream-out?bytes=${20 * MiB}`));
    assert.deepEqual(down, { status: 200, bytes: 20 * MiB, hash: patternHash(20 * MiB) });
    const both = await roundTrip(caller.httpPort, '/v1.0/invoke/secure/method/echo-stream', 20 * MiB);
    assert.equal(both.status, 200);
    assert.equal(both.receivedBytes, 20 * MiB);
    assert.equal(both.received, both.sent);
  });
});
