/*
 * The SQLite name resolver: every sidecar on a machine writes its address to one shared SQLite
 * file and heartbeats it; resolving reads the live rows. Table layout and timing follow Dapr's
 * resolver (components-contrib nameresolution/sqlite) so Dapr and Courier sidecars can share a file.
 *
 * better-sqlite3 is synchronous, and that is acceptable on the event loop here because of what the
 * resolver asks of it: in WAL mode readers never wait for writers, so `resolve` (the only call on
 * the request path) is an indexed read of a handful of rows that takes microseconds; the writes are
 * one-row statements (a heartbeat every few seconds, a registration at start, a cleanup an hour)
 * that hold the write lock for microseconds, so another process's lock is rarely met and
 * `busyTimeout` (800 ms by default) caps the worst case. An async driver would add a thread hop to
 * every resolve for no gain.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { CourierError, errorMessage } from '../../errors/index.js';
import type { Logger } from '../../observability/logging/index.js';
import { joinHostPort } from '../address.js';
import type { NameResolver, ResolveRequest, ResolvedAddress, ResolverDeps, SelfInstance } from '../name-resolver.js';
import type { SqliteMetadata } from './metadata.js';
import { ensureSchema, statementsSql } from './schema.js';

/** File name of the database under Courier's home when `connectionString` is not set. */
export const defaultDatabaseFileName = 'nameresolution.db';

/** Pause between attempts of a failing statement (Dapr's driver retries on the same cadence). */
const retryDelayMs = 50;

/**
 * How much earlier than `cleanupInterval` a new cleanup round may be claimed. Each sidecar claims on
 * its own timer, which can fire a little late; without slack a claim made late would push the next
 * round back by a whole interval.
 */
const cleanupSlackMs = 100;

interface Registration {
  id: string;
  address: string;
  instance: SelfInstance;
}

/**
 * The SQLite resolver. Creating one opens (and if needed creates) the database, brings the schema
 * to Dapr's level and runs a first cleanup round (unless cleanup is disabled); `register` starts
 * the heartbeat. Both timers are
 * unref'd: name resolution never keeps a process alive on its own.
 */
export class SqliteNameResolver implements NameResolver {
  readonly component = 'sqlite';
  /** The database file in use, absolute. */
  readonly databasePath: string;

  private readonly metadata: SqliteMetadata;
  private readonly logger: Logger;
  private readonly db: Database.Database;
  private readonly updateIntervalSeconds: number;
  private readonly statements;
  private readonly takeOverAddress;
  private readonly cleanupRound;

  private registerCalled = false;
  private registering: Promise<void> | undefined;
  private registration: Registration | undefined;
  private heartbeatInFlight: Promise<void> | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private cleanupTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;

  /**
   * @throws CourierError `ERR_INVALID_CONFIG` when the database cannot be opened or holds an
   * incompatible table: both come from the configured location, and the runtime should refuse to
   * start rather than run without name resolution.
   */
  constructor(metadata: SqliteMetadata, deps: ResolverDeps) {
    this.metadata = metadata;
    this.logger = deps.logger.child({ scope: 'courier.nameresolution.sqlite' });
    this.updateIntervalSeconds = metadata.updateIntervalMs / 1000;
    this.databasePath = metadata.database?.path ?? join(deps.courierHome, defaultDatabaseFileName);
    this.db = openDatabase(metadata, this.databasePath, deps.courierHome, this.logger);

    try {
      ensureSchema(this.db, { hosts: metadata.tableName, metadata: metadata.metadataTableName });
      const sql = statementsSql({ hosts: metadata.tableName, metadata: metadata.metadataTableName });
      const db = this.db;
      this.statements = {
        register: db.prepare<[string, string, string, string]>(sql.register),
        findByAddress: db.prepare<[string], { registrationId: string; appId: string; ageSeconds: number }>(sql.findByAddress),
        heartbeat: db.prepare<[string, string]>(sql.heartbeat),
        resolve: db.prepare<[string, string, number], { address: string; lastUpdate: number }>(sql.resolve),
        deregister: db.prepare<[string, string]>(sql.deregister),
        claimCleanup: db.prepare<[number]>(sql.claimCleanup),
        deleteExpired: db.prepare<[number]>(sql.deleteExpired),
      };
      const statements = this.statements;
      // One transaction so that the row we report as evicted is the row REPLACE evicts.
      this.takeOverAddress = db.transaction((registration: Registration) => {
        const previous = statements.findByAddress.get(registration.address);
        const { appId, namespace } = registration.instance;
        statements.register.run(registration.id, registration.address, appId, namespace);
        return previous;
      });
      // Claim and delete together: a sidecar that wins the claim but dies before deleting must not
      // leave the round marked as done.
      this.cleanupRound = db.transaction((claimAgeMs: number): number | undefined => {
        if (statements.claimCleanup.run(claimAgeMs).changes === 0) return undefined;
        return statements.deleteExpired.run(this.updateIntervalSeconds).changes;
      });
    } catch (error) {
      this.db.close();
      throw new CourierError('ERR_INVALID_CONFIG', `name resolution (sqlite): cannot use database ${this.databasePath}: ${errorMessage(error)}`, { cause: error });
    }

    const ignored = metadata.database?.ignoredParameters ?? [];
    if (ignored.length > 0) this.logger.warn({ parameters: ignored }, 'ignoring connection string parameters that do not apply to this driver');
    this.logger.info({ path: this.databasePath, updateIntervalMs: metadata.updateIntervalMs }, 'using SQLite name resolution');

    if (metadata.cleanupIntervalMs > 0) {
      this.cleanupSafely();
      this.cleanupTimer = setInterval(() => this.cleanupSafely(), metadata.cleanupIntervalMs);
      this.cleanupTimer.unref();
    }
  }

  /**
   * Writes this sidecar's row and starts the heartbeat. Courier records the real namespace (Dapr
   * writes `''`); Dapr's resolver ignores namespaces, so Dapr sidecars still find Courier's rows.
   * Only `host:internalPort` is published: Dapr's table has no columns for the other ports.
   * @throws CourierError `ERR_INVALID_CONFIG` for an unusable instance (no app id, bad port),
   * `ERR_INTERNAL` when called twice, after close, or when the row cannot be written within `timeout`.
   */
  register(instance: SelfInstance): Promise<void> {
    if (this.closing !== undefined) return Promise.reject(closedError());
    if (this.registerCalled) return Promise.reject(new CourierError('ERR_INTERNAL', 'name resolution (sqlite): register was already called'));
    const invalid = instanceProblem(instance);
    if (invalid !== undefined) return Promise.reject(new CourierError('ERR_INVALID_CONFIG', `name resolution (sqlite): cannot register: ${invalid}`));
    this.registerCalled = true;
    const run = async (): Promise<void> => {
      await this.writeRegistration(instance, joinHostPort(instance.host, instance.internalPort));
      this.scheduleHeartbeat(Date.now());
    };
    const registering = run();
    this.registering = registering;
    return registering;
  }

  /**
   * Live instances of `request.appId` in `request.namespace` or with namespace `''` (rows written by
   * Dapr sidecars, which record no namespace), ordered by address. Each carries `expiresAtMs`, the
   * end of its liveness window if no further heartbeat arrives: `(last_update + updateInterval) s`.
   * @throws CourierError `ERR_INTERNAL` after close, or when the read keeps failing for `timeout`.
   */
  async resolve(request: ResolveRequest): Promise<readonly ResolvedAddress[]> {
    if (this.closing !== undefined) throw closedError();
    try {
      const rows = await this.retrying(() => this.statements.resolve.all(request.appId, request.namespace, this.updateIntervalSeconds));
      return rows.map((row) => ({ address: row.address, expiresAtMs: (row.lastUpdate + this.updateIntervalSeconds) * 1000 }));
    } catch (error) {
      if (error instanceof CourierError) throw error;
      throw new CourierError('ERR_INTERNAL', `name resolution (sqlite): cannot look up app id "${request.appId}": ${errorMessage(error)}`, { cause: error });
    }
  }

  /**
   * Renews the registration once; the heartbeat timer calls it, and tests call it directly instead
   * of waiting. A statement that fails is retried until `timeout`; if it still fails, the error is
   * logged and the next tick tries again. Zero rows updated means the registration was lost
   * (another sidecar took the address, or a cleanup removed the row after this process stalled):
   * Dapr exits at that point; Courier logs a warning and registers again under a new id, which keeps
   * the sidecar reachable without a restart. Never rejects; concurrent calls share one run.
   */
  heartbeat(): Promise<void> {
    if (this.heartbeatInFlight !== undefined) return this.heartbeatInFlight;
    const run = this.renew().finally(() => {
      this.heartbeatInFlight = undefined;
    });
    this.heartbeatInFlight = run;
    return run;
  }

  /**
   * Runs one cleanup round if no sidecar sharing the database has run one within `cleanupInterval`:
   * claims the round in the metadata table and deletes the rows whose liveness window has ended, in
   * one transaction. Returns the number of rows deleted, or undefined when the round belonged to
   * someone else. Synchronous: it is two statements, bounded by `busyTimeout`.
   */
  cleanupExpired(): number | undefined {
    if (!this.db.open) throw closedError();
    return this.cleanupRound.immediate(this.metadata.cleanupIntervalMs - cleanupSlackMs);
  }

  /** Stops the timers, deletes this sidecar's row and closes the database. Errors are logged, not thrown: the row expires by itself. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    clearTimeout(this.heartbeatTimer);
    clearInterval(this.cleanupTimer);
    await Promise.allSettled([this.registering, this.heartbeatInFlight]);
    const registration = this.registration;
    this.registration = undefined;
    if (registration !== undefined) {
      try {
        const deleted = await this.retrying(() => this.statements.deregister.run(registration.id, registration.address).changes);
        if (deleted === 0) this.logger.debug({ address: registration.address }, 'registration was already gone at close');
      } catch (error) {
        this.logger.warn({ err: errorMessage(error), address: registration.address }, 'failed to remove registration; it will expire by itself');
      }
    }
    try {
      this.db.close();
    } catch (error) {
      this.logger.warn({ err: errorMessage(error) }, 'failed to close the name resolution database');
    }
  }

  private async writeRegistration(instance: SelfInstance, address: string): Promise<void> {
    const registration: Registration = { id: randomUUID(), address, instance };
    let previous;
    try {
      previous = await this.retrying(() => this.takeOverAddress.immediate(registration));
    } catch (error) {
      if (error instanceof CourierError) throw error;
      throw new CourierError('ERR_INTERNAL', `name resolution (sqlite): cannot register ${address} in ${this.databasePath}: ${errorMessage(error)}`, { cause: error });
    }
    this.registration = registration;
    const fields = { appId: instance.appId, namespace: instance.namespace, address, registrationId: registration.id };
    if (previous !== undefined && previous.ageSeconds < this.updateIntervalSeconds) {
      // A live row holds our address: two sidecars advertise the same host:port (e.g. "127.0.0.1"
      // from different containers). Each will take the address back from the other on heartbeat.
      this.logger.warn({ ...fields, previousAppId: previous.appId, previousRegistrationId: previous.registrationId }, 'took over an address another live sidecar had registered');
    } else if (previous !== undefined) {
      this.logger.debug({ ...fields, previousAppId: previous.appId }, 'replaced a stale registration for this address');
    }
    this.logger.info(fields, 'registered with SQLite name resolution');
  }

  private async renew(): Promise<void> {
    const registration = this.registration;
    if (registration === undefined || this.closing !== undefined) return;
    let changes: number;
    try {
      changes = await this.retrying(() => this.statements.heartbeat.run(registration.id, registration.address).changes);
    } catch (error) {
      this.logger.error({ err: errorMessage(error), address: registration.address }, 'failed to renew registration; retrying at the next heartbeat');
      return;
    }
    if (changes > 0 || this.closing !== undefined) return;
    this.logger.warn(
      { address: registration.address, registrationId: registration.id },
      'registration lost (another sidecar took the address, or cleanup removed the row); registering again',
    );
    try {
      await this.writeRegistration(registration.instance, registration.address);
    } catch (error) {
      this.logger.error({ err: errorMessage(error), address: registration.address }, 'failed to register again; retrying at the next heartbeat');
    }
  }

  /** Fixed-rate schedule measured from each heartbeat's start, so a slow one does not push the next back. */
  private scheduleHeartbeat(startedAt: number): void {
    if (this.closing !== undefined) return;
    const delayMs = Math.max(0, startedAt + this.metadata.heartbeatIntervalMs - Date.now());
    this.heartbeatTimer = setTimeout(() => {
      const started = Date.now();
      void this.heartbeat().then(() => this.scheduleHeartbeat(started));
    }, delayMs);
    this.heartbeatTimer.unref();
  }

  private cleanupSafely(): void {
    if (this.closing !== undefined) return;
    try {
      const deleted = this.cleanupExpired();
      if (deleted === undefined) this.logger.debug('cleanup skipped: another round ran less than cleanupInterval ago');
      else if (deleted > 0) this.logger.info({ deleted }, 'removed expired name resolution rows');
    } catch (error) {
      this.logger.warn({ err: errorMessage(error) }, 'name resolution cleanup failed; retrying at the next interval');
    }
  }

  /**
   * Runs a statement, retrying SQLite errors (typically SQLITE_BUSY past `busyTimeout`) every 50 ms
   * until `timeout` is spent. The waits are asynchronous, so a contended database delays only the
   * operation that met it, not the event loop.
   */
  private async retrying<T>(statement: () => T): Promise<T> {
    const deadline = Date.now() + this.metadata.timeoutMs;
    for (;;) {
      if (!this.db.open) throw closedError();
      try {
        return statement();
      } catch (error) {
        if (!(error instanceof Database.SqliteError) || Date.now() + retryDelayMs > deadline) throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, retryDelayMs));
    }
  }
}

/**
 * Opens the file, creating its directory when allowed: the default location under Courier's home
 * is made private (0700) since it reveals which apps run on the machine; a configured location
 * gets the process umask, as the operator may share it between users on purpose.
 */
function openDatabase(metadata: SqliteMetadata, path: string, courierHome: string, logger: Logger): Database.Database {
  const mustExist = metadata.database?.mustExist ?? false;
  let db: Database.Database;
  try {
    if (metadata.database === undefined) mkdirSync(courierHome, { recursive: true, mode: 0o700 });
    else if (!mustExist) mkdirSync(dirname(path), { recursive: true });
    db = new Database(path, { fileMustExist: mustExist, timeout: metadata.busyTimeoutMs });
  } catch (error) {
    throw new CourierError('ERR_INVALID_CONFIG', `name resolution (sqlite): cannot open database ${path}: ${errorMessage(error)}`, { cause: error });
  }
  const wanted = metadata.disableWAL ? 'delete' : 'wal';
  try {
    const mode = String(db.pragma(`journal_mode = ${wanted}`, { simple: true })).toLowerCase();
    // WAL with synchronous=NORMAL never corrupts; it may lose the last heartbeat on power loss,
    // which the next heartbeat rewrites anyway. It saves an fsync per heartbeat.
    if (mode === 'wal') db.pragma('synchronous = NORMAL');
    if (mode !== wanted) logger.warn({ path, journalMode: mode, wanted }, 'could not change the journal mode; continuing in the current one');
  } catch (error) {
    // Leaving WAL needs every other connection closed; running in the current mode is still correct.
    logger.warn({ path, wanted, err: errorMessage(error) }, 'could not change the journal mode; continuing in the current one');
  }
  return db;
}

/** Why `instance` cannot be published, or undefined when it can. */
function instanceProblem(instance: SelfInstance): string | undefined {
  if (instance.appId.trim() === '') return 'appId is empty';
  if (instance.host.trim() === '' || /\s/.test(instance.host)) return `host "${instance.host}" is not an address`;
  const port = instance.internalPort;
  if (!Number.isInteger(port) || port < 1 || port > 65_535) return `internalPort must be an integer between 1 and 65535, got ${port}`;
  return undefined;
}

function closedError(): CourierError {
  return new CourierError('ERR_INTERNAL', 'name resolution (sqlite) is closed');
}
