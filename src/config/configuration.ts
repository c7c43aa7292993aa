import { z } from 'zod';
import { CourierError } from '../errors/index.js';
import { readYamlDocuments } from './yaml-file.js';
import { schemaError } from './schema-errors.js';

/**
 * Dapr's `Configuration` resource (`dapr.io/v1alpha1`), as Courier reads it from `--config`.
 * Every key of Dapr's schema is accepted so existing files work unchanged; the ones Courier does not
 * apply are reported once at start (see `unappliedSections`). Keys Dapr does not know are errors.
 */
const nameResolutionSchema = z
  .object({
    component: z.string().optional(),
    version: z.string().optional(),
    configuration: z.unknown().optional(),
  })
  .strict();

/** Sections of Dapr's ConfigurationSpec that Courier accepts but does not act on. */
const unappliedKeys = [
  'httpPipeline',
  'appHttpPipeline',
  'secrets',
  'features',
  'api',
  'components',
  'wasm',
  'workflow',
] as const;

const specSchema = z
  .object({
    nameResolution: nameResolutionSchema.optional(),
    accessControl: z.unknown().optional(),
    mtls: z.unknown().optional(),
    logging: z.unknown().optional(),
    metrics: z.unknown().optional(),
    metric: z.unknown().optional(),
    tracing: z.unknown().optional(),
    ...Object.fromEntries(unappliedKeys.map((k) => [k, z.unknown().optional()])),
  })
  .strict();

const configurationSchema = z
  .object({
    apiVersion: z.string().optional(),
    kind: z.literal('Configuration', { error: 'must be "Configuration"' }),
    metadata: z.object({ name: z.string().optional(), namespace: z.string().optional() }).loose().optional(),
    spec: specSchema.optional(),
  })
  .strict();

export type NameResolutionSpec = z.infer<typeof nameResolutionSchema>;

export interface Configuration {
  readonly file: string | undefined;
  readonly name: string;
  readonly nameResolution: NameResolutionSpec | undefined;
  /** `spec.accessControl` as written; parsed and validated by src/acl. */
  readonly accessControl: unknown;
  /** `spec.mtls.enabled` (used by `courier run` to start a Sentry and turn mTLS on). */
  readonly mtlsEnabled: boolean;
  /** `spec.mtls.workloadCertTTL` and `allowedClockSkew` as written (read by `courier sentry`). */
  readonly mtls: { readonly workloadCertTTL?: string; readonly allowedClockSkew?: string } | undefined;
  /** `spec.logging.apiLogging`: one log line per API call (see `--enable-api-logging`). */
  readonly apiLogging: ApiLoggingSpec;
  /** `spec.metrics` (or its older name `spec.metric`): what is recorded and how it is labelled. */
  readonly metrics: MetricsSpec;
  /** `spec.tracing`: sampling and where spans are exported. */
  readonly tracing: TracingSpec;
  /** Sections present in the file that Courier does not apply (e.g. `secrets`). */
  readonly unappliedSections: readonly string[];
}

/** The configuration in force when no `--config` is given. */
export { defaultConfiguration } from './defaults.js';

const apiLoggingSchema = z
  .object({
    enabled: z.boolean().optional(),
    obfuscateURLs: z.boolean().optional(),
    omitHealthChecks: z.boolean().optional(),
  })
  .strict();

export type ApiLoggingSpec = z.infer<typeof apiLoggingSchema>;

const loggingSchema = z.object({ apiLogging: apiLoggingSchema.optional() }).strict();

const metricsSchema = z
  .object({
    enabled: z.boolean().optional(),
    recordErrorCodes: z.boolean().optional(),
    latencyDistributionBuckets: z.array(z.number().int().positive()).min(1).optional(),
    http: z
      .object({
        increasedCardinality: z.boolean().optional(),
        pathMatching: z.array(z.string().startsWith('/', { error: 'a pattern must start with /' })).optional(),
        excludeVerbs: z.boolean().optional(),
      })
      .strict()
      .optional(),
    rules: z
      .array(
        z
          .object({
            name: z.string().min(1),
            labels: z.array(z.object({ name: z.string().min(1), regex: z.record(z.string(), z.string()) }).strict()).optional(),
          })
          .strict(),
      )
      .optional(),
  })
  .strict();

export type MetricsSpec = z.infer<typeof metricsSchema>;

const tracingSchema = z
  .object({
    // Dapr writes it as a string ("1", "0.01"); a number is taken as well.
    samplingRate: z.union([z.string(), z.number()]).optional(),
    stdout: z.boolean().optional(),
    zipkin: z.object({ endpointAddress: z.string().optional() }).strict().optional(),
    otel: z
      .object({
        endpointAddress: z.string().optional(),
        isSecure: z.boolean().optional(),
        protocol: z.enum(['http', 'grpc'], { error: 'must be "http" or "grpc"' }).optional(),
        // "key=value" strings (or one comma-separated string), or name/value pairs.
        headers: z.union([z.string(), z.array(z.union([z.string(), z.object({ name: z.string(), value: z.string() }).strict()]))]).optional(),
        timeout: z.union([z.string(), z.number()]).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

export type TracingSpec = z.infer<typeof tracingSchema>;

const mtlsSchema = z
  .object({
    enabled: z.boolean().optional(),
    workloadCertTTL: z.string().optional(),
    allowedClockSkew: z.string().optional(),
    sentryAddress: z.string().optional(),
    controlPlaneTrustDomain: z.string().optional(),
    tokenValidators: z.unknown().optional(),
  })
  .strict();

/** Loads and validates a Configuration file. Throws ERR_INVALID_CONFIG naming file, key and reason. */
export function loadConfiguration(file: string): Configuration {
  const docs = readYamlDocuments(file);
  if (docs.length > 1) {
    // Dapr reads a single Configuration from a file; a second document (an accessControl section, say)
    // would otherwise be silently ignored.
    throw new CourierError(
      'ERR_INVALID_CONFIG',
      `${file}: the file holds ${docs.length} YAML documents; a Configuration file must hold exactly one (put every section under one spec)`,
    );
  }
  const doc = docs[0];
  if (doc === undefined) throw new CourierError('ERR_INVALID_CONFIG', `${file}: the file holds no Configuration`);
  const parsed = configurationSchema.safeParse(doc.value);
  if (!parsed.success) throw schemaError(file, parsed.error);
  const spec = parsed.data.spec ?? {};
  let mtls: z.infer<typeof mtlsSchema> | undefined;
  if (spec.mtls !== undefined && spec.mtls !== null) {
    const checked = mtlsSchema.safeParse(spec.mtls);
    if (!checked.success) throw schemaError(`${file}: spec.mtls`, checked.error);
    mtls = checked.data;
  }
  let apiLogging: ApiLoggingSpec = {};
  if (spec.logging !== undefined && spec.logging !== null) {
    const checked = loggingSchema.safeParse(spec.logging);
    if (!checked.success) throw schemaError(`${file}: spec.logging`, checked.error);
    apiLogging = checked.data.apiLogging ?? {};
  }
  let metrics: MetricsSpec = {};
  const metricsSection = spec.metrics ?? spec.metric;
  if (metricsSection !== undefined && metricsSection !== null) {
    const key = spec.metrics !== undefined ? 'metrics' : 'metric';
    const checked = metricsSchema.safeParse(metricsSection);
    if (!checked.success) throw schemaError(`${file}: spec.${key}`, checked.error);
    metrics = checked.data;
    for (const rule of metrics.rules ?? []) {
      for (const label of rule.labels ?? []) {
        for (const [replacement, pattern] of Object.entries(label.regex)) {
          try {
            new RegExp(pattern);
          } catch (err) {
            throw new CourierError('ERR_INVALID_CONFIG', `${file}: spec.${key}.rules: the regex of ${rule.name} label ${label.name} (${replacement}) is invalid: ${(err as Error).message}`);
          }
        }
      }
    }
  }
  let tracing: TracingSpec = {};
  if (spec.tracing !== undefined && spec.tracing !== null) {
    const checked = tracingSchema.safeParse(spec.tracing);
    if (!checked.success) throw schemaError(`${file}: spec.tracing`, checked.error);
    tracing = checked.data;
  }
  return {
    file,
    name: parsed.data.metadata?.name ?? 'default',
    nameResolution: spec.nameResolution,
    accessControl: spec.accessControl,
    mtlsEnabled: mtls?.enabled === true,
    mtls: mtls === undefined ? undefined : { ...(mtls.workloadCertTTL === undefined ? {} : { workloadCertTTL: mtls.workloadCertTTL }), ...(mtls.allowedClockSkew === undefined ? {} : { allowedClockSkew: mtls.allowedClockSkew }) },
    apiLogging,
    metrics,
    tracing,
    unappliedSections: unappliedKeys.filter((k) => (spec as Record<string, unknown>)[k] !== undefined),
  };
}
