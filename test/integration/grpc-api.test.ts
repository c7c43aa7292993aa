// Dapr's gRPC API and gRPC apps, with grpc-js clients and apps (S02, S26–S29, S35, S36, S43), and the
// HTTP ⇄ gRPC translation in all four directions: gRPC caller → HTTP app, HTTP caller → gRPC app,
// gRPC caller → gRPC app (and HTTP → HTTP, covered elsewhere).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { TestEnv } from '../framework/env.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { startApp, type TestApp } from '../framework/test-app.js';
import { send } from '../framework/http-client.js';
import { daprClient, invokeService, md, startGrpcApp, until, type DaprGrpcClient, type GrpcTestApp } from '../framework/grpc-apps.js';
import { ERROR_INFO_TYPE_URL, errorInfoCodec, HttpVerb, rpcStatusCodec } from '../../src/proto/index.js';

function statusDetails(err: grpc.ServiceError | null): { code?: number; message?: string; details?: { typeUrl?: string; value?: Uint8Array }[] } {
  const raw = err?.metadata.get('grpc-status-details-bin')[0];
  assert.ok(Buffer.isBuffer(raw), 'grpc-status-details-bin is present');
  return rpcStatusCodec.decode(raw);
}

describe('gRPC API and gRPC apps', () => {
  const env = new TestEnv();
  let httpApp: TestApp;
  let grpcApp: GrpcTestApp;
  let a: SidecarProcess;
  let client: DaprGrpcClient;

  before(async () => {
    httpApp = await startApp(env, (app) => {
      app.route('/echo', (req, res, body) => {
        res.writeHead(200, { 'Content-Type': req.headers['content-type'] ?? 'text/plain', 'X-Seen': `${req.method ?? ''} ${req.url ?? ''}` });
        res.end(body);
      });
      app.route('/fail', (req, res) => {
        const status = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('status'));
        res.writeHead(status, { 'Content-Type': 'text/plain' });
        res.end(`failure ${status}: ${'x'.repeat(100)}`);
      });
    });
    grpcApp = await startGrpcApp(env);
    await startSidecar(env, { appId: 'httpapp', appPort: httpApp.port, waitForApp: true });
    await startSidecar(env, { appId: 'grpcapp', appPort: grpcApp.port, waitForApp: true, args: ['--app-protocol', 'grpc'] });
    a = await startSidecar(env, { appId: 'caller' });
    client = daprClient(a.grpcPort);
  });
  after(async () => {
    client?.close();
    await env.close();
  });

  test('S02: GetMetadata over h2c with application/grpc answers the app id', async () => {
    const res = await new Promise<{ id?: string; runtimeVersion?: string }>((resolve, reject) =>
      client.GetMetadata({}, new grpc.Metadata(), (err, r) => (err ? reject(err) : resolve(r ?? {}))),
    );
    assert.equal(res.id, 'caller');
    assert.match(res.runtimeVersion ?? '', /^courier-/);
  });

  test('other Dapr methods are UNIMPLEMENTED', async () => {
    const err = await new Promise<grpc.ServiceError | null>((resolve) => client.GetState(Buffer.alloc(0), new grpc.Metadata(), (e) => resolve(e)));
    assert.equal(err?.code, grpc.status.UNIMPLEMENTED);
    assert.match(err?.details ?? '', /GetState/);
  });

  test('S26: InvokeService to an HTTP app carries verb, query, body and content type; the reply has dapr-http-status', async () => {
    for (const [verb, name] of [
      [HttpVerb.POST, 'POST'],
      [HttpVerb.GET, 'GET'],
      [HttpVerb.PUT, 'PUT'],
      [HttpVerb.DELETE, 'DELETE'],
    ] as const) {
      const { err, res, headers } = await invokeService(client, {
        id: 'httpapp',
        message: { method: 'echo', contentType: 'application/json', data: { value: Buffer.from('{"n":1}') }, httpExtension: { verb, querystring: 'a=1&b=2' } },
      });
      assert.equal(err, null, `${name}: ${err?.message ?? ''}`);
      assert.equal(Buffer.from(res?.data?.value ?? []).toString(), '{"n":1}');
      assert.equal(res?.contentType, 'application/json');
      assert.deepEqual(headers?.get('dapr-http-status'), ['200']);
      assert.deepEqual(headers?.get('x-seen'), [`${name} /echo?a=1&b=2`]);
    }
  });

  test('S27: HTTP app errors become gRPC statuses with an ErrorInfo; no verb or NONE is INVALID_ARGUMENT', async () => {
    for (const [status, code, text] of [
      [404, grpc.status.NOT_FOUND, 'Not Found'],
      [500, grpc.status.UNKNOWN, 'Internal Server Error'],
      [400, grpc.status.INTERNAL, 'Bad Request'],
      [503, grpc.status.UNAVAILABLE, 'Service Unavailable'],
    ] as const) {
      const { err, headers } = await invokeService(client, { id: 'httpapp', message: { method: 'fail', httpExtension: { verb: HttpVerb.GET, querystring: `status=${status}` } } });
      assert.equal(err?.code, code, `HTTP ${status}`);
      assert.equal(err?.details, text);
      assert.deepEqual(headers?.get('dapr-http-status'), [String(status)]);
      const details = statusDetails(err).details ?? [];
      assert.equal(details[0]?.typeUrl, ERROR_INFO_TYPE_URL);
      const info = errorInfoCodec.decode(details[0]?.value ?? new Uint8Array());
      assert.equal(info.reason, text);
      assert.equal(info.domain, 'dapr.io');
      assert.equal(info.metadata?.['http.code'], String(status));
      assert.equal(info.metadata?.['http.error_message'], `failure ${status}: ${'x'.repeat(100)}`.slice(0, 63));
    }
    const before = httpApp.seen.length;
    const missing = await invokeService(client, { id: 'httpapp', message: { method: 'echo' } });
    assert.equal(missing.err?.code, grpc.status.INVALID_ARGUMENT);
    assert.match(missing.err?.details ?? '', /missing HTTP extension field/);
    const none = await invokeService(client, { id: 'httpapp', message: { method: 'echo', httpExtension: { verb: HttpVerb.NONE } } });
    assert.equal(none.err?.code, grpc.status.INVALID_ARGUMENT);
    assert.match(none.err?.details ?? '', /invalid HTTP verb/);
    assert.equal(httpApp.seen.length, before, 'the app was not called');
  });

  test('S28: an HTTP caller reaches a gRPC app: OnInvoke gets method, data, content type, verb and query', async () => {
    grpcApp.onInvoke = (req, call, cb) => {
      call.sendMetadata(md({ 'x-from-app': ['one', 'two'] }));
      cb(null, { contentType: 'application/json', data: { value: Buffer.from(`{"got":${Buffer.from(req.data?.value ?? []).toString()}}`) } });
    };
    const res = await send(a.httpPort, {
      method: 'POST',
      path: '/v1.0/invoke/grpcapp/method/httpToGrpcTest?q=1',
      headers: { 'content-type': 'application/json', 'x-custom': 'c' },
      body: '{"a":1}',
    });
    assert.equal(res.status, 200);
    assert.equal(res.text, '{"got":{"a":1}}');
    assert.equal(res.headers['content-type'], 'application/json');
    assert.equal(res.headers['x-from-app'], 'one, two');
    const seen = grpcApp.seen.at(-1);
    assert.equal(seen?.request?.method, 'httpToGrpcTest');
    assert.equal(seen?.request?.contentType, 'application/json');
    assert.equal(seen?.request?.httpExtension?.verb, HttpVerb.POST);
    assert.equal(seen?.request?.httpExtension?.querystring, 'q=1');
    assert.equal(seen?.request?.data?.typeUrl ?? '', '');
    assert.deepEqual(seen?.metadata['dapr-content-type'], ['application/json']);
    assert.deepEqual(seen?.metadata['x-custom'], ['c']);
    assert.deepEqual(seen?.metadata['dapr-caller-app-id'], ['caller']);
    assert.deepEqual(seen?.metadata['dapr-callee-app-id'], ['grpcapp']);
  });

  test('S28: gRPC app errors reach an HTTP caller as the mapped status and the Status as JSON', async () => {
    for (const [code, http] of [
      [grpc.status.UNKNOWN, 500],
      [grpc.status.NOT_FOUND, 404],
      [grpc.status.INVALID_ARGUMENT, 400],
      [grpc.status.UNAVAILABLE, 503],
      [grpc.status.PERMISSION_DENIED, 403],
      [grpc.status.ABORTED, 409],
    ] as const) {
      grpcApp.onInvoke = (_req, _call, cb) => cb({ code, details: `app says ${code}` });
      const res = await send(a.httpPort, { method: 'GET', path: '/v1.0/invoke/grpcapp/method/x' });
      assert.equal(res.status, http, `gRPC ${code}`);
      assert.equal(res.headers['content-type'], 'application/json');
      assert.deepEqual(JSON.parse(res.text), { code, message: `app says ${code}` });
    }
  });

  test('S43: an empty InvokeResponse reaches an HTTP caller as 200 with an empty body', async () => {
    grpcApp.onInvoke = (_req, _call, cb) => cb(null, {});
    const res = await send(a.httpPort, { method: 'GET', path: '/v1.0/invoke/grpcapp/method/unregistered' });
    assert.equal(res.status, 200);
    assert.equal(res.text, '');
  });

  test('S29: gRPC caller → gRPC app: errors pass unchanged, type_url is kept both ways, 100 parallel calls succeed', async () => {
    grpcApp.onInvoke = (_req, _call, cb) => cb({ code: grpc.status.UNKNOWN, details: 'invalid method' });
    const failed = await invokeService(client, { id: 'grpcapp', message: { method: 'm', data: { value: Buffer.from('x') } } });
    assert.equal(failed.err?.code, grpc.status.UNKNOWN);
    assert.equal(failed.err?.details, 'invalid method');

    grpcApp.onInvoke = (req, _call, cb) =>
      cb(null, { contentType: 'application/x-protobuf', data: { typeUrl: 'mytype', value: Buffer.from(`${req.data?.typeUrl ?? ''}:${Buffer.from(req.data?.value ?? []).toString()}`) } });
    const typed = await invokeService(client, { id: 'grpcapp', message: { method: 'm', data: { typeUrl: 'pfm', value: Buffer.from('v') } } });
    assert.equal(typed.err, null);
    assert.equal(typed.res?.data?.typeUrl, 'mytype');
    assert.equal(Buffer.from(typed.res?.data?.value ?? []).toString(), 'pfm:v');
    assert.equal(grpcApp.seen.at(-1)?.request?.httpExtension ?? undefined, undefined, 'no http_extension was sent, none is invented');

    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => invokeService(client, { id: 'grpcapp', message: { method: 'm', data: { value: Buffer.from(String(i)) } } })),
    );
    results.forEach((r, i) => {
      assert.equal(r.err, null);
      assert.equal(Buffer.from(r.res?.data?.value ?? []).toString(), `:${i}`);
    });
  });

  test('S35/S36: multi-valued metadata reaches a gRPC app in order; its headers, trailers and trace headers reach the gRPC caller', async () => {
    grpcApp.onInvoke = (_req, call, cb) => {
      call.sendMetadata(md({ 'x-multi-out': ['1', '2'], traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }));
      cb(null, { data: { value: Buffer.from('ok') } }, md({ 'daprtest-trailer-1': 'one', 'daprtest-trailer-2': 'two' }));
    };
    const { err, headers, trailers } = await invokeService(
      client,
      { id: 'grpcapp', message: { method: 'm' } },
      md({ 'daprtest-multi': ["M'illumino", "d'immenso"] }),
    );
    assert.equal(err, null);
    // Both values, in order (grpc-js joins repeated fields it receives into one value with ", ").
    assert.deepEqual(grpcApp.seen.at(-1)?.metadata['daprtest-multi']?.join(', '), "M'illumino, d'immenso");
    assert.equal(headers?.get('x-multi-out').join(', '), '1, 2');
    assert.deepEqual(headers?.get('traceparent'), ['00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01']);
    assert.deepEqual(trailers?.get('daprtest-trailer-1'), ['one']);
    assert.deepEqual(trailers?.get('daprtest-trailer-2'), ['two']);
  });

  test('S43: a gRPC app that never answers costs the caller only its deadline, and the app sees the cancellation', async () => {
    grpcApp.onInvoke = () => {};
    const cancelledBefore = grpcApp.cancelled.length;
    const started = Date.now();
    const { err } = await invokeService(client, { id: 'grpcapp', message: { method: 'hang' } }, new grpc.Metadata(), { deadline: Date.now() + 500 });
    assert.equal(err?.code, grpc.status.DEADLINE_EXCEEDED);
    assert.ok(Date.now() - started < 3000, 'ended at the deadline');
    await until(() => grpcApp.cancelled.length > cancelledBefore, 'the app to see the call cancelled');
    // And over HTTP: the caller goes away; the sidecars cancel the call to the app.
    const before = grpcApp.cancelled.length;
    const seenBefore = grpcApp.seen.length;
    const controller = new AbortController();
    const pending = fetch(`http://127.0.0.1:${a.httpPort}/v1.0/invoke/grpcapp/method/hang`, { signal: controller.signal }).catch(() => undefined);
    await until(() => grpcApp.seen.length > seenBefore, 'the call to reach the app');
    controller.abort();
    await pending;
    await until(() => grpcApp.cancelled.length > before, 'the app to see the HTTP call cancelled');
    grpcApp.onInvoke = (_req, _call, cb) => cb(null, { data: { value: Buffer.from('still fine') } });
    const after = await invokeService(client, { id: 'grpcapp', message: { method: 'm' } });
    assert.equal(Buffer.from(after.res?.data?.value ?? []).toString(), 'still fine');
  });

  test('a gRPC app that restarts on the same port is called again without restarting its sidecar', async () => {
    const port = grpcApp.port;
    await grpcApp.close();
    const down = await invokeService(client, { id: 'grpcapp', message: { method: 'm' } });
    assert.notEqual(down.err, null, 'calls fail while the app is down');
    grpcApp = await startGrpcApp(env, {}, port);
    grpcApp.onInvoke = (_req, _call, cb) => cb(null, { data: { value: Buffer.from('back') } });
    let answer = '';
    for (let i = 0; i < 50 && answer !== 'back'; i++) {
      const r = await invokeService(client, { id: 'grpcapp', message: { method: 'm' } });
      answer = Buffer.from(r.res?.data?.value ?? []).toString();
      if (answer !== 'back') await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(answer, 'back');
  });
});

describe('gRPC API token and limits', () => {
  const env = new TestEnv();
  after(() => env.close());

  test('DAPR_API_TOKEN: missing and wrong tokens are UNAUTHENTICATED with Dapr’s messages; the right one passes', async () => {
    const sidecar = await startSidecar(env, { appId: 'guarded', env: { DAPR_API_TOKEN: 'sesame' } });
    const client = daprClient(sidecar.grpcPort);
    try {
      const get = (metadata: grpc.Metadata): Promise<grpc.ServiceError | null> => new Promise((resolve) => client.GetMetadata({}, metadata, (err) => resolve(err)));
      const missing = await get(new grpc.Metadata());
      assert.equal(missing?.code, grpc.status.UNAUTHENTICATED);
      assert.equal(missing?.details, 'missing api token in request metadata');
      const wrong = await get(md({ 'dapr-api-token': 'nope' }));
      assert.equal(wrong?.code, grpc.status.UNAUTHENTICATED);
      assert.equal(wrong?.details, 'authentication error: api token mismatch');
      assert.equal(await get(md({ 'dapr-api-token': 'sesame' })), null);
      const proxied = await invokeService(client, { id: 'x', message: { method: 'm' } });
      assert.equal(proxied.err?.code, grpc.status.UNAUTHENTICATED);
    } finally {
      client.close();
    }
  });

  test('--max-body-size is the message limit: 5 MiB passes with 6Mi and is RESOURCE_EXHAUSTED with the default', async () => {
    const app = await startApp(env, (a) => a.route('/size', (_req, res, body) => res.end(String(body.length))));
    await startSidecar(env, { appId: 'big', appPort: app.port, waitForApp: true, args: ['--max-body-size', '6Mi'] });
    const large = await startSidecar(env, { appId: 'large-caller', args: ['--max-body-size', '6Mi'] });
    const small = await startSidecar(env, { appId: 'small-caller' });
    const options = { 'grpc.max_send_message_length': 8 * 1024 * 1024, 'grpc.max_receive_message_length': 8 * 1024 * 1024 };
    const five = Buffer.alloc(5 * 1024 * 1024, 'z');
    const request = { id: 'big', message: { method: 'size', data: { value: five }, httpExtension: { verb: HttpVerb.POST } } };
    const ok = daprClient(large.grpcPort, options);
    const refused = daprClient(small.grpcPort, options);
    try {
      const passed = await invokeService(ok, request);
      assert.equal(passed.err, null);
      assert.equal(Buffer.from(passed.res?.data?.value ?? []).toString(), String(five.length));
      const failed = await invokeService(refused, request);
      assert.equal(failed.err?.code, grpc.status.RESOURCE_EXHAUSTED);
    } finally {
      ok.close();
      refused.close();
    }
  });
});
