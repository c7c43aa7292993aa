import { resolve as resolvePath } from 'node:path';

/** Where the database file is, as read from `connectionString`. */
export interface DatabaseLocation {
  /** Absolute path of the database file (relative paths are taken from the working directory, as Dapr does). */
  path: string;
  /**
   * True for `?mode=rw`: SQLite's meaning is "open, never create", so neither the file nor its
   * directory is created and a missing file is an error.
   */
  mustExist: boolean;
  /**
   * Query parameters dropped because better-sqlite3 has no use for them (`_txlock`, `cache`,
   * other `_pragma`s from Go driver strings). Reported once in a warning, never fatal, so a
   * connection string written for Dapr keeps working.
   */
  ignoredParameters: readonly string[];
}

export type ParsedConnectionString = { ok: true; location: DatabaseLocation } | { ok: false; reason: string };

const inMemory = 'an in-memory database is private to one process, so sidecars could not find each other; use a file path';

/**
 * Reads a Dapr SQLite connection string: a plain path, or a `file:` URI (`file:data.db`,
 * `file:///abs/nr.db`, `file://localhost/abs/nr.db`), each optionally followed by `?query`.
 * better-sqlite3 opens paths, not URIs, so the URI is turned into a path and the parameters that
 * matter are honoured here: `mode=rw` (must exist) and `mode=rwc` (the default). Parameters that
 * would break the resolver are rejected rather than ignored: read-only modes (it must write its
 * heartbeat), in-memory databases, and `_pragma=busy_timeout|journal_mode` (Dapr rejects those too
 * and points at the `busyTimeout` / `disableWAL` keys).
 */
export function parseConnectionString(value: string): ParsedConnectionString {
  let text = value.trim();
  const lower = text.toLowerCase();
  if (lower.startsWith(':memory:') || lower.startsWith('file::memory:')) return { ok: false, reason: inMemory };

  let query = '';
  const queryAt = text.indexOf('?');
  if (queryAt >= 0) {
    query = text.slice(queryAt + 1);
    text = text.slice(0, queryAt);
  }

  let path = text;
  if (lower.startsWith('file:')) {
    let rest = text.slice('file:'.length);
    const fragmentAt = rest.indexOf('#');
    if (fragmentAt >= 0) rest = rest.slice(0, fragmentAt);
    if (rest.startsWith('//')) {
      const slashAt = rest.indexOf('/', 2);
      const authority = slashAt < 0 ? rest.slice(2) : rest.slice(2, slashAt);
      if (authority !== '' && authority.toLowerCase() !== 'localhost') {
        return { ok: false, reason: `file URI names host "${authority}"; only local files are supported` };
      }
      rest = slashAt < 0 ? '' : rest.slice(slashAt);
    }
    try {
      path = decodeURIComponent(rest);
    } catch {
      return { ok: false, reason: 'file URI has malformed percent-encoding' };
    }
    if (process.platform === 'win32' && /^\/[A-Za-z]:/.test(path)) path = path.slice(1);
  }
  if (path === '') return { ok: false, reason: 'names no database file' };
  if (path === ':memory:') return { ok: false, reason: inMemory };

  let mustExist = false;
  const ignoredParameters: string[] = [];
  for (const [key, raw] of new URLSearchParams(query)) {
    const param = raw.toLowerCase();
    switch (key.toLowerCase()) {
      case 'mode':
        if (param === 'rw') mustExist = true;
        else if (param === 'memory') return { ok: false, reason: inMemory };
        else if (param === 'ro') return { ok: false, reason: 'mode=ro opens the database read-only, but the resolver must write its registration' };
        else if (param !== 'rwc') return { ok: false, reason: `unsupported mode "${raw}" (supported: rw, rwc)` };
        break;
      case 'immutable':
        if (['1', 'true', 'yes', 'on'].includes(param)) {
          return { ok: false, reason: 'immutable=1 opens the database read-only, but the resolver must write its registration' };
        }
        break;
      case '_pragma':
        if (param.startsWith('busy_timeout')) return { ok: false, reason: '_pragma=busy_timeout is not allowed; use the busyTimeout key' };
        if (param.startsWith('journal_mode')) return { ok: false, reason: '_pragma=journal_mode is not allowed; use the disableWAL key' };
        ignoredParameters.push(`${key}=${raw}`);
        break;
      default:
        ignoredParameters.push(raw === '' ? key : `${key}=${raw}`);
    }
  }
  return { ok: true, location: { path: resolvePath(path), mustExist, ignoredParameters } };
}
