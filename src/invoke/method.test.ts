import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanPath, decodePath, methodToPath, normalizeMethod } from './method.js';

test('cleanPath behaves like Go path.Clean', () => {
  const cases: Array<[string, string]> = [
    ['', '.'],
    ['abc', 'abc'],
    ['abc/def', 'abc/def'],
    ['a/b/c/', 'a/b/c'],
    ['/', '/'],
    ['//abc', '/abc'],
    ['abc//def//ghi', 'abc/def/ghi'],
    ['abc/./def', 'abc/def'],
    ['/./abc/def', '/abc/def'],
    ['abc/def/ghi/../jkl', 'abc/def/jkl'],
    ['abc/def/../../..', '..'],
    ['/abc/def/../../..', '/'],
    ['abc/def/../../../ghi/jkl/../../../mno', '../../mno'],
    ['admin/../public', 'public'],
  ];
  for (const [input, want] of cases) assert.equal(cleanPath(input), want, input);
});

test('normalizeMethod follows the path-correctness table', () => {
  const ok: Array<[string, string]> = [
    ['test"stream', 'test"stream'],
    ['test*stream', 'test*stream'],
    ['test\\stream', 'test\\stream'],
    ['admin/../public', 'public'],
    ['/admin/../public', 'public'],
    ['../../etc/passwd', 'etc/passwd'],
    ['multiple/segments', 'multiple/segments'],
    ['/foo', 'foo'],
    ['//foo//', 'foo'],
    ['', ''],
    ['.', ''],
    ['/', ''],
    ['..', ''],
  ];
  for (const [input, want] of ok) assert.equal(normalizeMethod(input), want, input);
  for (const bad of ['test#stream', 'test?stream', 'test%stream', 'a\u0000b', 'a\rb', 'a\nb', 'a\u007fb']) {
    assert.equal(normalizeMethod(bad), undefined, JSON.stringify(bad));
  }
});

test('decodePath decodes escapes and refuses malformed ones', () => {
  assert.equal(decodePath('admin%2F..%2Fpublic'), 'admin/../public');
  assert.equal(decodePath('test%25stream'), 'test%stream');
  assert.equal(decodePath('plain'), 'plain');
  assert.equal(decodePath('bad%zz'), undefined);
});

test('methodToPath escapes what cannot appear in a path and keeps the rest', () => {
  assert.equal(methodToPath('neworder'), '/neworder');
  assert.equal(methodToPath('api/v1/add'), '/api/v1/add');
  assert.equal(methodToPath('a:b@c'), '/a:b@c');
  assert.equal(methodToPath('test"stream'), '/test%22stream');
  assert.equal(methodToPath('test\\stream'), '/test%5Cstream');
  assert.equal(methodToPath('hello world'), '/hello%20world');
  assert.equal(methodToPath('café'), '/caf%C3%A9');
  assert.equal(methodToPath(''), '/');
  for (const m of ['test"stream', 'hello world', 'café', 'x*y']) {
    assert.equal(decodeURIComponent(methodToPath(m)), `/${m}`);
  }
});
