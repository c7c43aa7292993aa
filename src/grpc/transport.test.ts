// Our client against our server over real sockets: the four call shapes, metadata, statuses,
// deadlines, cancellation and message size limits.
import assert from 'node:assert/strict';
import { connect as http2Connect, constants as h2, type IncomingHttpHeaders } from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { GrpcStatus } from '../errors/index.js';
import { customMetadata } from './metadata.js';
import type { GrpcServer } from './server.js';
import type { ServerCall } from './call.js';
import { collect, delay, eventually, openChannel, readAll, sendAll, startEchoServer, TRANSPORTS, type TestChannel } from './testing/helpers.js';

for (const kind of TRANSPORTS) describe(`our client and our server (${kind}; the server serves both)`, () => {
  let server: GrpcServer;
  let channel: TestChannel;
  let target: { host: string; port: number };
  /** Calls that reached the test handlers, by path. */
  const seen = new Map<string, ServerCall>();

  before(async () => {
    ({ server, target } = await startEchoServer({ maxReceiveMessageBytes: 1024 * 1024, maxSendMessageBytes: 2 * 1024 * 1024, lane: true }));
    server.register('/test.Hold/Forever', (call) => {
      seen.set(call.path, call);
      call.setReader({ message: () => {}, end: () => {}, error: () => {} });
    });
    server.register('/test.Hold/Cancel', (call) => {
      seen.set(call.path, call);
    });
    server.register('/test.Big/Send', (call) => {
      void readAll(call).then(
        (messages) => {
          const size = Number(messages[0]?.toString() ?? '0');
          call.sendMessage(Buffer.alloc(size, 1));
          call.end({ code: GrpcStatus.OK });
        },
        () => {},
      );
    });
    channel = openChannel(kind, target, { maxReceiveMessageBytes: 1024 * 1024, maxSendMessageBytes: 2 * 1024 * 1024 });
  });

  after(async () => {
    await channel.close();
    await server.close({ graceMs: 0 });
  });

  test('unary: message, multi-valued and binary metadata both ways, trailers', async () => {
    const call = channel.call('/test.Echo/Unary', {
      'x-echo-multi': ['one', 'two'],
      'x-echo-bin': Buffer.from([0, 1, 2, 255]).toString('base64'),
      'x-trailer-t': ['a', 'b'],
      'user-agent': 'courier-test/1',
    });
    const done = collect(call);
    sendAll(call, [Buffer.from('hello')]);
    const { headers, messages, result } = await done;
    assert.equal(result.code, GrpcStatus.OK);
    assert.equal(result.transport, undefined);
    assert.equal(result.headersReceived, true);
    assert.deepEqual(
      messages.map((m) => m.toString()),
      ['hello'],
    );
    assert.deepEqual(headers?.['x-echo-multi'], ['one', 'two']);
    assert.equal(Buffer.from(String(headers?.['x-echo-bin']), 'base64').toString('hex'), '000102ff');
    assert.deepEqual(result.trailers['x-trailer-t'], ['a', 'b']);
    assert.deepEqual({ ...customMetadata(result.trailers) }, { 'x-trailer-t': ['a', 'b'] });
  });

  test('client streaming', async () => {
    const call = channel.call('/test.Echo/ClientStream');
    const done = collect(call);
    sendAll(
      call,
      Array.from({ length: 500 }, (_, i) => Buffer.from(`m${i}`)),
    );
    const { messages, result } = await done;
    assert.equal(result.code, GrpcStatus.OK);
    assert.equal(messages[0]?.toString(), '500');
  });

  test('server streaming, including empty messages', async () => {
    const call = channel.call('/test.Echo/ServerStream');
    const done = collect(call);
    sendAll(call, [Buffer.from('2000:300')]);
    const { messages, result } = await done;
    assert.equal(result.code, GrpcStatus.OK);
    assert.equal(messages.length, 2000);
    assert.ok(messages.every((m, i) => m.length === 300 && m[0] === i % 256));
    const empty = channel.call('/test.Echo/ServerStream');
    const emptyDone = collect(empty);
    sendAll(empty, [Buffer.from('3:0')]);
    assert.deepEqual((await emptyDone).messages, [Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(0)]);
  });

  test('bidi: each message is answered before the next is sent', async () => {
    const call = channel.call('/test.Echo/Bidi');
    const received: string[] = [];
    let onMessage: (() => void) | undefined;
    const ended = new Promise<number>((resolve) =>
      call.setReader({
        headers: () => {},
        message: (bytes) => {
          received.push(bytes.toString());
          onMessage?.();
        },
        end: (result) => resolve(result.code),
      }),
    );
    for (let i = 0; i < 20; i++) {
      const answered = new Promise<void>((resolve) => {
        onMessage = resolve;
      });
      call.sendMessage(Buffer.from(`ping ${i}`));
      await answered;
    }
    call.end();
    assert.equal(await ended, GrpcStatus.OK);
    assert.equal(received.length, 20);
    assert.equal(received[19], 'ping 19');
  });

  test('sendMessageParts writes one message from several buffers', async () => {
    const call = channel.call('/test.Echo/Unary');
    const done = collect(call);
    call.sendMessageParts([Buffer.from('head|'), Buffer.alloc(100_000, 0x61), new Uint8Array([0x7c, 0x74])]);
    call.end();
    const { messages, result } = await done;
    assert.equal(result.code, GrpcStatus.OK);
    assert.equal(messages.length, 1);
    assert.equal(messages[0]?.length, 5 + 100_000 + 2);
    assert.equal(messages[0]?.subarray(0, 5).toString(), 'head|');
    assert.equal(messages[0]?.subarray(-2).toString(), '|t');
  });

  test('Trailers-Only error: code, a message with %, non-ASCII and newlines, custom trailers', async () => {
    const text = 'not found: 100% gone — ünïcödé 😀\nsecond line\r\ttab';
    const call = channel.call('/test.Echo/Fail', { 'x-code': String(GrpcStatus.NOT_FOUND), 'x-message': encodeURIComponent(text) });
    const done = collect(call);
    call.end();
    const { headers, messages, result } = await done;
    assert.equal(headers, undefined, 'Trailers-Only has no separate headers');
    assert.deepEqual(messages, []);
    assert.equal(result.code, GrpcStatus.NOT_FOUND);
    assert.equal(result.message, text);
    assert.equal(result.headersReceived, false);
    assert.equal(result.transport, undefined);
    assert.equal(result.trailers['x-detail'], 'yes');
  });

  test('unknown methods and services are UNIMPLEMENTED with grpc-go wording', async () => {
    for (const [path, message] of [
      ['/test.Echo/Nope', 'unknown method Nope for service test.Echo'],
      ['/other.Service/Call', 'unknown service other.Service'],
      ['/not-a-method', 'malformed method name: "/not-a-method"'],
    ] as const) {
      const call = channel.call(path);
      const done = collect(call);
      call.end();
      const { result } = await done;
      assert.equal(result.code, GrpcStatus.UNIMPLEMENTED);
      assert.equal(result.message, message);
      assert.equal(result.headersReceived, false);
    }
  });

  test('client deadline: DEADLINE_EXCEEDED locally; the server got grpc-timeout and its signal aborts', async () => {
    const deadline = Date.now() + 300;
    const call = channel.call('/test.Hold/Forever', {}, { deadline });
    const done = collect(call);
    call.sendMessage(Buffer.from('x'));
    await eventually(() => seen.has('/test.Hold/Forever'), 5000, 'the call to reach the server');
    const serverCall = seen.get('/test.Hold/Forever') as ServerCall;
    assert.ok(serverCall.deadline !== undefined && Math.abs(serverCall.deadline - deadline) < 250, 'grpc-timeout carried the deadline');
    const { result } = await done;
    assert.equal(result.code, GrpcStatus.DEADLINE_EXCEEDED);
    assert.equal(result.transport, undefined);
    await eventually(() => serverCall.signal.aborted, 5000, 'the server call to be aborted');
  });

  test('server-side deadline: a client that never cancels gets DEADLINE_EXCEEDED from the server', async () => {
    // A raw HTTP/2 client that sends grpc-timeout but enforces nothing itself.
    const session = http2Connect(`http://127.0.0.1:${target.port}`);
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/test.Hold/Forever', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '150m' });
      const trailers = await new Promise<IncomingHttpHeaders>((resolve, reject) => {
        stream.on('response', (headers, flags) => {
          if ((flags & h2.NGHTTP2_FLAG_END_STREAM) !== 0) resolve(headers);
        });
        stream.on('trailers', resolve);
        stream.on('error', reject);
        stream.resume();
      });
      assert.equal(trailers['grpc-status'], String(GrpcStatus.DEADLINE_EXCEEDED));
      await eventually(() => seen.get('/test.Hold/Forever')?.signal.aborted === true, 5000, 'the server call to be aborted');
    } finally {
      session.destroy();
    }
  });

  test('cancellation: the server signal aborts, its reader errors, and it sees no further messages', async () => {
    seen.delete('/test.Hold/Cancel');
    const call = channel.call('/test.Hold/Cancel');
    const done = collect(call);
    call.sendMessage(Buffer.from('first'));
    await eventually(() => seen.has('/test.Hold/Cancel'), 5000, 'the call to reach the server');
    const serverCall = seen.get('/test.Hold/Cancel') as ServerCall;
    const got: string[] = [];
    let errored: number | undefined;
    let firstArrived: () => void = () => {};
    const first = new Promise<void>((resolve) => {
      firstArrived = resolve;
    });
    serverCall.setReader({
      message: (bytes) => {
        got.push(bytes.toString());
        firstArrived();
      },
      end: () => assert.fail('the client never half-closed'),
      error: (status) => {
        errored = status.code;
      },
    });
    await first;
    call.cancel();
    call.sendMessage(Buffer.from('after cancel'));
    const { result } = await done;
    assert.equal(result.code, GrpcStatus.CANCELLED);
    await eventually(() => serverCall.signal.aborted, 5000, 'the server signal to abort');
    assert.equal(errored, GrpcStatus.CANCELLED);
    assert.deepEqual(got, ['first']);
    // Sending on a cancelled call is a harmless no-op on both sides.
    assert.equal(serverCall.sendMessage(Buffer.from('late')), true);
    serverCall.end({ code: GrpcStatus.OK });
  });

  test('an AbortSignal cancels the call', async () => {
    const controller = new AbortController();
    const call = channel.call('/test.Hold/Forever', {}, { signal: controller.signal });
    const done = collect(call);
    call.sendMessage(Buffer.from('x'));
    setTimeout(() => controller.abort(new Error('caller went away')), 50);
    const { result } = await done;
    assert.equal(result.code, GrpcStatus.CANCELLED);
    assert.match(result.message, /caller went away/);
    const aborted = channel.call('/test.Echo/Unary', {}, { signal: AbortSignal.abort() });
    assert.equal((await collect(aborted)).result.code, GrpcStatus.CANCELLED);
    const late = channel.call('/test.Echo/Unary', {}, { deadline: Date.now() - 1 });
    assert.equal((await collect(late)).result.code, GrpcStatus.DEADLINE_EXCEEDED);
  });

  test('receive limit on the server: RESOURCE_EXHAUSTED', async () => {
    const call = channel.call('/test.Echo/Unary');
    const done = collect(call);
    sendAll(call, [Buffer.alloc(1024 * 1024 + 1)]);
    const { result } = await done;
    assert.equal(result.code, GrpcStatus.RESOURCE_EXHAUSTED);
    assert.equal(result.message, `received message larger than max (${1024 * 1024 + 1} vs. ${1024 * 1024})`);
  });

  test('receive limit on the client: RESOURCE_EXHAUSTED', async () => {
    const call = channel.call('/test.Big/Send');
    const done = collect(call);
    sendAll(call, [Buffer.from(String(1024 * 1024 + 10))]);
    const { result } = await done;
    assert.equal(result.code, GrpcStatus.RESOURCE_EXHAUSTED);
    assert.equal(result.message, `received message larger than max (${1024 * 1024 + 10} vs. ${1024 * 1024})`);
  });

  test('send limits on both sides: RESOURCE_EXHAUSTED', async () => {
    const call = channel.call('/test.Echo/Unary');
    const done = collect(call);
    assert.equal(call.sendMessage(Buffer.alloc(2 * 1024 * 1024 + 1)), true);
    const { result } = await done;
    assert.equal(result.code, GrpcStatus.RESOURCE_EXHAUSTED);
    assert.match(result.message, /trying to send message larger than max/);

    const big = openChannel(kind, target, { maxReceiveMessageBytes: 8 * 1024 * 1024 });
    try {
      const serverSide = big.call('/test.Big/Send');
      const serverDone = collect(serverSide);
      sendAll(serverSide, [Buffer.from(String(2 * 1024 * 1024 + 1))]);
      const res = (await serverDone).result;
      assert.equal(res.code, GrpcStatus.RESOURCE_EXHAUSTED);
      assert.match(res.message, /trying to send message larger than max \(2097153 vs\. 2097152\)/);
    } finally {
      await big.close();
    }
  });

  test('a non-gRPC content type is answered 415 without a gRPC status; compression is UNIMPLEMENTED', async () => {
    const session = http2Connect(`http://127.0.0.1:${target.port}`);
    try {
      const ask = (headers: Record<string, string>, body?: Buffer): Promise<IncomingHttpHeaders> =>
        new Promise((resolve, reject) => {
          const stream = session.request({ ':method': 'POST', ':path': '/test.Echo/Unary', te: 'trailers', ...headers });
          let first: IncomingHttpHeaders | undefined;
          stream.on('response', (h) => {
            first = h;
          });
          stream.on('trailers', (t: IncomingHttpHeaders) => {
            first = { ...first, ...t };
          });
          stream.on('close', () => (first === undefined ? reject(new Error('no response')) : resolve(first)));
          stream.on('error', () => {});
          stream.resume();
          stream.end(body);
        });
      const json = await ask({ 'content-type': 'application/json' });
      assert.equal(json[':status'], 415);
      assert.equal(json['grpc-status'], undefined);
      const gzip = await ask({ 'content-type': 'application/grpc', 'grpc-encoding': 'gzip' });
      assert.equal(gzip['grpc-status'], String(GrpcStatus.UNIMPLEMENTED));
      assert.equal(gzip['grpc-accept-encoding'], 'identity');
      const flagged = await ask({ 'content-type': 'application/grpc+proto' }, Buffer.from([1, 0, 0, 0, 1, 0x41]));
      assert.equal(flagged['grpc-status'], String(GrpcStatus.INTERNAL));
      const badTimeout = await ask({ 'content-type': 'application/grpc', 'grpc-timeout': '1.5S' });
      assert.equal(badTimeout['grpc-status'], String(GrpcStatus.INTERNAL));
    } finally {
      session.destroy();
    }
  });

  test('setFallback takes unregistered paths; peer, metadata and a throwing handler', async () => {
    let peer: ServerCall['peer'] | undefined;
    server.setFallback((call) => {
      peer = call.peer;
      call.sendHeaders({ 'x-path': call.path, 'x-ua': String(call.metadata['user-agent']) });
      call.end({ code: GrpcStatus.OK });
    });
    try {
      const call = channel.call('/any.Thing/AtAll');
      const done = collect(call);
      call.end();
      const { headers, result } = await done;
      assert.equal(result.code, GrpcStatus.OK);
      assert.equal(headers?.['x-path'], '/any.Thing/AtAll');
      // HTTP/2 sends a default user-agent; the lane sends only the metadata given.
      if (kind !== 'lane') assert.match(String(headers?.['x-ua']), /^grpc-node-courier\//);
      else assert.equal(headers?.['x-ua'], 'undefined');
      assert.equal(peer?.address, '127.0.0.1');
      assert.ok((peer?.port ?? 0) > 0);
    } finally {
      server.setFallback(undefined);
    }
    server.register('/test.Broken/Throws', () => {
      throw new Error('handler bug');
    });
    const broken = channel.call('/test.Broken/Throws');
    const brokenDone = collect(broken);
    broken.end();
    const { result } = await brokenDone;
    assert.equal(result.code, GrpcStatus.UNKNOWN);
    assert.equal(result.transport, undefined);
  });

  test('IPv6: a server on ::1 and a channel to ::1', async () => {
    const v6 = await startEchoServer({ lane: true }, '::1');
    const ch = openChannel(kind, v6.target);
    try {
      assert.equal(ch.label, `[::1]:${v6.target.port}`);
      const call = ch.call('/test.Echo/Unary');
      const done = collect(call);
      sendAll(call, [Buffer.from('v6')]);
      const { messages, result } = await done;
      assert.equal(result.code, GrpcStatus.OK);
      assert.equal(messages[0]?.toString(), 'v6');
    } finally {
      await ch.close();
      await v6.server.close();
    }
  });

  // Credit returned only for whole messages read would hang here: the timeout turns that into a failure.
  test('messages larger than the flow-control window pass both ways, several in a row on one stream', { timeout: 60_000 }, async () => {
    const big = (fill: number): Buffer => Buffer.alloc(900 * 1024, fill);
    const unary = channel.call('/test.Echo/Unary');
    const unaryDone = collect(unary);
    sendAll(unary, [big(7)]);
    const one = await unaryDone;
    assert.equal(one.result.code, GrpcStatus.OK, one.result.message);
    assert.deepEqual(one.messages, [big(7)]);
    const bidi = channel.call('/test.Echo/Bidi');
    const bidiDone = collect(bidi);
    sendAll(bidi, [big(1), big(2), big(3)]);
    const three = await bidiDone;
    assert.equal(three.result.code, GrpcStatus.OK, three.result.message);
    assert.deepEqual(
      three.messages.map((m) => [m.length, m[0], m[m.length - 1]]),
      [1, 2, 3].map((fill) => [900 * 1024, fill, fill]),
    );
  });

  test('many concurrent calls share one connection', async () => {
    const results = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const call = channel.call('/test.Echo/Unary');
        const done = collect(call);
        sendAll(call, [Buffer.from(`n${i}`)]);
        const { messages, result } = await done;
        return result.code === GrpcStatus.OK && messages[0]?.toString() === `n${i}`;
      }),
    );
    assert.ok(results.every(Boolean));
    assert.equal(channel.connectionCount, 1);
    await delay(0);
  });
});
