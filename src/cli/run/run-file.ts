import { existsSync, realpathSync, statSync } from '../../util/builtins.js';
import { basename, dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { readYamlDocuments } from '../../config/yaml-file.js';
import { CourierError } from '../../errors/index.js';
import { validateAppId } from '../../invoke/identity.js';
import { logLevels } from '../../observability/logging/levels.js';
import { parseQuantity } from '../../util/quantity.js';
import { bareFlagMessage, checkPath, checkSidecarFlags, logDestinations, type AppLaunch, type LogDestination } from './launch.js';
export { logTimestamp } from './launch.js';

/**
 * Dapr's multi-app run template (`dapr run -f`): `version: 1`, optional `name`, `common` settings shared
 * by every app, and `apps`. Keys are Dapr's; unknown keys, wrong types and Kubernetes-only keys are
 * refused with one line naming the file, the key path (`apps[1].appPort`) and the reason.
 */
export const defaultRunFileName = 'dapr.yaml';

const portNumber = z.int().min(0, 'must be a port number from 0 to 65535').max(65535, 'must be a port number from 0 to 65535');
const positive = z.int().min(1, 'must be at least 1');
const size = z.string().refine((s) => (parseQuantity(s) ?? 0) > 0, 'must be a size such as 4Mi or 16Ki');
const logDestination = z.enum(logDestinations as [LogDestination, ...LogDestination[]], `must be one of ${logDestinations.map((d) => `"${d}"`).join(', ')}`);
const envValue = z.union([z.string(), z.number(), z.boolean()], 'must be a string, a number or true/false');

const commonShape = {
  resourcesPath: z.string().optional(),
  resourcesPaths: z.array(z.string()).optional(),
  configFilePath: z.string().optional(),
  appProtocol: z.string().optional(),
  apiListenAddresses: z.union([z.string(), z.array(z.string())], 'must be a comma-separated string or a list of addresses').optional(),
  logLevel: z.enum(logLevels as [string, ...string[]], `must be one of ${logLevels.map((l) => `"${l}"`).join(', ')}`).optional(),
  appMaxConcurrency: z
    .int()
    .refine((n) => n === -1 || n > 0, 'must be a positive number, or -1 for unlimited')
    .optional(),
  maxBodySize: size.optional(),
  readBufferSize: size.optional(),
  enableAppHealthCheck: z.boolean().optional(),
  appHealthCheckPath: z.string().optional(),
  appHealthProbeInterval: positive.optional(),
  appHealthProbeTimeout: positive.optional(),
  appHealthThreshold: positive.optional(),
  env: z.record(z.string(), envValue).optional(),
  daprdLogDestination: logDestination.optional(),
  appLogDestination: logDestination.optional(),
  enableApiLogging: z.boolean().optional(),
  enableProfiling: z.boolean().optional(),
  placementHostAddress: z.string().optional(),
  schedulerHostAddress: z.string().optional(),
  runtimePath: z.string().optional(),
};

const appShape = {
  ...commonShape,
  appID: z.string().optional(),
  appDirPath: z.string(),
  appChannelAddress: z.string().optional(),
  appPort: portNumber.optional(),
  daprHTTPPort: portNumber.optional(),
  daprGRPCPort: portNumber.optional(),
  daprInternalGRPCPort: portNumber.optional(),
  metricsPort: portNumber.optional(),
  unixDomainSocket: z.string().min(1, 'must name a directory').optional(),
  profilePort: portNumber.optional(),
  command: z.array(z.string()).min(1, 'must name the program to run, e.g. ["node", "app.js"]').optional(),
};

const topShape = {
  version: z.literal(1, 'must be 1'),
  name: z.string().optional(),
  common: z.strictObject(commonShape).optional(),
  apps: z.array(z.strictObject(appShape)).min(1, 'must list at least one app'),
};
const runFileSchema = z.strictObject(topShape);

type CommonSettings = z.infer<z.ZodObject<typeof commonShape>>;
type AppSettings = z.infer<z.ZodObject<typeof appShape>>;

/** Accepted for compatibility with Dapr's run files, without effect in Courier. */
const ignoredKeys: Readonly<Record<string, string>> = {
  placementHostAddress: 'Courier has no actors',
  schedulerHostAddress: 'Courier has no scheduler',
  runtimePath: 'Courier needs no Dapr installation',
};

/** Keys of Dapr's run files that only apply on Kubernetes (or to features Courier lacks). */
const refusedKeys: Readonly<Record<string, string>> = {
  containerImage: 'is for Kubernetes; Courier runs apps as processes on this machine',
  containerImagePullPolicy: 'is for Kubernetes; Courier runs apps as processes on this machine',
  createService: 'is for Kubernetes; Courier runs apps as processes on this machine',
};

/** A loaded run file: every app ready to start. */
export interface RunFile {
  readonly file: string;
  readonly name: string;
  readonly apps: readonly AppLaunch[];
  /** About keys accepted but ignored. */
  readonly warnings: readonly string[];
}

/** The run file a `-f` argument names: the file itself, or `dapr.yaml` in a directory. Absolute, symlinks resolved. */
export function resolveRunFilePath(arg: string, cwd: string = process.cwd()): string {
  let path = resolve(cwd, arg);
  if (!existsSync(path)) throw invalid(`${path}: no such file or directory`);
  if (statSync(path).isDirectory()) {
    const file = join(path, defaultRunFileName);
    if (!existsSync(file)) throw invalid(`${path}: the directory has no ${defaultRunFileName}`);
    path = file;
  }
  return realpathSync(path);
}

/** Reads and checks a run file. Throws ERR_INVALID_CONFIG with one line naming the file, key and reason. */
export function loadRunFile(arg: string, options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): RunFile {
  const file = resolveRunFilePath(arg, options.cwd);
  const docs = readYamlDocuments(file);
  if (docs.length === 0) throw invalid(`${file}: the file is empty (expected version: 1 and apps)`);
  if (docs.length > 1) throw invalid(`${file}: holds ${docs.length} YAML documents; a run file has one`);
  return parseRunFile(file, (docs[0] as { value: unknown }).value, options);
}

/** Checks the parsed content of a run file at `file` (absolute). */
export function parseRunFile(file: string, raw: unknown, options: { env?: NodeJS.ProcessEnv } = {}): RunFile {
  const env = options.env ?? process.env;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw invalid(`${file}: must be a mapping with version: 1 and apps, not ${describeValue(raw)}`);
  }
  checkRefusedKeys(file, raw as Record<string, unknown>);
  const parsed = runFileSchema.safeParse(raw);
  if (!parsed.success) throw issueError(file, raw, parsed.error.issues[0]);
  const data = parsed.data;
  const baseDir = dirname(file);
  const common = data.common ?? {};
  const warnings: string[] = [];
  for (const key of Object.keys(ignoredKeys)) {
    if (common[key as keyof CommonSettings] !== undefined) warnings.push(`${file}: common.${key} is ignored: ${ignoredKeys[key] ?? ''}`);
  }
  const name = data.name ?? basename(baseDir);
  const seen = new Map<string, number>();
  const apps = data.apps.map((app, index) => {
    const where = `apps[${index}]`;
    for (const key of Object.keys(ignoredKeys)) {
      if (app[key as keyof AppSettings] !== undefined) warnings.push(`${file}: ${where}.${key} is ignored: ${ignoredKeys[key] ?? ''}`);
    }
    const launch = buildLaunch(file, baseDir, common, app, index, name);
    const earlier = seen.get(launch.appId);
    if (earlier !== undefined) {
      throw invalid(`${file}: ${where}.appID: "${launch.appId}" is already the id of apps[${earlier}]; app ids must be unique`);
    }
    seen.set(launch.appId, index);
    try {
      checkSidecarFlags(launch, env);
    } catch (err) {
      if (err instanceof CourierError && err.code === 'ERR_INVALID_FLAG') throw invalid(`${file}: ${where} (${launch.appId}): ${bareFlagMessage(err)}`);
      throw err;
    }
    return launch;
  });
  return { file, name, apps, warnings };
}

interface Setting<T> {
  readonly value: T;
  /** The key path, for messages: `common.logLevel` or `apps[0].logLevel`. */
  readonly where: string;
  /** The directory relative paths of this setting are resolved against. */
  readonly base: string;
}

function buildLaunch(
  file: string,
  templateDir: string,
  common: CommonSettings,
  app: AppSettings,
  index: number,
  templateName: string,
): AppLaunch {
  const where = `apps[${index}]`;
  const appDir = resolve(templateDir, app.appDirPath);
  const dirProblem = checkPath(appDir, 'directory');
  if (dirProblem !== undefined) throw invalid(`${file}: ${where}.appDirPath: ${app.appDirPath} ${dirProblem} (resolved to ${appDir})`);

  const pick = <K extends keyof CommonSettings>(key: K): Setting<NonNullable<CommonSettings[K]>> | undefined => {
    const own = app[key];
    if (own !== undefined) return { value: own, where: `${where}.${key}`, base: appDir };
    const shared = common[key];
    if (shared !== undefined) return { value: shared, where: `common.${key}`, base: templateDir };
    return undefined;
  };

  const appId = app.appID ?? basename(appDir);
  const badId = validateAppId(appId);
  if (badId !== undefined) {
    const key = app.appID === undefined ? `${where}.appDirPath (no appID is given, so the directory name is used)` : `${where}.appID`;
    throw invalid(`${file}: ${key}: ${badId}`);
  }

  const flags: string[] = [];
  const config = pick('configFilePath');
  if (config !== undefined) {
    const path = resolve(config.base, config.value);
    const problem = checkPath(path, 'file');
    if (problem !== undefined) throw invalid(`${file}: ${config.where}: ${config.value} ${problem} (resolved to ${path})`);
    flags.push('--config', path);
  }
  const resourceDirs: Setting<string>[] = [];
  const single = pick('resourcesPath');
  if (single !== undefined) resourceDirs.push(single);
  const many = pick('resourcesPaths');
  if (many !== undefined) many.value.forEach((value, i) => resourceDirs.push({ value, where: `${many.where}[${i}]`, base: many.base }));
  for (const dir of resourceDirs) {
    const path = resolve(dir.base, dir.value);
    const problem = checkPath(path, 'directory');
    if (problem !== undefined) throw invalid(`${file}: ${dir.where}: ${dir.value} ${problem} (resolved to ${path})`);
    if (!flags.includes(path)) flags.push('--resources-path', path);
  }
  const listen = pick('apiListenAddresses');
  if (listen !== undefined) flags.push('--dapr-listen-addresses', Array.isArray(listen.value) ? listen.value.join(',') : listen.value);
  type Scalar = 'logLevel' | 'appMaxConcurrency' | 'maxBodySize' | 'readBufferSize' | 'appHealthCheckPath' | 'appHealthProbeInterval' | 'appHealthProbeTimeout' | 'appHealthThreshold';
  const passThrough: ReadonlyArray<readonly [Scalar, string]> = [
    ['logLevel', '--log-level'],
    ['appMaxConcurrency', '--app-max-concurrency'],
    ['maxBodySize', '--max-body-size'],
    ['readBufferSize', '--read-buffer-size'],
    ['appHealthCheckPath', '--app-health-check-path'],
    ['appHealthProbeInterval', '--app-health-probe-interval'],
    ['appHealthProbeTimeout', '--app-health-probe-timeout'],
    ['appHealthThreshold', '--app-health-threshold'],
  ];
  for (const [key, flag] of passThrough) {
    const setting = pick(key);
    if (setting !== undefined) flags.push(flag, String(setting.value));
  }
  if (pick('enableAppHealthCheck')?.value === true) flags.push('--enable-app-health-check');
  if (pick('enableProfiling')?.value === true) flags.push('--enable-profiling');
  if (app.profilePort !== undefined) flags.push('--profile-port', String(app.profilePort));
  const apiLogging = pick('enableApiLogging');
  if (apiLogging !== undefined) flags.push(`--enable-api-logging=${String(apiLogging.value)}`);
  if (app.unixDomainSocket !== undefined) {
    const dir = resolve(appDir, app.unixDomainSocket);
    const problem = checkPath(dir, 'directory');
    if (problem !== undefined) throw invalid(`${file}: ${where}.unixDomainSocket: ${app.unixDomainSocket} ${problem} (resolved to ${dir})`);
    flags.push('--unix-domain-socket', dir);
  }

  // Environment maps merge per variable; the app's own value wins.
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(common.env ?? {})) env[k] = String(v);
  for (const [k, v] of Object.entries(app.env ?? {})) env[k] = String(v);

  const portOf = (value: number | undefined): number | undefined => (value === undefined || value === 0 ? undefined : value);
  return {
    appId,
    appPort: portOf(app.appPort),
    appProtocol: (pick('appProtocol')?.value ?? 'http').toLowerCase(),
    appChannelAddress: app.appChannelAddress,
    httpPort: portOf(app.daprHTTPPort),
    grpcPort: portOf(app.daprGRPCPort),
    internalGrpcPort: portOf(app.daprInternalGRPCPort),
    metricsPort: portOf(app.metricsPort),
    sidecarFlags: flags,
    command: app.command ?? [],
    cwd: appDir,
    env,
    appLogDestination: pick('appLogDestination')?.value ?? 'fileAndConsole',
    sidecarLogDestination: pick('daprdLogDestination')?.value ?? 'file',
    logDirectory: join(appDir, '.dapr', 'logs'),
    runTemplate: { path: file, name: templateName },
  };
}

function checkRefusedKeys(file: string, raw: Record<string, unknown>): void {
  const sections: Array<[string, unknown]> = [['common', raw.common]];
  if (Array.isArray(raw.apps)) raw.apps.forEach((app, i) => sections.push([`apps[${i}]`, app]));
  for (const [where, section] of sections) {
    if (typeof section !== 'object' || section === null || Array.isArray(section)) continue;
    for (const key of Object.keys(section)) {
      const reason = refusedKeys[key];
      if (reason !== undefined) throw invalid(`${file}: ${where}.${key}: ${reason}`);
    }
  }
}

/** `apps[1].appPort` from zod's path `['apps', 1, 'appPort']`. */
export function keyPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

function issueError(file: string, raw: unknown, issue: z.core.$ZodIssue | undefined): CourierError {
  if (issue === undefined) return invalid(`${file}: invalid run file`);
  const at = (path: readonly PropertyKey[]): string => `${file}: ${path.length === 0 ? '' : `${keyPath(path)}: `}`;
  switch (issue.code) {
    case 'unrecognized_keys': {
      const key = issue.keys[0] ?? '';
      const known = knownKeys(issue.path);
      const guess = closest(key, known);
      const hint = guess === undefined ? '' : ` (did you mean ${guess}?)`;
      return invalid(`${at([...issue.path, key])}unknown key${hint}`);
    }
    case 'invalid_type': {
      const value = valueAt(raw, issue.path);
      if (value === undefined) return invalid(`${at(issue.path)}is required`);
      return invalid(`${at(issue.path)}must be ${expectedText(issue.expected)}, not ${describeValue(value)}`);
    }
    case 'invalid_value': {
      const value = valueAt(raw, issue.path);
      if (value === undefined) return invalid(`${at(issue.path)}is required${issue.path[0] === 'version' ? ' (version: 1)' : ''}`);
      return invalid(`${at(issue.path)}${issue.message}, not ${describeValue(value)}`);
    }
    default:
      return invalid(`${at(issue.path)}${issue.message}`);
  }
}

function knownKeys(path: readonly PropertyKey[]): readonly string[] {
  if (path.length === 0) return Object.keys(topShape);
  if (path[0] === 'common') return Object.keys(commonShape);
  return Object.keys(appShape);
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let value = raw;
  for (const part of path) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<PropertyKey, unknown>)[part];
  }
  return value;
}

function expectedText(expected: string): string {
  switch (expected) {
    case 'int':
    case 'number': // every number of a run file is a whole number
      return 'a whole number';
    case 'string':
      return 'a string';
    case 'boolean':
      return 'true or false';
    case 'array':
      return 'a list';
    case 'object':
    case 'record':
      return 'a mapping';
    default:
      return expected;
  }
}

function describeValue(value: unknown): string {
  if (value === null) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  switch (typeof value) {
    case 'string':
      return `the string ${JSON.stringify(value)}`;
    case 'number':
      return String(value);
    case 'boolean':
      return String(value);
    case 'object':
      return 'a mapping';
    default:
      return typeof value;
  }
}

/** The known key closest to a misspelt one (edit distance at most 2, or differing only in case). */
function closest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const d = candidate.toLowerCase() === key.toLowerCase() ? 0 : distance(key, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

function invalid(message: string): CourierError {
  return new CourierError('ERR_INVALID_CONFIG', message);
}
