/*
 * The SQLite name resolver: every sidecar on a machine writes its address to one shared SQLite
 * file and heartbeats it; resolving reads the live rows. Table layout and timing follow Dapr's
 * resolver (components-contrib nameresolution/sqlite) so Dapr and Courier sidecars can share a file.
 *
 * better-sqlite3 is synchronous, and that is acceptable on the event loop here because of what the
 * resolver asks of it: `resolve` (the only call on the request path, and only when the address
 * book's one-second cache has run out) is an indexed read of a handful of rows that takes
 * microseconds; the writes are one-row statements (a heartbeat every few seconds, a registration at
 * start, a cleanup an hour). SQLite's own busy handler is off (busy timeout 0), because it sleeps
 * on the calling thread: a statement that meets another process's lock fails at once and is
 * retried on timers, so a locked database delays the operation that met it, never the event loop.
 *
 * The database can turn unhealthy under a running sidecar (locked for long, read-only, full,
 * deleted, made immutable). Resolving then answers with the last instances read for the app id,
 * their deadlines extended, and the heartbeat keeps trying; see docs/discovery.md.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { CourierError, errorMessage } from '../../errors/index.js';
import type { Logger } from '../../observability/logging/index.js';
import { formatDuration } from '../../util/duration.js';
import { joinHostPort } from '../address.js';
import type { NameResolver, ResolveRequest, ResolvedAddress, ResolverDeps, ResolverStatus, SelfInstance } from '../name-resolver.js';
import type { SqliteMetadata } from './metadata.js';
import { isLockError, isTransient, SqliteStore } from './store.js';

/** File name of the database under Courier's home when `connectionString` is not set. */
export const defaultDatabaseFileName = 'nameresolution.db';

/** Pause between attempts of a statement that failed for another reason than a lock (Dapr's driver retries on the same cadence). */
const retryDelayMs = 50;
/** Longest pause between attempts of a statement that met a lock; the first retries come sooner. */
const lockPollMaxMs = 25;
/** Pause between attempts to open the database while a sidecar starts. */
const startPollMs = 100;
/** A start-up wait shorter than this is a race between sidecars starting together, logged at debug only. */
const quietStartWaitMs = 1000;

/**
 * How much earlier than `cleanupInterval` a new cleanup round may be claimed. Each sidecar claims on
 * its own timer, which can fire a little late; without slack a claim made late would push the next
 * round back by a whole interval.
 */
const cleanupSlackMs = 100;

/**
 * How long a closing sidecar keeps trying to delete its row while another connection holds the
 * database (or `busyTimeout`, if longer). A row left behind sends callers to a closed port until its
 * liveness window ends, so removing it is worth a short wait at shutdown: a write held up by a slow
 * disk (the rollback journal syncs on every commit) can outlast `busyTimeout`.
 */
const deregisterBudgetMs = 3000;

interface Registration {
  id: string;
  address: string;
  instance: SelfInstance;
}

interface Row {
  address: string;
  lastUpdate: number;
}

interface Known {
  /** When the rows were read (epoch ms). */
  readAtMs: number;
  rows: readonly Row[];
}

/** How the database behaves, as this sidecar last saw it. */
export type StoreHealth = { healthy: true } | { healthy: false; sinceMs: number; cause: string };

/** What `courier resolve` and the metadata API show of the resolver's view. */
export interface SqliteResolverStatus extends ResolverStatus {
  journalMode?: string;
}

/**
 * The SQLite resolver. Creating one opens (and if needed creates) the database, brings the schema
 * to Dapr's level and runs a first cleanup round (unless cleanup is disabled); when the database is
 * locked or cannot be written at that moment, it keeps trying in the background for
 * `startupTimeout`, and `register` (which starts the heartbeat) waits for it. Both timers are
 * unref'd: name resolution never keeps a process alive on its own.
 */
export class SqliteNameResolver implements NameResolver {
  readonly component = 'sqlite';
  /** The database file in use, absolute. */
  readonly databasePath: string;

  private readonly metadata: SqliteMetadata;
  private readonly logger: Logger;
  private readonly courierHome: string;
  private readonly updateIntervalSeconds: number;
  /** `startupTimeout`, or less when the creator asked for less. */
  private readonly startupTimeoutMs: number;
  /** Epoch ms by which the database must be open and this sidecar registered. */
  private readonly startDeadline: number;

  private store: SqliteStore | undefined;
  private opening: Promise<SqliteStore> | undefined;
  private health: StoreHealth = { healthy: true };
  private readonly known = new Map<string, Known>();
  /** Set once a replaced or deleted file has been reported, until a store is open on the new one. */
  private fileChangeReported = false;

  private registerCalled = false;
  private registering: Promise<void> | undefined;
  private registration: Registration | undefined;
  private heartbeatInFlight: Promise<void> | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private cleanupTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;

  /**
   * @throws CourierError `ERR_INVALID_CONFIG` when the database cannot be opened for a reason that
   * waiting will not cure (a missing file with `mode=rw`, an incompatible table, not a database):
   * both come from the configured location, and the runtime should refuse to start rather than run
   * without name resolution.
   */
  constructor(metadata: SqliteMetadata, deps: ResolverDeps) {
    this.metadata = metadata;
    this.logger = deps.logger.child({ scope: 'courier.nameresolution.sqlite' });
    this.courierHome = deps.courierHome;
    this.updateIntervalSeconds = metadata.updateIntervalMs / 1000;
    this.databasePath = metadata.database?.path ?? join(deps.courierHome, defaultDatabaseFileName);
    this.startupTimeoutMs = Math.min(metadata.startupTimeoutMs, deps.startupWaitMs ?? Number.POSITIVE_INFINITY);
    this.startDeadline = Date.now() + this.startupTimeoutMs;

    const ignored = metadata.database?.ignoredParameters ?? [];
    if (ignored.length > 0) this.logger.warn({ parameters: ignored }, 'ignoring connection string parameters that do not apply to this driver');

    try {
      this.store = this.openStore();
    } catch (error) {
      if (!isTransient(error)) throw this.cannotUse(error);
      const opening = this.waitForStore(error);
      opening.catch(() => {}); // observed by register/resolve; the sidecar exits through register
      this.opening = opening;
      return;
    }
    this.started();
  }

  /**
   * Writes this sidecar's row and starts the heartbeat. Courier records the real namespace (Dapr
   * writes `''`); Dapr's resolver ignores namespaces, so Dapr sidecars still find Courier's rows.
   * Only `host:internalPort` is published: Dapr's table has no columns for the other ports. While
   * the database is locked or unwritable, it waits up to `startupTimeout` from the resolver's
   * creation, logging what it waits for.
   * @throws CourierError `ERR_INVALID_CONFIG` for an unusable instance (no app id, bad port) or a
   * database still unusable after `startupTimeout`; `ERR_INTERNAL` when called twice or after close.
   */
  register(instance: SelfInstance): Promise<void> {
    if (this.closing !== undefined) return Promise.reject(closedError());
    if (this.registerCalled) return Promise.reject(new CourierError('ERR_INTERNAL', 'name resolution (sqlite): register was already called'));
    const invalid = instanceProblem(instance);
    if (invalid !== undefined) return Promise.reject(new CourierError('ERR_INVALID_CONFIG', `name resolution (sqlite): cannot register: ${invalid}`));
    this.registerCalled = true;
    const run = async (): Promise<void> => {
      await this.ready();
      const address = joinHostPort(instance.host, instance.internalPort);
      let waitLogged = false;
      try {
        await this.writeRegistration(instance, address, {
          deadline: Math.max(this.startDeadline, Date.now() + this.metadata.busyTimeoutMs),
          onWait: (error) => {
            if (waitLogged || Date.now() < this.startDeadline - this.startupTimeoutMs + quietStartWaitMs) return;
            waitLogged = true;
            this.logger.info({ path: this.databasePath, cause: describeError(error), waitingUpTo: formatDuration(this.startupTimeoutMs) }, 'waiting for the name resolution database to accept this sidecar\'s registration');
          },
        });
      } catch (error) {
        if (error instanceof CourierError) throw error;
        throw new CourierError(
          'ERR_INVALID_CONFIG',
          `name resolution (sqlite): cannot register ${address} in ${this.databasePath} within startupTimeout (${formatDuration(this.startupTimeoutMs)}): ${describeError(error)}`,
          { cause: error },
        );
      }
      this.markHealthy();
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
   *
   * While the database is unhealthy, the answer is the last one read for the app id while it was
   * healthy (merged with any live rows still readable), each deadline extended to
   * `now + updateInterval`: the database cannot say that an instance died. A read that meets a lock
   * while the database is healthy is retried for `busyTimeout` first; once it is known unhealthy,
   * reads are tried once and the last known answer comes back at once.
   * @throws CourierError `ERR_INTERNAL` after close, or when the database fails and no answer for
   * the app id was ever read.
   */
  async resolve(request: ResolveRequest): Promise<readonly ResolvedAddress[]> {
    if (this.closing !== undefined) throw closedError();
    if (this.store === undefined) await this.ready();
    const healthy = this.health.healthy;
    let rows: Row[];
    try {
      rows = await this.retrying((store) => store.statements.resolve.all(request.appId, request.namespace, this.updateIntervalSeconds), { once: !healthy });
    } catch (error) {
      if (error instanceof CourierError) throw error;
      this.markUnhealthy(error);
      const known = this.known.get(knownKey(request));
      if (known === undefined) {
        throw new CourierError(
          'ERR_INTERNAL',
          `name resolution (sqlite): cannot look up app id "${request.appId}" in ${this.databasePath} (${describeError(error)}), and no earlier answer for it is known`,
          { cause: error },
        );
      }
      return this.extended(known.rows);
    }
    if (healthy) {
      // Only app ids with instances are remembered, so calls to made-up app ids cannot grow the map.
      if (rows.length > 0) this.known.set(knownKey(request), { readAtMs: Date.now(), rows });
      else this.known.delete(knownKey(request));
      return rows.map((row) => ({ address: row.address, expiresAtMs: (row.lastUpdate + this.updateIntervalSeconds) * 1000 }));
    }
    const known = this.known.get(knownKey(request))?.rows ?? [];
    const merged = new Map<string, Row>();
    for (const row of [...known, ...rows]) merged.set(row.address, row);
    return this.extended([...merged.values()].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0)));
  }

  /** While the database is unhealthy: where, since when and why, and that answers are the last known ones. */
  lastLookup(request: ResolveRequest): string | undefined {
    const health = this.health;
    if (health.healthy) return undefined;
    const known = this.known.get(knownKey(request));
    const answer =
      known === undefined
        ? 'no earlier answer for this app id is known'
        : `answering with the last known instances, read ${formatDuration(Math.max(0, Date.now() - known.readAtMs))} ago`;
    return `database ${this.databasePath} unhealthy since ${new Date(health.sinceMs).toISOString()} (${health.cause}); ${answer}`;
  }

  /** The database's health as this resolver last saw it, and the last answers it read. */
  status(): SqliteResolverStatus {
    const health = this.health;
    const lastKnown: SqliteResolverStatus['lastKnown'] = {};
    for (const [key, known] of this.known) lastKnown[key] = { readAt: new Date(known.readAtMs).toISOString(), addresses: known.rows.map((row) => row.address) };
    const journalMode = this.store?.journalMode;
    return {
      store: this.databasePath,
      ...(journalMode === undefined ? {} : { journalMode }),
      healthy: health.healthy,
      ...(health.healthy ? {} : { unhealthySince: new Date(health.sinceMs).toISOString(), cause: health.cause }),
      lastKnown,
    };
  }

  /**
   * Renews the registration once; the heartbeat timer calls it, and tests call it directly instead
   * of waiting. It first checks that the file at the configured path is still the one open (same
   * device and inode); if it was deleted or replaced, it reopens (recreating it) and registers
   * again. A statement that fails is retried within `busyTimeout` (a lock) or `timeout` (anything
   * else); if it still fails, the database is marked unhealthy and the next tick tries again. Zero
   * rows updated means the registration was lost (another sidecar took the address, or a cleanup
   * removed the row after this process stalled): Dapr exits at that point; Courier logs a warning
   * and registers again under a new id, which keeps the sidecar reachable without a restart. Never
   * rejects; concurrent calls share one run.
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
   * someone else. Synchronous and single-attempt: a lock throws SQLITE_BUSY.
   */
  cleanupExpired(): number | undefined {
    const store = this.store;
    if (this.closing !== undefined || store === undefined || !store.open) throw closedError();
    return store.cleanupRound.immediate(this.metadata.cleanupIntervalMs - cleanupSlackMs);
  }

  /** Stops the timers, deletes this sidecar's row and closes the database. Errors are logged, not thrown: the row expires by itself. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    clearTimeout(this.heartbeatTimer);
    clearInterval(this.cleanupTimer);
    await Promise.allSettled([this.registering, this.heartbeatInFlight, this.opening]);
    const registration = this.registration;
    this.registration = undefined;
    const store = this.store;
    this.store = undefined;
    if (store === undefined) return;
    if (registration !== undefined) {
      try {
        // Not `this.budget`, which stops retrying once closing: a lock is waited out, any other
        // failure (a read-only or full database) ends the attempt at once.
        const busyTimeoutMs = Math.max(deregisterBudgetMs, this.metadata.busyTimeoutMs);
        const deleted = await retry(() => store.statements.deregister.run(registration.id, registration.address).changes, { busyTimeoutMs, timeoutMs: 0, stop: () => false });
        if (deleted === 0) this.logger.debug({ address: registration.address }, 'registration was already gone at close');
      } catch (error) {
        this.logger.warn({ err: errorMessage(error), address: registration.address }, 'failed to remove registration; it will expire by itself');
      }
    }
    try {
      store.close();
    } catch (error) {
      this.logger.warn({ err: errorMessage(error) }, 'failed to close the name resolution database');
    }
  }

  private openStore(): SqliteStore {
    return new SqliteStore({ path: this.databasePath, metadata: this.metadata, courierHome: this.courierHome, logger: this.logger });
  }

  /** After the first successful open: say so, and start cleaning up. */
  private started(): void {
    this.logger.info({ path: this.databasePath, journalMode: this.store?.journalMode, updateIntervalMs: this.metadata.updateIntervalMs }, 'using SQLite name resolution');
    if (this.metadata.cleanupIntervalMs > 0) {
      void this.cleanupSafely();
      this.cleanupTimer = setInterval(() => void this.cleanupSafely(), this.metadata.cleanupIntervalMs);
      this.cleanupTimer.unref();
    }
  }

  /** The open store, waiting for the start-up open when it is still under way. */
  private async ready(): Promise<SqliteStore> {
    if (this.store !== undefined) return this.store;
    if (this.opening !== undefined) return this.opening;
    throw closedError();
  }

  /**
   * Tries to open the database every 100 ms until `startupTimeout` has passed since creation. A
   * wait longer than a second (not a race between sidecars starting together) is logged once,
   * naming the file and the cause.
   */
  private async waitForStore(first: unknown): Promise<SqliteStore> {
    let cause = first;
    let logged = false;
    for (;;) {
      if (this.closing !== undefined) throw closedError();
      const waited = Date.now() - (this.startDeadline - this.startupTimeoutMs);
      if (!logged && waited >= quietStartWaitMs) {
        logged = true;
        this.logger.info(
          { path: this.databasePath, cause: describeError(cause), waitingUpTo: formatDuration(this.startupTimeoutMs) },
          'waiting for the name resolution database to become usable',
        );
      } else if (!logged) {
        this.logger.debug({ path: this.databasePath, cause: describeError(cause) }, 'name resolution database busy at start; trying again');
      }
      if (Date.now() + startPollMs > this.startDeadline) {
        throw new CourierError(
          'ERR_INVALID_CONFIG',
          `name resolution (sqlite): cannot use database ${this.databasePath} within startupTimeout (${formatDuration(this.startupTimeoutMs)}): ${describeError(cause)}`,
          { cause },
        );
      }
      await sleep(startPollMs);
      if (this.closing !== undefined) throw closedError();
      try {
        const store = this.openStore();
        this.store = store;
        if (logged) this.logger.info({ path: this.databasePath, waitedMs: Date.now() - (this.startDeadline - this.startupTimeoutMs) }, 'the name resolution database is usable');
        this.started();
        return store;
      } catch (error) {
        if (!isTransient(error)) throw this.cannotUse(error);
        cause = error;
      }
    }
  }

  private cannotUse(error: unknown): CourierError {
    if (error instanceof CourierError) return error;
    const verb = error instanceof Database.SqliteError || error instanceof TypeError ? 'cannot open database' : 'cannot use database';
    return new CourierError('ERR_INVALID_CONFIG', `name resolution (sqlite): ${verb} ${this.databasePath}: ${errorMessage(error)}`, { cause: error });
  }

  private async writeRegistration(instance: SelfInstance, address: string, options: { deadline?: number; onWait?: (error: unknown) => void; quiet?: boolean } = {}): Promise<void> {
    const registration: Registration = { id: randomUUID(), address, instance };
    const row = { id: registration.id, address, appId: instance.appId, namespace: instance.namespace };
    const previous = await this.retrying((store) => store.takeOverAddress.immediate(row), options);
    this.registration = registration;
    const fields = { appId: instance.appId, namespace: instance.namespace, address, registrationId: registration.id };
    if (previous !== undefined && previous.ageSeconds < this.updateIntervalSeconds) {
      // A live row holds our address: two sidecars advertise the same host:port (e.g. "127.0.0.1"
      // from different containers). Each will take the address back from the other on heartbeat.
      this.logger.warn({ ...fields, previousAppId: previous.appId, previousRegistrationId: previous.registrationId }, 'took over an address another live sidecar had registered');
    } else if (previous !== undefined) {
      this.logger.debug({ ...fields, previousAppId: previous.appId }, 'replaced a stale registration for this address');
    }
    if (options.quiet !== true) this.logger.info(fields, 'registered with SQLite name resolution');
  }

  private async renew(): Promise<void> {
    const store = this.store;
    if (this.closing !== undefined || store === undefined) return;
    // A stat per heartbeat; the statement below then runs synchronously, in the timer's callback.
    const where = store.stillAt(this.databasePath);
    if (!where.same) {
      await this.followFile(store, where.now === undefined ? 'deleted' : 'replaced');
      return;
    }
    const registration = this.registration;
    if (registration === undefined || this.closing !== undefined) return;
    let changes: number;
    try {
      changes = await this.retrying((store) => store.statements.heartbeat.run(registration.id, registration.address).changes);
    } catch (error) {
      if (this.closing !== undefined) return;
      this.markUnhealthy(error);
      this.logger.debug({ err: describeError(error), address: registration.address }, 'failed to renew registration; retrying at the next heartbeat');
      return;
    }
    if (this.closing !== undefined) return;
    this.markHealthy();
    if (changes > 0) return;
    this.logger.warn(
      { address: registration.address, registrationId: registration.id },
      'registration lost (another sidecar took the address, or cleanup removed the row); registering again',
    );
    try {
      await this.writeRegistration(registration.instance, registration.address);
    } catch (error) {
      if (this.closing === undefined) this.markUnhealthy(error);
    }
  }

  /**
   * When the file at the configured path is no longer the file open (deleted, or replaced by
   * another sidecar that recreated it), opens the file now at the path (creating it when missing),
   * registers again there and says so in one line.
   */
  private async followFile(old: SqliteStore, change: 'deleted' | 'replaced'): Promise<void> {
    let fresh: SqliteStore;
    try {
      fresh = await retry(() => this.openStore(), this.budget({}));
    } catch (error) {
      if (!this.fileChangeReported) {
        this.fileChangeReported = true;
        this.logger.warn({ path: this.databasePath, err: describeError(error) }, `the name resolution database file was ${change} under this sidecar and cannot be ${change === 'deleted' ? 'recreated' : 'reopened'} yet; retrying at each heartbeat`);
      }
      this.markUnhealthy(error, { quiet: true });
      return;
    }
    if (this.closing !== undefined || this.store !== old) {
      fresh.close();
      return;
    }
    this.store = fresh;
    this.fileChangeReported = false;
    try {
      old.close();
    } catch {
      // the old file is gone; nothing of it is needed any more
    }
    const registration = this.registration;
    const fields = { path: this.databasePath, previousInode: old.identity.ino, inode: fresh.identity.ino };
    if (registration === undefined) {
      this.logger.warn(fields, `the name resolution database file was ${change} under this sidecar; reopened it`);
      return;
    }
    try {
      await this.writeRegistration(registration.instance, registration.address, { quiet: true });
    } catch (error) {
      this.logger.warn({ ...fields, err: describeError(error) }, `the name resolution database file was ${change} under this sidecar; reopened it, registering again failed (retrying at the next heartbeat)`);
      this.markUnhealthy(error, { quiet: true });
      return;
    }
    this.logger.warn({ ...fields, address: registration.address }, `the name resolution database file was ${change} under this sidecar; reopened it and registered again`);
    this.markHealthy();
    return;
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

  private async cleanupSafely(): Promise<void> {
    if (this.closing !== undefined) return;
    try {
      const deleted = await this.retrying(() => this.cleanupExpired());
      if (deleted === undefined) this.logger.debug('cleanup skipped: another round ran less than cleanupInterval ago');
      else if (deleted > 0) this.logger.info({ deleted }, 'removed expired name resolution rows');
    } catch (error) {
      if (this.closing !== undefined) return;
      this.logger.debug({ err: describeError(error) }, 'name resolution cleanup failed; retrying at the next interval');
    }
  }

  private markUnhealthy(error: unknown, options: { quiet?: boolean } = {}): void {
    const cause = describeError(error);
    if (!this.health.healthy) {
      this.health = { ...this.health, cause };
      return;
    }
    this.health = { healthy: false, sinceMs: Date.now(), cause };
    if (options.quiet === true) return;
    this.logger.warn(
      { path: this.databasePath, cause },
      'the name resolution database is unhealthy; calls use the last known instances and the heartbeat keeps trying until it recovers',
    );
  }

  private markHealthy(): void {
    const health = this.health;
    if (health.healthy) return;
    this.health = { healthy: true };
    this.logger.info({ path: this.databasePath, unhealthyFor: formatDuration(Date.now() - health.sinceMs), lastCause: health.cause }, 'the name resolution database has recovered');
  }

  /** `rows` with deadlines extended to `now + updateInterval`, for answers given while the database is unhealthy. */
  private extended(rows: readonly Row[]): ResolvedAddress[] {
    const expiresAtMs = Date.now() + this.metadata.updateIntervalMs;
    return rows.map((row) => ({ address: row.address, expiresAtMs }));
  }

  private budget(options: { deadline?: number; once?: boolean; onWait?: (error: unknown) => void }): RetryBudget {
    return { busyTimeoutMs: this.metadata.busyTimeoutMs, timeoutMs: this.metadata.timeoutMs, ...options, stop: () => this.closing !== undefined };
  }

  /** Runs `statement` on the current store under the retry budget (see {@link retry}). */
  private retrying<T>(statement: (store: SqliteStore) => T, options: { deadline?: number; once?: boolean; onWait?: (error: unknown) => void } = {}): Promise<T> {
    return retry(() => {
      const store = this.store;
      if (store === undefined || !store.open) throw closedError();
      return statement(store);
    }, this.budget(options));
  }
}

interface RetryBudget {
  busyTimeoutMs: number;
  timeoutMs: number;
  /** An absolute deadline (epoch ms) that replaces both budgets. */
  deadline?: number;
  /** One attempt only. */
  once?: boolean;
  onWait?: (error: unknown) => void;
  stop: () => boolean;
}

/**
 * Runs `attempt`, retrying SQLite errors on timers: a lock for `busyTimeoutMs` (polled every 1, 2,
 * 4, … up to 25 ms, as SQLite's own busy handler would), anything else every 50 ms for `timeoutMs`
 * (Dapr's cadence). The waits are asynchronous, so a contended database delays only the operation
 * that met it, not the event loop.
 */
async function retry<T>(attempt: () => T, budget: RetryBudget): Promise<T> {
  const started = Date.now();
  let lockPollMs = 1;
  for (;;) {
    let pause: number;
    try {
      return attempt();
    } catch (error) {
      if (!(error instanceof Database.SqliteError) || budget.once === true || budget.stop()) throw error;
      const lock = isLockError(error);
      const deadline = budget.deadline ?? started + (lock ? budget.busyTimeoutMs : budget.timeoutMs);
      pause = lock ? lockPollMs : retryDelayMs;
      lockPollMs = Math.min(lockPollMs * 2, lockPollMaxMs);
      if (Date.now() + pause > deadline) throw error;
      budget.onWait?.(error);
    }
    await sleep(pause);
  }
}

function knownKey(request: ResolveRequest): string {
  return `${request.namespace}/${request.appId}`;
}

/** "SQLITE_BUSY: database is locked", or the message of a non-SQLite error. */
function describeError(error: unknown): string {
  if (error instanceof Database.SqliteError) return `${error.code}: ${error.message}`;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const message = errorMessage(error);
  return typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message;
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
