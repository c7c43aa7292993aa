import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CourierError } from '../errors/index.js';
import { externalPath, externalUrlTarget, TargetResolver } from './target.js';
import type { ExternalTarget } from './types.js';

const endpoint: ExternalTarget = { kind: 'endpoint', id: 'orders', origin: 'https://api.example.com', basePath: '/v2' };
const resolver = new TargetResolver('prod', new Map([['orders', endpoint]]));

test('precedence: an endpoint name, then a URL, then an app id', () => {
  assert.equal(resolver.resolve('orders'), endpoint, 'the loaded endpoint object itself');
  assert.deepEqual(resolver.resolve('https://orders.example.com/base'), {
    kind: 'url',
    id: 'https://orders.example.com/base',
    origin: 'https://orders.example.com',
    basePath: '/base',
  });
  assert.deepEqual(resolver.resolve('billing'), { appId: 'billing', namespace: 'prod' });
  assert.deepEqual(resolver.resolve('billing.finance'), { appId: 'billing', namespace: 'finance' });
  assert.deepEqual(resolver.resolve('orders.prod'), { appId: 'orders', namespace: 'prod' }, 'only the exact name is an endpoint');
});

test('URL targets: any case of scheme and host, default ports dropped; credentials, queries and fragments refused', () => {
  assert.deepEqual(externalUrlTarget('HTTP://LocalHost:80'), { kind: 'url', id: 'HTTP://LocalHost:80', origin: 'http://localhost', basePath: '/' });
  assert.equal(externalUrlTarget('https://[::1]:8443/x/').origin, 'https://[::1]:8443');
  for (const [text, reason] of [
    ['http://user:secret@host', /user name or password/],
    ['http://host/a?b=c', /query or a fragment/],
    ['http://host/#top', /query or a fragment/],
    ['http://', /not a valid URL/],
  ] as const) {
    assert.throws(
      () => resolver.resolve(text),
      (err: unknown) => err instanceof CourierError && err.code === 'ERR_DIRECT_INVOKE' && reason.test(err.message) && err.message.startsWith(`failed to invoke, id: ${text}, err: invalid external URL: `),
      text,
    );
  }
});

test("the request path is Dapr's baseUrl + '/' + method + '?' + query, without a doubled slash", () => {
  const at = (basePath: string): ExternalTarget => ({ ...endpoint, basePath });
  assert.equal(externalPath(at('/'), '/orders/7', ''), '/orders/7');
  assert.equal(externalPath(at('/v2'), '/orders/7', 'a=1&b=2'), '/v2/orders/7?a=1&b=2');
  assert.equal(externalPath(at('/v2/'), '/orders', ''), '/v2/orders');
  assert.equal(externalPath(at('/v2'), '/', ''), '/v2', 'an empty method calls the base URL itself');
  assert.equal(externalPath(at('/'), '/', 'q=1'), '/?q=1');
});

test('a resolver gives the same answer for a target it has seen before, and keeps refusing a bad one', () => {
  const resolver = new TargetResolver('default');
  for (let i = 0; i < 2; i++) {
    assert.deepEqual(resolver.resolve('orders'), { appId: 'orders', namespace: 'default' });
    assert.deepEqual(resolver.resolve('orders.prod'), { appId: 'orders', namespace: 'prod' });
    assert.throws(() => resolver.resolve('a.b.c'), /invalid app id a\.b\.c/);
    assert.equal((resolver.resolve('http://127.0.0.1:8080/api') as { kind: string }).kind, 'url');
  }
});

test('app(): an app target only, as gRPC proxying names it; remembered once parsed, refusals every time', () => {
  const resolver = new TargetResolver('prod', new Map([['orders', endpoint]]));
  for (let i = 0; i < 2; i++) {
    assert.deepEqual(resolver.app('orders'), { appId: 'orders', namespace: 'prod' }, 'an endpoint name is an app id here');
    assert.deepEqual(resolver.app('billing.finance'), { appId: 'billing', namespace: 'finance' });
    assert.throws(() => resolver.app('a.b.c'), /invalid app id a\.b\.c/);
    assert.throws(() => resolver.app('https://orders.example.com'), /an external URL is not an app id/);
  }
  assert.equal(resolver.resolve('orders'), endpoint, 'resolve still gives the endpoint first');
  assert.equal(resolver.app('billing'), resolver.resolve('billing'), 'one remembered answer for both');
});
