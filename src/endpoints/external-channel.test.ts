import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CourierError } from '../errors/index.js';
import { externalUrlTarget } from '../invoke/target.js';
import type { ExternalTarget, InvokeRequest, ResponseHead, ResponseSink } from '../invoke/types.js';
import { silentLogger } from '../observability/logging/index.js';
import { ExternalChannel, externalFailure, type ExternalChannelOptions } from './external-channel.js';

interface Outcome {
  head?: ResponseHead;
  body: string;
  error?: CourierError;
}

/** An HTTP server on 127.0.0.1 that answers with `handle`; its open sockets are counted. */
async function server(t: TestContext, handle: (res: ServerResponse, url: string) => void): Promise<{ url: string; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const s: Server = createServer((req, res) => {
    req.resume();
    handle(res, req.url ?? '');
  });
  s.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, sockets };
}

function channel(t: TestContext, options: Partial<ExternalChannelOptions> = {}): ExternalChannel {
  const c = new ExternalChannel({ endpoints: [], maxConcurrency: -1, logger: silentLogger(), ...options });
  t.after(() => c.close());
  return c;
}

function call(c: ExternalChannel, target: ExternalTarget, method = 'm', signal = new AbortController().signal): Promise<Outcome> {
  return new Promise((resolve) => {
    const out: Outcome = { body: '' };
    const sink: ResponseSink = {
      head: (head) => (out.head = head),
      data: (chunk) => (out.body += chunk.toString()),
      end: () => resolve(out),
      error: (error) => resolve({ ...out, error }),
    };
    const request: InvokeRequest<ExternalTarget> = {
      target,
      caller: { appId: 'a', namespace: 'default' },
      method,
      verb: 'GET',
      query: '',
      contentType: '',
      metadata: {},
      body: null,
      contentLength: undefined,
      signal,
      clientAddress: '127.0.0.1',
    };
    c.invoke(request, sink);
  });
}

test('URL targets: one pool per origin, at most maxUrlPools of them, and unused pools are closed', async (t) => {
  const servers = await Promise.all([0, 1, 2].map(() => server(t, (res, url) => res.end(url))));
  const c = channel(t, { maxUrlPools: 2, urlPoolIdleMs: 150 });
  for (const s of servers) assert.equal((await call(c, externalUrlTarget(s.url), 'hello')).body, '/hello');
  assert.equal(c.urlPoolCount, 2, 'the least recently used origin lost its pool');
  const deadline = Date.now() + 5000;
  while ((servers[0]?.sockets.size ?? 0) > 0 && Date.now() < deadline) await sleep(10);
  assert.equal(servers[0]?.sockets.size, 0, "the evicted pool's connection is closed");
  while (c.urlPoolCount > 0 && Date.now() < deadline) await sleep(20);
  assert.equal(c.urlPoolCount, 0, 'idle pools are closed');
  while (servers.some((s) => s.sockets.size > 0) && Date.now() < deadline) await sleep(20);
  assert.deepEqual(servers.map((s) => s.sockets.size), [0, 0, 0]);
  assert.equal((await call(c, externalUrlTarget(servers[1]?.url ?? ''), 'again')).body, '/again', 'a closed pool is made again on use');
});

test('--app-max-concurrency: a call to the same destination waits until the response before it has ended', async (t) => {
  const held: ServerResponse[] = [];
  let peak = 0;
  const s = await server(t, (res) => {
    held.push(res);
    peak = Math.max(peak, held.length);
    res.write('started ');
  });
  const target = externalUrlTarget(s.url);
  const c = channel(t, { maxConcurrency: 1 });
  const calls = [1, 2, 3, 4].map(() => call(c, target));
  for (let i = 0; i < calls.length; i++) {
    const deadline = Date.now() + 5000;
    while (held.length === 0 && Date.now() < deadline) await sleep(5);
    held.shift()?.end('done');
  }
  for (const outcome of await Promise.all(calls)) assert.equal(outcome.body, 'started done');
  assert.equal(peak, 1, 'never more than one call at the service');
});

test('failures are described for the user and marked with the retry safety the built-in rules use', () => {
  const describe = externalFailure('https://api.example.com', 'set spec.clientTLS.rootCA', true);
  const error = (code: string, message: string, extra: object = {}): Error => Object.assign(new Error(message), { code }, extra);
  const refused = describe(error('ECONNREFUSED', 'connect ECONNREFUSED 1.2.3.4:443'), true);
  assert.equal(refused.retry, 'safe');
  assert.match(refused.message, /^cannot connect to https:\/\/api\.example\.com: connect ECONNREFUSED/);
  const untrusted = describe(error('SELF_SIGNED_CERT_IN_CHAIN', 'self-signed certificate in certificate chain'), true);
  assert.equal(untrusted.retry, undefined);
  assert.match(untrusted.message, /is not trusted: self-signed certificate in certificate chain \(SELF_SIGNED_CERT_IN_CHAIN\); set spec\.clientTLS\.rootCA$/);
  const alert = describe(
    error('ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', '80:error:0A000412:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate:../deps/openssl/ssl/record/rec_layer_s3.c:1601:SSL alert number 42\n'),
    true,
  );
  assert.equal(alert.message, 'https://api.example.com refused the client certificate: TLS: sslv3 alert bad certificate (ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE)');
  const reset = describe(error('UND_ERR_SOCKET', 'other side closed', { socket: { bytesRead: 120 } }), true);
  assert.equal(reset.retry, 'idempotent');
  assert.match(reset.message, /closed the connection before answering/);
  const fresh = describe(error('UND_ERR_SOCKET', 'other side closed', { socket: { bytesRead: 0 } }), true);
  assert.match(fresh.message, /closed a new connection without answering \(it may not accept the client certificate of spec\.clientTLS\)/);
  assert.equal(describe(error('UND_ERR_SOCKET', 'other side closed'), false).retry, undefined, 'nothing is retried once the response began');
});
