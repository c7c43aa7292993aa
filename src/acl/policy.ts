import { z } from 'zod';
import { CourierError } from '../errors/index.js';
import { OperationTrie } from './trie.js';

/** A caller's verified identity (from its SPIFFE certificate). */
export interface CallerIdentity {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly appId: string;
}

export type Action = 'allow' | 'deny';

export interface AccessRequest {
  /** The method called, e.g. `/orders/17` (a leading `/` is added if missing). */
  readonly operation: string;
  /** The HTTP verb, for HTTP apps; undefined when the call has none. */
  readonly verb: string | undefined;
  /** Whether the callee's app speaks HTTP (verbs apply, matching ignores case) or gRPC. */
  readonly isHttp: boolean;
}

export interface Decision {
  readonly allowed: boolean;
  /** Whether the global default or an app policy decided. */
  readonly scope: 'global' | 'app';
  /** Dapr's denial text (empty when allowed). */
  readonly message: string;
}

/** @internal a compiled operation rule. */
export interface OperationRule {
  readonly action: Action;
  readonly verbs: ReadonlyMap<string, Action>;
}

/** @internal a compiled app policy. */
export interface AppPolicy {
  readonly appId: string;
  readonly namespace: string;
  readonly trustDomain: string;
  readonly defaultAction: Action | undefined;
  readonly operations: OperationTrie<OperationRule>;
}

const actionSchema = z
  .string()
  .transform((s) => s.toLowerCase())
  .refine((s): s is Action => s === 'allow' || s === 'deny', { message: 'must be allow or deny' });

const operationSchema = z
  .object({
    name: z.string({ error: 'is required' }).min(1, 'must not be empty'),
    httpVerb: z.array(z.string().min(1)).optional(),
    action: actionSchema,
  })
  .strict();

const policySchema = z
  .object({
    appId: z.string({ error: 'is required' }).min(1, 'is required'),
    defaultAction: actionSchema.optional(),
    trustDomain: z.string({ error: 'is required' }).min(1, 'is required'),
    namespace: z.string({ error: 'is required' }).min(1, 'is required'),
    operations: z.array(operationSchema).optional(),
  })
  .strict();

const specSchema = z
  .object({
    defaultAction: actionSchema.optional(),
    trustDomain: z.string().optional(),
    policies: z.array(policySchema).optional(),
  })
  .strict();

/**
 * A compiled `spec.accessControl` (Dapr's access-control lists), evaluated by the callee's sidecar on
 * every call it receives. Immutable; `evaluate` is pure and synchronous.
 */
export class AccessControlPolicy {
  readonly defaultAction: Action;
  readonly trustDomain: string;
  readonly #policies: ReadonlyMap<string, AppPolicy>;
  readonly #isHttp: boolean;

  constructor(defaultAction: Action, trustDomain: string, policies: ReadonlyMap<string, AppPolicy>, isHttp: boolean) {
    this.defaultAction = defaultAction;
    this.trustDomain = trustDomain;
    this.#policies = policies;
    this.#isHttp = isHttp;
  }

  /**
   * Decides a call, Dapr's way: without a verified caller only the global default applies; a policy
   * applies to its app id and namespace when its trust domain matches too; its default replaces the
   * global one; a matching operation rule decides by verb (HTTP) or by its action (gRPC).
   */
  evaluate(caller: CallerIdentity | undefined, request: AccessRequest): Decision {
    let action = this.defaultAction;
    let scope: 'global' | 'app' = 'global';
    let operation = request.operation.startsWith('/') ? request.operation : `/${request.operation}`;
    if (request.isHttp) operation = operation.toLowerCase();
    const policy = caller === undefined ? undefined : this.#policies.get(`${caller.appId}||${caller.namespace}`);
    if (caller !== undefined && policy !== undefined && policy.trustDomain === caller.trustDomain && policy.namespace === caller.namespace) {
      if (policy.defaultAction !== undefined) {
        action = policy.defaultAction;
        scope = 'app';
      }
      const rule = policy.operations.search(operation);
      if (rule !== undefined) {
        if (!request.isHttp) {
          action = rule.action;
        } else if (request.verb !== undefined && request.verb !== '') {
          action = rule.verbs.get(request.verb.toUpperCase()) ?? rule.verbs.get('*') ?? action;
        } else {
          action = policy.defaultAction ?? 'deny';
        }
      }
    }
    if (action === 'allow') return { allowed: true, scope, message: '' };
    const id = caller === undefined ? '' : `spiffe://${caller.trustDomain}/ns/${caller.namespace}/${caller.appId}`;
    const verb = request.verb === undefined || request.verb === '' ? 'NONE' : request.verb.toUpperCase();
    return { allowed: false, scope, message: `access control policy has denied access to id: ${id} operation: ${operation} verb: ${verb}` };
  }

  /** A one-line summary for logs. */
  /** The app ids that have a policy of their own. */
  get policyAppIds(): string[] {
    return [...this.#policies.values()].map((p) => p.appId);
  }

  describe(): string {
    const keys = [...this.#policies.keys()];
    return `global default ${this.defaultAction}; ${keys.length} app ${keys.length === 1 ? 'policy' : 'policies'}${keys.length === 0 ? '' : ` (${keys.join(', ')})`}; ${this.#isHttp ? 'HTTP operations (case-insensitive)' : 'gRPC operations'}`;
  }
}

export interface ParsedAccessControl {
  /** Undefined when there is nothing to enforce: every call is allowed. */
  readonly policy: AccessControlPolicy | undefined;
  readonly warnings: string[];
}

/**
 * Compiles `spec.accessControl` as written in a Configuration. `where` names it in messages (e.g.
 * `config.yaml: spec.accessControl`). Throws ERR_INVALID_CONFIG naming the key and the reason.
 *
 * An omitted global `defaultAction` is ambiguous in Dapr (its documentation says policies present ⇒
 * deny; its runtime effectively allows). Courier reads it the safe way: with policies present, calls no
 * policy allows are **denied**; with no policies there is nothing to enforce and calls are allowed.
 * Either way a warning says what was assumed.
 */
export function parseAccessControl(raw: unknown, where: string, appProtocol: 'http' | 'grpc'): ParsedAccessControl {
  if (raw === undefined || raw === null) return { policy: undefined, warnings: [] };
  const parsed = specSchema.safeParse(raw);
  if (!parsed.success) throw aclError(where, parsed.error);
  const spec = parsed.data;
  const isHttp = appProtocol === 'http';
  const warnings: string[] = [];
  const policies = new Map<string, AppPolicy>();
  (spec.policies ?? []).forEach((p, index) => {
    const key = `${p.appId}||${p.namespace}`;
    if (policies.has(key)) {
      throw new CourierError('ERR_INVALID_CONFIG', `${where}.policies[${index}]: a second policy for app "${p.appId}" in namespace "${p.namespace}"`);
    }
    const operations = new OperationTrie<OperationRule>();
    for (const op of p.operations ?? []) {
      let name = op.name.startsWith('/') ? op.name : `/${op.name}`;
      if (isHttp) name = name.toLowerCase();
      const verbs = new Map<string, Action>();
      for (const verb of op.httpVerb ?? []) verbs.set(verb.toUpperCase(), op.action);
      operations.insert(name, { action: op.action, verbs });
    }
    policies.set(key, { appId: p.appId, namespace: p.namespace, trustDomain: p.trustDomain, defaultAction: p.defaultAction, operations });
  });
  let defaultAction = spec.defaultAction;
  if (defaultAction === undefined) {
    if (policies.size === 0) {
      warnings.push(`${where}.defaultAction is not set and there are no policies: every call is allowed (set defaultAction to make this explicit)`);
      return { policy: undefined, warnings };
    }
    defaultAction = 'deny';
    warnings.push(
      `${where}.defaultAction is not set: calls that no policy allows are denied (Dapr's documentation reads it this way; set defaultAction to make it explicit)`,
    );
  }
  return { policy: new AccessControlPolicy(defaultAction, spec.trustDomain === undefined || spec.trustDomain === '' ? 'public' : spec.trustDomain, policies, isHttp), warnings };
}

function aclError(where: string, error: z.ZodError): CourierError {
  const issue = error.issues[0];
  if (issue === undefined) return new CourierError('ERR_INVALID_CONFIG', `${where}: invalid`);
  const path = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
  if (issue.code === 'unrecognized_keys') {
    return new CourierError('ERR_INVALID_CONFIG', `${where}${path}: unknown key ${issue.keys.map((k) => `"${k}"`).join(', ')}`);
  }
  const reason = issue.code === 'invalid_type' && issue.input === undefined ? 'is required' : issue.message;
  return new CourierError('ERR_INVALID_CONFIG', `${where}${path} ${reason}`);
}
