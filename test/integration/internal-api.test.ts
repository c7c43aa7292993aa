// The sidecar-to-sidecar protocol as another sidecar (Courier or Dapr) sees it: CallLocal and
// CallLocalStream on the internal port, called directly with our gRPC client, including the
// protocol errors Dapr defines.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestEnv } from '../framework/env.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { startApp, type TestApp } from '../framework/test-app.js';
import { ChannelPool, type CallResult } from '../../src/grpc/index.js';
import {
  encodePayloadChunkHead,
  HttpVerb,
  internalInvokeRequestCodec,
  internalInvokeRequestStreamCodec,
  internalInvokeResponseCodec,
  internalInvokeResponseStreamCodec,
  type InternalInvokeRequest,
  type InternalInvokeResponseStream,
} from '../../src/proto/index.js';
import { GrpcStatus } from '../../src/errors/index.js';

const STREAM = '/dapr.proto.internals.v1.ServiceInvocation/CallLocalStream';
const UNARY = '/dapr.proto.internals.v1.ServiceInvocation/CallLocal';

describe('internal ServiceInvocation API', () => {
  const env = new TestEnv();
  const pool = new ChannelPool();
  let b: SidecarProcess;
  let app: TestApp;

  before(async () => {
    app = await startApp(env, (a) =>
      a.fallback((req, res, body) => {
        res.writeHead(201, { 'Content-Type': 'text/plain', 'X-Seen': `${req.method ?? ''} ${req.url ?? ''}`, 'X-Caller': String(req.headers['dapr-caller-app-id']) });
        res.end(`got:${body.toString()}`);
      }),
    );
    b = await startSidecar(env, { appId: 'b', appPort: app.port, waitForApp: true });
  });
  after(async () => {
    await pool.close();
    await env.close();
  });

  function request(overrides: Partial<InternalInvokeRequest> = {}): InternalInvokeRequest {
    return {
      ver: 1,
      metadata: { 'dapr-caller-app-id': { values: ['dapr-caller'] }, 'X-Custom': { values: ['1'] } },
      message: { method: 'orders/new', contentType: 'text/plain', httpExtension: { verb: HttpVerb.PUT, querystring: 'a=1' } },
      ...overrides,
    };
  }

  function call(path: string, messages: Uint8Array[][]): Promise<{ result: CallResult; messages: Buffer[] }> {
    return new Promise((resolve) => {
      const c = pool.get({ host: '127.0.0.1', port: b.internalPort }).call(path, {});
      const got: Buffer[] = [];
      c.setReader({ headers: () => {}, message: (m) => got.push(Buffer.from(m)), end: (result) => resolve({ result, messages: got }) });
      for (const parts of messages) c.sendMessageParts(parts);
      c.end();
    });
  }

  const chunk = (data: string, seq: number): Uint8Array[] => [encodePayloadChunkHead(Buffer.byteLength(data), seq), Buffer.from(data)];

  test('CallLocalStream: a chunked request and its chunked response, as a Dapr caller sends them', async () => {
    const { result, messages } = await call(STREAM, [
      [internalInvokeRequestStreamCodec.encode({ request: request() })],
      chunk('hel', 0),
      chunk('lo', 1),
    ]);
    assert.equal(result.code, GrpcStatus.OK, result.message);
    const decoded = messages.map((m) => internalInvokeResponseStreamCodec.decode(m));
    const first = decoded[0] as InternalInvokeResponseStream;
    assert.equal(first.response?.status?.code, 201);
    assert.deepEqual(first.response?.headers?.['X-Seen']?.values, ['PUT /orders/new?a=1']);
    assert.deepEqual(first.response?.headers?.['X-Caller']?.values, ['dapr-caller']);
    assert.equal(first.response?.message?.contentType, 'text/plain');
    const body = Buffer.concat(decoded.map((d) => Buffer.from(d.payload?.data ?? [])));
    assert.equal(body.toString(), 'got:hello');
    decoded.filter((d) => d.payload).forEach((d, i) => assert.equal(d.payload?.seq ?? 0, i, 'response chunks are numbered from 0'));
  });

  test('CallLocal: the unary form older Dapr sidecars use', async () => {
    const req = request();
    req.message = { ...req.message, data: { value: Buffer.from('unary body') } };
    const { result, messages } = await call(UNARY, [[internalInvokeRequestCodec.encode(req)]]);
    assert.equal(result.code, GrpcStatus.OK, result.message);
    const res = internalInvokeResponseCodec.decode(messages[0] as Buffer);
    assert.equal(res.status?.code, 201);
    assert.equal(Buffer.from(res.message?.data?.value ?? []).toString(), 'got:unary body');
  });

  const protocolErrors: Array<[string, Uint8Array[][], number, RegExp]> = [
    ['a chunk out of sequence', [[internalInvokeRequestStreamCodec.encode({ request: request() })], chunk('x', 1)], GrpcStatus.INVALID_ARGUMENT, /invalid sequence number received: 1 \(expected: 0\)/],
    ['a request in a later chunk', [[internalInvokeRequestStreamCodec.encode({ request: request() })], [internalInvokeRequestStreamCodec.encode({ request: request() })]], GrpcStatus.INVALID_ARGUMENT, /non-leading chunk/],
    ['a first message without a request', [chunk('x', 0)], GrpcStatus.INVALID_ARGUMENT, /carries no request/],
    ['no HTTP extension', [[internalInvokeRequestStreamCodec.encode({ request: request({ message: { method: 'm' } }) })]], GrpcStatus.INVALID_ARGUMENT, /missing HTTP extension field/],
    ['verb NONE', [[internalInvokeRequestStreamCodec.encode({ request: request({ message: { method: 'm', httpExtension: { verb: HttpVerb.NONE } } }) })]], GrpcStatus.INVALID_ARGUMENT, /invalid HTTP verb/],
    ['verb CONNECT', [[internalInvokeRequestStreamCodec.encode({ request: request({ message: { method: 'm', httpExtension: { verb: HttpVerb.CONNECT } } }) })]], GrpcStatus.INVALID_ARGUMENT, /invalid HTTP verb/],
    ['an unsupported version', [[internalInvokeRequestStreamCodec.encode({ request: request({ ver: 2 }) })]], GrpcStatus.UNIMPLEMENTED, /Unsupported spec version/],
    ['a method that escapes the app', [[internalInvokeRequestStreamCodec.encode({ request: request({ message: { method: 'a#b', httpExtension: { verb: HttpVerb.GET } } }) })]], GrpcStatus.INVALID_ARGUMENT, /invalid method/],
    ['bytes that are not a message', [[Buffer.from([0xff, 0xff, 0xff])]], GrpcStatus.INVALID_ARGUMENT, /parsing InternalInvokeRequest error/],
    [
      'a small body longer than its Content-Length',
      [[internalInvokeRequestStreamCodec.encode({ request: request({ metadata: { 'Content-Length': { values: ['3'] } } }) })], chunk('hello', 0)],
      GrpcStatus.INVALID_ARGUMENT,
      /the request body is longer than its declared Content-Length of 3 bytes/,
    ],
    [
      'a small body shorter than its Content-Length',
      [[internalInvokeRequestStreamCodec.encode({ request: request({ metadata: { 'Content-Length': { values: ['10'] } } }) })], chunk('hel', 0)],
      GrpcStatus.INVALID_ARGUMENT,
      /the request body ended after 3 of its declared 10 bytes/,
    ],
  ];
  for (const [what, messages, code, pattern] of protocolErrors) {
    test(`CallLocalStream refuses ${what}`, async () => {
      const { result } = await call(STREAM, messages);
      assert.equal(result.code, code, result.message);
      assert.match(result.message, pattern);
    });
  }

  test('a body of declared length in several chunks reaches the app whole, and calls reuse the connections to the app', async () => {
    const before = app.sockets.size;
    for (let i = 0; i < 20; i++) {
      const body = `part-${i}`.repeat(100);
      const { result, messages } = await call(STREAM, [
        [internalInvokeRequestStreamCodec.encode({ request: request({ metadata: { 'Content-Length': { values: [String(body.length)] } } }) })],
        chunk(body.slice(0, 7), 0),
        chunk(body.slice(7), 1),
      ]);
      assert.equal(result.code, GrpcStatus.OK, result.message);
      const decoded = messages.map((m) => internalInvokeResponseStreamCodec.decode(m));
      assert.equal(Buffer.concat(decoded.map((d) => Buffer.from(d.payload?.data ?? []))).toString(), `got:${body}`);
    }
    // One call at a time: the sidecar's pool keeps using the connection it has (a request whose body
    // the app had not seen end would have cost a new connection per call).
    assert.ok(app.sockets.size <= before + 1, `the sidecar opened ${app.sockets.size - before} new connections to the app for 20 sequential calls`);
  });

  test("Dapr's actor RPCs are UNIMPLEMENTED", async () => {
    const { result } = await call('/dapr.proto.internals.v1.ServiceInvocation/CallActor', [[Buffer.alloc(0)]]);
    assert.equal(result.code, GrpcStatus.UNIMPLEMENTED);
  });

  test("a dot-dot method is cleaned, so it cannot reach outside the app's routes", async () => {
    const { messages } = await call(STREAM, [[internalInvokeRequestStreamCodec.encode({ request: request({ message: { method: '../../admin/../public', httpExtension: { verb: HttpVerb.GET } } }) })]]);
    const first = internalInvokeResponseStreamCodec.decode(messages[0] as Buffer);
    assert.deepEqual(first.response?.headers?.['X-Seen']?.values, ['GET /public']);
  });
});
