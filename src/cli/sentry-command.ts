import { readFileSync } from '../util/builtins.js';
import { join } from 'node:path';
import { CourierError, errorMessage } from '../errors/index.js';
import { validateAppId } from '../invoke/identity.js';
import { loadConfiguration } from '../config/configuration.js';
import { createLogger, logLevels, type LogLevel } from '../observability/logging/index.js';
import { courierHome } from '../runtime/options.js';
import { CertificateAuthority, copyCaMaterial, DEFAULT_JOIN_TOKEN_TTL_MS, loadOrCreateCa, loadOrCreateTokenSecret, mintJoinToken, TOKEN_SECRET_FILE } from '../security/index.js';
import {
  DEFAULT_ALLOWED_CLOCK_SKEW_MS,
  DEFAULT_CONTROL_PLANE_NAMESPACE,
  DEFAULT_CONTROL_PLANE_TRUST_DOMAIN,
  DEFAULT_SENTRY_PORT,
  DEFAULT_WORKLOAD_CERT_TTL_MS,
  DEFAULT_WORKLOAD_TRUST_DOMAIN,
} from '../sentry/names.js';
import { DEFAULT_SENTRY_LIMITS, SentryServer, type SentryLimits } from '../sentry/server.js';
import { IN_CLUSTER_API_SERVER, IN_CLUSTER_CA_FILE, IN_CLUSTER_TOKEN_FILE, SENTRY_TOKEN_AUDIENCE } from '../kubernetes/constants.js';
import type { KubernetesTokenValidator } from '../kubernetes/sentry/token-validator.js';
import type { Logger } from '../observability/logging/index.js';
import { formatDuration, parseDuration } from '../util/duration.js';
import { flagError, formatFlagHelp, parseFlags, type FlagSpec } from './flags.js';

export const sentryFlags: readonly FlagSpec[] = [
  { name: 'issuer-credentials', type: 'string', placeholder: '<dir>', defaultText: '$COURIER_HOME/certs', help: 'where ca.crt, issuer.crt, issuer.key and token.key are (created when missing)' },
  {
    name: 'issuer-credentials-from',
    type: 'string',
    placeholder: '<dir>',
    help: 'first copy ca.crt, issuer.crt, issuer.key (and token.key if there) from this directory into --issuer-credentials, keys owner-only: for a mounted Kubernetes Secret, whose files the Sentry cannot own',
  },
  { name: 'port', type: 'int', placeholder: '<port>', defaultText: String(DEFAULT_SENTRY_PORT), help: 'the port to listen on' },
  { name: 'listen-address', type: 'string', placeholder: '<host>', defaultText: '127.0.0.1', help: 'the address to listen on (0.0.0.0 for several machines)' },
  { name: 'trust-domain', type: 'string', placeholder: '<domain>', defaultText: DEFAULT_WORKLOAD_TRUST_DOMAIN, help: 'the trust domain of the app certificates' },
  { name: 'control-plane-trust-domain', type: 'string', placeholder: '<domain>', defaultText: DEFAULT_CONTROL_PLANE_TRUST_DOMAIN, help: "the trust domain of the Sentry's own identity" },
  { name: 'control-plane-namespace', type: 'string', placeholder: '<namespace>', defaultText: DEFAULT_CONTROL_PLANE_NAMESPACE, help: "the namespace of the Sentry's own identity" },
  { name: 'workload-cert-ttl', type: 'string', placeholder: '<duration>', defaultText: '24h', help: 'how long app certificates live' },
  { name: 'allowed-clock-skew', type: 'string', placeholder: '<duration>', defaultText: '15m', help: 'how far back certificates are valid from, for clocks that differ' },
  { name: 'config', short: 'c', type: 'string', placeholder: '<file>', help: 'a Configuration file whose spec.mtls sets the TTL and clock skew' },
  { name: 'insecure', type: 'bool', help: 'sign for anyone who asks, without a join token (local development only)' },
  { name: 'kubernetes-jwks-file', type: 'string', placeholder: '<file>', help: "accept projected ServiceAccount tokens signed by a key of this JWKS (the API server's /openid/v1/jwks); re-read when it changes" },
  { name: 'kubernetes-jwks-url', type: 'string', placeholder: '<url>', help: 'accept projected ServiceAccount tokens signed by a key fetched from this https URL (cached; an unknown key id fetches again)' },
  {
    name: 'kubernetes-jwks-ca-file',
    type: 'string',
    placeholder: '<file>',
    help: "with --kubernetes-jwks-url: check the server's certificate against these CAs (in a pod: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt)",
  },
  {
    name: 'kubernetes-jwks-token-file',
    type: 'string',
    placeholder: '<file>',
    help: 'with --kubernetes-jwks-url: send this bearer token, re-read at each fetch (in a pod: /var/run/secrets/kubernetes.io/serviceaccount/token)',
  },
  { name: 'kubernetes-issuer', type: 'string', placeholder: '<iss>', help: "the cluster's ServiceAccount issuer, as in the tokens' iss (required with --kubernetes-jwks-*)" },
  { name: 'kubernetes-audience', type: 'string', placeholder: '<aud>', defaultText: SENTRY_TOKEN_AUDIENCE, help: 'the audience the tokens must be issued for' },
  {
    name: 'kubernetes-app-id-map',
    type: 'string',
    placeholder: '<file>',
    help: 'YAML mapping "<namespace>/<serviceaccount>" to the app ids its pods may ask for; without an entry, only the ServiceAccount name',
  },
  {
    name: 'kubernetes-api-server',
    type: 'string',
    placeholder: '<url>',
    help: `look up the pod each token was issued for (needs get on pods) and refuse tokens whose pod is gone; in a pod: ${IN_CLUSTER_API_SERVER}`,
  },
  { name: 'kubernetes-api-ca-file', type: 'string', placeholder: '<file>', help: `with --kubernetes-api-server: check its certificate against these CAs (in a pod: ${IN_CLUSTER_CA_FILE})` },
  { name: 'kubernetes-api-token-file', type: 'string', placeholder: '<file>', help: `with --kubernetes-api-server: send this bearer token, re-read at each request (in a pod: ${IN_CLUSTER_TOKEN_FILE})` },
  {
    name: 'kubernetes-app-id-from',
    type: 'string',
    placeholder: '<source>',
    defaultText: 'serviceaccount',
    help: "serviceaccount (the ServiceAccount's name, or --kubernetes-app-id-map) or pod (the pod's dapr.io/app-id annotation, as Dapr's Sentry; needs --kubernetes-api-server)",
  },
  {
    name: 'address-rate-limit',
    type: 'string',
    placeholder: '<n>',
    defaultText: String(DEFAULT_SENTRY_LIMITS.perAddress.perSecond),
    help: 'certificate requests a second one client address (IPv6: one /64) may make once its burst is spent; 0: no limit',
  },
  { name: 'address-burst', type: 'int', placeholder: '<n>', defaultText: String(DEFAULT_SENTRY_LIMITS.perAddress.burst), help: 'certificate requests one client address may make at once' },
  {
    name: 'identity-rate-limit',
    type: 'string',
    placeholder: '<n>',
    defaultText: String(DEFAULT_SENTRY_LIMITS.perIdentity.perSecond),
    help: 'certificate requests a second for one app id and namespace once its burst is spent; 0: no limit',
  },
  { name: 'identity-burst', type: 'int', placeholder: '<n>', defaultText: String(DEFAULT_SENTRY_LIMITS.perIdentity.burst), help: 'certificate requests for one app id and namespace at once' },
  {
    name: 'max-connections-per-address',
    type: 'int',
    placeholder: '<n>',
    defaultText: String(DEFAULT_SENTRY_LIMITS.maxConnectionsPerAddress),
    help: 'open connections one client address may hold; further ones are closed at once; 0: no limit',
  },
  {
    name: 'max-tracked-clients',
    type: 'int',
    placeholder: '<n>',
    defaultText: String(DEFAULT_SENTRY_LIMITS.maxTrackedClients),
    help: 'addresses (and identities) the rate limits remember; the least recently seen is forgotten first',
  },
  {
    name: 'refusal-log-interval',
    type: 'string',
    placeholder: '<duration>',
    defaultText: '10s',
    help: 'how often refused requests are summarised in the log (the first of each kind from a client is logged at once)',
  },
  { name: 'log-level', type: 'string', placeholder: '<level>', defaultText: 'info', help: 'debug, info, warn, error or fatal' },
  { name: 'log-as-json', type: 'bool', help: 'write logs as JSON lines' },
  { name: 'help', short: 'h', type: 'bool', help: 'show this help' },
];

const tokenFlags: readonly FlagSpec[] = [
  { name: 'app-id', short: 'a', type: 'string', placeholder: '<id>', help: 'the app the token lets ask for certificates (required)' },
  { name: 'namespace', short: 'n', type: 'string', placeholder: '<ns>', defaultText: '$NAMESPACE or default', help: "the app's namespace" },
  {
    name: 'ttl',
    type: 'string',
    placeholder: '<duration>',
    defaultText: '24h',
    help: 'how long the token can be used to start sidecars, e.g. 720h; 0 or "never": no expiry (not recommended)',
  },
  { name: 'issuer-credentials', type: 'string', placeholder: '<dir>', defaultText: '$COURIER_HOME/certs', help: "the Sentry's credentials directory (holds token.key)" },
  { name: 'help', short: 'h', type: 'bool', help: 'show this help' },
];

const usage = `Usage: courier sentry [flags]
       courier sentry token --app-id <id> [flags]

Runs Courier's certificate authority: it signs short-lived SPIFFE certificates
(spiffe://<trust-domain>/ns/<namespace>/<app-id>) for sidecars started with --enable-mtls, over
TLS, with Dapr's dapr.proto.sentry.v1.CA/SignCertificate. A sidecar must prove its app id with a join
token made by "courier sentry token" (given to it as COURIER_SENTRY_TOKEN or in the file named by
DAPR_SENTRY_TOKEN_FILE) when it starts, and renews with its current certificate; unless the Sentry
runs with --insecure. With --kubernetes-jwks-file or --kubernetes-jwks-url and --kubernetes-issuer, a
sidecar in a Kubernetes pod may instead prove itself with its projected ServiceAccount token (audience
--kubernetes-audience): it gets the token's namespace, and an app id its ServiceAccount may use.

Requests are rate limited per client address and per app id (refused with RESOURCE_EXHAUSTED), and
refusals are summarised in the log. The Sentry refuses to start if issuer.key or token.key can be read
or written by anyone but their owner.

Flags:
${formatFlagHelp(sentryFlags)}
`;

const tokenUsage = `Usage: courier sentry token --app-id <id> [flags]

Prints a join token that lets a sidecar of <id> in <namespace> get certificates from the Sentry that
uses the same credentials directory. Treat it as a secret: until it expires, anyone holding it can get
certificates for <id>. Every instance of <id> may use the same token; a running sidecar renews with its
certificate, so the token is only needed to start one.

Flags:
${formatFlagHelp(tokenFlags)}
`;

function durationFlag(cmd: string, name: string, raw: string | undefined, fallbackMs: number): number {
  if (raw === undefined) return fallbackMs;
  const ms = parseDuration(raw);
  if (ms === undefined || ms <= 0) throw flagError(cmd, `--${name}: "${raw}" is not a duration such as 24h or 15m`);
  return ms;
}

function countFlag(cmd: string, name: string, raw: string | number | undefined, fallback: number, min: number): number {
  if (raw === undefined) return fallback;
  const n = typeof raw === 'number' ? raw : Number(raw.trim());
  if (raw === '' || !Number.isFinite(n) || n < min) throw flagError(cmd, `--${name}: "${raw}" is not a number of at least ${min}`);
  return n;
}

function limitsFromFlags(cmd: string, values: ReadonlyMap<string, string | number | boolean | string[]>): SentryLimits {
  const d = DEFAULT_SENTRY_LIMITS;
  const get = (name: string): string | number | undefined => values.get(name) as string | number | undefined;
  const whole = (name: string, fallback: number, min: number): number => countFlag(cmd, name, get(name), fallback, min);
  const interval = get('refusal-log-interval') as string | undefined;
  return {
    perAddress: { perSecond: countFlag(cmd, 'address-rate-limit', get('address-rate-limit'), d.perAddress.perSecond, 0), burst: whole('address-burst', d.perAddress.burst, 1) },
    perIdentity: { perSecond: countFlag(cmd, 'identity-rate-limit', get('identity-rate-limit'), d.perIdentity.perSecond, 0), burst: whole('identity-burst', d.perIdentity.burst, 1) },
    maxConnectionsPerAddress: whole('max-connections-per-address', d.maxConnectionsPerAddress, 0),
    maxTrackedClients: whole('max-tracked-clients', d.maxTrackedClients, 1),
    refusalLogIntervalMs: durationFlag(cmd, 'refusal-log-interval', interval, d.refusalLogIntervalMs),
  };
}

export async function sentryMain(argv: readonly string[]): Promise<number> {
  if (argv[0] === 'token') return tokenMain(argv.slice(1));
  const cmd = 'sentry';
  const { values } = parseFlags(cmd, argv, sentryFlags);
  if (values.get('help') === true) {
    process.stdout.write(usage);
    return 0;
  }
  const str = (n: string): string | undefined => values.get(n) as string | undefined;
  const level = (str('log-level') ?? 'info').toLowerCase();
  if (!(logLevels as readonly string[]).includes(level)) throw flagError(cmd, `--log-level: "${level}" is not one of ${logLevels.join(', ')}`);
  const port = (values.get('port') as number | undefined) ?? DEFAULT_SENTRY_PORT;
  if (port < 0 || port > 65535) throw flagError(cmd, `--port: ${port} is not a port number`);
  const config = str('config') === undefined ? undefined : loadConfiguration(str('config') as string);
  const ttlMs = durationFlag(cmd, 'workload-cert-ttl', str('workload-cert-ttl') ?? config?.mtls?.workloadCertTTL, DEFAULT_WORKLOAD_CERT_TTL_MS);
  const skewMs = durationFlag(cmd, 'allowed-clock-skew', str('allowed-clock-skew') ?? config?.mtls?.allowedClockSkew, DEFAULT_ALLOWED_CLOCK_SKEW_MS);
  const dir = str('issuer-credentials') ?? join(courierHome(), 'certs');
  const trustDomain = str('trust-domain') ?? DEFAULT_WORKLOAD_TRUST_DOMAIN;
  const insecure = values.get('insecure') === true;
  const limits = limitsFromFlags(cmd, values);
  const logger = createLogger({ level: level as LogLevel, json: values.get('log-as-json') === true, base: { scope: 'sentry' } });

  // Before the CA is created: wrong Kubernetes flags leave nothing behind.
  const kubernetes = await kubernetesValidator(cmd, str, logger);
  const copyFrom = str('issuer-credentials-from');
  if (copyFrom !== undefined) {
    copyCaMaterial(copyFrom, dir, TOKEN_SECRET_FILE);
    logger.info({ from: copyFrom, dir }, 'copied the issuer credentials');
  }
  const { material, created } = await loadOrCreateCa(dir, { trustDomain });
  if (created) logger.info({ dir }, 'created a new certificate authority (root and issuer)');
  const ca = await CertificateAuthority.fromMaterial(material);
  if (insecure) logger.warn('running with --insecure: certificates are signed for anyone who asks; use this for local development only');
  const server = new SentryServer({
    ca,
    tokenSecret: loadOrCreateTokenSecret(dir),
    insecure,
    workloadTrustDomain: trustDomain,
    controlPlaneTrustDomain: str('control-plane-trust-domain') ?? DEFAULT_CONTROL_PLANE_TRUST_DOMAIN,
    controlPlaneNamespace: str('control-plane-namespace') ?? DEFAULT_CONTROL_PLANE_NAMESPACE,
    workloadCertTtlMs: ttlMs,
    allowedClockSkewMs: skewMs,
    limits,
    kubernetes,
    logger,
  });
  const host = str('listen-address') ?? '127.0.0.1';
  let bound: number;
  try {
    bound = await server.listen(host, port);
  } catch (err) {
    throw new CourierError('ERR_INVALID_CONFIG', `courier sentry: cannot listen on ${host}:${port}: ${errorMessage(err)}`);
  }
  logger.info(
    {
      address: `${host}:${bound}`,
      trust_domain: trustDomain,
      workload_cert_ttl: formatDuration(ttlMs),
      allowed_clock_skew: formatDuration(skewMs),
      rate_limits: `${describeLimit(limits.perAddress)} per address, ${describeLimit(limits.perIdentity)} per app id`,
    },
    'Sentry listening',
  );
  return new Promise<number>((resolve) => {
    const stop = (signal: string): void => {
      logger.info(`received ${signal}: stopping`);
      server.close().then(
        () => resolve(0),
        () => resolve(1),
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

/** The Kubernetes token validator the flags ask for, if any (jose is loaded only then). */
async function kubernetesValidator(cmd: string, str: (name: string) => string | undefined, logger: Logger): Promise<KubernetesTokenValidator | undefined> {
  const file = str('kubernetes-jwks-file');
  const url = str('kubernetes-jwks-url');
  const issuer = str('kubernetes-issuer');
  const audience = str('kubernetes-audience') ?? SENTRY_TOKEN_AUDIENCE;
  const mapFile = str('kubernetes-app-id-map');
  const apiServer = str('kubernetes-api-server');
  const appIdFromText = (str('kubernetes-app-id-from') ?? 'serviceaccount').toLowerCase();
  if (file === undefined && url === undefined) {
    const kubernetesOnly = ['kubernetes-issuer', 'kubernetes-audience', 'kubernetes-app-id-map', 'kubernetes-jwks-ca-file', 'kubernetes-jwks-token-file', 'kubernetes-api-server', 'kubernetes-app-id-from'];
    for (const flag of kubernetesOnly) {
      if (str(flag) !== undefined) throw flagError(cmd, `--${flag} needs --kubernetes-jwks-file or --kubernetes-jwks-url`);
    }
    return undefined;
  }
  if (file !== undefined && url !== undefined) throw flagError(cmd, '--kubernetes-jwks-file and --kubernetes-jwks-url exclude each other');
  if (issuer === undefined || issuer === '') throw flagError(cmd, `--kubernetes-jwks-${file === undefined ? 'url' : 'file'} needs --kubernetes-issuer <iss>`);
  if (audience === '') throw flagError(cmd, '--kubernetes-audience must not be empty');
  const caFile = str('kubernetes-jwks-ca-file');
  const tokenFile = str('kubernetes-jwks-token-file');
  if (url === undefined && (caFile !== undefined || tokenFile !== undefined)) {
    throw flagError(cmd, `--kubernetes-jwks-${caFile !== undefined ? 'ca' : 'token'}-file goes with --kubernetes-jwks-url, not --kubernetes-jwks-file`);
  }
  const caPem = readFlagFile(cmd, 'kubernetes-jwks-ca-file', caFile);
  const appIdFrom = appIdFromText === 'serviceaccount' || appIdFromText === 'pod' ? appIdFromText : undefined;
  if (appIdFrom === undefined) throw flagError(cmd, `--kubernetes-app-id-from: "${appIdFromText}" is not serviceaccount or pod`);
  if (appIdFrom === 'pod' && apiServer === undefined) throw flagError(cmd, '--kubernetes-app-id-from pod needs --kubernetes-api-server (the Sentry reads the pod\'s annotation)');
  if (appIdFrom === 'pod' && mapFile !== undefined) throw flagError(cmd, '--kubernetes-app-id-map applies to --kubernetes-app-id-from serviceaccount only');
  const apiCaFile = str('kubernetes-api-ca-file');
  const apiTokenFile = str('kubernetes-api-token-file');
  if (apiServer === undefined && (apiCaFile !== undefined || apiTokenFile !== undefined)) {
    throw flagError(cmd, `--kubernetes-api-${apiCaFile !== undefined ? 'ca' : 'token'}-file needs --kubernetes-api-server`);
  }
  const apiCaPem = readFlagFile(cmd, 'kubernetes-api-ca-file', apiCaFile);
  const [{ openKeySet }, { AppIdPolicy }, { KubernetesTokenValidator }, { PodDirectory }] = await Promise.all([
    import('../kubernetes/sentry/key-set.js'),
    import('../kubernetes/sentry/app-ids.js'),
    import('../kubernetes/sentry/token-validator.js'),
    import('../kubernetes/sentry/pod-directory.js'),
  ]);
  const log = logger.child({ scope: 'kubernetes' });
  const source = file !== undefined ? { file } : { url: url as string, ...(caPem === undefined ? {} : { caPem }), ...(tokenFile === undefined ? {} : { bearerTokenFile: tokenFile }) };
  const keys = openKeySet(source, (message) => log.warn({ jwks: file }, `reloading the JWKS file failed: ${message}`));
  const appIds = mapFile === undefined ? new AppIdPolicy() : AppIdPolicy.fromFile(mapFile);
  const pods = apiServer === undefined ? undefined : new PodDirectory({ apiServer, caPem: apiCaPem, tokenFile: apiTokenFile });
  const appIdRule = appIdFrom === 'pod' ? "the pod's dapr.io/app-id annotation" : mapFile === undefined ? 'the ServiceAccount name' : `${mapFile} (${appIds.size} entries), else the ServiceAccount name`;
  log.info({ jwks: keys.description, issuer, audience, app_ids: appIdRule, pods: pods?.description ?? 'not looked up' }, 'accepting Kubernetes ServiceAccount tokens');
  return new KubernetesTokenValidator({ keys, issuer, audience, appIds, pods, appIdFrom });
}

/** The content of the file a flag names (undefined without the flag); an unreadable one is the flag's error. */
function readFlagFile(cmd: string, flag: string, file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw flagError(cmd, `--${flag} ${file}: ${errorMessage(err)}`);
  }
}

function describeLimit(limit: { perSecond: number; burst: number }): string {
  return limit.perSecond === 0 ? 'no limit' : `${limit.burst} at once then ${limit.perSecond}/s`;
}

async function tokenMain(argv: readonly string[]): Promise<number> {
  const cmd = 'sentry token';
  const { values } = parseFlags(cmd, argv, tokenFlags);
  if (values.get('help') === true) {
    process.stdout.write(tokenUsage);
    return 0;
  }
  const appId = values.get('app-id') as string | undefined;
  if (appId === undefined) throw flagError(cmd, '--app-id is required');
  const invalid = validateAppId(appId);
  if (invalid !== undefined) throw flagError(cmd, `--app-id: ${invalid}`);
  const namespace = (values.get('namespace') as string | undefined) ?? (process.env.NAMESPACE || 'default');
  const ttl = (values.get('ttl') as string | undefined)?.trim();
  const never = ttl !== undefined && (ttl.toLowerCase() === 'never' || parseDuration(ttl) === 0);
  const ttlMs = never ? undefined : durationFlag(cmd, 'ttl', ttl, DEFAULT_JOIN_TOKEN_TTL_MS);
  const dir = (values.get('issuer-credentials') as string | undefined) ?? join(courierHome(), 'certs');
  const secret = loadOrCreateTokenSecret(dir);
  const expiresAtMs = ttlMs === undefined ? undefined : Date.now() + ttlMs;
  process.stdout.write(`${mintJoinToken(secret, { appId, namespace, ...(expiresAtMs === undefined ? {} : { expiresAtMs }) })}\n`);
  // On standard error, so that the token alone can be redirected to a file.
  if (expiresAtMs === undefined) {
    process.stderr.write(
      `courier sentry token: warning: this token never expires: whoever copies it can get certificates for ${appId} in ${namespace} ` +
        `until ${join(dir, 'token.key')} is replaced\n`,
    );
  } else {
    process.stderr.write(`courier sentry token: a token for ${appId} in ${namespace}, usable to start sidecars until ${new Date(expiresAtMs).toISOString()}\n`);
  }
  await Promise.resolve();
  return 0;
}
