import type { Logger } from '../observability/logging/index.js';
import { formatDuration } from '../util/duration.js';

/** Why the Sentry refused a client, as its log names it. */
export const refusalKinds = [
  'rate_limited_address',
  'rate_limited_identity',
  'too_many_connections',
  'malformed_request',
  'invalid_request',
  'no_token',
  'token_refused',
  'kubernetes_token_refused',
  'invalid_csr',
] as const;
export type RefusalKind = (typeof refusalKinds)[number];

const KIND_INDEX: ReadonlyMap<RefusalKind, number> = new Map(refusalKinds.map((kind, i) => [kind, i]));
const RATE_LIMITED: ReadonlySet<number> = new Set([KIND_INDEX.get('rate_limited_address'), KIND_INDEX.get('rate_limited_identity')] as number[]);

export interface RefusalLogOptions {
  readonly logger: Logger;
  /** How often the summary is written (by whoever calls `flush`); for its wording. */
  readonly intervalMs: number;
  /** Clients tracked one by one per interval; refusals from further clients are counted together. Default 1000. */
  readonly maxClients?: number;
  /** First-refusal lines per interval at most; beyond that refusals are only counted. Default 20. */
  readonly maxFirstLines?: number;
  /** Clients named in the summary. Default 5. */
  readonly topClients?: number;
}

interface ClientRecord {
  /** Bit i set: a refusal of kind i from this client was logged (or skipped for the line budget). */
  seen: number;
  /** Refusals of each kind in the current interval. */
  readonly counts: number[];
  total: number;
}

/**
 * The Sentry's log of refused requests, bounded whatever a client sends: the first refusal of each kind
 * from a client is written as a line of its own, with the reason; after that refusals are only counted,
 * and `flush` (called every interval) writes one summary line: how many were refused, how many of them
 * rate limited, of which kinds, and the clients that caused most. A client with no refusal for a whole
 * interval is forgotten, so if it comes back its first refusal is written again.
 */
export class RefusalLog {
  readonly #logger: Logger;
  readonly #interval: string;
  readonly #maxClients: number;
  readonly #maxFirstLines: number;
  readonly #topClients: number;
  readonly #clients = new Map<string, ClientRecord>();
  readonly #kindTotals = refusalKinds.map(() => 0);
  #total = 0;
  /** Refusals from clients beyond `maxClients`. */
  #untracked = 0;
  #firstLines = 0;

  constructor(options: RefusalLogOptions) {
    this.#logger = options.logger;
    this.#interval = formatDuration(options.intervalMs);
    this.#maxClients = options.maxClients ?? 1000;
    this.#maxFirstLines = options.maxFirstLines ?? 20;
    this.#topClients = options.topClients ?? 5;
  }

  /** Counts one refusal, and writes it if it is the first of its kind from `client`. */
  refused(client: string, kind: RefusalKind, reason: string, appId?: string, namespace?: string): void {
    const k = KIND_INDEX.get(kind) as number;
    this.#total++;
    this.#kindTotals[k] = (this.#kindTotals[k] as number) + 1;
    let record = this.#clients.get(client);
    if (record === undefined) {
      if (this.#clients.size >= this.#maxClients) {
        this.#untracked++;
        return;
      }
      record = { seen: 0, counts: refusalKinds.map(() => 0), total: 0 };
      this.#clients.set(client, record);
    }
    record.counts[k] = (record.counts[k] as number) + 1;
    record.total++;
    const bit = 1 << k;
    if ((record.seen & bit) !== 0) return;
    record.seen |= bit;
    if (this.#firstLines >= this.#maxFirstLines) return;
    this.#firstLines++;
    this.#logger.warn(
      { peer: client, kind, ...(appId === undefined ? {} : { app_id: appId }), ...(namespace === undefined ? {} : { namespace }), reason },
      `refused a certificate request (further refusals of this kind from ${client} are summarised every ${this.#interval})`,
    );
  }

  /** Writes the summary of the interval that ends now, if anything was refused in it, and starts the next. */
  flush(): void {
    const total = this.#total;
    if (total > 0) this.#summarise(total);
    for (const [client, record] of this.#clients) {
      if (record.total === 0) this.#clients.delete(client);
      else {
        record.counts.fill(0);
        record.total = 0;
      }
    }
    this.#kindTotals.fill(0);
    this.#total = 0;
    this.#untracked = 0;
    this.#firstLines = 0;
  }

  /** Clients currently remembered (for tests and diagnostics). */
  get trackedClients(): number {
    return this.#clients.size;
  }

  #summarise(total: number): void {
    let rateLimited = 0;
    for (const k of RATE_LIMITED) rateLimited += this.#kindTotals[k] as number;
    const active: Array<[string, ClientRecord]> = [];
    for (const entry of this.#clients) if (entry[1].total > 0) active.push(entry);
    active.sort((a, b) => b[1].total - a[1].total);
    const top = active
      .slice(0, this.#topClients)
      .map(([client, record]) => `${client} ${record.total} (${kindList(record.counts)})`)
      .join(', ');
    const clients = active.length + (this.#untracked > 0 ? 1 : 0);
    this.#logger.warn(
      {
        refused: total,
        rate_limited: rateLimited,
        kinds: kindList(this.#kindTotals),
        clients: this.#untracked > 0 ? `${active.length} and more` : active.length,
        top_clients: top,
        ...(this.#untracked > 0 ? { from_untracked_clients: this.#untracked } : {}),
      },
      `refused ${total} certificate request${total === 1 ? '' : 's'} in the last ${this.#interval} (${rateLimited} rate limited) from ${clients} client${clients === 1 ? '' : 's'}`,
    );
  }
}

function kindList(counts: readonly number[]): string {
  const parts: string[] = [];
  counts.forEach((n, i) => {
    if (n > 0) parts.push(`${refusalKinds[i]}=${n}`);
  });
  return parts.join(' ');
}
