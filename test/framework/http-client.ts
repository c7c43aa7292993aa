import { request as httpRequest, type Agent, type IncomingHttpHeaders } from 'node:http';

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  text: string;
}

export interface RawRequest {
  method?: string;
  /** Sent exactly as given (no normalization): `/v1.0////invoke/b/method/foo`. */
  path: string;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  host?: string;
  /** A Unix domain socket to connect to instead of `host` and the port. */
  socketPath?: string;
  agent?: Agent | false;
  signal?: AbortSignal;
  /**
   * How long the connection may stay silent before the request fails (default 120 s): a request a
   * sidecar never answers fails its test, naming the request, instead of holding the run forever.
   */
  idleTimeoutMs?: number;
}

/**
 * A plain `node:http` request, used where fetch would get in the way: any verb (fetch refuses TRACE
 * and CONNECT), paths sent verbatim, repeated headers, and access to raw response headers.
 */
export function send(port: number, req: RawRequest): Promise<RawResponse> {
  const headers: Record<string, string | string[]> = { ...req.headers };
  // node:http sends a DELETE/OPTIONS body with no length at all unless told; say it explicitly.
  if (req.body !== undefined && !Object.keys(headers).some((k) => k.toLowerCase() === 'content-length' || k.toLowerCase() === 'transfer-encoding')) {
    headers['content-length'] = String(Buffer.byteLength(req.body));
  }
  return new Promise((resolve, reject) => {
    const r = httpRequest(
      {
        ...(req.socketPath === undefined ? { host: req.host ?? '127.0.0.1', port } : { socketPath: req.socketPath }),
        method: req.method ?? 'GET',
        path: req.path,
        headers,
        agent: req.agent ?? false,
        ...(req.signal === undefined ? {} : { signal: req.signal }),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body, text: body.toString() });
        });
        res.on('error', reject);
      },
    );
    const idleMs = req.idleTimeoutMs ?? 120_000;
    r.setTimeout(idleMs, () => r.destroy(new Error(`no answer to ${req.method ?? 'GET'} ${req.path} on port ${port} for ${idleMs} ms`)));
    r.on('error', reject);
    r.end(req.body);
  });
}

/** All values of a header, from raw headers, in order. */
export function headerValues(rawHeaders: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if ((rawHeaders[i] ?? '').toLowerCase() === name.toLowerCase()) out.push(rawHeaders[i + 1] ?? '');
  return out;
}

/** The `{errorCode, message}` body of a Courier error response. */
export function errorOf(res: RawResponse): { errorCode: string; message: string } {
  return JSON.parse(res.text) as { errorCode: string; message: string };
}

/** A response body parsed as JSON. */
export function jsonOf<T = Record<string, unknown>>(res: RawResponse): T {
  return JSON.parse(res.text) as T;
}
