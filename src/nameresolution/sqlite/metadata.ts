import { CourierError } from '../../errors/index.js';
import { formatDuration, parseDuration } from '../../util/duration.js';
import { parseConnectionString, type DatabaseLocation } from './connection-string.js';

/**
 * The SQLite resolver's settings, validated, with units in the names. Field for field the keys of
 * Dapr's SQLite name resolver, so one Configuration file serves both; where Courier differs from
 * Dapr (the optional connection string, negative intervals) the field says so.
 */
export interface SqliteMetadata {
  /** From `connectionString`/`url`; absent means `<courierHome>/nameresolution.db` (Dapr requires the key). */
  database?: DatabaseLocation;
  /**
   * `timeout`/`timeoutInSeconds` (default 1s, at least 1s as in Dapr). better-sqlite3 cannot
   * interrupt a statement, so this is the budget of one operation: a failing statement is retried
   * every 50 ms until it is spent. It also bounds how late a heartbeat may land (see below).
   */
  timeoutMs: number;
  /**
   * `busyTimeout` (default 800ms): how long one statement waits for another process's lock; 0 = fail
   * at once. Courier waits by retrying the statement on timers, never inside SQLite's busy handler,
   * which would sleep on the event loop.
   */
  busyTimeoutMs: number;
  /**
   * `disableWAL`: Courier's default is true (the rollback journal), where Dapr's is false. In WAL
   * mode SQLite memory-maps the `-shm` file, and a write fault on it (the file made immutable, a full
   * filesystem) kills the process with SIGBUS; the rollback journal maps nothing. `false` asks for WAL.
   */
  disableWAL: boolean;
  /**
   * `startupTimeout` (Courier's own key, default 30s): how long a sidecar starting while the
   * database is locked or unwritable waits for it before exiting.
   */
  startupTimeoutMs: number;
  /** `tableName` (default "hosts"). */
  tableName: string;
  /** `metadataTableName` (default "metadata"); holds the schema level and the last-cleanup claim. */
  metadataTableName: string;
  /**
   * `updateInterval` (default 5s): a row is live while `unixepoch() − last_update` is below it.
   * Whole seconds only, because `last_update` has one-second resolution; at least timeout + 1s.
   */
  updateIntervalMs: number;
  /**
   * Derived: heartbeats run every `updateInterval − timeout − 1s` (3s by default). A heartbeat may
   * spend `timeout` retrying, and second truncation of `last_update` can cost up to one more second,
   * so this spacing keeps a healthy row continuously live. Never below 500 ms, for the edge case
   * updateInterval = timeout + 1s that Dapr accepts.
   */
  heartbeatIntervalMs: number;
  /** `cleanupInterval`/`cleanupIntervalInSeconds` (default 1h); 0 (or negative, as in Dapr) disables cleanup. */
  cleanupIntervalMs: number;
}

type Kind = 'string' | 'duration' | 'boolean';
type Scalar = string | number | boolean;

/** The recognised keys, canonical spelling first; matching is case-insensitive. */
const keySpecs: readonly { name: keyof typeof defaults | 'connectionString'; aliases: readonly string[]; kind: Kind }[] = [
  { name: 'connectionString', aliases: ['url'], kind: 'string' },
  { name: 'timeout', aliases: ['timeoutInSeconds'], kind: 'duration' },
  { name: 'busyTimeout', aliases: [], kind: 'duration' },
  { name: 'disableWAL', aliases: [], kind: 'boolean' },
  { name: 'startupTimeout', aliases: [], kind: 'duration' },
  { name: 'tableName', aliases: [], kind: 'string' },
  { name: 'metadataTableName', aliases: [], kind: 'string' },
  { name: 'updateInterval', aliases: [], kind: 'duration' },
  { name: 'cleanupInterval', aliases: ['cleanupIntervalInSeconds'], kind: 'duration' },
];

const defaults = {
  timeout: 1000,
  busyTimeout: 800,
  disableWAL: true,
  startupTimeout: 30_000,
  tableName: 'hosts',
  metadataTableName: 'metadata',
  updateInterval: 5000,
  cleanupInterval: 3_600_000,
};

const knownKeys = keySpecs.flatMap((spec) => [spec.name, ...spec.aliases]);
const keyLookup = new Map(keySpecs.flatMap((spec) => [spec.name, ...spec.aliases].map((key) => [key.toLowerCase(), spec] as const)));

/** Values of Go's `strconv.ParseBool`, which Dapr uses for boolean metadata. */
const trueWords = new Set(['1', 't', 'true']);
const falseWords = new Set(['0', 'f', 'false']);

/**
 * Parses `spec.nameResolution.configuration` for the SQLite resolver. Keys are case-insensitive;
 * values may be strings, numbers or (for `disableWAL`) booleans; a bare number is seconds for every
 * duration, as in Dapr. Empty values count as unset, so templated Configuration files that leave a
 * key blank get the default.
 * @throws CourierError `ERR_INVALID_CONFIG` naming the key (as written) and why it is wrong.
 */
export function parseSqliteMetadata(configuration: unknown, where: string): SqliteMetadata {
  const given = collect(configuration, where);

  const connection = given.get('connectionString');
  let database: DatabaseLocation | undefined;
  if (connection !== undefined) {
    const parsed = parseConnectionString(asString(connection, where));
    if (!parsed.ok) fail(where, connection.key, parsed.reason);
    database = parsed.location;
  }

  const timeoutMs = duration(given.get('timeout'), where) ?? defaults.timeout;
  const timeoutEntry = given.get('timeout');
  if (timeoutEntry !== undefined && timeoutMs < 1000) fail(where, timeoutEntry.key, `must be at least 1s, got "${String(timeoutEntry.value)}"`);

  const busyTimeoutMs = Math.max(0, Math.trunc(duration(given.get('busyTimeout'), where) ?? defaults.busyTimeout));

  const disableWALEntry = given.get('disableWAL');
  const disableWAL = disableWALEntry === undefined ? defaults.disableWAL : asBoolean(disableWALEntry, where);

  const startupEntry = given.get('startupTimeout');
  const startupTimeoutMs = duration(startupEntry, where) ?? defaults.startupTimeout;
  if (startupTimeoutMs < 0) fail(where, startupEntry?.key ?? 'startupTimeout', `must not be negative, got "${String(startupEntry?.value)}"`);

  const tableName = identifier(given.get('tableName'), defaults.tableName, where);
  const metadataTableName = identifier(given.get('metadataTableName'), defaults.metadataTableName, where);
  if (tableName.toLowerCase() === metadataTableName.toLowerCase()) {
    fail(where, given.get('metadataTableName')?.key ?? given.get('tableName')?.key ?? 'tableName', `must differ from the hosts table name "${tableName}"`);
  }

  const updateEntry = given.get('updateInterval');
  const updateIntervalMs = duration(updateEntry, where) ?? defaults.updateInterval;
  if (updateEntry !== undefined) {
    const shown = `"${String(updateEntry.value)}"`;
    if (updateIntervalMs <= 0 || updateIntervalMs % 1000 !== 0) {
      fail(where, updateEntry.key, `must be a positive whole number of seconds (last_update has one-second resolution), got ${shown}`);
    }
  }
  if (updateIntervalMs < timeoutMs + 1000) {
    fail(where, updateEntry?.key ?? 'updateInterval', `must be at least 1s longer than timeout (${formatDuration(timeoutMs)}), got ${formatDuration(updateIntervalMs)}`);
  }

  const cleanupEntry = given.get('cleanupInterval');
  let cleanupIntervalMs = duration(cleanupEntry, where) ?? defaults.cleanupInterval;
  if (cleanupIntervalMs <= 0) cleanupIntervalMs = 0;
  else if (cleanupIntervalMs < 1000) fail(where, cleanupEntry?.key ?? 'cleanupInterval', `must be 0 (disabled) or at least 1s, got "${String(cleanupEntry?.value)}"`);

  return {
    ...(database === undefined ? {} : { database }),
    timeoutMs,
    busyTimeoutMs,
    disableWAL,
    startupTimeoutMs,
    tableName,
    metadataTableName,
    updateIntervalMs,
    heartbeatIntervalMs: Math.max(updateIntervalMs - timeoutMs - 1000, 500),
    cleanupIntervalMs,
  };
}

interface Entry {
  /** The key as the user wrote it, for messages. */
  key: string;
  value: Scalar;
}

/** Maps each canonical key to its entry, rejecting unknown keys, duplicates and non-scalar values. */
function collect(configuration: unknown, where: string): Map<string, Entry> {
  const out = new Map<string, Entry>();
  if (configuration === undefined || configuration === null) return out;
  if (typeof configuration !== 'object' || Array.isArray(configuration)) {
    throw new CourierError('ERR_INVALID_CONFIG', `${where}: must be a map of settings, got ${Array.isArray(configuration) ? 'a list' : typeof configuration}`);
  }
  for (const [key, value] of Object.entries(configuration)) {
    const spec = keyLookup.get(key.toLowerCase());
    if (spec === undefined) {
      throw new CourierError('ERR_INVALID_CONFIG', `${where}: unknown key "${key}" for name resolution component "sqlite" (known keys: ${knownKeys.join(', ')})`);
    }
    if (value === undefined || value === null || value === '') continue;
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      fail(where, key, `must be a string or a number, got ${Array.isArray(value) ? 'a list' : typeof value}`);
    }
    const previous = out.get(spec.name);
    if (previous !== undefined) fail(where, key, `sets the same option as "${previous.key}"; keep one of them`);
    out.set(spec.name, { key, value });
  }
  return out;
}

function fail(where: string, key: string, reason: string): never {
  throw new CourierError('ERR_INVALID_CONFIG', `${where}.${key}: ${reason}`);
}

function asString(entry: Entry, where: string): string {
  if (typeof entry.value === 'boolean') fail(where, entry.key, `must be a string, got ${entry.value}`);
  return String(entry.value);
}

function asBoolean(entry: Entry, where: string): boolean {
  const { value } = entry;
  if (typeof value === 'boolean') return value;
  const word = String(value).trim().toLowerCase();
  if (trueWords.has(word)) return true;
  if (falseWords.has(word)) return false;
  return fail(where, entry.key, `must be true or false, got "${String(value)}"`);
}

/** Milliseconds, rounded to the microsecond so that "1.1s" is 1100 and not 1100.0000000000002. */
function duration(entry: Entry | undefined, where: string): number | undefined {
  if (entry === undefined) return undefined;
  if (typeof entry.value === 'boolean') fail(where, entry.key, `must be a duration, got ${entry.value}`);
  const ms = parseDuration(entry.value, 's');
  if (ms === undefined) fail(where, entry.key, `"${String(entry.value)}" is not a duration (e.g. "5s", "800ms"; a bare number is seconds)`);
  return Math.round(ms * 1000) / 1000;
}

/**
 * Table names are spliced into SQL, so they are held to Dapr's rule (ASCII letters, digits,
 * underscore) and SQLite's reserved `sqlite_` prefix is refused up front rather than at CREATE.
 */
function identifier(entry: Entry | undefined, fallback: string, where: string): string {
  if (entry === undefined) return fallback;
  const name = asString(entry, where);
  if (!/^[A-Za-z0-9_]+$/.test(name)) fail(where, entry.key, `"${name}" is not a valid table name (letters, digits and _ only)`);
  if (/^sqlite_/i.test(name)) fail(where, entry.key, `"${name}" is reserved by SQLite (names may not start with "sqlite_")`);
  return name;
}
