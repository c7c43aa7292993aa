import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * What a chaos app does with a call: answer with its name (`ok`), answer with an error status
 * (`fail`, 503 unless told), hold the call without answering until told otherwise or until its
 * connection closes (`stall`), or answer after a delay (`slow`).
 */
export type ChaosMode = 'ok' | 'fail' | 'stall' | 'slow';

/** The body of `POST /chaos`: a mode, its status or delay, and for how long (then back to `ok`). */
export interface ChaosSettings {
  readonly mode: ChaosMode;
  /** For `fail`: the status answered (default 503). */
  readonly status?: number;
  /** For `slow`: how long each call waits before its answer (default 200 ms). */
  readonly delayMs?: number;
  /** How long the mode lasts before the app is `ok` again; absent: until told otherwise. */
  readonly forMs?: number;
}

export interface ChaosAppOptions extends Partial<ChaosSettings> {
  /** What it answers with in `ok` and `slow`, to tell instances apart. */
  readonly name: string;
  /** 0 (default): any free port. */
  readonly port?: number;
}

const MODES: readonly ChaosMode[] = ['ok', 'fail', 'stall', 'slow'];
const DEFAULT_FAIL_STATUS = 503;
const DEFAULT_DELAY_MS = 200;

/**
 * An HTTP app (node:http, 127.0.0.1) for resilience tests, told how to misbehave by a control call
 * (`POST /chaos` with ChaosSettings as JSON, or `set()`), or per request by an `x-chaos` header:
 * `fail=503`, `slow=200`, `stall` or `ok`. Every call but the control ones is counted (`calls`, and
 * `GET /chaos/stats` → `{ name, calls, mode }`). Closing it (TestEnv does) answers the calls it still
 * holds and, like TestApp, fails if a connection is still open once the sidecars that used it are gone.
 */
export class ChaosApp {
  readonly name: string;
  readonly server: Server;
  readonly sockets = new Set<Socket>();
  /** Calls received (control calls not included). */
  calls = 0;
  /** Checked on close: open connections are expected to be gone by then. */
  checkConnectionsOnClose = true;
  #mode: ChaosMode = 'ok';
  #status = DEFAULT_FAIL_STATUS;
  #delayMs = DEFAULT_DELAY_MS;
  #revert: NodeJS.Timeout | undefined;
  readonly #stalled = new Set<ServerResponse>();
  readonly #timers = new Set<NodeJS.Timeout>();

  constructor(options: ChaosAppOptions) {
    this.name = options.name;
    if (options.mode !== undefined) this.set({ ...options, mode: options.mode });
    this.server = createServer((req, res) => this.#serve(req, res));
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get mode(): ChaosMode {
    return this.#mode;
  }

  /** Calls held by `stall` right now. */
  get stalled(): number {
    return this.#stalled.size;
  }

  /** What `POST /chaos` does. Leaving `stall` answers the calls it held (as the new mode says). */
  set(settings: ChaosSettings): void {
    if (!MODES.includes(settings.mode)) throw new Error(`unknown chaos mode ${String(settings.mode)} (known: ${MODES.join(', ')})`);
    if (settings.status !== undefined && !(Number.isInteger(settings.status) && settings.status >= 200 && settings.status <= 599)) {
      throw new Error(`status ${settings.status} is not an HTTP status`);
    }
    if (this.#revert !== undefined) clearTimeout(this.#revert);
    this.#revert = undefined;
    this.#mode = settings.mode;
    this.#status = settings.status ?? DEFAULT_FAIL_STATUS;
    this.#delayMs = settings.delayMs ?? DEFAULT_DELAY_MS;
    if (settings.forMs !== undefined) {
      this.#revert = setTimeout(() => this.set({ mode: 'ok' }), settings.forMs);
      this.#revert.unref();
    }
    if (settings.mode !== 'stall') this.#release();
  }

  async listen(port = 0): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => resolve());
    });
    return this;
  }

  async close(): Promise<void> {
    if (this.#revert !== undefined) clearTimeout(this.#revert);
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#mode = 'ok';
    this.#release();
    const deadline = Date.now() + 5_000;
    while (this.checkConnectionsOnClose && this.sockets.size > 0 && Date.now() < deadline) await sleep(20);
    const leaked = this.sockets.size;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (this.checkConnectionsOnClose && leaked > 0) throw new Error(`chaos app ${this.name} on port ${this.port} still had ${leaked} open connection(s)`);
  }

  #serve(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      if (path === '/chaos' && req.method === 'POST') {
        try {
          this.set(JSON.parse(Buffer.concat(chunks).toString() || '{}') as ChaosSettings);
        } catch (err) {
          res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' }).end(String(err));
          return;
        }
        res.writeHead(204).end();
        return;
      }
      if (path === '/chaos/stats' && req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ name: this.name, calls: this.calls, mode: this.#mode }));
        return;
      }
      this.calls++;
      this.#answer(req, res);
    });
  }

  #answer(req: IncomingMessage, res: ServerResponse): void {
    const header = req.headers['x-chaos'];
    let mode = this.#mode;
    let status = this.#status;
    let delayMs = this.#delayMs;
    if (typeof header === 'string' && header !== '') {
      const [name = '', value] = header.split('=');
      mode = name.trim() as ChaosMode;
      if (mode === 'fail') status = value === undefined ? DEFAULT_FAIL_STATUS : Number(value);
      if (mode === 'slow') delayMs = value === undefined ? DEFAULT_DELAY_MS : Number(value);
      if (!MODES.includes(mode) || !Number.isFinite(status) || !Number.isFinite(delayMs)) {
        res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' }).end(`bad x-chaos header: ${header}`);
        return;
      }
    }
    switch (mode) {
      case 'ok':
        this.#ok(res);
        return;
      case 'fail':
        res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(`${this.name} failed`);
        return;
      case 'slow': {
        const timer = setTimeout(() => {
          this.#timers.delete(timer);
          this.#ok(res);
        }, delayMs);
        this.#timers.add(timer);
        res.once('close', () => {
          clearTimeout(timer);
          this.#timers.delete(timer);
        });
        return;
      }
      case 'stall':
        this.#stalled.add(res);
        res.once('close', () => this.#stalled.delete(res));
    }
  }

  #ok(res: ServerResponse): void {
    if (res.destroyed || res.writableEnded) return;
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(this.name);
  }

  /** Answers every held call, as the current mode would (`fail`: its status; otherwise its name). */
  #release(): void {
    for (const res of this.#stalled) {
      if (this.#mode === 'fail' && !res.destroyed) res.writeHead(this.#status).end(`${this.name} failed`);
      else this.#ok(res);
    }
    this.#stalled.clear();
  }
}

/** Starts a chaos app on 127.0.0.1; TestEnv closes it. */
export async function startChaosApp(env: { track<T extends { close(): Promise<void> }>(x: T): T }, options: ChaosAppOptions): Promise<ChaosApp> {
  const app = new ChaosApp(options);
  await app.listen(options.port ?? 0);
  return env.track(app);
}
