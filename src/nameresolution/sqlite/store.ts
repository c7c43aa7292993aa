/*
 * One open connection to the name resolution database, with its prepared statements and the
 * identity (device and inode) of the file it opened. The resolver replaces a store when the file at
 * the configured path is no longer the file the store has open (deleted or replaced).
 */
import { mkdirSync, statSync } from '../../util/builtins.js';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from '../../observability/logging/index.js';
import { createPrivateFile, ensurePrivateDirectory } from '../../util/private-files.js';
import type { SqliteMetadata } from './metadata.js';
import { ensureSchema, statementsSql } from './schema.js';

export interface StoreRegistration {
  id: string;
  address: string;
  appId: string;
  namespace: string;
}

/** Who held an address before a registration took it, and how long since their last heartbeat. */
export interface PreviousHolder {
  registrationId: string;
  appId: string;
  ageSeconds: number;
}

export interface StoreStatements {
  register: Database.Statement<[string, string, string, string]>;
  findByAddress: Database.Statement<[string], PreviousHolder>;
  heartbeat: Database.Statement<[string, string]>;
  resolve: Database.Statement<[string, string, number], { address: string; lastUpdate: number }>;
  deregister: Database.Statement<[string, string]>;
  claimCleanup: Database.Statement<[number]>;
  deleteExpired: Database.Statement<[number]>;
}

export interface FileIdentity {
  dev: number;
  ino: number;
}

export interface StoreOptions {
  path: string;
  metadata: SqliteMetadata;
  /** Courier's home: created private (0700) when the database lives there by default. */
  courierHome: string;
  logger: Logger;
}

/** The SQLite result codes (primary part) after which the same operation can succeed later. */
const transientCodes = new Set(['SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_IOERR', 'SQLITE_FULL', 'SQLITE_READONLY', 'SQLITE_PROTOCOL', 'SQLITE_PERM']);

/** Whether `error` is a SQLite error that the passing of time may cure (a lock, a full or read-only disk). */
export function isTransient(error: unknown): error is Database.SqliteError {
  return error instanceof Database.SqliteError && transientCodes.has(primaryCode(error.code));
}

/** Whether `error` is another connection's lock (SQLITE_BUSY or SQLITE_LOCKED and their extended codes). */
export function isLockError(error: unknown): boolean {
  if (!(error instanceof Database.SqliteError)) return false;
  const code = primaryCode(error.code);
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED';
}

function primaryCode(code: string): string {
  const at = code.indexOf('_', 'SQLITE_'.length);
  return at < 0 ? code : code.slice(0, at);
}

/**
 * Opens (creating if allowed) the database, sets its journal mode and brings the schema to Dapr's
 * level. Synchronous and single-attempt: a lock met on the way throws SQLITE_BUSY at once (the
 * connection's busy timeout is 0), and the resolver retries without blocking its event loop.
 *
 * Nothing of the store is memory-mapped unless the file is in WAL mode: `mmap_size` is 0, and the
 * rollback journal (Courier's default) has no shared-memory file. A write fault on a mapped file
 * (e.g. after `chattr +i`, or on a full filesystem) raises SIGBUS, which no JavaScript handler can
 * catch; read and write system calls fail with an error code instead, which the resolver survives.
 */
export class SqliteStore {
  readonly db: Database.Database;
  readonly identity: FileIdentity;
  readonly journalMode: string;
  readonly statements: StoreStatements;
  readonly takeOverAddress: Database.Transaction<(registration: StoreRegistration) => PreviousHolder | undefined>;
  readonly cleanupRound: Database.Transaction<(claimAgeMs: number) => number | undefined>;

  constructor(options: StoreOptions) {
    const { path, metadata } = options;
    const mustExist = metadata.database?.mustExist ?? false;
    if (!mustExist) {
      if (metadata.database === undefined) ensurePrivateDirectory(options.courierHome);
      else mkdirSync(dirname(path), { recursive: true });
      // SQLite gives its side files (-journal, -wal, -shm) the mode of the database file.
      createPrivateFile(path);
    }
    // COURIER_SQLITE_ADDON names a better-sqlite3 addon built for the running Node.js (one installation
    // used under two runtimes, as the benchmark's Node 20 and 24 rows do); the installed one otherwise.
    const addon = process.env.COURIER_SQLITE_ADDON;
    const db = new Database(path, { fileMustExist: mustExist, timeout: 0, ...(addon === undefined || addon === '' ? {} : { nativeBinding: addon }) });
    try {
      const stat = statSync(path);
      this.identity = { dev: stat.dev, ino: stat.ino };
      db.pragma('mmap_size = 0');
      this.journalMode = setJournalMode(db, metadata.disableWAL ? 'delete' : 'wal', path, options.logger);
      ensureSchema(db, { hosts: metadata.tableName, metadata: metadata.metadataTableName });
      const sql = statementsSql({ hosts: metadata.tableName, metadata: metadata.metadataTableName });
      const statements: StoreStatements = {
        register: db.prepare<[string, string, string, string]>(sql.register),
        findByAddress: db.prepare<[string], PreviousHolder>(sql.findByAddress),
        heartbeat: db.prepare<[string, string]>(sql.heartbeat),
        resolve: db.prepare<[string, string, number], { address: string; lastUpdate: number }>(sql.resolve),
        deregister: db.prepare<[string, string]>(sql.deregister),
        claimCleanup: db.prepare<[number]>(sql.claimCleanup),
        deleteExpired: db.prepare<[number]>(sql.deleteExpired),
      };
      this.statements = statements;
      // One transaction so that the row we report as evicted is the row REPLACE evicts.
      this.takeOverAddress = db.transaction((registration: StoreRegistration) => {
        const previous = statements.findByAddress.get(registration.address);
        statements.register.run(registration.id, registration.address, registration.appId, registration.namespace);
        return previous;
      });
      // Claim and delete together: a sidecar that wins the claim but dies before deleting must not
      // leave the round marked as done.
      const updateIntervalSeconds = metadata.updateIntervalMs / 1000;
      this.cleanupRound = db.transaction((claimAgeMs: number): number | undefined => {
        if (statements.claimCleanup.run(claimAgeMs).changes === 0) return undefined;
        return statements.deleteExpired.run(updateIntervalSeconds).changes;
      });
    } catch (error) {
      db.close();
      throw error;
    }
    this.db = db;
  }

  get open(): boolean {
    return this.db.open;
  }

  /**
   * Whether the file at `path` is still the file this store has open: false when it was deleted,
   * or replaced by another file (another sidecar recreated it). Errors other than "not there" (a
   * directory that cannot be searched) count as "cannot tell": true.
   */
  stillAt(path: string): { same: boolean; now: FileIdentity | undefined } {
    try {
      const stat = statSync(path);
      const now = { dev: stat.dev, ino: stat.ino };
      return { same: now.dev === this.identity.dev && now.ino === this.identity.ino, now };
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      return { same: !(code === 'ENOENT' || code === 'ENOTDIR'), now: undefined };
    }
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/**
 * Puts the database in `wanted` mode when it can. Leaving WAL needs every other connection closed
 * (Dapr sidecars keep theirs open), so a file another sidecar holds in WAL mode stays in WAL mode,
 * with a warning saying what that costs. A lock met while reading or changing the mode is thrown,
 * so that start-up waits for it.
 */
function setJournalMode(db: Database.Database, wanted: 'wal' | 'delete', path: string, logger: Logger): string {
  const current = String(db.pragma('journal_mode', { simple: true })).toLowerCase();
  if (current === wanted) return finish(db, current);
  let mode = current;
  try {
    mode = String(db.pragma(`journal_mode = ${wanted}`, { simple: true })).toLowerCase();
  } catch (error) {
    if (!(current === 'wal' && isLockError(error))) throw error;
  }
  if (mode !== wanted) {
    logger.warn(
      { path, journalMode: mode, wanted },
      mode === 'wal'
        ? 'the database is in WAL mode and held open by another sidecar, so it stays in WAL mode; its shared-memory file is memory-mapped, and a write fault on it (file made immutable, disk full) ends this process with SIGBUS'
        : 'could not change the journal mode; continuing in the current one',
    );
  }
  return finish(db, mode);
}

function finish(db: Database.Database, mode: string): string {
  // WAL with synchronous=NORMAL never corrupts; it may lose the last heartbeat on power loss,
  // which the next heartbeat rewrites anyway. It saves an fsync per heartbeat.
  if (mode === 'wal') db.pragma('synchronous = NORMAL');
  return mode;
}
