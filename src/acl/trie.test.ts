import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OperationTrie } from './trie.js';

function build(rules: string[]): OperationTrie<string> {
  const trie = new OperationTrie<string>();
  for (const rule of rules) trie.insert(rule, rule);
  return trie;
}

// Dapr's matching table (spec §5.4), row by row.
const table: Array<[string[], string, string | undefined]> = [
  [['/op1'], '/op1', '/op1'],
  [['/op1'], '/op1/foo', '/op1'],
  [['/op1'], '/op1/foo/bar', '/op1'],
  [['/op1'], '/op10', undefined],
  [['/op1'], '/op2', undefined],
  [['/op1/*'], '/op1', '/op1/*'],
  [['/op1/*'], '/op1/a', '/op1/*'],
  [['/op1/*'], '/op1/a/b', undefined],
  [['/op1/**'], '/op1', '/op1/**'],
  [['/op1/**'], '/op1/a', '/op1/**'],
  [['/op1/**'], '/op1/a/b', '/op1/**'],
  [['/op1/*/x'], '/op1/a/x', undefined],
  [['/op*'], '/op1', '/op*'],
  [['/op*'], '/opX/y', '/op*'],
  [['/**', '/op1'], '/op1', '/**'],
  [['/a/*', '/a/b'], '/a/b', '/a/*'],
];

for (const [rules, request, expected] of table) {
  test(`rules ${rules.join(', ')}: ${request} → ${expected ?? 'no match'}`, () => {
    assert.equal(build(rules).search(request), expected);
  });
}

test('globs within a segment: *C, a*d', () => {
  const trie = build(['/*C', '/a*d']);
  assert.equal(trie.search('/abC'), '/*C');
  assert.equal(trie.search('/abc'), undefined);
  assert.equal(trie.search('/and'), '/a*d');
  assert.equal(trie.search('/ad'), '/a*d');
  assert.equal(trie.search('/a.d'), '/a*d', 'dots are literal, not regex wildcards');
  assert.equal(build(['/a.d']).search('/axd'), undefined);
});

test('an exact rule below a non-matching sibling is still found, and nothing is found above the rules', () => {
  const trie = build(['/a/b/c', '/x']);
  assert.equal(trie.search('/a/b/c'), '/a/b/c');
  assert.equal(trie.search('/a/b'), undefined);
  assert.equal(trie.search('/a'), undefined);
  assert.equal(trie.search('/x/y'), '/x');
  assert.equal(trie.search('/'), undefined);
});

test('the first rule declared for the same operation wins', () => {
  const trie = new OperationTrie<number>();
  trie.insert('/a', 1);
  trie.insert('/a', 2);
  assert.equal(trie.search('/a'), 1);
});
