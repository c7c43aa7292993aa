import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AsyncLocalStorage, AsyncResource, executionAsyncId } from 'node:async_hooks';
import { connect, createServer, type ClientHttp2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { installLeanAsyncBind } from './async-bind.js';

const store = new AsyncLocalStorage<string>();

test('Node defines the deprecated accessor that the lean bind leaves out (else there is nothing to replace)', () => {
  const bound = new AsyncResource('before').bind(() => undefined);
  assert.equal(typeof Object.getOwnPropertyDescriptor(bound, 'asyncResource')?.get, 'function');
  assert.equal(installLeanAsyncBind(), true);
  assert.equal(installLeanAsyncBind(), true);
  assert.equal(Object.getOwnPropertyDescriptor(new AsyncResource('after').bind(() => undefined), 'asyncResource'), undefined);
});

test('a bound function runs in the resource scope, with the bound this or the caller this, its arguments and its result', () => {
  installLeanAsyncBind();
  const resource = store.run('where it was made', () => new AsyncResource('check'));
  function probe(this: unknown, a: number, b: string): unknown[] {
    return [store.getStore(), executionAsyncId(), this, a, b];
  }
  const callerThis = { caller: true };
  const boundThis = { bound: true };
  const free = resource.bind(probe);
  // bind(fn, thisArg) as Node documents it; the type declarations know only bind(fn).
  const fixed = (resource.bind as unknown as (fn: typeof probe, thisArg: unknown) => typeof probe)(probe, boundThis);
  store.run('where it is called', () => {
    assert.deepEqual(free.call(callerThis, 1, 'x'), ['where it was made', resource.asyncId(), callerThis, 1, 'x']);
    assert.deepEqual(fixed.call(callerThis, 2, 'y'), ['where it was made', resource.asyncId(), boundThis, 2, 'y']);
    assert.equal(store.getStore(), 'where it is called');
  });
  // The static form goes through the same method.
  const viaStatic = store.run('static', () => AsyncResource.bind(() => store.getStore()));
  assert.equal(viaStatic(), 'static');
  assert.throws(() => resource.bind(42 as unknown as () => void), { code: 'ERR_INVALID_ARG_TYPE' });
  const thrown = resource.bind(() => {
    throw new Error('from inside');
  });
  assert.throws(() => thrown(), /from inside/);
});

test('with the lean bind, HTTP/2 requests queued while the session connects are still started and answered', async () => {
  installLeanAsyncBind();
  const server = createServer((req, res) => res.end(req.url));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  let client: ClientHttp2Session | undefined;
  try {
    client = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    const session = client;
    // Both requests are queued before the connection is up: Node starts them through bind.
    const answers = await Promise.all(
      ['/one', '/two'].map((path) =>
        store.run(`request ${path}`, () => {
          assert.equal(session.connecting, true);
          return new Promise<[string | undefined, string]>((resolve, reject) => {
            const req = session.request({ ':path': path });
            let body = '';
            let context: string | undefined;
            req.on('response', () => {
              context = store.getStore();
            });
            req.setEncoding('utf8');
            req.on('data', (chunk: string) => (body += chunk));
            req.on('end', () => resolve([context, body]));
            req.on('error', reject);
            req.end();
          });
        }),
      ),
    );
    assert.deepEqual(answers, [
      ['request /one', '/one'],
      ['request /two', '/two'],
    ]);
  } finally {
    client?.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
