// The official Dapr SDK for JavaScript (@dapr/dapr 3.18, HTTP) against Courier, unchanged:
// scenarios S01, S04, S05, S06, S07, S09 and S17, through one sidecar (self-invocation) and two.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CommunicationProtocolEnum, DaprClient, DaprServer, HttpMethod, LogLevel } from '@dapr/dapr';
import { TestEnv } from '../framework/env.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { freePort } from '../framework/ports.js';

const logger = { level: LogLevel.Error };

describe('@dapr/dapr HTTP client and server', () => {
  const env = new TestEnv();
  let server: DaprServer;
  let serverSidecar: SidecarProcess;
  let callerSidecar: SidecarProcess;
  let client: DaprClient;
  let remoteClient: DaprClient;
  const calls: Record<string, number> = {};
  const appId = 'test-suite-http-server';

  before(async () => {
    const appPort = await freePort();
    const sidecarPort = await freePort();
    server = new DaprServer({
      serverHost: '127.0.0.1',
      serverPort: String(appPort),
      communicationProtocol: CommunicationProtocolEnum.HTTP,
      maxBodySizeMb: 10,
      logger,
      clientOptions: { daprHost: '127.0.0.1', daprPort: String(sidecarPort), communicationProtocol: CommunicationProtocolEnum.HTTP, logger },
    });
    const count = (name: string): void => void (calls[name] = (calls[name] ?? 0) + 1);
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
    await server.invoker.listen('hello-world-headers', (data) => Promise.resolve(data.headers), { method: HttpMethod.GET });
    await server.invoker.listen('invoke-large-payload-1', () => (count('large1'), Promise.resolve({ ok: true })), { method: HttpMethod.POST });
    await server.invoker.listen('invoke-large-payload-2', () => (count('large2'), Promise.resolve({ ok: true })), { method: HttpMethod.POST });
    // The SDK's app listens first, then waits for its sidecar (polling /v1.0/metadata), as in its e2e suite.
    const serverStarted = server.start();
    serverSidecar = await startSidecar(env, { appId, appPort, args: ['--max-body-size', '20Mi', '--dapr-http-port', String(sidecarPort)] });
    await serverStarted;
    client = new DaprClient({ daprHost: '127.0.0.1', daprPort: String(serverSidecar.httpPort), communicationProtocol: CommunicationProtocolEnum.HTTP, maxBodySizeMb: 20, logger });
    callerSidecar = await startSidecar(env, { appId: 'sdk-caller', args: ['--max-body-size', '20Mi'] });
    remoteClient = new DaprClient({ daprHost: '127.0.0.1', daprPort: String(callerSidecar.httpPort), communicationProtocol: CommunicationProtocolEnum.HTTP, maxBodySizeMb: 20, logger });
  });
  after(async () => {
    await client?.stop();
    await remoteClient?.stop();
    await server?.stop();
    await env.close();
  });

  test('S01: the client starts against Courier (metadata is never empty) and reports it healthy', async () => {
    await client.start();
    assert.equal(await client.health.isHealthy(), true);
    const metadata = await client.metadata.get();
    assert.equal(metadata.id, appId);
  });

  test('S04: metadata set and get', async () => {
    await client.metadata.set('testKey', 'Hello World');
    const metadata = await client.metadata.get();
    assert.equal(metadata.extended.testKey, 'Hello World');
  });

  for (const [label, getClient] of [
    ['self-invocation', () => client],
    ['through two sidecars', () => remoteClient],
  ] as const) {
    test(`S05: GET hello-world (${label})`, async () => {
      const before = calls.get ?? 0;
      assert.deepEqual(await getClient().invoker.invoke(appId, 'hello-world', HttpMethod.GET), { hello: 'world' });
      assert.equal(calls.get, before + 1);
    });

    test(`S06: POST hello-world with a JSON body (${label})`, async () => {
      assert.deepEqual(await getClient().invoker.invoke(appId, 'hello-world', HttpMethod.POST, { hello: 'world' }), { hello: 'world' });
    });

    test(`S07: custom headers reach the app (${label})`, async () => {
      const headers = (await getClient().invoker.invoke(appId, 'hello-world-headers', HttpMethod.GET, undefined, {
        headers: { 'x-foo': 'bar-baz' },
      })) as Record<string, string>;
      assert.equal(headers['x-foo'], 'bar-baz');
      assert.equal(headers['dapr-caller-app-id'], label === 'self-invocation' ? appId : 'sdk-caller');
    });

    test(`S09: a 5 MiB body passes; 11 MiB is refused by the app's 10 MB limit (${label})`, async () => {
      const before1 = calls.large1 ?? 0;
      await getClient().invoker.invoke(appId, 'invoke-large-payload-1', HttpMethod.POST, new Uint8Array(5 * 1024 * 1024));
      assert.equal(calls.large1, before1 + 1);
      const before2 = calls.large2 ?? 0;
      await assert.rejects(getClient().invoker.invoke(appId, 'invoke-large-payload-2', HttpMethod.POST, new Uint8Array(11 * 1024 * 1024)), /413/);
      assert.equal(calls.large2 ?? 0, before2, 'handler not called');
    });

    test(`S17: an unknown method makes the client throw with status 404 (${label})`, async () => {
      await assert.rejects(getClient().invoker.invoke(appId, 'no-such-method', HttpMethod.GET), /"status":404/);
    });
  }
});

