// The injector's HTTPS server: `POST /mutate` for the API server's AdmissionReviews, `GET /healthz` for the
// kubelet. The serving certificate is read from files and reloaded when they change (cert-manager rotates it).
import { readFileSync, statSync } from '../../util/builtins.js';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { closeServer, listenOn } from '../../util/listen.js';
import { readAtMost } from '../../util/read-bounded.js';
import { CourierError, errorMessage, renderHttpError } from '../../errors/index.js';
import type { Logger } from '../../observability/logging/index.js';
import type { InjectorOptions } from './patch.js';
import { reviewAdmission } from './review.js';

/**
 * The largest AdmissionReview read. A Pod is bounded by etcd's 1.5 MiB object limit; the review carries it
 * once for CREATE (twice at most), plus a little envelope.
 */
export const MAX_REVIEW_BYTES = 4 * 1024 * 1024;
/** How often the certificate files are checked for a new version. */
const RELOAD_CHECK_MS = 10_000;

export interface InjectorServerOptions extends InjectorOptions {
  readonly certFile: string;
  readonly keyFile: string;
  readonly logger: Logger;
}

export class InjectorServer {
  readonly #options: InjectorServerOptions;
  readonly #server: Server;
  #certVersion: string;
  #reloadTimer: NodeJS.Timeout | undefined;

  /** Reads the certificate and key now, so a bad file stops the injector before it listens. */
  constructor(options: InjectorServerOptions) {
    this.#options = options;
    const { cert, key } = this.#readCredentials();
    this.#certVersion = this.#fileVersion();
    this.#server = createServer({ cert, key, minVersion: 'TLSv1.2' }, (req, res) => this.#handle(req, res));
    // The API server's webhook timeout is at most 30 s; a client slower than that is not the API server.
    this.#server.requestTimeout = 30_000;
    this.#server.headersTimeout = 10_000;
  }

  async listen(host: string, port: number): Promise<number> {
    const bound = await listenOn(this.#server, host, port);
    this.#reloadTimer = setInterval(() => this.#reloadIfChanged(), RELOAD_CHECK_MS).unref();
    return bound;
  }

  close(): Promise<void> {
    clearInterval(this.#reloadTimer);
    return closeServer(this.#server);
  }

  /** Swaps in the certificate files' current contents if they changed; a broken new pair keeps the old one. */
  reloadIfChanged(): boolean {
    return this.#reloadIfChanged();
  }

  #reloadIfChanged(): boolean {
    let version: string;
    try {
      version = this.#fileVersion();
    } catch (err) {
      this.#options.logger.warn({ err: errorMessage(err) }, 'cannot read the serving certificate files; keeping the current certificate');
      return false;
    }
    if (version === this.#certVersion) return false;
    try {
      this.#server.setSecureContext({ ...this.#readCredentials(), minVersion: 'TLSv1.2' });
    } catch (err) {
      // cert-manager writes the two files one after the other: the next check sees the complete pair.
      this.#options.logger.warn({ err: errorMessage(err) }, 'the new serving certificate is not usable yet; keeping the current one');
      return false;
    }
    this.#certVersion = version;
    this.#options.logger.info({ cert_file: this.#options.certFile }, 'reloaded the serving certificate');
    return true;
  }

  #fileVersion(): string {
    return [this.#options.certFile, this.#options.keyFile]
      .map((f) => {
        const s = statSync(f);
        return `${s.mtimeMs}:${s.size}:${s.ino}`;
      })
      .join('|');
  }

  #readCredentials(): { cert: Buffer; key: Buffer } {
    try {
      return { cert: readFileSync(this.#options.certFile), key: readFileSync(this.#options.keyFile) };
    } catch (err) {
      throw new CourierError('ERR_INVALID_CONFIG', `courier injector: cannot read the serving certificate: ${errorMessage(err)}`, { cause: err });
    }
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return this.#send(res, 405, 'text/plain', 'method not allowed\n', { allow: 'GET, HEAD' });
      return this.#send(res, 200, 'text/plain', 'ok\n');
    }
    if (path !== '/mutate') return this.#send(res, 404, 'text/plain', 'not found\n');
    if (req.method !== 'POST') return this.#send(res, 405, 'text/plain', 'method not allowed\n', { allow: 'POST' });
    this.#readBody(req).then(
      (body) => this.#mutate(res, body),
      (err: unknown) => this.#fail(res, err),
    );
  }

  #mutate(res: ServerResponse, body: Buffer): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch (err) {
      return this.#fail(res, new CourierError('ERR_MALFORMED_REQUEST', `the body is not JSON: ${errorMessage(err)}`));
    }
    try {
      const { review, outcome, appId } = reviewAdmission(parsed, this.#options);
      const r = review.response;
      const fields = { uid: r.uid, outcome, ...(appId === undefined ? {} : { app_id: appId }) };
      if (outcome === 'refused') this.#options.logger.warn({ ...fields, reason: r.status?.message }, 'refused a Pod');
      else this.#options.logger.debug(fields, 'reviewed a Pod');
      this.#send(res, 200, 'application/json', JSON.stringify(review));
    } catch (err) {
      this.#fail(res, err);
    }
  }

  #fail(res: ServerResponse, err: unknown): void {
    const error = err instanceof CourierError ? err : new CourierError('ERR_INTERNAL', errorMessage(err));
    if (error.code === 'ERR_INTERNAL') this.#options.logger.error({ err: error.message }, 'review failed');
    const { status, contentType, body } = renderHttpError(error);
    this.#send(res, status, contentType, body);
  }

  #send(res: ServerResponse, status: number, contentType: string, body: string, headers: Record<string, string> = {}): void {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), ...headers });
    res.end(body);
  }

  /** Reads the body up to MAX_REVIEW_BYTES; a larger one is refused (413) without reading it all. */
  async #readBody(req: IncomingMessage): Promise<Buffer> {
    const declared = Number(req.headers['content-length']);
    let body: Buffer | undefined;
    if (!(Number.isFinite(declared) && declared > MAX_REVIEW_BYTES)) {
      try {
        body = await readAtMost(req, MAX_REVIEW_BYTES);
      } catch (err) {
        throw new CourierError('ERR_BODY_READ', `cannot read the body: ${errorMessage(err)}`);
      }
    }
    if (body !== undefined) return body;
    // Drained, so the connection stays usable for the 413.
    req.resume();
    throw tooLarge();
  }
}

function tooLarge(): CourierError {
  return new CourierError('ERR_BODY_TOO_LARGE', `an AdmissionReview may be at most ${MAX_REVIEW_BYTES} bytes`);
}
