import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { createLogger } from '../observability/logging/index.js';
import { appCertificate } from '../../test/framework/test-pki.js';
import type { AppProtocol } from './app-protocol.js';
import { ProtocolMismatch, transportErrorText } from './protocol-mismatch.js';

/** The cause explained at once (not after asking the app). */
function now(cause: string | undefined | Promise<string | undefined>): string | undefined {
  assert.ok(!(cause instanceof Promise), 'explained without asking the app');
  return cause;
}

function withCode(message: string, code: string, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(message), { code, ...extra });
}

/** A ProtocolMismatch for an app on `port`, and the JSON lines it logs. */
function detector(protocol: AppProtocol, port = 1): { mismatch: ProtocolMismatch; lines: Array<{ level: string; msg: string }> } {
  const lines: Array<{ level: string; msg: string }> = [];
  const logger = createLogger({ level: 'debug', json: true, destination: { write: (line) => void lines.push(JSON.parse(line) as { level: string; msg: string }) } });
  return { mismatch: new ProtocolMismatch({ protocol, host: '127.0.0.1', port, logger }), lines };
}

async function listening(t: TestContext, server: Server): Promise<number> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return (server.address() as AddressInfo).port;
}

test('a TLS client that met a plain-text answer: the app does not speak TLS (https and grpcs)', () => {
  const wrongVersion = withCode('80EC:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../ssl3_record.c:350:\n', 'ERR_SSL_WRONG_VERSION_NUMBER');
  assert.equal(
    detector('https', 8443).mismatch.explain(wrongVersion),
    'the app at 127.0.0.1:8443 does not speak TLS (it answered in plain text): serve TLS in the app, or use --app-protocol http or h2c',
  );
  // The gRPC channel reports failures as text only.
  assert.equal(
    detector('grpcs', 50051).mismatch.explain(new Error('connection to 127.0.0.1:50051 failed: 80FC:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:x.c:1:')),
    'the app at 127.0.0.1:50051 does not speak TLS (it answered in plain text): serve TLS in the app, or use --app-protocol grpc',
  );
  assert.match(now(detector('https').mismatch.explain(new Error('…:tlsv1 alert no application protocol:…'))) ?? '', /accepts only HTTP\/2 over TLS: use --app-protocol grpcs/);
  assert.equal(detector('https').mismatch.explain(withCode('connect ECONNREFUSED 127.0.0.1:1', 'ECONNREFUSED')), undefined);
});

test('an HTTP/1.1 parser that read HTTP/2 frames or a TLS record says what the app speaks', async () => {
  const settingsFrame = '\u0000\u0000\u0006\u0004\u0000\u0000\u0000\u0000\u0000\u0000\u0003';
  const parserError = (data: string): Error => Object.assign(new Error('Response does not match the HTTP/1.1 protocol'), { data });
  assert.match(now(detector('http').mismatch.explain(parserError(settingsFrame))) ?? '', /answered in HTTP\/2: use --app-protocol h2c/);
  const tlsAlert = '\u0015\u0003\u0003\u0000\u0002\u0002\u0046\u0000\u0000';
  assert.match(String(await detector('http').mismatch.explain(parserError(tlsAlert))), /speaks TLS: use --app-protocol https/);
  assert.equal(detector('http').mismatch.explain(parserError('garbage!!!')), undefined);
  assert.match(now(detector('h2c').mismatch.explain(withCode('Protocol error', 'ERR_HTTP2_ERROR'))) ?? '', /did not answer in HTTP\/2: use --app-protocol http for an HTTP\/1\.1 app/);
});

test('a plain-text connection closed without an answer: one TLS handshake tells whether the app speaks TLS', async (t) => {
  const cert = await appCertificate();
  let connections = 0;
  const tlsServer = createTlsServer({ key: cert.key, cert: cert.cert }, (socket) => socket.end());
  tlsServer.on('connection', () => connections++);
  const tlsPort = await listening(t, tlsServer);
  const plainPort = await listening(t, createNetServer((socket) => socket.end()));
  const closed = withCode('other side closed', 'UND_ERR_SOCKET');

  const { mismatch, lines } = detector('http', tlsPort);
  const first = mismatch.explain(closed);
  assert.ok(first instanceof Promise);
  assert.equal(await first, `the app at 127.0.0.1:${tlsPort} speaks TLS: use --app-protocol https`);
  // Failures close together share the handshake, and the cause is logged once.
  assert.equal(await mismatch.explain(closed), `the app at 127.0.0.1:${tlsPort} speaks TLS: use --app-protocol https`);
  assert.equal(connections, 1);
  assert.deepEqual(
    lines.map((l) => [l.level, l.msg]),
    [['warn', `calls to the app fail: the app at 127.0.0.1:${tlsPort} speaks TLS: use --app-protocol https`]],
  );

  assert.match(String(await detector('grpc', tlsPort).mismatch.explain(new Error('connection to x failed: the connection closed before HTTP/2 was established'))), /use --app-protocol grpcs$/);
  assert.equal(await detector('http', plainPort).mismatch.explain(closed), undefined);
  assert.equal(await detector('h2c', plainPort).mismatch.explain(withCode('the app closed the connection before HTTP/2 was established', 'ERR_H2C_CLOSED')), undefined);
});

test("transport errors read on one line: OpenSSL's reports reduced to their reason", () => {
  assert.equal(
    transportErrorText('80EC2985F87F0000:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/openssl/openssl/ssl/record/ssl3_record.c:350:\n'),
    'TLS: wrong version number',
  );
  assert.equal(
    transportErrorText('connection to 127.0.0.1:1 failed: 80FC:error:0A000460:SSL routines:ssl3_read_bytes:tlsv1 alert no application protocol:x.c:1601:SSL alert number 120\n'),
    'connection to 127.0.0.1:1 failed: TLS: tlsv1 alert no application protocol',
  );
  assert.equal(transportErrorText('other side closed'), 'other side closed');
});
