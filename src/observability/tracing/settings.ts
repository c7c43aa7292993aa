import { CourierError } from '../../errors/index.js';
import type { TracingSpec } from '../../config/configuration.js';

/** Dapr's default sampling rate when `samplingRate` is unset or cannot be read. */
export const DEFAULT_SAMPLING_RATE = 1e-4;

/** Dapr's default OTLP export timeout. */
const DEFAULT_OTLP_TIMEOUT_MS = 10_000;

export type ExporterSettings =
  | { readonly kind: 'stdout' }
  | { readonly kind: 'zipkin'; readonly url: string }
  | {
      readonly kind: 'otlp';
      readonly protocol: 'http' | 'grpc';
      /** The full URL: `http(s)://host:port/v1/traces` for OTLP/HTTP, `http(s)://host:port` for OTLP/gRPC. */
      readonly url: string;
      readonly headers: Readonly<Record<string, string>>;
      readonly timeoutMs: number;
    };

export interface TracingSettings {
  /** 0 turns tracing off: trace headers pass through untouched and no span is made. */
  readonly samplingRate: number;
  readonly exporters: readonly ExporterSettings[];
  /** Why the rate is the default although the configuration set one (to log), if so. */
  readonly warning?: string;
}

/**
 * Reads `spec.tracing` and the `OTEL_EXPORTER_OTLP_*` variables as Dapr does: `samplingRate` is a
 * string float in [0, 1] (default 1e-4; unreadable → default; "0" → off); `stdout`, `zipkin` and
 * `otel` each add an exporter; the OTLP variables, when set, take precedence over `spec.tracing.otel`
 * (an endpoint in the environment is enough to export over OTLP).
 */
export function tracingSettings(spec: TracingSpec, env: NodeJS.ProcessEnv): TracingSettings {
  let samplingRate = DEFAULT_SAMPLING_RATE;
  let warning: string | undefined;
  const raw = spec.samplingRate;
  if (raw !== undefined && String(raw).trim() !== '') {
    const n = typeof raw === 'number' ? raw : Number(raw.trim());
    if (Number.isFinite(n)) samplingRate = Math.min(1, Math.max(0, n));
    else warning = `spec.tracing.samplingRate "${String(raw)}" is not a number; the default ${DEFAULT_SAMPLING_RATE} applies`;
  }
  const exporters: ExporterSettings[] = [];
  if (spec.stdout === true) exporters.push({ kind: 'stdout' });
  const zipkin = spec.zipkin?.endpointAddress?.trim();
  if (zipkin !== undefined && zipkin !== '') exporters.push({ kind: 'zipkin', url: endpointUrl(zipkin, zipkin).toString() });
  const otlp = otlpSettings(spec, env);
  if (otlp !== undefined) exporters.push(otlp);
  return { samplingRate, exporters, ...(warning === undefined ? {} : { warning }) };
}

function nonEmpty(value: string | undefined): string | undefined {
  const v = value?.trim();
  return v === undefined || v === '' ? undefined : v;
}

function otlpSettings(spec: TracingSpec, env: NodeJS.ProcessEnv): ExporterSettings | undefined {
  const otel = spec.otel ?? {};
  const envEndpoint = nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) ?? nonEmpty(env.OTEL_EXPORTER_OTLP_ENDPOINT);
  const endpoint = envEndpoint ?? nonEmpty(otel.endpointAddress);
  if (endpoint === undefined) return undefined;
  const envProtocol = nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL) ?? nonEmpty(env.OTEL_EXPORTER_OTLP_PROTOCOL);
  let protocol: 'http' | 'grpc';
  if (envProtocol !== undefined) {
    if (envProtocol === 'grpc') protocol = 'grpc';
    else if (envProtocol === 'http/protobuf' || envProtocol === 'http/json' || envProtocol === 'http') protocol = 'http';
    else throw new CourierError('ERR_INVALID_CONFIG', `OTEL_EXPORTER_OTLP_PROTOCOL "${envProtocol}" is not one of grpc, http/protobuf`);
  } else if (otel.protocol !== undefined) protocol = otel.protocol;
  else if (envEndpoint !== undefined) protocol = 'http'; // OpenTelemetry's default for the variables
  else return undefined; // Dapr registers the OTLP exporter only when both endpointAddress and protocol are set
  const insecureEnv = nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_INSECURE) ?? nonEmpty(env.OTEL_EXPORTER_OTLP_INSECURE);
  const secure = insecureEnv !== undefined ? insecureEnv.toLowerCase() !== 'true' : (otel.isSecure ?? true);
  const headers: Record<string, string> = {};
  for (const [name, value] of headerPairs(otel.headers)) headers[name] = value;
  const envHeaders = nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_HEADERS) ?? nonEmpty(env.OTEL_EXPORTER_OTLP_HEADERS);
  if (envHeaders !== undefined) for (const [name, value] of headerPairs(envHeaders)) headers[name] = value;
  const envTimeout = nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT) ?? nonEmpty(env.OTEL_EXPORTER_OTLP_TIMEOUT);
  const timeoutMs = envTimeout !== undefined ? Number(envTimeout) : durationMs(otel.timeout);
  return {
    kind: 'otlp',
    protocol,
    url: otlpUrl(endpoint, protocol, secure),
    headers,
    timeoutMs: Number.isFinite(timeoutMs) && timeoutMs > 0 ? timeoutMs : DEFAULT_OTLP_TIMEOUT_MS,
  };
}

/**
 * The exporter URL for an endpoint written as Dapr users write it: `host:port` (scheme from
 * `isSecure`, and `/v1/traces` added for OTLP/HTTP) or a full URL (kept; OTLP/HTTP gets `/v1/traces`
 * when it has no path).
 */
export function otlpUrl(endpoint: string, protocol: 'http' | 'grpc', secure: boolean): string {
  const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint);
  const url = endpointUrl(hasScheme ? endpoint : `${secure ? 'https' : 'http'}://${endpoint}`, endpoint);
  if (protocol === 'grpc') return `${url.protocol}//${url.host}`;
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/v1/traces';
  return url.toString();
}

/**
 * Parses an exporter endpoint, refusing what would otherwise be sent somewhere else without a word: a
 * scheme other than http(s), no host, or a `:` with no port after it (`127.0.0.1:` would mean port 80).
 */
function endpointUrl(text: string, asWritten: string): URL {
  const bad = (why: string): CourierError => new CourierError('ERR_INVALID_CONFIG', `the tracing endpoint "${asWritten}" ${why}`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw bad('is not a valid address (host:port or an http(s) URL)');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw bad('must be http or https');
  if (url.hostname === '') throw bad('has no host');
  if (url.port === '' && /^[a-z][a-z0-9+.-]*:\/\/(\[[^\]]*\]|[^/:?#]*):(?=$|[/?#])/i.test(text)) throw bad('has a ":" but no port');
  return url;
}

type OtelHeaders = NonNullable<TracingSpec['otel']>['headers'];

function headerPairs(value: OtelHeaders): Array<[string, string]> {
  if (value === undefined) return [];
  const items = typeof value === 'string' ? value.split(',') : value;
  const out: Array<[string, string]> = [];
  for (const item of items) {
    if (typeof item !== 'string') {
      out.push([item.name.trim().toLowerCase(), item.value]);
      continue;
    }
    const eq = item.indexOf('=');
    if (eq <= 0) throw new CourierError('ERR_INVALID_CONFIG', `the OTLP header "${item}" is not written key=value`);
    out.push([decodeURIComponent(item.slice(0, eq).trim()).toLowerCase(), decodeURIComponent(item.slice(eq + 1).trim())]);
  }
  return out;
}

/** A Go-style duration ("10s", "500ms", "1m") or a number of seconds, in milliseconds. */
function durationMs(value: string | number | undefined): number {
  if (value === undefined) return DEFAULT_OTLP_TIMEOUT_MS;
  if (typeof value === 'number') return value * 1000;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (m === null) throw new CourierError('ERR_INVALID_CONFIG', `spec.tracing.otel.timeout "${value}" is not a duration such as 10s`);
  const n = Number(m[1]);
  switch (m[2]) {
    case 'ms':
      return n;
    case 'm':
      return n * 60_000;
    case 'h':
      return n * 3_600_000;
    default:
      return n * 1000;
  }
}
