// A closed HTTP/2 stream must not keep its call reachable. Node's session keeps streams in a Map,
// whose replaced tables can keep closed streams alive, and promoted
// to the old generation, until the next full collection; whatever a closed stream still points to is
// promoted with it (docs/performance.md, "Garbage that stays reachable"). These tests run one call on
// each side against a plain node:http2 peer and check that, once the stream has closed, none of its
// own properties leads to Courier's call object.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, constants as h2, createServer, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import { silentLogger } from '../observability/logging/index.js';
import type { CallResult } from './call.js';
import { Http2ClientCall, kAttach, kHeaders, kPrepare, type CallConnection } from './client-call.js';
import { messageHead } from './framing.js';
import { Http2ServerCall, type ServerCallOwner, type ServerCallSession } from './server-call.js';

/** The values of every own property of `stream`, symbol-keyed ones included. */
function ownValues(stream: object): unknown[] {
  return Reflect.ownKeys(stream).map((key) => (stream as Record<PropertyKey, unknown>)[key]);
}

/** A plain node:http2 server on loopback whose streams go to `onStream`, and a client session to it; both closed after the test. */
async function plainPeer(t: TestContext, onStream: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[]) => void): Promise<ClientHttp2Session> {
  const server = createServer();
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => onStream(stream, headers, rawHeaders));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  t.after(async () => {
    await new Promise<void>((resolve) => client.close(() => resolve()));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return client;
}

function frame(text: string): Buffer {
  const body = Buffer.from(text);
  return Buffer.concat([messageHead(body.length), body]);
}

test('a server call is no longer reachable from its stream once the stream has closed', async (t) => {
  const closedCalls: unknown[] = [];
  const owner: ServerCallOwner = {
    maxReceiveMessageBytes: 1 << 20,
    maxSendMessageBytes: 1 << 20,
    logger: silentLogger(),
    callClosed: (call) => closedCalls.push(call),
  };
  const session: ServerCallSession = { peer: { address: '127.0.0.1', port: 0, family: 'IPv4' }, callEnded: () => {} };
  let onAccepted: (accepted: { stream: ServerHttp2Stream; call: Http2ServerCall }) => void = () => {};
  const accepted = new Promise<{ stream: ServerHttp2Stream; call: Http2ServerCall }>((resolve) => (onAccepted = resolve));
  const client = await plainPeer(t, (stream, headers, rawHeaders) => {
    const call = new Http2ServerCall(owner, session, stream, headers, rawHeaders, undefined);
    call.setReader({
      message: (bytes) => call.sendMessage(bytes),
      end: () => call.end({ code: 0 }),
      error: () => {},
    });
    onAccepted({ stream, call });
  });
  const req = client.request({ ':method': 'POST', ':path': '/test.Links/Echo', 'content-type': 'application/grpc', te: 'trailers' });
  const trailers = once(req, 'trailers');
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.end(frame('ping'));
  const { stream, call } = await accepted;
  // Courier's close listener runs first (it was added when the call was made).
  await once(stream, 'close');
  const [received] = (await trailers) as [Record<string, string>];
  assert.equal(received['grpc-status'], '0');
  assert.deepEqual(Buffer.concat(chunks), frame('ping'));
  assert.deepEqual(closedCalls, [call], 'the owner was told the call closed');
  assert.ok(!ownValues(stream).includes(call), 'the closed stream still refers to its call');
});

test('a client call is no longer reachable from its stream once the stream has closed', async (t) => {
  const client = await plainPeer(t, (stream) => {
    stream.on('data', () => {});
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(frame('pong'));
    });
  });
  const closed: unknown[] = [];
  const connection: CallConnection = {
    goawayLastStreamId: undefined,
    peerData: 0,
    lossReason: () => undefined,
    streamClosed: (c) => closed.push(c),
    dequeue: () => {},
  };
  const call = new Http2ClientCall({ label: 'the test server', maxSendMessageBytes: 1 << 20, maxReceiveMessageBytes: 1 << 20, logger: silentLogger() }, '/test.Links/Echo', undefined, {});
  const messages: Buffer[] = [];
  const result = new Promise<CallResult>((resolve) => call.setReader({ headers: () => {}, message: (b) => messages.push(Buffer.from(b)), end: resolve }));
  assert.equal(call[kPrepare](), true);
  const headers = call[kHeaders]();
  assert.ok(headers !== undefined);
  const stream: ClientHttp2Stream = client.request(headers);
  call[kAttach](stream, connection);
  call.sendMessage(Buffer.from('ping'));
  call.end();
  const ended = await result;
  assert.equal(ended.code, 0);
  assert.deepEqual(messages.map(String), ['pong']);
  if (!stream.closed || !closed.includes(call)) await once(stream, 'close');
  assert.deepEqual(closed, [call], 'the connection was told the stream closed');
  assert.equal(stream.rstCode, h2.NGHTTP2_NO_ERROR);
  assert.ok(!ownValues(stream).includes(call), 'the closed stream still refers to its call');
});
