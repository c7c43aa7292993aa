// The official Dapr SDK for JavaScript over gRPC, unchanged, against Courier: @dapr/dapr 3.18 (connect-es
// transport, `application/grpc+proto`) and 3.6.1 (grpc-js transport, `application/grpc`), as gRPC
// clients and as gRPC apps behind `--app-protocol grpc` (S02, S08, S39, S43).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import { CommunicationProtocolEnum, DaprClient, DaprServer, HttpMethod, LogLevel } from '@dapr/dapr';
import { TestEnv } from '../framework/env.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { send } from '../framework/http-client.js';
import { daprClient, EchoClientCtor, invokeService, startGrpcApp, type EchoClient } from '../framework/grpc-apps.js';
import { freePort } from '../framework/ports.js';
import { HttpVerb } from '../../src/proto/index.js';
import type * as Sdk361 from 'dapr-sdk-361';

// CommonJS, loaded as Node loads it for a CommonJS app.
const sdk361 = createRequire(import.meta.url)('dapr-sdk-361') as typeof Sdk361;
const logger = { level: LogLevel.Error };

describe('@dapr/dapr 3.18 gRPC client and server', () => {
  const env = new TestEnv();
  const appId = 'test-suite-grpc-server';
  let server: DaprServer;
  let sidecar: SidecarProcess;
  let caller: SidecarProcess;
  let client: DaprClient;
  let remoteClient: DaprClient;
  const calls: Record<string, number> = {};
  const count = (name: string): void => void (calls[name] = (calls[name] ?? 0) + 1);

  before(async () => {
    const appPort = await freePort();
    const sidecarGrpcPort = await freePort();
    server = new DaprServer({
      serverHost: '127.0.0.1',
      serverPort: String(appPort),
      communicationProtocol: CommunicationProtocolEnum.GRPC,
      maxBodySizeMb: 10,
      logger,
      clientOptions: { daprHost: '127.0.0.1', daprPort: String(sidecarGrpcPort), communicationProtocol: CommunicationProtocolEnum.GRPC, logger },
    });
    await server.invoker.listen('hello-world', () => (count('get'), Promise.resolve({ hello: 'world' })), { method: HttpMethod.GET });
    await server.invoker.listen(
      'hello-world',
      (data) => {
        count('post');
        assert.equal(data.metadata?.contentType, 'application/json');
        return Promise.resolve(JSON.parse(data.body as string) as unknown);
      },
      { method: HttpMethod.POST },
    );
    await server.invoker.listen('hello-world-headers', (data) => Promise.resolve({ receivedHeaders: data.headers ?? null }), { method: HttpMethod.GET });
    await server.invoker.listen('test-invoker', () => (count('large'), Promise.resolve({ ok: true })), { method: HttpMethod.POST });
    const started = server.start();
    sidecar = await startSidecar(env, {
      appId,
      appPort,
      args: ['--app-protocol', 'grpc', '--max-body-size', '10Mi', '--dapr-grpc-port', String(sidecarGrpcPort)],
    });
    await started;
    client = new DaprClient({ daprHost: '127.0.0.1', daprPort: String(sidecar.grpcPort), communicationProtocol: CommunicationProtocolEnum.GRPC, maxBodySizeMb: 10, logger });
    caller = await startSidecar(env, { appId: 'sdk-grpc-caller', args: ['--max-body-size', '10Mi'] });
    remoteClient = new DaprClient({ daprHost: '127.0.0.1', daprPort: String(caller.grpcPort), communicationProtocol: CommunicationProtocolEnum.GRPC, maxBodySizeMb: 10, logger });
  });
  after(async () => {
    await client?.stop();
    await remoteClient?.stop();
    // The sidecars first: the SDK's HTTP/2 server waits for open connections (its sidecar's) to close.
    await env.close();
    await server?.stop();
  });

  test('S02: the client starts against Courier’s gRPC API, is healthy, and metadata get/set work', async () => {
    await client.start();
    assert.equal(await client.health.isHealthy(), true);
    assert.equal((await client.metadata.get()).id, appId);
    await client.metadata.set('testKey', 'Hello World');
    assert.equal((await client.metadata.get()).extended.testKey, 'Hello World');
  });

  for (const [label, getClient] of [
    ['self-invocation', () => client],
    ['through two sidecars', () => remoteClient],
  ] as const) {
    test(`S08: GET and POST hello-world (${label})`, async () => {
      const before = { get: calls.get ?? 0, post: calls.post ?? 0 };
      assert.deepEqual(await getClient().invoker.invoke(appId, 'hello-world', HttpMethod.GET), { hello: 'world' });
      assert.deepEqual(await getClient().invoker.invoke(appId, 'hello-world', HttpMethod.POST, { hello: 'world' }), { hello: 'world' });
      assert.deepEqual({ get: calls.get, post: calls.post }, { get: before.get + 1, post: before.post + 1 });
    });

    test(`a gRPC app gets no headers from the SDK, as its e2e suite expects (${label})`, async () => {
      assert.deepEqual(await getClient().invoker.invoke(appId, 'hello-world-headers', HttpMethod.GET), { receivedHeaders: null });
    });

    test(`a 5 MiB POST reaches the app once; 11 MiB fails in the client and never reaches it (${label})`, async () => {
      const before = calls.large ?? 0;
      await getClient().invoker.invoke(appId, 'test-invoker', HttpMethod.POST, { blob: 'x'.repeat(5 * 1024 * 1024) });
      assert.equal(calls.large, before + 1);
      await assert.rejects(getClient().invoker.invoke(appId, 'test-invoker', HttpMethod.POST, { blob: 'x'.repeat(11 * 1024 * 1024) }));
      assert.equal(calls.large, before + 1);
    });
  }

  test('S28/S43: an HTTP caller reaches the SDK’s gRPC app; an unregistered method answers 200 with an empty body', async () => {
    const res = await send(caller.httpPort, { method: 'POST', path: `/v1.0/invoke/${appId}/method/hello-world?x=1`, headers: { 'content-type': 'application/json' }, body: '{"hello":"http"}' });
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.text), { hello: 'http' });
    assert.equal(res.headers['content-type'], 'application/json');
    const unregistered = await send(caller.httpPort, { method: 'GET', path: `/v1.0/invoke/${appId}/method/nothing-here` });
    assert.equal(unregistered.status, 200);
    assert.equal(unregistered.text, '');
  });

  test('DAPR_API_TOKEN: a client with the token is served, one without it is refused', async () => {
    const guarded = await startSidecar(env, { appId: 'sdk-guarded', env: { DAPR_API_TOKEN: 'test' } });
    const good = new DaprClient({ daprHost: '127.0.0.1', daprPort: String(guarded.grpcPort), communicationProtocol: CommunicationProtocolEnum.GRPC, daprApiToken: 'test', logger });
    try {
      assert.equal((await good.metadata.get()).id, 'sdk-guarded');
    } finally {
      await good.stop();
    }
    const raw = daprClient(guarded.grpcPort);
    try {
      const err = await new Promise<grpc.ServiceError | null>((resolve) => raw.GetMetadata({}, new grpc.Metadata(), (e) => resolve(e)));
      assert.equal(err?.code, grpc.status.UNAUTHENTICATED);
      assert.match(err?.details ?? '', /api token/);
    } finally {
      raw.close();
    }
  });

  test('Shutdown over gRPC stops the sidecar gracefully', async () => {
    const doomed = await startSidecar(env, { appId: 'sdk-doomed' });
    const c = new DaprClient({ daprHost: '127.0.0.1', daprPort: String(doomed.grpcPort), communicationProtocol: CommunicationProtocolEnum.GRPC, logger });
    try {
      await c.sidecar.shutdown();
    } finally {
      await c.stop();
    }
    assert.equal(await doomed.exited(), 0);
  });
});

describe('@dapr/dapr 3.6.1 (grpc-js) client, server and proxy', () => {
  const env = new TestEnv();
  const appId = 'sdk361-server';
  let server: InstanceType<typeof sdk361.DaprServer>;
  let client: InstanceType<typeof sdk361.DaprClient>;
  let caller: SidecarProcess;
  const savedAppId = process.env.APP_ID;

  before(async () => {
    const appPort = await freePort();
    const sidecarGrpcPort = await freePort();
    server = new sdk361.DaprServer({
      serverHost: '127.0.0.1',
      serverPort: String(appPort),
      communicationProtocol: sdk361.CommunicationProtocolEnum.GRPC,
      logger,
      clientOptions: { daprHost: '127.0.0.1', daprPort: String(sidecarGrpcPort), communicationProtocol: sdk361.CommunicationProtocolEnum.GRPC, logger },
    });
    await server.invoker.listen('hello-world', (data) => Promise.resolve({ hello: 'world', body: data.body ?? null }), { method: sdk361.HttpMethod.POST });
    await server.invoker.listen('hello-world', () => Promise.resolve({ hello: 'world' }), { method: sdk361.HttpMethod.GET });
    const started = server.start();
    await startSidecar(env, { appId, appPort, args: ['--app-protocol', 'grpc', '--dapr-grpc-port', String(sidecarGrpcPort)] });
    await started;
    caller = await startSidecar(env, { appId: 'sdk361-caller' });
    client = new sdk361.DaprClient({ daprHost: '127.0.0.1', daprPort: String(caller.grpcPort), communicationProtocol: sdk361.CommunicationProtocolEnum.GRPC, logger });
  });
  after(async () => {
    if (savedAppId === undefined) delete process.env.APP_ID;
    else process.env.APP_ID = savedAppId;
    await client?.stop();
    await env.close();
    await server?.stop();
  });

  test('S02/S08: the grpc-js client gets metadata and calls the grpc-js app through two sidecars', async () => {
    assert.equal((await client.metadata.get()).id, 'sdk361-caller');
    assert.deepEqual(await client.invoker.invoke(appId, 'hello-world', sdk361.HttpMethod.GET), { hello: 'world' });
    assert.deepEqual(await client.invoker.invoke(appId, 'hello-world', sdk361.HttpMethod.POST, { hi: 1 }), { hello: 'world', body: '{"hi":1}' });
  });

  test('S43: the 3.6.1 app never answers an unregistered method; the caller’s deadline ends it and both sidecars stay well', async () => {
    const raw = daprClient(caller.grpcPort);
    try {
      const started = Date.now();
      const { err } = await invokeService(raw, { id: appId, message: { method: 'unregistered', httpExtension: { verb: HttpVerb.GET } } }, new grpc.Metadata(), { deadline: Date.now() + 700 });
      assert.equal(err?.code, grpc.status.DEADLINE_EXCEEDED);
      assert.ok(Date.now() - started < 3000, `ended after ${Date.now() - started} ms`);
      for (let i = 0; i < 20; i++) assert.deepEqual(await client.invoker.invoke(appId, 'hello-world', sdk361.HttpMethod.GET), { hello: 'world' });
    } finally {
      raw.close();
    }
  });

  test('S39: client.proxy with APP_ID reaches the app’s own gRPC service through two sidecars', async () => {
    const echoApp = await startGrpcApp(env);
    await startSidecar(env, { appId: 'proxied-echo', appPort: echoApp.port, waitForApp: true, args: ['--app-protocol', 'grpc'] });
    process.env.APP_ID = 'proxied-echo';
    const echo = (await client.proxy.create(EchoClientCtor)) as unknown as EchoClient;
    try {
      const reply = await new Promise<Buffer>((resolve, reject) => echo.Unary(Buffer.from('via 3.6.1'), new grpc.Metadata(), {}, (err, res) => (err ? reject(err) : resolve(res ?? Buffer.alloc(0)))));
      assert.equal(reply.toString(), 'via 3.6.1');
      const seen = echoApp.seen.at(-1);
      assert.deepEqual(seen?.metadata['dapr-caller-app-id'], ['sdk361-caller']);
      assert.deepEqual(seen?.metadata['dapr-callee-app-id'], ['proxied-echo']);
      assert.equal(seen?.metadata['dapr-app-id'], undefined);
    } finally {
      echo.close();
    }
  });
});
