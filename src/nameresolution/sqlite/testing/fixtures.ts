/*
 * Test fixtures for the SQLite resolver: a temporary directory holding the database, resolvers that
 * are closed afterwards, and a second plain connection ("peek") for reading rows and ageing them.
 * Tests never sleep through liveness windows; they rewrite `last_update` instead.
 */
import { mkdtempSync, rmSync } from '../../../util/builtins.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import Database from 'better-sqlite3';
import { createLogger, silentLogger, type Logger } from '../../../observability/logging/index.js';
import type { SelfInstance } from '../../name-resolver.js';
import { parseSqliteMetadata } from '../metadata.js';
import { SqliteNameResolver } from '../resolver.js';

export interface HostRow {
  registration_id: string;
  address: string;
  app_id: string;
  namespace: string;
  last_update: number;
}

export interface Fixture {
  dir: string;
  dbPath: string;
  /** A resolver on the fixture's database; `config` is merged over `{ connectionString: dbPath }`. */
  make(config?: Record<string, unknown>, logger?: Logger): SqliteNameResolver;
  /** A second connection to the database, opened on first use. */
  peek(): Database.Database;
  rows(): HostRow[];
  /** Sets `last_update` of the row at `address` to `ageSeconds` before SQLite's now; returns the new value. */
  age(address: string, ageSeconds: number): number;
  /** Backdates the last-cleanup claim so that the next round may run. */
  expireCleanupClaim(): void;
}

export function fixture(t: TestContext): Fixture {
  const dir = mkdtempSync(join(tmpdir(), 'courier-nr-'));
  const dbPath = join(dir, 'nr.db');
  const resolvers: SqliteNameResolver[] = [];
  let peekDb: Database.Database | undefined;
  const peek = (): Database.Database => (peekDb ??= new Database(dbPath));
  t.after(async () => {
    await Promise.all(resolvers.map((resolver) => resolver.close()));
    peekDb?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    dir,
    dbPath,
    make(config = {}, logger = silentLogger()) {
      const resolver = new SqliteNameResolver(parseSqliteMetadata({ connectionString: dbPath, ...config }, 'test'), { logger, courierHome: dir });
      resolvers.push(resolver);
      return resolver;
    },
    peek,
    rows: () => peek().prepare<[], HostRow>('SELECT * FROM hosts ORDER BY address').all(),
    age(address, ageSeconds) {
      const row = peek()
        .prepare<[number, string], { last_update: number }>('UPDATE hosts SET last_update = unixepoch() - ? WHERE address = ? RETURNING last_update')
        .get(ageSeconds, address);
      if (row === undefined) throw new Error(`no row for ${address}`);
      return row.last_update;
    },
    expireCleanupClaim() {
      peek().prepare("UPDATE metadata SET value = datetime('now', '-2 hours') WHERE key = 'nr-last-cleanup'").run();
    },
  };
}

/** This sidecar on 127.0.0.1 with the given internal port. */
export function self(appId: string, internalPort: number, namespace = 'default'): SelfInstance {
  return { appId, namespace, host: '127.0.0.1', internalPort, httpPort: internalPort + 1000 };
}

/** A debug-level logger that keeps every record, parsed, for assertions. */
export function capturingLogger(): { logger: Logger; records: Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'debug', json: true, destination: { write: (line) => void records.push(JSON.parse(line) as Record<string, unknown>) } });
  return { logger, records };
}
