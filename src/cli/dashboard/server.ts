// `courier dashboard`'s web server: the page, the libraries it draws with, and the live data. One
// refresh loop reads every sidecar once per window and pushes the resulting view to every open page;
// each page's tap has its own upstream taps, which end when the page goes.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from '../../util/builtin-http.js';
import type { AddressInfo, Socket } from 'node:net';
import type { AppLookup, MeshDiscovery } from '../mesh/collect.js';
import type { MeshSample, MeshView, SidecarRef } from '../mesh/view-types.js';
import { loadAssets, type Asset } from './assets.js';
import type { MeshSource, MeshSourceOptions, TapFilters } from './source.js';
import { SseStream } from './sse.js';
import { parseTapFilters, TapSession } from './tap.js';

export interface DashboardOptions {
  readonly source: MeshSource;
  /** The address to listen on; loopback unless the user asks otherwise. */
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** The rate window: how often the sidecars are read, and what rates are averaged over. */
  readonly windowMs: number;
  /** Extra sidecars, by metrics address (`--sidecar host:port`). */
  readonly addresses?: readonly string[];
  /**
   * Sidecars found by name resolution (the source's discoverMesh): the resolver, used by every
   * refresh and closed by {@link DashboardServer.close}; the app ids looked up besides those called
   * (`--app`); the metrics port the sidecars found are read at.
   */
  readonly names?: { readonly lookup: AppLookup; readonly appIds: readonly string[]; readonly remoteMetricsPort: number };
  /** Where discovery finds COURIER_HOME and the run records. */
  readonly env?: NodeJS.ProcessEnv;
  /** The API token sent to the sidecars; never to a page. */
  readonly token?: string;
  /** The page folder (tests); the package's `dashboard/` by default. */
  readonly pageDir?: string;
  /** Told when reading the mesh fails, and when it works again (undefined). */
  readonly onProblem?: (message: string | undefined) => void;
}

/** One point of the per-app charts. */
export interface HistoryPoint {
  readonly at: number;
  readonly apps: Readonly<Record<string, AppPoint>>;
}

export interface AppPoint {
  /** Calls received per second, and calls that failed per second. */
  readonly rps: number;
  readonly failRps: number;
  /** Calls made to other apps per second. */
  readonly outRps: number;
  readonly p50: number | null;
  readonly p95: number | null;
  readonly p99: number | null;
}

/** Points kept for a page that opens late (at the default window, the last five minutes). */
const HISTORY_POINTS = 150;
/** Unsent bytes a page may fall behind by before its events are dropped. */
const STREAM_BUFFER_BYTES = 1 << 20;
const MAX_VIEW_STREAMS = 64;
const MAX_TAP_SESSIONS = 16;
const PING_MS = 15_000;
/** How long one read of the sidecars may take, at most; shorter windows read faster. */
const MAX_SAMPLE_TIMEOUT_MS = 5_000;

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

/**
 * A page's resources are its own, its data never leaves this origin, and nothing is framed or sniffed.
 * Scripts come only from this origin; inline styles are allowed because the libraries set them.
 */
const PAGE_HEADERS = {
  'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
} as const;

export class DashboardServer {
  readonly #options: DashboardOptions;
  readonly #server: Server;
  readonly #assets: ReadonlyMap<string, Asset>;
  readonly #sourceOptions: MeshSourceOptions;
  readonly #sockets = new Set<Socket>();
  readonly #viewStreams = new Set<SseStream>();
  readonly #taps = new Set<TapSession>();
  readonly #history: HistoryPoint[] = [];
  #refs: readonly SidecarRef[] = [];
  #previous: MeshSample | undefined;
  #view: MeshView | undefined;
  #problem: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #pinger: NodeJS.Timeout | undefined;
  #refreshing: Promise<void> | undefined;
  #port = 0;
  #closed = false;

  private constructor(options: DashboardOptions) {
    this.#options = options;
    this.#assets = loadAssets(options.pageDir);
    this.#sourceOptions = {
      ...(options.token === undefined || options.token === '' ? {} : { token: options.token }),
      timeoutMs: Math.min(MAX_SAMPLE_TIMEOUT_MS, Math.max(250, Math.floor(options.windowMs * 0.8))),
    };
    this.#server = createServer((req, res) => this.#handle(req, res));
    this.#server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
  }

  /** Listens, then reads the mesh at once and every window after. */
  static async start(options: DashboardOptions): Promise<DashboardServer> {
    const dashboard = new DashboardServer(options);
    await new Promise<void>((resolve, reject) => {
      dashboard.#server.once('error', reject);
      dashboard.#server.listen(options.port, options.host, () => {
        dashboard.#server.off('error', reject);
        resolve();
      });
    });
    dashboard.#port = (dashboard.#server.address() as AddressInfo).port;
    dashboard.#pinger = setInterval(() => {
      for (const stream of dashboard.#viewStreams) stream.ping();
    }, PING_MS).unref();
    dashboard.#schedule(0);
    return dashboard;
  }

  get port(): number {
    return this.#port;
  }

  /** The page's address, as printed for the user to open. */
  get url(): string {
    const host = this.#options.host.includes(':') ? `[${this.#options.host}]` : this.#options.host;
    return `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${this.#port}/`;
  }

  /** The latest view (undefined until two reads a window apart). */
  get view(): MeshView | undefined {
    return this.#view;
  }

  /** Pages with a tap open now. */
  get tapSessions(): number {
    return this.#taps.size;
  }

  /** Reads the mesh now (tests; the loop does it every window). */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#refresh().finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    clearInterval(this.#pinger);
    for (const stream of this.#viewStreams) stream.close();
    this.#viewStreams.clear();
    const taps = [...this.#taps];
    this.#taps.clear();
    await Promise.allSettled(taps.map((tap) => tap.close()));
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    await closed;
    await this.#refreshing?.catch(() => undefined);
    // After the last refresh: nothing uses the resolver now.
    await this.#options.names?.lookup.close();
  }

  #schedule(delayMs: number): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      const started = Date.now();
      void this.refresh().finally(() => this.#schedule(Math.max(0, this.#options.windowMs - (Date.now() - started))));
    }, delayMs).unref();
  }

  /** The sidecars to read now, with name resolution when the dashboard has it. */
  async #discover(env: NodeJS.ProcessEnv): Promise<MeshDiscovery> {
    const { source, names } = this.#options;
    const addresses = this.#options.addresses ?? [];
    if (names === undefined || source.discoverMesh === undefined) return { refs: await source.discoverSidecars(env, addresses), warnings: [], resolved: undefined };
    // The last window's sample tells whom the known sidecars call: they are not read twice per window.
    return source.discoverMesh(env, { ...this.#sourceOptions, addresses, names: names.lookup, appIds: names.appIds, remoteMetricsPort: names.remoteMetricsPort, previous: this.#previous });
  }

  /** Finds the sidecars again (instances come and go), reads them, and publishes the window's view. */
  async #refresh(): Promise<void> {
    const { source } = this.#options;
    try {
      const env = this.#options.env ?? process.env;
      const { refs, warnings, resolved } = await this.#discover(env);
      if (this.#closed) return;
      this.#refs = refs;
      for (const tap of this.#taps) tap.sync(refs);
      const sample = await source.sampleMesh(refs, this.#sourceOptions);
      if (this.#closed) return;
      if (this.#previous !== undefined) this.#publish(source.meshView(this.#previous, sample));
      this.#previous = sample;
      // Nothing to show is not an error, but the page says where the dashboard looked; lookups that
      // failed are said too, beside whatever was found.
      const none = refs.length === 0 ? (source.noSidecarsMessage?.(env, resolved) ?? 'no Courier sidecars found') : undefined;
      const problems = [...(none === undefined ? [] : [none]), ...warnings];
      this.#setProblem(problems.length === 0 ? undefined : problems.join('; '));
    } catch (err) {
      this.#setProblem(`cannot read the mesh: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  #publish(view: MeshView): void {
    this.#view = view;
    this.#history.push(historyPoint(view));
    if (this.#history.length > HISTORY_POINTS) this.#history.splice(0, this.#history.length - HISTORY_POINTS);
    for (const stream of this.#viewStreams) stream.send('view', view);
  }

  #setProblem(problem: string | undefined): void {
    if (problem === this.#problem) return;
    this.#problem = problem;
    this.#options.onProblem?.(problem);
    for (const stream of this.#viewStreams) stream.send('problem', { message: problem ?? null });
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    if (!this.#hostAllowed(req.headers.host)) {
      // A page of another site that resolves its name to this machine (DNS rebinding) gets nothing.
      sendText(res, 403, 'forbidden host\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      sendText(res, 405, 'method not allowed\n');
      return;
    }
    const url = new URL(req.url ?? '/', 'http://dashboard');
    if (req.method === 'HEAD' && url.pathname.startsWith('/api/')) {
      res.setHeader('allow', 'GET');
      sendText(res, 405, 'method not allowed\n');
      return;
    }
    switch (url.pathname) {
      case '/api/view':
        if (this.#view === undefined) sendJson(res, 503, { error: 'no view yet: the first window has not ended' });
        else sendJson(res, 200, this.#view);
        return;
      case '/api/events':
        this.#openViewStream(req, res);
        return;
      case '/api/tap':
        this.#openTap(req, res, url.searchParams);
        return;
    }
    const asset = this.#assets.get(url.pathname === '/' ? '/index.html' : url.pathname);
    if (asset === undefined) {
      sendText(res, 404, 'not found\n');
      return;
    }
    if (req.headers['if-none-match'] === asset.etag) {
      res.writeHead(304, { etag: asset.etag });
      res.end();
      return;
    }
    res.writeHead(200, { ...PAGE_HEADERS, 'content-type': asset.contentType, 'content-length': asset.body.length, etag: asset.etag, 'cache-control': 'no-cache' });
    res.end(req.method === 'HEAD' ? undefined : asset.body);
  }

  #openViewStream(req: IncomingMessage, res: ServerResponse): void {
    if (this.#viewStreams.size >= MAX_VIEW_STREAMS) {
      sendJson(res, 429, { error: 'too many pages open' });
      return;
    }
    const stream = new SseStream(res, STREAM_BUFFER_BYTES);
    this.#viewStreams.add(stream);
    req.socket.setKeepAlive(true);
    res.once('close', () => this.#viewStreams.delete(stream));
    // What a page opened now needs at once: the charts' recent past, the current view, any problem.
    stream.send('history', this.#history);
    if (this.#view !== undefined) stream.send('view', this.#view);
    if (this.#problem !== undefined) stream.send('problem', { message: this.#problem });
  }

  #openTap(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): void {
    let filters: TapFilters;
    try {
      filters = parseTapFilters(query);
    } catch (err) {
      sendJson(res, 400, { error: (err as Error).message });
      return;
    }
    if (this.#taps.size >= MAX_TAP_SESSIONS) {
      sendJson(res, 429, { error: 'too many taps open' });
      return;
    }
    const stream = new SseStream(res, STREAM_BUFFER_BYTES);
    const tap = new TapSession(this.#options.source, filters, this.#sourceOptions, stream);
    this.#taps.add(tap);
    req.socket.setKeepAlive(true);
    res.once('close', () => {
      this.#taps.delete(tap);
      void tap.close();
    });
    stream.send('filters', filters);
    tap.sync(this.#refs);
  }

  #hostAllowed(host: string | undefined): boolean {
    if (!LOOPBACK_HOSTS.has(this.#options.host) && !this.#options.host.startsWith('127.')) return true;
    if (host === undefined) return false;
    const name = host.replace(/:\d+$/, '').toLowerCase();
    return LOOPBACK_HOSTS.has(name) || name.startsWith('127.') || name === this.#options.host;
  }
}

function historyPoint(view: MeshView): HistoryPoint {
  const apps: Record<string, AppPoint> = {};
  for (const app of view.apps) {
    const { inbound, outbound } = app;
    apps[app.appId] = {
      rps: inbound.rps,
      failRps: view.windowSeconds > 0 ? inbound.failures / view.windowSeconds : 0,
      outRps: outbound.rps,
      p50: inbound.p50,
      p95: inbound.p95,
      p99: inbound.p99,
    };
  }
  return { at: view.at, apps };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.end(text);
}

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text), 'x-content-type-options': 'nosniff' });
  res.end(text);
}
