import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  addForwardedHeaders,
  appRequestHeaders,
  callerResponseHeaders,
  canonicalHeaderKey,
  firstValue,
  requestMetadataFromRawHeaders,
  responseMetadataFromRawHeaders,
  scanRequestHeaders,
  setIdentityHeaders,
  withoutKey,
} from './headers.js';

test('canonicalHeaderKey matches Go', () => {
  assert.equal(canonicalHeaderKey('content-type'), 'Content-Type');
  assert.equal(canonicalHeaderKey('X-FOO-bar'), 'X-Foo-Bar');
  assert.equal(canonicalHeaderKey('daprtest-multi'), 'Daprtest-Multi');
  assert.equal(canonicalHeaderKey('dapr-caller-app-id'), 'Dapr-Caller-App-Id');
  assert.equal(canonicalHeaderKey('bad header'), 'bad header');
});

test('request metadata keeps repeated headers in order and drops hop-by-hop and private headers', () => {
  const md = requestMetadataFromRawHeaders([
    'Host', 'localhost:3500',
    'DaprTest-Multi', "M'illumino",
    'daprtest-multi', "d'immenso",
    'Connection', 'keep-alive, X-Secret-Hop',
    'X-Secret-Hop', 'x',
    'Keep-Alive', 'timeout=5',
    'TE', 'trailers',
    'dapr-app-id', 'b',
    'dapr-api-token', 'secret',
    'DAPR-CALLER-APP-ID', 'spoofed',
    'Content-Type', 'application/json',
    'Expect', '100-continue',
  ]);
  assert.deepEqual(Object.keys(md).sort(), ['Content-Type', 'Daprtest-Multi']);
  assert.deepEqual(md['Daprtest-Multi']?.values, ["M'illumino", "d'immenso"]);
});

test('identity headers replace any casing the caller used', () => {
  const md = requestMetadataFromRawHeaders(['X-A', '1']);
  md['Dapr-Callee-App-Id'] = { values: ['evil'] };
  setIdentityHeaders(md, { appId: 'a', namespace: 'default' }, 'b');
  assert.deepEqual(md['dapr-caller-app-id']?.values, ['a']);
  assert.deepEqual(md['dapr-caller-namespace']?.values, ['default']);
  assert.deepEqual(md['dapr-callee-app-id']?.values, ['b']);
  assert.equal(md['Dapr-Callee-App-Id'], undefined);
});

test('forwarded headers are appended; IPv6 is bracketed and quoted', () => {
  const md = requestMetadataFromRawHeaders(['X-Forwarded-For', '10.0.0.1']);
  addForwardedHeaders(md, '::1', '127.0.0.1', 'myhost');
  assert.deepEqual(md['X-Forwarded-For']?.values, ['10.0.0.1', '::1']);
  assert.deepEqual(md['X-Forwarded-Host']?.values, ['myhost']);
  assert.deepEqual(md['Forwarded']?.values, ['for="[::1]";by=127.0.0.1;host=myhost']);
});

test('app request headers: lower-case, internal keys dropped, grpc names prefixed, app token added', () => {
  const md = requestMetadataFromRawHeaders(['X-Custom', 'v', 'Content-Type', 'text/plain', 'Content-Length', '5']);
  md['destination-app-id'] = { values: ['b'] };
  md['grpc-trace-bin'] = { values: ['AAA='] };
  md['grpc-timeout'] = { values: ['1S'] };
  md[':authority'] = { values: ['localhost:50001'] };
  md['Dapr-Api-Token'] = { values: ['caller-token'] };
  md['Upgrade'] = { values: ['h2c'] };
  assert.deepEqual(appRequestHeaders(md, 'def'), [
    'dapr-api-token', 'def',
    'x-custom', 'v',
    'dapr-grpc-timeout', '1S',
    'dapr-authority', 'localhost:50001',
  ]);
  assert.deepEqual(appRequestHeaders(md, undefined).includes('dapr-api-token'), false);
});

test("app request headers: Courier's identity headers and the app token come before the caller's, however many it sent", () => {
  const raw: string[] = [];
  for (let i = 0; i < 3000; i++) raw.push(`X-Filler-${i}`, 'x');
  const md = requestMetadataFromRawHeaders(raw);
  setIdentityHeaders(md, { appId: 'caller', namespace: 'ns1' }, 'callee');
  const headers = appRequestHeaders(md, 'app-token');
  assert.deepEqual(headers.slice(0, 8), [
    'dapr-api-token', 'app-token',
    'dapr-caller-app-id', 'caller',
    'dapr-caller-namespace', 'ns1',
    'dapr-callee-app-id', 'callee',
  ]);
  assert.equal(headers.length, 8 + 2 * 3000);
  assert.equal(headers.filter((h) => h === 'dapr-caller-app-id').length, 1);
});

test('response metadata drops hop-by-hop and content-length and keeps repeated values', () => {
  const md = responseMetadataFromRawHeaders([
    'Content-Type', 'application/json',
    'Content-Length', '999',
    'DaprTest-Response-Multi', '1',
    'DaprTest-Response-Multi', '2',
    'Transfer-Encoding', 'chunked',
    'Connection', 'close, X-Hop',
    'X-Hop', 'h',
    'Proxy-Authenticate', 'Basic',
    'X-Custom-Response', 'kept',
  ]);
  assert.deepEqual(callerResponseHeaders(md), [
    'Content-Type', 'application/json',
    'Daprtest-Response-Multi', '1',
    'Daprtest-Response-Multi', '2',
    'X-Custom-Response', 'kept',
  ]);
});

test('withoutKey copies the metadata without a key under any casing and gives its first value', () => {
  const md = responseMetadataFromRawHeaders(['Content-Type', 'text/plain', 'X-A', '1']);
  md['CONTENT-length'] = { values: ['12', '13'] };
  md['content-length'] = { values: ['14'] };
  const { metadata, removed } = withoutKey(md, 'Content-Length');
  assert.equal(removed, '12');
  assert.deepEqual(Object.keys(metadata), ['Content-Type', 'X-A']);
  assert.equal(Object.getPrototypeOf(metadata), null);
  assert.equal(Object.keys(md).length, 4, 'the original is left as it was');
  assert.deepEqual(withoutKey(metadata, 'Content-Length').removed, undefined);
  assert.equal(firstValue(md, 'content-LENGTH'), '12');
});

test('headers a Connection header names are dropped in every direction, whatever their casing', () => {
  const scanned = scanRequestHeaders([
    'connection', 'Keep-Alive',
    'Connection', 'x-hop-one , X-HOP-TWO,,',
    'X-Hop-One', '1',
    'x-hop-two', '2',
    'Close', 'kept: close is an option, not a header',
    'X-Kept', 'k',
  ]);
  assert.deepEqual(Object.keys(scanned.metadata), ['Close', 'X-Kept']);
  const md = requestMetadataFromRawHeaders(['X-Kept', 'k']);
  md['Connection'] = { values: ['X-Private'] };
  md['x-private'] = { values: ['p'] };
  assert.deepEqual(appRequestHeaders(md, undefined), ['x-kept', 'k']);
});
