import type Database from 'better-sqlite3';

/**
 * Metadata-table key under which Dapr records how far its name-resolver migrations have run.
 * Courier writes it too: a Dapr sidecar that opens a database Courier created must see the hosts
 * table as already migrated, or it would try to CREATE it again and fail to start.
 */
export const migrationsKey = 'nr-migrations';
/** The level Dapr's migration list reaches (migration 1 creates the hosts table). */
export const schemaLevel = 1;
/** Metadata-table key holding the time of the last cleanup; claimed by whichever sidecar cleans up. */
export const lastCleanupKey = 'nr-last-cleanup';

/** Columns the resolver reads and writes; an existing table must have all of them. */
const hostColumns = ['registration_id', 'address', 'app_id', 'namespace', 'last_update'];

export interface TableNames {
  hosts: string;
  metadata: string;
}

/**
 * Identifiers are validated to `[A-Za-z0-9_]+` before they get here; quoting them as well keeps
 * names that start with a digit valid SQL. Quoted or not, SQLite stores the same name, so Dapr's
 * unquoted statements address the same tables and indexes.
 */
function quote(identifier: string): string {
  return `"${identifier}"`;
}

/**
 * Creates the tables if missing, with Dapr's exact schema, inside one IMMEDIATE transaction so
 * that sidecars starting together (Courier or Dapr, which takes the same lock) do it once.
 * Adopts a hosts table that exists without a migration record (after checking its columns), and
 * accepts a higher level written by a newer Dapr as long as the columns it needs are there. A
 * unique address index that an existing table lacks is added, since REPLACE depends on it.
 * @throws Error when the metadata table holds a malformed level or the hosts table lacks a column.
 */
export function ensureSchema(db: Database.Database, tables: TableNames): void {
  const hosts = quote(tables.hosts);
  const metadata = quote(tables.metadata);
  const migrate = db.transaction(() => {
    db.exec(`CREATE TABLE IF NOT EXISTS ${metadata} (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL)`);
    const row = db.prepare<[string], { value: string }>(`SELECT value FROM ${metadata} WHERE key = ?`).get(migrationsKey);
    const level = row === undefined ? 0 : Number(row.value);
    if (!Number.isInteger(level) || level < 0) {
      throw new Error(`table ${tables.metadata} holds an invalid ${migrationsKey} value "${row?.value}"`);
    }
    // Every step is idempotent, so it also serves a database whose metadata table records the level
    // but whose hosts table has another name (tableName changed, or several tables share metadata).
    db.exec(
      `CREATE TABLE IF NOT EXISTS ${hosts} (registration_id TEXT NOT NULL PRIMARY KEY, address TEXT NOT NULL, app_id TEXT NOT NULL, namespace TEXT NOT NULL, last_update INTEGER NOT NULL)`,
    );
    checkColumns(db, tables.hosts);
    db.exec(
      `CREATE UNIQUE INDEX IF NOT EXISTS ${quote(`${tables.hosts}_address_idx`)} ON ${hosts} (address);
       CREATE INDEX IF NOT EXISTS ${quote(`${tables.hosts}_last_update_idx`)} ON ${hosts} (last_update);`,
    );
    if (level < schemaLevel) {
      db.prepare(`REPLACE INTO ${metadata} (key, value) VALUES (?, ?)`).run(migrationsKey, String(schemaLevel));
    }
  });
  migrate.immediate();
}

function checkColumns(db: Database.Database, table: string): void {
  const columns = new Set(db.prepare<[], { name: string }>(`SELECT name FROM pragma_table_info('${table}')`).all().map((c) => c.name));
  const missing = hostColumns.filter((column) => !columns.has(column));
  if (missing.length > 0) throw new Error(`table ${table} is not a name resolution table (missing columns: ${missing.join(', ')})`);
}

/**
 * The statements the resolver runs, as text. Every one touches one row or one indexed range, so
 * each completes in microseconds and holds SQLite's write lock for no longer (see resolver.ts on
 * why that matters for an event loop). Time comes from SQLite's `unixepoch()`, as in Dapr, so all
 * sidecars sharing the file agree on "now" whatever their own clocks read.
 */
export function statementsSql(tables: TableNames) {
  const hosts = quote(tables.hosts);
  const metadata = quote(tables.metadata);
  return {
    /** REPLACE evicts any row that holds the same address (the unique index), i.e. a dead predecessor. */
    register: `REPLACE INTO ${hosts} (registration_id, address, app_id, namespace, last_update) VALUES (?, ?, ?, ?, unixepoch())`,
    /** Who holds an address now, and how long since their last heartbeat; to explain a takeover. */
    findByAddress: `SELECT registration_id AS registrationId, app_id AS appId, unixepoch() - last_update AS ageSeconds FROM ${hosts} WHERE address = ?`,
    /** Zero rows changed means the registration is gone (taken over or cleaned up). */
    heartbeat: `UPDATE ${hosts} SET last_update = unixepoch() WHERE registration_id = ? AND address = ?`,
    /**
     * Live rows of one app, in the caller's namespace or written by Dapr (which records `''`).
     * Ordered by address so that every caller sees the same sequence.
     */
    resolve: `SELECT address, last_update AS lastUpdate FROM ${hosts} WHERE app_id = ? AND (namespace = ? OR namespace = '') AND unixepoch() - last_update < ? ORDER BY address`,
    deregister: `DELETE FROM ${hosts} WHERE registration_id = ? AND address = ?`,
    /**
     * Claims this cleanup round: inserts or refreshes the last-cleanup time only when the stored one
     * is at least `?` ms old (or unreadable). One changed row means this sidecar won the round.
     * The value is stored with milliseconds ('YYYY-MM-DD HH:MM:SS.SSS'), which Dapr's
     * `unixepoch(value)` still reads.
     */
    claimCleanup: `INSERT INTO ${metadata} (key, value) VALUES ('${lastCleanupKey}', strftime('%Y-%m-%d %H:%M:%f', 'now'))
      ON CONFLICT (key) DO UPDATE SET value = excluded.value
      WHERE unixepoch(value, 'subsec') IS NULL OR (unixepoch('now', 'subsec') - unixepoch(value, 'subsec')) * 1000 >= ?`,
    /**
     * Deletes rows whose liveness window has ended: exactly the complement of `resolve`'s window.
     * (Dapr's GC query has this comparison inverted and deletes the live rows instead.)
     */
    deleteExpired: `DELETE FROM ${hosts} WHERE unixepoch() - last_update >= ?`,
  };
}
