import type { Stats } from 'node:fs';
import { readFileSync, unwatchFile, watchFile } from '../util/builtins.js';
import { CourierError, errorMessage } from '../errors/index.js';
import type { Logger } from '../observability/logging/index.js';
import { splitPemCertificates } from '../security/index.js';

/** How often a trust-anchors file is checked for changes. */
const WATCH_INTERVAL_MS = 1000;

/**
 * The certificates a sidecar trusts: from `DAPR_TRUST_ANCHORS` (fixed) or from a file, which is
 * watched and reloaded when it changes. A reload that yields no certificate is refused and the
 * current anchors stay in force.
 */
export class TrustAnchors {
  #pem: string;
  readonly #file: string | undefined;
  readonly #logger: Logger;
  readonly #listeners = new Set<() => void>();
  #watching = false;

  private constructor(pem: string, file: string | undefined, logger: Logger) {
    this.#pem = pem;
    this.#file = file;
    this.#logger = logger;
  }

  static fromPem(pem: string, logger: Logger): TrustAnchors {
    checkPem(pem, 'DAPR_TRUST_ANCHORS');
    return new TrustAnchors(pem, undefined, logger);
  }

  static fromFile(file: string, logger: Logger): TrustAnchors {
    const anchors = new TrustAnchors(readAnchors(file), file, logger);
    anchors.#watch();
    return anchors;
  }

  get pem(): string {
    return this.#pem;
  }

  onChange(listener: () => void): void {
    this.#listeners.add(listener);
  }

  close(): void {
    if (this.#watching && this.#file !== undefined) unwatchFile(this.#file);
    this.#watching = false;
  }

  #watch(): void {
    const file = this.#file;
    if (file === undefined) return;
    this.#watching = true;
    watchFile(file, { interval: WATCH_INTERVAL_MS, persistent: false }, (curr: Stats, prev: Stats) => {
      if (curr.mtimeMs === prev.mtimeMs && curr.size === prev.size) return;
      this.#reload(file);
    });
    // The watcher's first look at the file is its baseline: a change made between reading the file and
    // that first look would never be reported, so the file is read once more after one interval.
    setTimeout(() => {
      if (this.#watching) this.#reload(file);
    }, WATCH_INTERVAL_MS).unref();
  }

  #reload(file: string): void {
    let next: string;
    try {
      next = readAnchors(file);
    } catch (err) {
      this.#logger.error({ file, err: errorMessage(err) }, 'the new trust anchors were refused; the current ones stay in force');
      return;
    }
    if (next === this.#pem) return;
    this.#pem = next;
    this.#logger.info({ file, certificates: splitPemCertificates(next).length }, 'trust anchors reloaded');
    for (const listener of this.#listeners) listener();
  }
}

function readAnchors(file: string): string {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CourierError('ERR_INVALID_CONFIG', `trust anchors file ${file}: ${errorMessage(err)}`);
  }
  checkPem(pem, file);
  return pem;
}

function checkPem(pem: string, where: string): void {
  if (splitPemCertificates(pem).length === 0) {
    throw new CourierError('ERR_INVALID_CONFIG', `${where}: holds no PEM certificate`);
  }
}
