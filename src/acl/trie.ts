/**
 * Dapr's operation trie for access-control rules (`pkg/config/acl_trie.go` semantics), written for
 * Courier. A rule's operation is split on `/`; each segment is a node. A request's operation is walked
 * segment by segment, and at each level the first child **in declaration order** that matches wins,
 * with no backtracking:
 * - an exact segment matches itself;
 * - `*` matches any one segment, but only as the last segment of a rule (a middle `*` never matches);
 * - `**` matches the rest of the path, at any depth;
 * - a segment containing `*` (`op*`, `*C`, `a*d`) matches within one segment.
 * Reaching a node that ends a rule before the request's path ends is a match (a rule covers everything
 * below it), except for `*`, which keeps descending. A path that ends on a node whose own rule is
 * missing still matches a trailing `*` or `**` rule below it (`/op1/*` covers `/op1`).
 */
type Kind = 'exact' | 'star' | 'globstar' | 'glob';

interface Node<T> {
  readonly segment: string;
  readonly kind: Kind;
  readonly pattern: RegExp | undefined;
  value: T | undefined;
  readonly children: Array<Node<T>>;
}

function kindOf(segment: string): Kind {
  if (segment === '*') return 'star';
  if (segment === '**') return 'globstar';
  return segment.includes('*') ? 'glob' : 'exact';
}

function globPattern(segment: string): RegExp {
  const escaped = segment.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${escaped.join('.*')}$`, 's');
}

function segmentsOf(path: string): string[] {
  return path.split('/').filter((s) => s !== '');
}

export class OperationTrie<T> {
  readonly #root: Node<T> = { segment: '', kind: 'exact', pattern: undefined, value: undefined, children: [] };

  /** Adds a rule; a rule for an operation already present keeps the first one declared. */
  insert(operation: string, value: T): void {
    let node = this.#root;
    for (const segment of segmentsOf(operation)) {
      let child = node.children.find((c) => c.segment === segment);
      if (child === undefined) {
        const kind = kindOf(segment);
        child = { segment, kind, pattern: kind === 'glob' ? globPattern(segment) : undefined, value: undefined, children: [] };
        node.children.push(child);
      }
      node = child;
    }
    node.value ??= value;
  }

  /** The rule covering `operation`, if any. */
  search(operation: string): T | undefined {
    return this.#walk(this.#root, segmentsOf(operation), 0);
  }

  #walk(node: Node<T>, segments: readonly string[], at: number): T | undefined {
    if (at === segments.length) {
      if (node.value !== undefined) return node.value;
      for (const child of node.children) {
        if ((child.kind === 'star' || child.kind === 'globstar') && child.value !== undefined) return child.value;
      }
      return undefined;
    }
    const segment = segments[at] as string;
    for (const child of node.children) {
      switch (child.kind) {
        case 'exact':
          if (child.segment !== segment) continue;
          return child.value ?? this.#walk(child, segments, at + 1);
        case 'glob':
          if (child.pattern?.test(segment) !== true) continue;
          return child.value ?? this.#walk(child, segments, at + 1);
        case 'globstar':
          if (child.value === undefined) continue;
          return child.value;
        case 'star':
          // Only the last segment of a rule; it matches one segment and keeps descending.
          if (child.value === undefined) continue;
          return at === segments.length - 1 ? child.value : this.#walk(child, segments, at + 1);
      }
    }
    return undefined;
  }
}
