// Our transport against @grpc/grpc-js, an independent gRPC implementation, in both directions.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { GrpcStatus } from '../errors/index.js';
import { ChannelPool, type CallResult } from './channel.js';
import { GrpcServer, type ServerCall } from './server.js';

const identity = (b: Buffer): Buffer => b;
const method = (path: string, requestStream: boolean, responseStream: boolean): grpc.MethodDefinition<Buffer, Buffer> => ({
  path,
  requestStream,
  responseStream,
  requestSerialize: identity,
  requestDeserialize: identity,
  responseSerialize: identity,
  responseDeserialize: identity,
});
const service = {
  unary: method('/test.Echo/Unary', false, false),
  serverStream: method('/test.Echo/ServerStream', false, true),
  bidi: method('/test.Echo/Bidi', true, true),
  slow: method('/test.Echo/Slow', false, false),
};
const Client = grpc.makeGenericClientConstructor(service, 'Echo');

/** Collects a server call's inbound messages, then runs `done`. */
function collect(call: ServerCall, done: (messages: Buffer[]) => void): void {
  const messages: Buffer[] = [];
  call.setReader({ message: (m) => messages.push(Buffer.from(m)), end: () => done(messages), error: () => {} });
}

describe('grpc-js client → Courier server', () => {
  const server = new GrpcServer();
  let client: InstanceType<typeof Client>;
  const aborted: string[] = [];

  before(async () => {
    server.register('/test.Echo/Unary', (call) =>
      collect(call, (messages) => {
        const text = Buffer.concat(messages).toString();
        if (text === 'fail') {
          call.end({ code: GrpcStatus.FAILED_PRECONDITION, message: '100% not ok\nsecond line ☕' });
          return;
        }
        const tag = call.metadata['x-tag'];
        call.sendHeaders({ 'x-echo-tag': String(tag) });
        call.sendMessage(Buffer.from(`echo:${text}`));
        call.end({ code: GrpcStatus.OK }, { 'x-trailer': 't', 'x-multi': ['1', '2'] });
      }),
    );
    server.register('/test.Echo/ServerStream', (call) =>
      collect(call, () => {
        for (let i = 0; i < 5; i++) call.sendMessage(Buffer.from(String(i)));
        call.end({ code: GrpcStatus.OK });
      }),
    );
    server.register('/test.Echo/Slow', (call) => {
      call.signal.addEventListener('abort', () => aborted.push(String((call.signal.reason as { code?: number }).code)));
      collect(call, () => {});
    });
    const { port } = await server.listen('127.0.0.1', 0);
    client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });
  after(async () => {
    client.close();
    await server.close({ graceMs: 100 });
  });

  test('unary call with metadata, headers and trailers', async () => {
    const md = new grpc.Metadata();
    md.set('x-tag', 'abc');
    let headers = new grpc.Metadata();
    let trailers = new grpc.Metadata();
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const call = client.makeUnaryRequest(service.unary.path, identity, identity, Buffer.from('hi'), md, (err, r) =>
        err === null && r !== undefined ? resolve(r) : reject(err ?? new Error('no reply')),
      );
      call.on('metadata', (m: grpc.Metadata) => (headers = m));
      call.on('status', (s: grpc.StatusObject) => (trailers = s.metadata));
    });
    assert.equal(reply.toString(), 'echo:hi');
    assert.deepEqual(headers.get('x-echo-tag'), ['abc']);
    assert.deepEqual(trailers.get('x-trailer'), ['t']);
    assert.deepEqual(trailers.get('x-multi'), ['1, 2']);
  });

  test('an error status with a message needing percent-encoding (Trailers-Only)', async () => {
    const err = await new Promise<grpc.ServiceError>((resolve) =>
      client.makeUnaryRequest(service.unary.path, identity, identity, Buffer.from('fail'), (e) => resolve(e as grpc.ServiceError)),
    );
    assert.equal(err.code, grpc.status.FAILED_PRECONDITION);
    assert.equal(err.details, '100% not ok\nsecond line ☕');
  });

  test('server streaming', async () => {
    const got: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = client.makeServerStreamRequest(service.serverStream.path, identity, identity, Buffer.from('go'));
      call.on('data', (d: Buffer) => got.push(d.toString()));
      call.on('end', resolve);
      call.on('error', reject);
    });
    assert.deepEqual(got, ['0', '1', '2', '3', '4']);
  });

  test("the client's deadline ends the call on both sides", async () => {
    const err = await new Promise<grpc.ServiceError>((resolve) =>
      client.makeUnaryRequest(service.slow.path, identity, identity, Buffer.from('x'), new grpc.Metadata(), { deadline: Date.now() + 200 }, (e) =>
        resolve(e as grpc.ServiceError),
      ),
    );
    assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED);
    await waitFor(() => aborted.length > 0);
  });

  test('a cancelled call aborts the server side', async () => {
    const before = aborted.length;
    const call = client.makeUnaryRequest(service.slow.path, identity, identity, Buffer.from('x'), () => {});
    await new Promise((r) => setTimeout(r, 100));
    call.cancel();
    await waitFor(() => aborted.length > before);
    assert.equal(aborted[aborted.length - 1], String(GrpcStatus.CANCELLED));
  });

  test('an unknown method is UNIMPLEMENTED', async () => {
    const err = await new Promise<grpc.ServiceError>((resolve) =>
      client.makeUnaryRequest('/test.Echo/Nope', identity, identity, Buffer.from('x'), (e) => resolve(e as grpc.ServiceError)),
    );
    assert.equal(err.code, grpc.status.UNIMPLEMENTED);
    assert.match(err.details, /unknown method Nope for service test\.Echo/);
  });
});

describe('Courier client → grpc-js server', () => {
  const server = new grpc.Server();
  const pool = new ChannelPool({ connectTimeoutMs: 2000 });
  let port = 0;

  before(async () => {
    server.addService(service, {
      unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        if (call.request.toString() === 'fail') {
          cb({ code: grpc.status.NOT_FOUND, details: 'nothing here: 100%' });
          return;
        }
        const trailer = new grpc.Metadata();
        trailer.set('x-trailer', 'yes');
        call.sendMetadata(call.metadata);
        cb(null, Buffer.concat([Buffer.from('echo:'), call.request]), trailer);
      },
      serverStream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        for (let i = 0; i < 3; i++) call.write(Buffer.from(String(i)));
        call.end();
      },
      bidi: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        call.on('data', (d: Buffer) => call.write(Buffer.concat([Buffer.from('<'), d, Buffer.from('>')])));
        call.on('end', () => call.end());
      },
      slow: () => {},
    });
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err === null ? resolve(p) : reject(err))),
    );
  });
  after(async () => {
    await pool.close();
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  });

  function run(path: string, messages: string[], options: { deadline?: number; signal?: AbortSignal } = {}, md: Record<string, string | string[]> = {}) {
    return new Promise<{ result: CallResult; messages: string[]; headers: Record<string, string | string[]> }>((resolve) => {
      const call = pool.get({ host: '127.0.0.1', port }).call(path, md, options);
      const got: string[] = [];
      let headers: Record<string, string | string[]> = {};
      call.setReader({ headers: (h) => (headers = h), message: (m) => got.push(m.toString()), end: (result) => resolve({ result, messages: got, headers }) });
      for (const m of messages) call.sendMessage(Buffer.from(m));
      call.end();
    });
  }

  test('unary: reply, custom headers (multi-valued) and trailers', async () => {
    const { result, messages, headers } = await run('/test.Echo/Unary', ['hi'], {}, { 'x-multi': ['a', 'b'] });
    assert.equal(result.code, GrpcStatus.OK);
    assert.deepEqual(messages, ['echo:hi']);
    assert.equal(headers['x-multi'], 'a, b');
    assert.equal(result.trailers['x-trailer'], 'yes');
    assert.equal(result.transport, undefined);
  });

  test('an error status and message from the server', async () => {
    const { result } = await run('/test.Echo/Unary', ['fail']);
    assert.equal(result.code, GrpcStatus.NOT_FOUND);
    assert.equal(result.message, 'nothing here: 100%');
    assert.equal(result.transport, undefined);
  });

  test('server streaming and bidirectional streaming', async () => {
    assert.deepEqual((await run('/test.Echo/ServerStream', ['x'])).messages, ['0', '1', '2']);
    assert.deepEqual((await run('/test.Echo/Bidi', ['a', 'b', 'c'])).messages, ['<a>', '<b>', '<c>']);
  });

  test('deadline and cancellation', async () => {
    const late = await run('/test.Echo/Slow', ['x'], { deadline: Date.now() + 150 });
    assert.equal(late.result.code, GrpcStatus.DEADLINE_EXCEEDED);
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 100);
    const cancelled = await run('/test.Echo/Slow', ['x'], { signal: abort.signal });
    assert.equal(cancelled.result.code, GrpcStatus.CANCELLED);
  });

  test('an unknown method is UNIMPLEMENTED', async () => {
    assert.equal((await run('/test.Echo/Missing', ['x'])).result.code, GrpcStatus.UNIMPLEMENTED);
  });
});

async function waitFor(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 10));
  }
}
