// Interoperability with @grpc/grpc-js, both ways, with a passthrough codec (messages are Buffers):
// their client against our server, and our client against their server.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { GrpcStatus } from '../errors/index.js';
import { GrpcChannel } from './channel.js';
import { H2Channel } from '../h2/client.js';
import type { GrpcServer } from './server.js';
import type { ServerCall } from './call.js';
import { collect, eventually, sendAll, startEchoServer } from './testing/helpers.js';

const identity = (b: Buffer): Buffer => b;

function method(path: string, requestStream: boolean, responseStream: boolean): grpc.MethodDefinition<Buffer, Buffer> {
  return {
    path,
    requestStream,
    responseStream,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  };
}

const MESSAGE_WITH_EVERYTHING = '100% broken — ünïcödé 😀\nline two\ttabbed';

describe('grpc-js client → our server', () => {
  let server: GrpcServer;
  let client: grpc.Client;
  const held: ServerCall[] = [];

  before(async () => {
    const started = await startEchoServer({ maxReceiveMessageBytes: 1024 * 1024 });
    server = started.server;
    server.register('/test.Hold/Call', (call) => {
      held.push(call);
      call.setReader({ message: () => {}, end: () => {}, error: () => {} });
    });
    client = new grpc.Client(`127.0.0.1:${started.target.port}`, grpc.credentials.createInsecure(), {
      'grpc.max_send_message_length': 8 * 1024 * 1024,
    });
  });

  after(async () => {
    client.close();
    await server.close({ graceMs: 0 });
  });

  function unary(path: string, body: Buffer, metadata = new grpc.Metadata(), options: grpc.CallOptions = {}) {
    let headers: grpc.Metadata | undefined;
    let status: grpc.StatusObject | undefined;
    return new Promise<{ error: grpc.ServiceError | null; value: Buffer | undefined; headers: grpc.Metadata | undefined; status: grpc.StatusObject | undefined }>(
      (resolve) => {
        const call = client.makeUnaryRequest(path, identity, identity, body, metadata, options, (error, value) => {
          // 'status' is emitted right after the callback.
          setImmediate(() => resolve({ error, value, headers, status }));
        });
        call.on('metadata', (md: grpc.Metadata) => {
          headers = md;
        });
        call.on('status', (s: grpc.StatusObject) => {
          status = s;
        });
      },
    );
  }

  test('unary with multi-valued and binary metadata, headers and trailers', async () => {
    const md = new grpc.Metadata();
    md.add('x-echo-multi', 'one');
    md.add('x-echo-multi', 'two');
    md.add('x-echo-bin', Buffer.from([0, 1, 2, 255]));
    md.add('x-trailer-t', 'tail');
    const { error, value, headers, status } = await unary('/test.Echo/Unary', Buffer.from('hello'), md);
    assert.equal(error, null);
    assert.equal(value?.toString(), 'hello');
    // Node (under grpc-js) joins repeated header fields with ", ", which the spec allows.
    assert.deepEqual(headers?.get('x-echo-multi').flatMap((v) => String(v).split(', ')), ['one', 'two']);
    assert.deepEqual(headers?.get('x-echo-bin'), [Buffer.from([0, 1, 2, 255])]);
    assert.equal(status?.code, grpc.status.OK);
    assert.deepEqual(status?.metadata.get('x-trailer-t'), ['tail']);
  });

  test('server streaming, client streaming and bidi', async () => {
    const messages = await new Promise<Buffer[]>((resolve, reject) => {
      const out: Buffer[] = [];
      const call = client.makeServerStreamRequest('/test.Echo/ServerStream', identity, identity, Buffer.from('1000:100'));
      call.on('data', (b: Buffer) => out.push(b));
      call.on('error', reject);
      call.on('end', () => resolve(out));
    });
    assert.equal(messages.length, 1000);
    assert.ok(messages.every((m, i) => m.length === 100 && m[0] === i % 256));

    const count = await new Promise<string>((resolve, reject) => {
      const call = client.makeClientStreamRequest('/test.Echo/ClientStream', identity, identity, (error, value) =>
        error === null ? resolve(value?.toString() ?? '') : reject(error),
      );
      for (let i = 0; i < 300; i++) call.write(Buffer.from(`m${i}`));
      call.end();
    });
    assert.equal(count, '300');

    const echoed = await new Promise<string[]>((resolve, reject) => {
      const out: string[] = [];
      const call = client.makeBidiStreamRequest('/test.Echo/Bidi', identity, identity);
      call.on('data', (b: Buffer) => {
        out.push(b.toString());
        if (out.length < 10) call.write(Buffer.from(`ping ${out.length}`));
        else call.end();
      });
      call.on('error', reject);
      call.on('end', () => resolve(out));
      call.write(Buffer.from('ping 0'));
    });
    assert.deepEqual(echoed, Array.from({ length: 10 }, (_, i) => `ping ${i}`));
  });

  test('errors: Trailers-Only status with %, non-ASCII and newlines; unknown methods', async () => {
    const md = new grpc.Metadata();
    md.set('x-code', String(GrpcStatus.FAILED_PRECONDITION));
    md.set('x-message', encodeURIComponent(MESSAGE_WITH_EVERYTHING));
    const { error, status } = await unary('/test.Echo/Fail', Buffer.alloc(0), md);
    assert.equal(error?.code, grpc.status.FAILED_PRECONDITION);
    assert.equal(error?.details, MESSAGE_WITH_EVERYTHING);
    assert.deepEqual(status?.metadata.get('x-detail'), ['yes']);
    const unknown = await unary('/test.Echo/Missing', Buffer.alloc(0));
    assert.equal(unknown.error?.code, grpc.status.UNIMPLEMENTED);
    assert.equal(unknown.error?.details, 'unknown method Missing for service test.Echo');
  });

  test('their deadline reaches our server as grpc-timeout; our signal aborts when they give up', async () => {
    held.length = 0;
    const deadline = Date.now() + 300;
    const pending = unary('/test.Hold/Call', Buffer.from('x'), new grpc.Metadata(), { deadline });
    await eventually(() => held.length === 1, 5000, 'the call to arrive');
    const call = held[0] as ServerCall;
    assert.ok(call.deadline !== undefined && Math.abs(call.deadline - deadline) < 250);
    const { error } = await pending;
    assert.equal(error?.code, grpc.status.DEADLINE_EXCEEDED);
    await eventually(() => call.signal.aborted, 5000, 'our signal to abort');
  });

  test('their cancellation aborts our signal', async () => {
    held.length = 0;
    const call = client.makeBidiStreamRequest('/test.Hold/Call', identity, identity);
    const ended = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('error', () => {});
    call.write(Buffer.from('x'));
    await eventually(() => held.length === 1, 5000, 'the call to arrive');
    call.cancel();
    assert.equal((await ended).code, grpc.status.CANCELLED);
    await eventually(() => (held[0] as ServerCall).signal.aborted, 5000, 'our signal to abort');
  });

  test('a message over our receive limit fails RESOURCE_EXHAUSTED', async () => {
    const { error } = await unary('/test.Echo/Unary', Buffer.alloc(2 * 1024 * 1024));
    assert.equal(error?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(error?.details ?? '', /received message larger than max \(2097152 vs\. 1048576\)/);
  });
});

// Both of our HTTP/2 clients: node:http2's (GrpcChannel) and Courier's own (H2Channel, for plaintext apps).
for (const client of ['GrpcChannel', 'H2Channel'] as const) describe(`our client (${client}) → grpc-js server`, () => {
  let server: grpc.Server;
  let channel: GrpcChannel | H2Channel;
  let port: number;
  const holds: { deadline: grpc.Deadline; cancelled: boolean }[] = [];

  before(async () => {
    server = new grpc.Server({ 'grpc.max_receive_message_length': 1024 * 1024, 'grpc.max_send_message_length': 8 * 1024 * 1024 });
    server.addService(
      {
        Unary: method('/interop.Echo/Unary', false, false),
        ServerStream: method('/interop.Echo/ServerStream', false, true),
        ClientStream: method('/interop.Echo/ClientStream', true, false),
        Bidi: method('/interop.Echo/Bidi', true, true),
        Fail: method('/interop.Echo/Fail', false, false),
        Hold: method('/interop.Echo/Hold', false, false),
        Big: method('/interop.Echo/Big', false, false),
      },
      {
        Unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
          const headers = new grpc.Metadata();
          for (const value of call.metadata.get('x-echo-multi')) headers.add('x-echo-multi', value);
          for (const value of call.metadata.get('x-echo-bin')) headers.add('x-echo-bin', value);
          call.sendMetadata(headers);
          const trailers = new grpc.Metadata();
          trailers.add('x-trailer', 'a');
          trailers.add('x-trailer', 'b');
          callback(null, call.request, trailers);
        },
        ServerStream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
          const n = Number(call.request.toString());
          for (let i = 0; i < n; i++) call.write(Buffer.alloc(64, i % 256));
          call.end();
        },
        ClientStream: (call: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
          let n = 0;
          call.on('data', () => n++);
          call.on('end', () => callback(null, Buffer.from(String(n))));
        },
        Bidi: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
          call.on('data', (b: Buffer) => call.write(b));
          call.on('end', () => call.end());
        },
        Fail: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
          const metadata = new grpc.Metadata();
          metadata.set('x-detail', 'yes');
          callback({ code: grpc.status.PERMISSION_DENIED, details: MESSAGE_WITH_EVERYTHING, metadata });
        },
        Hold: (call: grpc.ServerUnaryCall<Buffer, Buffer>) => {
          const record = { deadline: call.getDeadline(), cancelled: false };
          holds.push(record);
          call.on('cancelled', () => {
            record.cancelled = true;
          });
        },
        Big: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
          callback(null, Buffer.alloc(Number(call.request.toString()), 1));
        },
      },
    );
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
    );
    const options = { maxReceiveMessageBytes: 1024 * 1024, maxSendMessageBytes: 4 * 1024 * 1024 };
    channel = client === 'GrpcChannel' ? new GrpcChannel({ host: '127.0.0.1', port }, options) : new H2Channel({ host: '127.0.0.1', port }, options);
  });

  after(async () => {
    await channel.close();
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    server.forceShutdown();
  });

  test('unary with multi-valued and binary metadata, headers and trailers', async () => {
    const call = channel.call('/interop.Echo/Unary', {
      'x-echo-multi': ['one', 'two'],
      'x-echo-bin': Buffer.from([0, 1, 2, 255]).toString('base64'),
    });
    const done = collect(call);
    sendAll(call, [Buffer.from('hello')]);
    const { headers, messages, result } = await done;
    assert.equal(result.code, GrpcStatus.OK, result.message);
    assert.equal(messages[0]?.toString(), 'hello');
    const multi = headers?.['x-echo-multi'];
    // grpc-js joins repeated values into one field; the spec allows that.
    assert.deepEqual(typeof multi === 'string' ? multi.split(', ') : multi, ['one', 'two']);
    assert.equal(Buffer.from(String(headers?.['x-echo-bin']), 'base64').toString('hex'), '000102ff');
    const trailer = result.trailers['x-trailer'];
    assert.deepEqual(typeof trailer === 'string' ? trailer.split(', ') : trailer, ['a', 'b']);
  });

  test('server streaming, client streaming and bidi', async () => {
    const stream = channel.call('/interop.Echo/ServerStream');
    const streamDone = collect(stream);
    sendAll(stream, [Buffer.from('1000')]);
    const { messages, result } = await streamDone;
    assert.equal(result.code, GrpcStatus.OK);
    assert.equal(messages.length, 1000);
    assert.ok(messages.every((m, i) => m.length === 64 && m[0] === i % 256));

    const upload = channel.call('/interop.Echo/ClientStream');
    const uploadDone = collect(upload);
    sendAll(
      upload,
      Array.from({ length: 300 }, (_, i) => Buffer.from(`m${i}`)),
    );
    assert.equal((await uploadDone).messages[0]?.toString(), '300');

    const bidi = channel.call('/interop.Echo/Bidi');
    const bidiDone = collect(bidi);
    sendAll(
      bidi,
      Array.from({ length: 50 }, (_, i) => Buffer.from(`b${i}`)),
    );
    const echoed = await bidiDone;
    assert.equal(echoed.result.code, GrpcStatus.OK);
    assert.deepEqual(
      echoed.messages.map((m) => m.toString()),
      Array.from({ length: 50 }, (_, i) => `b${i}`),
    );
  });

  test('their error status: code, message with %, non-ASCII and newlines, trailers', async () => {
    const call = channel.call('/interop.Echo/Fail');
    const done = collect(call);
    sendAll(call, [Buffer.alloc(0)]);
    const { result } = await done;
    assert.equal(result.code, GrpcStatus.PERMISSION_DENIED);
    assert.equal(result.message, MESSAGE_WITH_EVERYTHING);
    assert.equal(result.trailers['x-detail'], 'yes');
    assert.equal(result.transport, undefined);
  });

  test('unknown method: UNIMPLEMENTED', async () => {
    const call = channel.call('/interop.Echo/Nope');
    const done = collect(call);
    sendAll(call, [Buffer.alloc(0)]);
    assert.equal((await done).result.code, GrpcStatus.UNIMPLEMENTED);
  });

  test('our deadline reaches their server as grpc-timeout, which cancels the call there', async () => {
    holds.length = 0;
    const deadline = Date.now() + 300;
    const call = channel.call('/interop.Echo/Hold', {}, { deadline });
    const done = collect(call);
    sendAll(call, [Buffer.from('x')]);
    await eventually(() => holds.length === 1, 5000, 'the call to arrive');
    const theirs = Number(holds[0]?.deadline);
    assert.ok(Math.abs(theirs - deadline) < 250, `their deadline ${theirs}, ours ${deadline}`);
    assert.equal((await done).result.code, GrpcStatus.DEADLINE_EXCEEDED);
    await eventually(() => holds[0]?.cancelled === true, 5000, 'their call to be cancelled');
  });

  test('our cancel reaches their server', async () => {
    holds.length = 0;
    const call = channel.call('/interop.Echo/Hold');
    const done = collect(call);
    sendAll(call, [Buffer.from('x')]);
    await eventually(() => holds.length === 1, 5000, 'the call to arrive');
    call.cancel();
    assert.equal((await done).result.code, GrpcStatus.CANCELLED);
    await eventually(() => holds[0]?.cancelled === true, 5000, 'their call to be cancelled');
  });

  test('message size limits both ways: RESOURCE_EXHAUSTED', async () => {
    const tooBigForThem = channel.call('/interop.Echo/Unary');
    const sent = collect(tooBigForThem);
    sendAll(tooBigForThem, [Buffer.alloc(2 * 1024 * 1024)]);
    assert.equal((await sent).result.code, GrpcStatus.RESOURCE_EXHAUSTED);

    const tooBigForUs = channel.call('/interop.Echo/Big');
    const received = collect(tooBigForUs);
    sendAll(tooBigForUs, [Buffer.from(String(2 * 1024 * 1024))]);
    const { result } = await received;
    assert.equal(result.code, GrpcStatus.RESOURCE_EXHAUSTED);
    assert.equal(result.message, `received message larger than max (${2 * 1024 * 1024} vs. ${1024 * 1024})`);
  });
});
