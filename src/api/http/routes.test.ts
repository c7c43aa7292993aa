import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchRoute } from './routes.js';
import { findTargetAndMethod } from './invoke-target.js';

const NONE = { appId: undefined, authorization: undefined };

test('API routes tolerate repeated slashes and fall back to invocation for other verbs', () => {
  assert.deepEqual(matchRoute('GET', '/v1.0/healthz'), { kind: 'healthz' });
  assert.deepEqual(matchRoute('GET', '/v1.0/healthz/outbound'), { kind: 'healthz-outbound' });
  assert.deepEqual(matchRoute('DELETE', '/v1.0/healthz'), { kind: 'fallback' });
  assert.deepEqual(matchRoute('GET', '/v1.0/metadata'), { kind: 'metadata-get' });
  assert.deepEqual(matchRoute('PUT', '/v1.0/metadata/cliPID'), { kind: 'metadata-put', key: 'cliPID' });
  assert.deepEqual(matchRoute('POST', '/v1.0/shutdown'), { kind: 'shutdown' });
  assert.deepEqual(matchRoute('POST', '/v1.0////invoke/b/method/foo'), { kind: 'invoke-url' });
  assert.deepEqual(matchRoute('POST', '/v1.0/state/statestore'), { kind: 'unimplemented', api: 'state' });
  assert.deepEqual(matchRoute('POST', '/orders'), { kind: 'fallback' });
});

test('targets: header first, then Basic auth, then the URL', () => {
  assert.deepEqual(findTargetAndMethod({ appId: 'b', authorization: undefined }, '/v1.0/invoke/x/method/y', true), { target: 'b', method: '/v1.0/invoke/x/method/y' });
  const basic = `Basic ${Buffer.from('DAPR-APP-ID:b').toString('base64')}`;
  assert.deepEqual(findTargetAndMethod({ appId: undefined, authorization: basic }, '/foo', false), { target: 'b', method: '/foo' });
  assert.equal(findTargetAndMethod({ appId: undefined, authorization: `Basic ${Buffer.from('user:pw').toString('base64')}` }, '/foo', false), undefined);
  assert.deepEqual(findTargetAndMethod(NONE, '/v1.0/invoke/b/method/api/v1/add', true), { target: 'b', method: '/api/v1/add' });
  assert.deepEqual(findTargetAndMethod(NONE, '/v1.0//invoke//b/method//foo', true), { target: 'b', method: '//foo' });
  assert.deepEqual(findTargetAndMethod(NONE, '/v1.0/invoke/b.prod/method/x', true), { target: 'b.prod', method: '/x' });
  assert.equal(findTargetAndMethod(NONE, '/v1.0/invoke/b', true), undefined);
  assert.equal(findTargetAndMethod(NONE, '/v1.0/invoke/b/method', true), undefined);
  assert.equal(findTargetAndMethod(NONE, '/orders', false), undefined);
});
