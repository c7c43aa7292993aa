// Checks generated objects against the Kubernetes API's JSON schemas (kubernetes-models, a devDependency:
// hence under testing/, which the build leaves out).
import { MutatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1';
import { DaemonSet, Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ClusterRole, ClusterRoleBinding, Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { ConfigMap, Namespace, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';

interface Validatable {
  validate(): void;
}
type Factory = (data: never) => Validatable;

/** The model for each apiVersion and kind the generator may print; anything else fails the check. */
const models: Readonly<Record<string, Factory>> = {
  'v1/Namespace': (d) => new Namespace(d),
  'v1/Service': (d) => new Service(d),
  'v1/ServiceAccount': (d) => new ServiceAccount(d),
  'v1/ConfigMap': (d) => new ConfigMap(d),
  'v1/Secret': (d) => new Secret(d),
  'apps/v1/Deployment': (d) => new Deployment(d),
  'apps/v1/StatefulSet': (d) => new StatefulSet(d),
  'apps/v1/DaemonSet': (d) => new DaemonSet(d),
  'policy/v1/PodDisruptionBudget': (d) => new PodDisruptionBudget(d),
  'rbac.authorization.k8s.io/v1/Role': (d) => new Role(d),
  'rbac.authorization.k8s.io/v1/RoleBinding': (d) => new RoleBinding(d),
  'rbac.authorization.k8s.io/v1/ClusterRole': (d) => new ClusterRole(d),
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': (d) => new ClusterRoleBinding(d),
  'admissionregistration.k8s.io/v1/MutatingWebhookConfiguration': (d) => new MutatingWebhookConfiguration(d),
};

/** Throws naming the object (kind, namespace/name) and the schema's complaint. */
export function validateObject(object: unknown): void {
  const o = (object ?? {}) as { apiVersion?: unknown; kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };
  const text = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v) ?? 'undefined');
  const id = `${text(o.kind)} ${o.metadata?.namespace === undefined ? '' : `${text(o.metadata.namespace)}/`}${text(o.metadata?.name)}`;
  const make = models[`${text(o.apiVersion)}/${text(o.kind)}`];
  if (make === undefined) throw new Error(`${id}: no schema for apiVersion ${text(o.apiVersion)} kind ${text(o.kind)}`);
  try {
    make(structuredClone(object) as never).validate();
  } catch (err) {
    throw new Error(`${id} (${text(o.apiVersion)}) does not match its schema: ${err instanceof Error ? err.message : String(err)}`);
  }
  // The schemas do not refuse unknown fields, so a misspelt field passes: only a real API server catches those.
  if (typeof o.metadata?.name !== 'string' || o.metadata.name === '') throw new Error(`${id}: metadata.name is missing`);
}
