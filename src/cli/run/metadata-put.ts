// `PUT /v1.0/metadata/<key>` for `courier run`: the only call the supervisor makes to its sidecar's
// API (the app's pid, command and log paths, as `dapr run` sets them). One request on a fresh
// connection to the sidecar on loopback or its Unix socket, over `node:net`: the supervisor runs for as
// long as the app does and loads no HTTP client for a handful of calls (node:http is about 3 MB of its
// RSS; docs/performance.md, "Memory").
import { connect } from 'node:net';
import { apiHeaders, sidecarHost, type SidecarAddress } from './sidecar-address.js';

/** A header value or path piece that would break the request line or a header: refused, never sent. */
const UNSAFE = /[\r\n\0]/;

/** Sets `key` to `value` in the sidecar's metadata; throws if it does not answer 2xx within `timeoutMs`. */
export function putMetadata(record: SidecarAddress, env: NodeJS.ProcessEnv, key: string, value: string, timeoutMs = 2000): Promise<void> {
  const body = Buffer.from(value, 'utf8');
  const socketPath = record.httpSocket;
  const host = socketPath === undefined ? sidecarHost(record) : 'localhost';
  const headers: Record<string, string> = {
    host: socketPath === undefined ? `${host.includes(':') ? `[${host}]` : host}:${record.httpPort}` : host,
    ...apiHeaders(env),
    'content-type': 'text/plain; charset=utf-8',
    'content-length': String(body.length),
    connection: 'close',
  };
  // HTTP/1.0: the answer is not chunked, and its text runs to the end of the connection.
  const lines = [`PUT /v1.0/metadata/${encodeURIComponent(key)} HTTP/1.0`];
  for (const [name, v] of Object.entries(headers)) {
    if (UNSAFE.test(v)) return Promise.reject(new Error(`invalid ${name} header value`));
    lines.push(`${name}: ${v}`);
  }
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  return new Promise<void>((resolve, reject) => {
    const socket = socketPath === undefined ? connect({ host, port: record.httpPort }) : connect({ path: socketPath });
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      if (err === undefined) resolve();
      else reject(err);
    };
    socket.setTimeout(timeoutMs, () => finish(new Error(`the sidecar did not answer within ${timeoutMs}ms`)));
    socket.on('error', (err) => finish(err));
    let code: number | undefined;
    let bodyAt = 0;
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (code !== undefined) return;
      const response = Buffer.concat(chunks);
      const end = response.indexOf('\r\n\r\n');
      if (end === -1) return;
      // The status line decides; an error's text follows the head until the sidecar closes (Connection: close).
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(response.subarray(0, end).toString('latin1'));
      if (status === null) {
        finish(new Error('the sidecar answered with something that is not HTTP'));
        return;
      }
      code = Number(status[1]);
      bodyAt = end + 4;
      if (code < 300) finish();
    });
    socket.on('end', () => {
      if (code === undefined) finish(new Error('the sidecar closed the connection without an answer'));
      else finish(new Error(`HTTP ${code} ${Buffer.concat(chunks).subarray(bodyAt).toString('utf8').trim()}`.trim()));
    });
    socket.write(Buffer.concat([head, body]));
  });
}
