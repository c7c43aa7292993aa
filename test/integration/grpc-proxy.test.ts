// Transparent gRPC proxying (S39): a grpc-js client calls its own service `courier.test.Echo` on
// sidecar A's gRPC port with `dapr-app-id`; A relays it to sidecar B's internal port and B to its
// gRPC app, frame by frame, for all four call kinds, with metadata, errors, deadlines, cancellation,
// flow control and size limits kept.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { TestEnv } from '../framework/env.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { echoClient, echoUnary, md, startGrpcApp, until, type EchoClient, type GrpcTestApp } from '../framework/grpc-apps.js';
import { rpcStatusCodec } from '../../src/proto/index.js';

const LIMITS = { 'grpc.max_send_message_length': 8 * 1024 * 1024, 'grpc.max_receive_message_length': 8 * 1024 * 1024 };

function failure(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  return promise.then(
    () => assert.fail('the call succeeded'),
    (err: unknown) => err as grpc.ServiceError,
  );
}

describe('gRPC proxy mode', () => {
  const env = new TestEnv();
  let app: GrpcTestApp;
  let front: SidecarProcess;
  let echo: SidecarProcess;
  let client: EchoClient;
  const to = (id = 'echo', extra: Record<string, string | string[]> = {}): grpc.Metadata => md({ 'dapr-app-id': id, ...extra });

  before(async () => {
    app = await startGrpcApp(env, LIMITS);
    echo = await startSidecar(env, {
      appId: 'echo',
      appPort: app.port,
      waitForApp: true,
      args: ['--app-protocol', 'grpc', '--max-body-size', '6Mi'],
      env: { APP_API_TOKEN: 'app-secret' },
    });
    front = await startSidecar(env, { appId: 'front', args: ['--max-body-size', '6Mi'] });
    client = echoClient(front.grpcPort, LIMITS);
  });
  after(async () => {
    client?.close();
    await env.close();
  });

  test('unary: the app gets the call without dapr-app-id, with caller and callee ids, the app token and the caller’s metadata', async () => {
    const reply = await echoUnary(client, Buffer.from('hello'), to('echo', { 'x-custom': 'c', 'dapr-api-token': 'callers-own', 'dapr-caller-app-id': 'spoofed' }));
    assert.equal(reply.toString(), 'hello');
    const seen = app.seen.at(-1);
    assert.equal(seen?.method, 'Unary');
    assert.equal(seen?.metadata['dapr-app-id'], undefined);
    assert.deepEqual(seen?.metadata['dapr-caller-app-id'], ['front']);
    assert.deepEqual(seen?.metadata['dapr-callee-app-id'], ['echo']);
    assert.deepEqual(seen?.metadata['x-custom'], ['c']);
    assert.deepEqual(seen?.metadata['dapr-api-token'], ['app-secret']);
    // `<id>.<namespace>` names the same app.
    assert.equal((await echoUnary(client, Buffer.from('ns'), to('echo.default'))).toString(), 'ns');
    // And through the callee's own sidecar (the local path).
    const local = echoClient(echo.grpcPort);
    try {
      assert.equal((await echoUnary(local, Buffer.from('self'), to('echo'))).toString(), 'self');
      assert.deepEqual(app.seen.at(-1)?.metadata['dapr-caller-app-id'], ['echo']);
    } finally {
      local.close();
    }
  });

  test('server streaming: 100 messages arrive in order', async () => {
    app.echo.ServerStream = (call) => {
      for (let i = 0; i < 100; i++) call.write(Buffer.from(`m${i}`));
      call.end();
    };
    const got: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = client.ServerStream(Buffer.from('go'), to());
      call.on('data', (b: Buffer) => got.push(b.toString()));
      call.on('error', reject);
      call.on('end', resolve);
    });
    assert.deepEqual(got, Array.from({ length: 100 }, (_, i) => `m${i}`));
  });

  test('client streaming and bidirectional streaming keep every message in order', async () => {
    const joined = await new Promise<Buffer>((resolve, reject) => {
      const call = client.ClientStream(to(), {}, (err, res) => (err ? reject(err) : resolve(res ?? Buffer.alloc(0))));
      for (let i = 0; i < 50; i++) call.write(Buffer.from(`${i},`));
      call.end();
    });
    assert.equal(joined.toString(), Array.from({ length: 50 }, (_, i) => `${i},`).join(''));

    const echoed: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = client.Bidi(to());
      let sent = 0;
      call.on('data', (b: Buffer) => {
        echoed.push(b.toString());
        if (++sent < 20) call.write(Buffer.from(`ping ${sent}`));
        else call.end();
      });
      call.on('error', reject);
      call.on('end', resolve);
      call.write(Buffer.from('ping 0'));
    });
    assert.deepEqual(echoed, Array.from({ length: 20 }, (_, i) => `ping ${i}`));
  });

  test('the app’s headers, trailers and error status with details reach the client unchanged', async () => {
    const details = Buffer.from(rpcStatusCodec.encode({ code: grpc.status.FAILED_PRECONDITION, message: 'not now', details: [{ typeUrl: 'type.example.com/x', value: Buffer.from([1, 2]) }] }));
    app.echo.Unary = (call, cb) => {
      call.sendMetadata(md({ 'x-header': 'h' }));
      cb({ code: grpc.status.FAILED_PRECONDITION, details: 'not now', metadata: (() => {
        const m = md({ 'x-trailer': 't' });
        m.set('grpc-status-details-bin', details);
        return m;
      })() });
    };
    let headers: grpc.Metadata | undefined;
    const err = await new Promise<grpc.ServiceError | null>((resolve) => {
      const call = client.Unary(Buffer.from('x'), to(), {}, (e) => resolve(e));
      call.on('metadata', (m: grpc.Metadata) => (headers = m));
    });
    delete app.echo.Unary;
    assert.equal(err?.code, grpc.status.FAILED_PRECONDITION);
    assert.equal(err?.details, 'not now');
    assert.deepEqual(headers?.get('x-header'), ['h']);
    assert.deepEqual(err?.metadata.get('x-trailer'), ['t']);
    assert.deepEqual(err?.metadata.get('grpc-status-details-bin'), [details]);
  });

  test('without dapr-app-id the call fails as Dapr’s does; an unknown app id fails instead of hanging', async () => {
    const missing = await failure(echoUnary(client, Buffer.from('x'), new grpc.Metadata()));
    assert.equal(missing.code, grpc.status.UNKNOWN);
    assert.equal(missing.details, 'failed to proxy request: required metadata dapr-callee-app-id or dapr-app-id not found');
    const unknown = await failure(echoUnary(client, Buffer.from('x'), to('nobody'), { deadline: Date.now() + 10_000 }));
    assert.notEqual(unknown.code, grpc.status.DEADLINE_EXCEEDED);
    assert.match(unknown.details, /nobody/);
    // Refused targets stay refused (the sidecar remembers only the targets it parsed), and a good one
    // named the same way after them still works.
    for (let i = 0; i < 2; i++) {
      const dotted = await failure(echoUnary(client, Buffer.from('x'), to('echo.ns.extra')));
      assert.equal(dotted.code, grpc.status.INTERNAL, 'ERR_DIRECT_INVOKE is Internal over gRPC');
      assert.equal(dotted.details, 'failed to invoke, id: echo.ns.extra, err: invalid app id echo.ns.extra');
      const url = await failure(echoUnary(client, Buffer.from('x'), to('http://127.0.0.1:1/')));
      assert.equal(url.code, grpc.status.INTERNAL);
      assert.match(url.details, /^failed to invoke, id: http:\/\/127\.0\.0\.1:1\/, err: an external URL is not an app id/);
    }
    assert.equal((await echoUnary(client, Buffer.from('ok'), to('echo'))).toString(), 'ok');
  });

  test('the caller’s deadline reaches the app and ends the call there; a cancelled stream is cancelled at the app', async () => {
    app.echo.Unary = () => {};
    const cancelledBefore = app.cancelled.length;
    const started = Date.now();
    const late = await failure(echoUnary(client, Buffer.from('x'), to(), { deadline: Date.now() + 500 }));
    delete app.echo.Unary;
    assert.equal(late.code, grpc.status.DEADLINE_EXCEEDED);
    assert.ok(Date.now() - started < 2000, `ended after ${Date.now() - started} ms`);
    await until(() => app.cancelled.length > cancelledBefore, 'the app to see the deadline');

    app.echo.Bidi = (call) => call.on('data', (b: Buffer) => call.write(b));
    const before = app.cancelled.length;
    const call = client.Bidi(to());
    call.on('error', () => {});
    await new Promise<void>((resolve) => {
      call.once('data', () => resolve());
      call.write(Buffer.from('first'));
    });
    call.cancel();
    await until(() => app.cancelled.length > before, 'the app to see the cancellation');
    delete app.echo.Bidi;
    assert.equal((await echoUnary(client, Buffer.from('after'), to())).toString(), 'after');
  });

  test('flow control holds end to end: a client that does not read holds the app’s writes back', async () => {
    const total = 400;
    const chunk = Buffer.alloc(64 * 1024, 'q');
    let blockedAt: number | undefined;
    app.echo.ServerStream = (call) => {
      let i = 0;
      const pump = (): void => {
        while (i < total) {
          i++;
          if (!call.write(chunk)) {
            blockedAt ??= i;
            call.once('drain', pump);
            return;
          }
        }
        call.end();
      };
      pump();
    };
    const call = client.ServerStream(Buffer.from('go'), to());
    let received = 0;
    call.pause();
    await until(() => blockedAt !== undefined, 'the app to be held back');
    assert.ok((blockedAt ?? total) < total / 2, `the app could write ${blockedAt} of ${total} messages (${((blockedAt ?? 0) * 64) / 1024} MiB) before being held back`);
    await new Promise<void>((resolve, reject) => {
      call.on('data', () => received++);
      call.on('error', reject);
      call.on('end', resolve);
      call.resume();
    });
    delete app.echo.ServerStream;
    assert.equal(received, total);
  });

  test('a 5 MiB message passes both ways with 6Mi limits and is RESOURCE_EXHAUSTED with the default 4Mi', async () => {
    const five = Buffer.alloc(5 * 1024 * 1024, 'f');
    const reply = await echoUnary(client, five, to());
    assert.equal(reply.length, five.length);
    const small = await startSidecar(env, { appId: 'small' });
    const limited = echoClient(small.grpcPort, LIMITS);
    try {
      const refused = await failure(echoUnary(limited, five, to()));
      assert.equal(refused.code, grpc.status.RESOURCE_EXHAUSTED);
    } finally {
      limited.close();
    }
  });

  test('the callee’s access-control policy applies to proxied calls with the full method as the operation', async () => {
    const config = join(env.home, 'deny.yaml');
    writeFileSync(config, 'apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: deny\nspec:\n  accessControl:\n    defaultAction: deny\n');
    const lockedApp = await startGrpcApp(env);
    await startSidecar(env, { appId: 'locked', appPort: lockedApp.port, waitForApp: true, args: ['--app-protocol', 'grpc', '--config', config] });
    const denied = await failure(echoUnary(client, Buffer.from('x'), to('locked')));
    assert.equal(denied.code, grpc.status.PERMISSION_DENIED);
    assert.match(denied.details, /\/courier\.test\.Echo\/Unary/);
    assert.equal(lockedApp.seen.length, 0, 'the app was not called');
  });
});
