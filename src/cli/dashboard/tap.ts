import type { SidecarRef, TappedCall } from '../mesh/view-types.js';
import type { MeshSource, MeshSourceOptions, TapFilters, TapHandle } from './source.js';
import type { SseStream } from './sse.js';

/** What the page receives for one call: no bodies (the sidecars never send them) and no header values. */
export type PageCall = Omit<TappedCall, 'headers'> & { readonly headers: readonly string[] };

/** Reads `?app=&path=&status=` from a tap request; throws a message for a page to show when a value is malformed. */
export function parseTapFilters(query: URLSearchParams): TapFilters {
  const app = query.get('app')?.trim() ?? '';
  const path = query.get('path')?.trim() ?? '';
  const status = query.get('status')?.trim().toLowerCase() ?? '';
  if (app.length > 256 || /[\s/]/.test(app)) throw new Error('app: not an app id');
  if (path.length > 1024) throw new Error('path: too long');
  if (status !== '' && !/^(\d{1,3}|[1-5]xx)$/.test(status)) throw new Error('status: a status such as 503, or a class such as 5xx');
  return {
    ...(app === '' ? {} : { app }),
    ...(path === '' ? {} : { path: path.startsWith('/') ? path : `/${path}` }),
    ...(status === '' ? {} : { status }),
  };
}

/**
 * Whether a call passes the filters. The sidecars filter too, but what each of them reads into
 * `app` (the peer of the reporting sidecar) is not what a person means on the page (either end of the
 * call), so the filter is applied again here.
 */
export function matchesTap(filters: TapFilters, call: TappedCall): boolean {
  if (filters.app !== undefined && call.srcAppId !== filters.app && call.dstAppId !== filters.app) return false;
  if (filters.path !== undefined && !call.path.startsWith(filters.path)) return false;
  if (filters.status !== undefined) {
    const cls = /^([1-5])xx$/.exec(filters.status);
    if (cls === null ? call.status !== Number(filters.status) : Math.floor(call.status / 100) !== Number(cls[1])) return false;
  }
  return true;
}

/** The fields the page shows, copied one by one: whatever else a sidecar adds does not reach the page. */
export function toPageCall(call: TappedCall): PageCall {
  return {
    at: call.at,
    direction: call.direction,
    srcAppId: call.srcAppId,
    dstAppId: call.dstAppId,
    method: call.method,
    path: call.path,
    status: call.status,
    latencyMs: call.latencyMs,
    traceId: call.traceId,
    errorCode: call.errorCode,
    reportedBy: call.reportedBy,
    headers: Object.keys(call.headers ?? {}).sort(),
  };
}

/**
 * The tap of one page: an upstream tap per sidecar, kept in step with discovery (`sync`), so a new
 * instance is tapped as soon as it is found and a gone one is let go. Closed when the page goes.
 */
export class TapSession {
  readonly #source: MeshSource;
  readonly #filters: TapFilters;
  readonly #options: MeshSourceOptions;
  readonly #stream: SseStream;
  readonly #upstreams = new Map<string, TapHandle>();
  #closed = false;

  constructor(source: MeshSource, filters: TapFilters, options: MeshSourceOptions, stream: SseStream) {
    this.#source = source;
    this.#filters = filters;
    this.#options = options;
    this.#stream = stream;
  }

  /** Taps the sidecars in `refs` not tapped yet, and stops tapping those no longer there. */
  sync(refs: readonly SidecarRef[]): void {
    if (this.#closed) return;
    const wanted = new Map(refs.map((ref) => [ref.metricsUrl, ref]));
    for (const [url, handle] of this.#upstreams) {
      if (wanted.has(url)) continue;
      this.#upstreams.delete(url);
      void handle.close().catch(() => undefined);
    }
    for (const [url, ref] of wanted) {
      if (!this.#upstreams.has(url)) this.#open(url, ref);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const handles = [...this.#upstreams.values()];
    this.#upstreams.clear();
    this.#stream.close();
    await Promise.allSettled(handles.map((h) => h.close()));
  }

  /**
   * Taps one sidecar. A stream that fails or ends (the sidecar restarting, a timeout) is forgotten,
   * so the next sync, a window later, opens it again while discovery still lists the sidecar.
   */
  #open(url: string, ref: SidecarRef): void {
    const opened: { handle?: TapHandle } = {};
    const forget = (): void => {
      const { handle } = opened;
      if (handle === undefined || this.#upstreams.get(url) !== handle) return;
      this.#upstreams.delete(url);
      void handle.close().catch(() => undefined);
    };
    try {
      opened.handle = this.#source.tapMesh(
        [ref],
        this.#filters,
        { ...this.#options, onError: forget, onDropped: (_ref, count) => this.#stream.send('dropped', count) },
        (call) => this.#deliver(call),
      );
    } catch {
      return; // Tried again at the next sync.
    }
    this.#upstreams.set(url, opened.handle);
    void opened.handle.ended?.then(forget);
  }

  #deliver(call: TappedCall): void {
    if (this.#closed || !matchesTap(this.#filters, call)) return;
    this.#stream.send('call', toPageCall(call));
  }
}
