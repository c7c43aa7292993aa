import type { Configuration } from './configuration.js';

/**
 * The configuration of a sidecar started without `--config`. Kept apart from the loader so a sidecar
 * without a Configuration file never loads the YAML parser and the schemas (docs/performance.md, "Memory").
 */
export const defaultConfiguration: Configuration = {
  file: undefined,
  name: 'default',
  nameResolution: undefined,
  accessControl: undefined,
  mtlsEnabled: false,
  mtls: undefined,
  apiLogging: {},
  metrics: {},
  tracing: {},
  unappliedSections: [],
};
