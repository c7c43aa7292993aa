// Answers one `admission.k8s.io/v1` AdmissionReview for a Pod: allowed unchanged, allowed with the sidecar
// patch, or refused with every problem of its annotations.
import { CourierError } from '../../errors/index.js';
import { injectionRequested, readSidecarSettings } from './annotations.js';
import { buildPatch, SIDECAR_CONTAINER_NAMES, type InjectorOptions, type PodView } from './patch.js';

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';

export interface AdmissionResponse {
  readonly uid: string;
  readonly allowed: boolean;
  readonly patchType?: 'JSONPatch';
  /** Base64 of the JSON patch. */
  readonly patch?: string;
  readonly status?: { readonly code: number; readonly reason: string; readonly message: string };
  /** Shown by kubectl to whoever created the Pod. */
  readonly warnings?: readonly string[];
}

export interface AdmissionReviewResponse {
  readonly apiVersion: typeof ADMISSION_API_VERSION;
  readonly kind: 'AdmissionReview';
  readonly response: AdmissionResponse;
}

/** What the log and metrics say about a review. */
export type ReviewOutcome = 'injected' | 'skipped' | 'refused';

function badRequest(message: string): CourierError {
  return new CourierError('ERR_BAD_REQUEST', `not an AdmissionReview the injector can answer: ${message}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringRecord(value: unknown, what: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (!isObject(value) || Object.values(value).some((v) => typeof v !== 'string')) throw badRequest(`${what} is not a map of strings`);
  return value as Record<string, string>;
}

/**
 * Reviews a parsed request body. Throws ERR_BAD_REQUEST (answered with HTTP 400) when the body is not an
 * AdmissionReview of a Pod at all, since then there is no uid to answer.
 */
export function reviewAdmission(body: unknown, options: InjectorOptions): { review: AdmissionReviewResponse; outcome: ReviewOutcome; appId?: string } {
  if (!isObject(body)) throw badRequest('the body is not a JSON object');
  if (body.apiVersion !== ADMISSION_API_VERSION || body.kind !== 'AdmissionReview') {
    throw badRequest(`apiVersion/kind is ${JSON.stringify(body.apiVersion)}/${JSON.stringify(body.kind)}, not ${ADMISSION_API_VERSION}/AdmissionReview`);
  }
  const request = body.request;
  if (!isObject(request)) throw badRequest('request is missing');
  const uid = request.uid;
  if (typeof uid !== 'string' || uid === '') throw badRequest('request.uid is missing');
  const answer = (response: Omit<AdmissionResponse, 'uid'>, outcome: ReviewOutcome, appId?: string): ReturnType<typeof reviewAdmission> => ({
    review: { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response: { uid, ...response } },
    outcome,
    ...(appId === undefined ? {} : { appId }),
  });

  // Only Pods being created get a sidecar; anything else the webhook is (mis)configured to send passes unchanged.
  const kind = isObject(request.kind) ? request.kind : {};
  if (kind.kind !== 'Pod' || (kind.group ?? '') !== '' || request.operation !== 'CREATE') return answer({ allowed: true }, 'skipped');
  const pod = request.object;
  if (!isObject(pod)) throw badRequest('request.object (the Pod) is missing');
  const metadata = isObject(pod.metadata) ? pod.metadata : {};
  const annotations = stringRecord(metadata.annotations, 'metadata.annotations');
  stringRecord(metadata.labels, 'metadata.labels');
  if (!injectionRequested(annotations)) return answer({ allowed: true }, 'skipped');

  const refuse = (problems: readonly string[]): ReturnType<typeof reviewAdmission> =>
    answer({ allowed: false, status: { code: 400, reason: 'BadRequest', message: `courier injector: ${problems.join('; ')}` } }, 'refused');
  const spec = pod.spec;
  if (!isObject(spec) || !Array.isArray(spec.containers) || spec.containers.length === 0 || !spec.containers.every(isObject)) {
    return refuse(['the Pod has no containers']);
  }
  if (spec.volumes !== undefined && (!Array.isArray(spec.volumes) || !spec.volumes.every(isObject))) return refuse(['spec.volumes is not a list']);
  for (const c of spec.containers) {
    if (c.env !== undefined && (!Array.isArray(c.env) || !c.env.every(isObject))) return refuse([`the env of container ${String(c.name)} is not a list`]);
  }
  const initContainers: unknown[] = Array.isArray(spec.initContainers) ? (spec.initContainers as unknown[]) : [];
  const all = [...spec.containers, ...initContainers.filter(isObject)];
  const existing = all.find((c) => typeof c.name === 'string' && SIDECAR_CONTAINER_NAMES.includes(c.name));
  if (existing !== undefined) return answer({ allowed: true, warnings: [`the Pod already has a ${String(existing.name)} container: no sidecar injected`] }, 'skipped');

  const result = readSidecarSettings(annotations, podName(metadata, request));
  if (!result.ok) return refuse(result.problems);
  const patched = buildPatch(pod as unknown as PodView, result.settings, options);
  if (!patched.ok) return refuse(patched.problems);
  const warnings = [...result.warnings, ...patched.warnings];
  return answer(
    {
      allowed: true,
      patchType: 'JSONPatch',
      patch: Buffer.from(JSON.stringify(patched.patch)).toString('base64'),
      ...(warnings.length > 0 ? { warnings } : {}),
    },
    'injected',
    result.settings.appId,
  );
}

/**
 * The app id's default, as Dapr's injector takes it: the Pod's name. Pods of a Deployment have no name
 * yet when they are admitted, only a generateName (`orders-7d9f8-`), which is used without its dash.
 */
function podName(metadata: Record<string, unknown>, request: Record<string, unknown>): string | undefined {
  for (const candidate of [metadata.name, request.name]) if (typeof candidate === 'string' && candidate !== '') return candidate;
  const generated = metadata.generateName;
  return typeof generated === 'string' && generated.replace(/-+$/, '') !== '' ? generated.replace(/-+$/, '') : undefined;
}
