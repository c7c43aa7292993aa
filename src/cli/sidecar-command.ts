import { readFileSync, statSync } from '../util/builtins.js';
import { join } from 'node:path';
import { appProtocols, appSslDeprecation, parseAppProtocol, withAppSsl } from '../channel/app-protocol.js';
import { balancerKinds } from '../invoke/balancer.js';
import { validateAppId } from '../invoke/identity.js';
import { logLevels, type LogLevel } from '../observability/logging/levels.js';
import { errorMessage } from '../errors/index.js';
import { courierHome, sidecarModes, type MtlsOptions, type SidecarOptions } from '../runtime/options.js';
import { DEFAULT_CONTROL_PLANE_NAMESPACE, DEFAULT_CONTROL_PLANE_TRUST_DOMAIN } from '../sentry/names.js';
import { parseDuration } from '../util/duration.js';
import { parseQuantity } from '../util/quantity.js';
import { flagError, formatFlagHelp, parseFlags, type FlagSpec } from './flags.js';
import { DEFAULT_SCHEDULER_SLICE_US } from '../runtime/scheduler-slice.js';

/**
 * The flags of `courier sidecar`, which are daprd's (Dapr `cmd/daprd/options/options.go`), so scripts
 * written for daprd work unchanged. Flags for Dapr features Courier does not have (actors, pub/sub
 * placement) are accepted and ignored with a warning; flags for features not yet available fail.
 */
export const sidecarFlags: readonly FlagSpec[] = [
  { name: 'app-id', type: 'string', placeholder: '<id>', help: 'the id of the app this sidecar serves (required)' },
  { name: 'app-port', type: 'int', placeholder: '<port>', help: 'the port the app listens on; omit for an app that only makes calls' },
  {
    name: 'app-protocol',
    type: 'string',
    placeholder: '<protocol>',
    defaultText: 'http',
    help: 'how the sidecar talks to the app: http, https (TLS, certificate not verified), h2c (HTTP/2 without TLS), grpc or grpcs (gRPC over TLS, certificate not verified)',
  },
  { name: 'app-ssl', type: 'bool', help: 'deprecated: use --app-protocol https or grpcs (turns http into https and grpc into grpcs)' },
  { name: 'app-channel-address', type: 'string', placeholder: '<host>', defaultText: '127.0.0.1', help: 'the address of the app' },
  { name: 'dapr-http-port', type: 'int', placeholder: '<port>', defaultText: '3500', help: 'the port of the HTTP API (0 picks a free port)' },
  { name: 'dapr-grpc-port', type: 'int', placeholder: '<port>', defaultText: '50001', help: "the port of Dapr's gRPC API (InvokeService, metadata, shutdown and gRPC proxying)" },
  {
    name: 'dapr-internal-grpc-port',
    type: 'int',
    placeholder: '<port>',
    defaultText: 'a stable port derived from the app id',
    help: 'the port other sidecars call this one on',
  },
  {
    name: 'dapr-internal-grpc-listen-address',
    type: 'string',
    placeholder: '<host>',
    defaultText: '127.0.0.1',
    help: 'the address the internal port listens on (and is announced to other sidecars)',
  },
  {
    name: 'dapr-listen-addresses',
    type: 'string',
    placeholder: '<hosts>',
    defaultText: '127.0.0.1,[::1]',
    help: 'comma-separated addresses the HTTP API listens on',
  },
  {
    name: 'unix-domain-socket',
    short: 'u',
    type: 'string',
    placeholder: '<dir>',
    help: 'serve the HTTP and gRPC APIs on Unix domain sockets in this directory (dapr-<app-id>-http.socket, dapr-<app-id>-grpc.socket) instead of TCP ports',
  },
  { name: 'config', short: 'c', type: 'string', placeholder: '<file>', help: 'a Dapr Configuration file' },
  { name: 'resources-path', aliases: ['components-path'], type: 'list', placeholder: '<dir>', help: 'a directory of resource files (repeatable)' },
  { name: 'max-body-size', type: 'string', placeholder: '<size>', defaultText: '4Mi', help: 'the largest request body accepted' },
  { name: 'read-buffer-size', type: 'string', placeholder: '<size>', defaultText: '16Ki', help: 'the largest request head (headers) accepted' },
  {
    name: 'max-request-headers',
    type: 'int',
    placeholder: '<n>',
    defaultText: '100',
    help: 'the most headers an HTTP API request may carry; more are refused with 431 (0: no limit)',
  },
  { name: 'app-max-concurrency', type: 'int', placeholder: '<n>', defaultText: '-1 (unlimited)', help: 'the most calls to the app at once' },
  { name: 'enable-app-health-check', type: 'bool', help: 'probe the app and stop calling it while it is unhealthy' },
  { name: 'app-health-check-path', type: 'string', placeholder: '<path>', defaultText: '/healthz', help: 'the path probed with GET' },
  { name: 'app-health-probe-interval', type: 'string', placeholder: '<seconds>', defaultText: '5', help: 'seconds between probes' },
  { name: 'app-health-probe-timeout', type: 'string', placeholder: '<ms>', defaultText: '500', help: 'milliseconds a probe may take' },
  { name: 'app-health-threshold', type: 'int', placeholder: '<n>', defaultText: '3', help: 'failed probes in a row before the app is unhealthy' },
  {
    name: 'app-ready-timeout',
    type: 'string',
    placeholder: '<duration>',
    defaultText: '30s',
    help: 'how long a call that arrives before the app listens (and passes its first health probe) waits for it',
  },
  {
    name: 'max-connections',
    type: 'int',
    placeholder: '<n>',
    defaultText: '1024',
    help: 'connections each listening port (HTTP API, gRPC API, internal) holds at once; more are refused (0: no limit)',
  },
  {
    name: 'handshake-timeout',
    type: 'string',
    placeholder: '<duration>',
    defaultText: '10s',
    help: 'how long a new connection may take to finish its TLS handshake and its HTTP/2 preface or HTTP request head',
  },
  { name: 'log-level', type: 'string', placeholder: '<level>', defaultText: 'info', help: 'debug, info, warn, error or fatal' },
  { name: 'log-as-json', type: 'bool', help: 'write logs as JSON lines' },
  { name: 'metrics-port', short: 'M', type: 'int', placeholder: '<port>', defaultText: '9090', help: 'the port of the Prometheus metrics endpoint (0: any free port)' },
  { name: 'enable-metrics', type: 'bool', defaultText: 'true', help: 'record metrics and serve them on --metrics-port' },
  { name: 'metrics-listen-address', type: 'string', placeholder: '<host>', defaultText: '0.0.0.0', help: 'the address the metrics endpoint listens on' },
  { name: 'dapr-public-port', type: 'int', placeholder: '<port>', help: "serve only the health endpoints (/v1.0/healthz, /v1.0/healthz/outbound) on this port, for a kubelet's probes (off by default; 0: any free port)" },
  { name: 'dapr-public-listen-address', type: 'string', placeholder: '<host>', defaultText: '0.0.0.0', help: 'the address the public health port listens on' },
  {
    name: 'tap-header-values',
    type: 'bool',
    help: 'let tap clients of the metrics port (courier tap) see request header values when they ask for them (headers=show); otherwise values are always redacted',
  },
  {
    name: 'dapr-graceful-shutdown-seconds',
    type: 'int',
    placeholder: '<s>',
    defaultText: '5',
    help: 'how long calls in flight may take to finish on shutdown',
  },
  {
    name: 'dapr-block-shutdown-duration',
    type: 'string',
    placeholder: '<duration>',
    help: 'on SIGTERM, keep serving (calls in and out) until this has passed or the app turns unhealthy, then shut down gracefully, so an app can still make calls while it stops (default: no wait)',
  },
  {
    name: 'mode',
    type: 'string',
    placeholder: '<mode>',
    defaultText: 'standalone',
    help: 'standalone, or kubernetes (in a Pod, as courier injector sets it): the kubernetes name resolver unless the Configuration names another, and no run record in COURIER_HOME',
  },
  { name: 'enable-mtls', type: 'bool', help: 'mutual TLS with other sidecars, with a certificate from the Sentry (needs --sentry-address and trust anchors)' },
  { name: 'sentry-address', type: 'string', placeholder: '<host:port>', help: 'the Sentry that signs this sidecar\'s certificates' },
  {
    name: 'trust-anchors-file',
    type: 'string',
    placeholder: '<file>',
    help: 'PEM certificates to trust, watched for changes (instead of DAPR_TRUST_ANCHORS)',
  },
  { name: 'control-plane-trust-domain', type: 'string', placeholder: '<domain>', defaultText: 'localhost', help: "the Sentry's trust domain" },
  { name: 'control-plane-namespace', type: 'string', placeholder: '<namespace>', defaultText: 'default', help: "the Sentry's namespace" },
  { name: 'dapr-http-max-request-size', type: 'int', placeholder: '<MB>', hidden: true, help: 'deprecated: use --max-body-size' },
  { name: 'dapr-http-read-buffer-size', type: 'int', placeholder: '<KB>', hidden: true, help: 'deprecated: use --read-buffer-size' },
  { name: 'placement-host-address', type: 'string', hidden: true, ignored: 'Courier has no actors', help: '' },
  { name: 'scheduler-host-address', type: 'string', hidden: true, ignored: 'Courier has no scheduler', help: '' },
  {
    name: 'enable-profiling',
    type: 'bool',
    help: 'serve runtime diagnostics (event-loop delay, GC pauses: GET /debug/runtime[?reset=true|?stop=true]), CPU profiles (GET /debug/cpu-profile?seconds=N) and allocation profiles (GET /debug/alloc-profile?seconds=N) on --profile-port',
  },
  { name: 'profile-port', type: 'int', placeholder: '<port>', defaultText: '7777', help: 'the port of --enable-profiling (loopback; 0 picks a free port)' },
  {
    name: 'internal-lane',
    type: 'bool',
    defaultText: 'true',
    help: 'call other Courier sidecars over the lean Courier-to-Courier lane and serve it on the internal port (false: gRPC over HTTP/2 only, as Dapr)',
  },
  {
    name: 'scheduler-slice',
    type: 'int',
    placeholder: '<µs>',
    defaultText: String(DEFAULT_SCHEDULER_SLICE_US),
    help: "the time slice the sidecar's event loop asks Linux for (6.12 and newer; 100 to 100000): a shorter slice is the same share of the CPU in shorter turns that start sooner after the sidecar wakes (0: the kernel's default)",
  },
  {
    name: 'load-balancing',
    type: 'string',
    placeholder: '<policy>',
    defaultText: 'p2c',
    help: 'how each call chooses an instance of the target app: p2c (the less loaded of two drawn at random, by latency and calls in flight) or round-robin',
  },
  {
    name: 'outlier-ejection',
    type: 'int',
    placeholder: '<n>',
    defaultText: '5',
    help: 'failed calls in a row (no answer, 5xx, 429) after which an instance is left out for 10 s, longer each time, at most 5 min (0: never)',
  },
  {
    name: 'retry-budget',
    type: 'string',
    placeholder: '<ratio>',
    defaultText: '0.2',
    help: 'retries (built-in and Resiliency policies) allowed per call made to a target over the last 10 s, on top of --retry-budget-min (off: retries are not budgeted)',
  },
  {
    name: 'retry-budget-min',
    type: 'string',
    placeholder: '<n>',
    defaultText: '10',
    help: 'retries per second a target may get whatever its traffic, within the retry budget',
  },
  {
    name: 'enable-api-logging',
    type: 'bool',
    help: 'log one line per call of the HTTP and gRPC APIs (default: spec.logging.apiLogging.enabled of --config, else off)',
  },
  { name: 'help', short: 'h', type: 'bool', help: 'show this help' },
];

/** Flags of Dapr features that Courier does not offer yet: refused with this reason. */
const notYetSupported: Readonly<Record<string, string>> = {};

export const sidecarUsage = `Usage: courier sidecar --app-id <id> [flags]

Runs a Courier sidecar beside one app, like daprd. The app calls the sidecar's HTTP API
(/v1.0/invoke/<app-id>/method/<method>, or any path with a dapr-app-id header) and the sidecar finds
the target through name resolution and calls its sidecar.

Environment: NAMESPACE (default "default"), DAPR_API_TOKEN, APP_API_TOKEN, COURIER_HOME (default ~/.courier);
for mTLS: DAPR_TRUST_ANCHORS, COURIER_SENTRY_TOKEN or DAPR_SENTRY_TOKEN_FILE, DAPR_CONTROLPLANE_TRUST_DOMAIN,
DAPR_CONTROLPLANE_NAMESPACE.

Flags:
${formatFlagHelp(sidecarFlags)}
`;

export interface SidecarCommandResult {
  readonly options: SidecarOptions;
  /** Warnings about accepted-but-ignored flags, to be logged once the logger exists. */
  readonly warnings: readonly string[];
}

/** Turns `courier sidecar` arguments and the environment into SidecarOptions. Throws ERR_INVALID_FLAG. */
export function parseSidecarArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): SidecarCommandResult | 'help' {
  const cmd = 'sidecar';
  const { values } = parseFlags(cmd, argv, sidecarFlags);
  if (values.get('help') === true) return 'help';
  const warnings: string[] = [];
  for (const spec of sidecarFlags) {
    if (!values.has(spec.name)) continue;
    if (spec.ignored !== undefined) warnings.push(`--${spec.name} is ignored: ${spec.ignored}`);
    const reason = notYetSupported[spec.name];
    if (reason !== undefined) throw flagError(cmd, `--${spec.name} is not supported: ${reason}`);
  }
  const str = (name: string): string | undefined => values.get(name) as string | undefined;
  const int = (name: string): number | undefined => values.get(name) as number | undefined;
  const bool = (name: string): boolean | undefined => values.get(name) as boolean | undefined;
  const port = (name: string, fallback: number): number => {
    const v = int(name) ?? fallback;
    if (v < 0 || v > 65535) throw flagError(cmd, `--${name}: ${v} is not a port number`);
    return v;
  };

  const appId = str('app-id');
  if (appId === undefined) throw flagError(cmd, '--app-id is required');
  const invalid = validateAppId(appId);
  if (invalid !== undefined) throw flagError(cmd, `--app-id: ${invalid}`);

  const appPortRaw = int('app-port');
  const appPort = appPortRaw === undefined || appPortRaw === 0 ? undefined : port('app-port', 0);
  const protocolText = str('app-protocol') ?? 'http';
  let protocol = parseAppProtocol(protocolText);
  if (protocol === undefined) {
    throw flagError(cmd, `--app-protocol ${protocolText.toLowerCase()} is not supported (supported: ${appProtocols.join(', ')})`);
  }
  if (values.has('app-ssl')) {
    warnings.push(appSslDeprecation);
    if (bool('app-ssl') === true) protocol = withAppSsl(protocol);
  }
  const modeText = (str('mode') ?? 'standalone').toLowerCase();
  const mode = sidecarModes.find((m) => m === modeText);
  if (mode === undefined) throw flagError(cmd, `--mode ${modeText} is not supported (supported: ${sidecarModes.join(', ')})`);

  let maxBodyBytes = 4 * 1024 * 1024;
  const legacyMax = int('dapr-http-max-request-size');
  if (legacyMax !== undefined) {
    warnings.push(deprecated('dapr-http-max-request-size', 'max-body-size', values.has('max-body-size')));
    if (legacyMax <= 0) throw flagError(cmd, `--dapr-http-max-request-size: ${legacyMax} is not a positive number of megabytes`);
    maxBodyBytes = legacyMax * 1024 * 1024;
  }
  const maxBody = str('max-body-size');
  if (maxBody !== undefined) {
    const parsed = parseQuantity(maxBody);
    if (parsed === undefined || parsed <= 0) throw flagError(cmd, `--max-body-size: "${maxBody}" is not a size such as 4Mi or 200Mi`);
    maxBodyBytes = parsed;
  }
  let readBufferBytes = 16 * 1024;
  const legacyRead = int('dapr-http-read-buffer-size');
  if (legacyRead !== undefined) {
    warnings.push(deprecated('dapr-http-read-buffer-size', 'read-buffer-size', values.has('read-buffer-size')));
    if (legacyRead < 1) throw flagError(cmd, `--dapr-http-read-buffer-size: ${legacyRead} is not a positive number of kilobytes`);
    readBufferBytes = legacyRead * 1024;
  }
  const readBuffer = str('read-buffer-size');
  if (readBuffer !== undefined) {
    const parsed = parseQuantity(readBuffer);
    if (parsed === undefined || parsed < 1024) throw flagError(cmd, `--read-buffer-size: "${readBuffer}" is not a size of at least 1Ki`);
    readBufferBytes = parsed;
  }

  const listenAddresses = (str('dapr-listen-addresses') ?? '127.0.0.1,[::1]')
    .split(',')
    .map((a) => a.trim().replace(/^\[(.*)\]$/, '$1'))
    .filter((a) => a !== '');
  if (listenAddresses.length === 0) throw flagError(cmd, '--dapr-listen-addresses must name at least one address');

  const unixDomainSocket = str('unix-domain-socket');
  if (unixDomainSocket !== undefined) {
    const problem = socketDirectoryProblem(unixDomainSocket, appId);
    if (problem !== undefined) throw flagError(cmd, `--unix-domain-socket ${unixDomainSocket}: ${problem}`);
  }

  const logLevel = (str('log-level') ?? 'info').toLowerCase();
  if (!(logLevels as readonly string[]).includes(logLevel)) {
    throw flagError(cmd, `--log-level: "${logLevel}" is not one of ${logLevels.join(', ')}`);
  }

  const healthEnabled = bool('enable-app-health-check') === true;
  const intervalMs = parseDuration(str('app-health-probe-interval') ?? '5', 's');
  const timeoutMs = parseDuration(str('app-health-probe-timeout') ?? '500', 'ms');
  const threshold = int('app-health-threshold') ?? 3;
  if (intervalMs === undefined || intervalMs <= 0) throw flagError(cmd, '--app-health-probe-interval must be a positive number of seconds (or a duration such as 5s)');
  if (timeoutMs === undefined || timeoutMs <= 0) throw flagError(cmd, '--app-health-probe-timeout must be a positive number of milliseconds (or a duration such as 500ms)');
  if (threshold < 1) throw flagError(cmd, '--app-health-threshold must be at least 1');
  const healthPath = str('app-health-check-path') ?? '/healthz';

  const appReadyTimeoutMs = parseDuration(str('app-ready-timeout') ?? '30s', 's');
  if (appReadyTimeoutMs === undefined || appReadyTimeoutMs <= 0) throw flagError(cmd, '--app-ready-timeout must be a positive duration such as 30s');
  const handshakeTimeoutMs = parseDuration(str('handshake-timeout') ?? '10s', 's');
  if (handshakeTimeoutMs === undefined || handshakeTimeoutMs <= 0) throw flagError(cmd, '--handshake-timeout must be a positive duration such as 10s');
  const maxRequestHeaders = int('max-request-headers') ?? 100;
  if (maxRequestHeaders < 0) throw flagError(cmd, '--max-request-headers must be 0 (no limit) or more');
  const maxConnections = int('max-connections') ?? 1024;
  if (maxConnections < 0) throw flagError(cmd, '--max-connections must be 0 (no limit) or more');

  const blockText = str('dapr-block-shutdown-duration');
  const blockShutdownMs = blockText === undefined ? undefined : parseDuration(blockText, 's');
  if (blockShutdownMs !== undefined && blockShutdownMs < 0) throw flagError(cmd, `--dapr-block-shutdown-duration: "${blockText ?? ''}" is negative`);
  if (blockText !== undefined && blockShutdownMs === undefined) throw flagError(cmd, `--dapr-block-shutdown-duration: "${blockText}" is not a duration such as 30s or 1m`);
  const graceSeconds = int('dapr-graceful-shutdown-seconds') ?? 5;
  if (graceSeconds < 0) throw flagError(cmd, '--dapr-graceful-shutdown-seconds must not be negative');
  const maxConcurrency = int('app-max-concurrency') ?? -1;
  if (maxConcurrency === 0 || maxConcurrency < -1) throw flagError(cmd, '--app-max-concurrency must be a positive number, or -1 for unlimited');

  const loadBalancingText = (str('load-balancing') ?? 'p2c').toLowerCase();
  const loadBalancing = balancerKinds.find((k) => k === loadBalancingText);
  if (loadBalancing === undefined) throw flagError(cmd, `--load-balancing ${loadBalancingText} is not supported (supported: ${balancerKinds.join(', ')})`);
  const outlierEjection = int('outlier-ejection') ?? 5;
  if (outlierEjection < 0) throw flagError(cmd, '--outlier-ejection must be 0 (no ejection) or a number of failures in a row');

  const budgetText = (str('retry-budget') ?? '0.2').trim().toLowerCase();
  const budgetRatio = budgetText === 'off' ? undefined : Number(budgetText);
  if (budgetRatio !== undefined && (budgetText === '' || !Number.isFinite(budgetRatio) || budgetRatio < 0)) {
    throw flagError(cmd, `--retry-budget: "${budgetText}" is not a ratio such as 0.2 (or off)`);
  }
  const budgetMinText = (str('retry-budget-min') ?? '10').trim();
  const budgetMin = Number(budgetMinText);
  if (budgetMinText === '' || !Number.isFinite(budgetMin) || budgetMin < 0) throw flagError(cmd, `--retry-budget-min: "${budgetMinText}" is not a number of retries per second`);

  const schedulerSliceUs = int('scheduler-slice') ?? DEFAULT_SCHEDULER_SLICE_US;
  if (schedulerSliceUs !== 0 && (schedulerSliceUs < 100 || schedulerSliceUs > 100_000)) {
    throw flagError(cmd, `--scheduler-slice ${schedulerSliceUs}: Linux takes 100 to 100000 µs (0: the kernel's default)`);
  }
  const internalPort = int('dapr-internal-grpc-port');
  const mtls = bool('enable-mtls') === true ? mtlsOptions(cmd, str, env) : undefined;
  if (mtls === undefined) {
    for (const name of ['sentry-address', 'trust-anchors-file']) {
      if (values.has(name)) warnings.push(`--${name} has no effect without --enable-mtls`);
    }
  }
  const options: SidecarOptions = {
    appId,
    namespace: nonEmpty(env.NAMESPACE) ?? 'default',
    appPort,
    appProtocol: protocol,
    appChannelAddress: str('app-channel-address') ?? '127.0.0.1',
    httpPort: port('dapr-http-port', 3500),
    grpcPort: port('dapr-grpc-port', 50001),
    internalGrpcPort: internalPort === undefined || internalPort === 0 ? undefined : port('dapr-internal-grpc-port', 0),
    internalGrpcListenAddress: (str('dapr-internal-grpc-listen-address') ?? '127.0.0.1').replace(/^\[(.*)\]$/, '$1'),
    listenAddresses,
    unixDomainSocket,
    configFile: str('config'),
    resourcesPaths: (values.get('resources-path') as string[] | undefined) ?? [],
    maxBodyBytes,
    readBufferBytes,
    maxRequestHeaders,
    appMaxConcurrency: maxConcurrency,
    healthProbe: healthEnabled ? { path: healthPath.startsWith('/') ? healthPath : `/${healthPath}`, intervalMs, timeoutMs, threshold } : undefined,
    appReadyTimeoutMs,
    limits: { maxConnections, handshakeTimeoutMs },
    internalLane: bool('internal-lane') ?? true,
    loadBalancing,
    outlierEjection,
    retryBudget: budgetRatio === undefined ? undefined : { ratio: budgetRatio, minPerSecond: budgetMin },
    schedulerSliceUs,
    logLevel: logLevel as LogLevel,
    logAsJson: bool('log-as-json') === true,
    enableApiLogging: bool('enable-api-logging'),
    profilePort: bool('enable-profiling') === true ? port('profile-port', 7777) : undefined,
    metricsPort: port('metrics-port', 9090),
    metricsListenAddress: (str('metrics-listen-address') ?? '0.0.0.0').replace(/^\[(.*)\]$/, '$1'),
    publicPort: values.get('dapr-public-port') === undefined ? undefined : port('dapr-public-port', 3501),
    publicListenAddress: (str('dapr-public-listen-address') ?? '0.0.0.0').replace(/^\[(.*)\]$/, '$1'),
    enableMetrics: bool('enable-metrics') ?? true,
    tapHeaderValues: bool('tap-header-values') === true,
    gracefulShutdownMs: graceSeconds * 1000,
    blockShutdownMs,
    mode,
    apiToken: nonEmpty(env.DAPR_API_TOKEN),
    appApiToken: nonEmpty(env.APP_API_TOKEN),
    courierHome: courierHome(env),
    mtls,
  };
  return { options, warnings };
}

function mtlsOptions(cmd: string, str: (name: string) => string | undefined, env: NodeJS.ProcessEnv): MtlsOptions {
  const sentryAddress = str('sentry-address');
  if (sentryAddress === undefined) throw flagError(cmd, '--enable-mtls needs --sentry-address <host:port>');
  if (!/^\[?[^\]]+\]?:\d+$/.test(sentryAddress)) throw flagError(cmd, `--sentry-address: "${sentryAddress}" is not host:port`);
  const file = str('trust-anchors-file');
  const pem = nonEmpty(env.DAPR_TRUST_ANCHORS);
  if (file === undefined && pem === undefined) {
    throw flagError(cmd, '--enable-mtls needs trust anchors: DAPR_TRUST_ANCHORS (PEM) or --trust-anchors-file <file>');
  }
  let token = nonEmpty(env.COURIER_SENTRY_TOKEN);
  const tokenFile = nonEmpty(env.DAPR_SENTRY_TOKEN_FILE);
  if (token === undefined && tokenFile !== undefined) {
    try {
      token = readFileSync(tokenFile, 'utf8').trim();
    } catch (err) {
      throw flagError(cmd, `DAPR_SENTRY_TOKEN_FILE ${tokenFile}: ${errorMessage(err)}`);
    }
  }
  return {
    sentryAddress,
    trustAnchors: file !== undefined ? { file } : { pem: pem as string },
    token,
    controlPlaneTrustDomain: str('control-plane-trust-domain') ?? nonEmpty(env.DAPR_CONTROLPLANE_TRUST_DOMAIN) ?? DEFAULT_CONTROL_PLANE_TRUST_DOMAIN,
    controlPlaneNamespace: str('control-plane-namespace') ?? nonEmpty(env.DAPR_CONTROLPLANE_NAMESPACE) ?? DEFAULT_CONTROL_PLANE_NAMESPACE,
  };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

/** daprd's wording for a deprecated flag (Go's pflag), and which flag wins when both are given. */
function deprecated(old: string, replacement: string, bothGiven: boolean): string {
  return `Flag --${old} has been deprecated, use --${replacement} instead${bothGiven ? ` (--${replacement} is given too and takes precedence)` : ''}`;
}

/** Why `dir` cannot hold the API sockets, or undefined. */
function socketDirectoryProblem(dir: string, appId: string): string | undefined {
  let stat;
  try {
    stat = statSync(dir);
  } catch (err) {
    return errorMessage(err);
  }
  if (!stat.isDirectory()) return 'not a directory';
  // sockaddr_un holds 108 bytes including the terminating NUL.
  const longest = Buffer.byteLength(join(dir, `dapr-${appId}-http.socket`));
  if (longest > 107) return `the socket paths would be ${longest} bytes long, more than the 107 a Unix socket path may have; use a shorter directory`;
  return undefined;
}
