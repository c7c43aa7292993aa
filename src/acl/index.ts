export { AccessControlPolicy, parseAccessControl } from './policy.js';
export type { AccessRequest, Action, CallerIdentity, Decision, ParsedAccessControl } from './policy.js';
export { OperationTrie } from './trie.js';
