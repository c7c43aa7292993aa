// The supervisor's metadata call against Node's own HTTP server (its parser is the sidecar's): what
// arrives, answers the caller must see as failures, a silent server, and a Unix socket.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { putMetadata } from './metadata-put.js';

interface Seen {
  method: string | undefined;
  url: string | undefined;
  headers: IncomingMessage['headers'];
  body: string;
}

const servers: Server[] = [];
after(() => {
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
});

async function serve(answer: (res: ServerResponse) => void, where: { path: string } | { port: 0; host: string } = { port: 0, host: '127.0.0.1' }): Promise<{ seen: Seen[]; port: number }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      answer(res);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(where, resolve));
  const address = server.address();
  return { seen, port: typeof address === 'object' && address !== null ? (address).port : 0 };
}

test('sends PUT /v1.0/metadata/<key> with the value, its length and the API token', async () => {
  const { seen, port } = await serve((res) => res.writeHead(204).end());
  const value = 'node app.js --name "ünï"';
  await putMetadata({ httpPort: port, listenAddresses: ['127.0.0.1'] }, { DAPR_API_TOKEN: 's3cret' }, 'app Command/x', value);
  assert.equal(seen.length, 1);
  assert.equal(seen[0]?.method, 'PUT');
  assert.equal(seen[0]?.url, '/v1.0/metadata/app%20Command%2Fx');
  assert.equal(seen[0]?.body, value);
  assert.equal(seen[0]?.headers['content-length'], String(Buffer.byteLength(value)));
  assert.equal(seen[0]?.headers['dapr-api-token'], 's3cret');
  assert.equal(seen[0]?.headers['content-type'], 'text/plain; charset=utf-8');
});

test('a refusal is an error carrying the status and the text the sidecar sent', async () => {
  const { port } = await serve((res) => res.writeHead(401, { 'content-type': 'text/plain' }).end('invalid api token'));
  await assert.rejects(putMetadata({ httpPort: port, listenAddresses: ['127.0.0.1'] }, {}, 'k', 'v'), /^Error: HTTP 401 invalid api token$/);
});

test('a sidecar that never answers fails the call after the timeout', async () => {
  const { port } = await serve(() => {});
  const started = Date.now();
  await assert.rejects(putMetadata({ httpPort: port, listenAddresses: ['127.0.0.1'] }, {}, 'k', 'v', 300), /did not answer within 300ms/);
  assert.ok(Date.now() - started < 30_000);
});

test('nothing listening is an error, not a hang', async () => {
  const { port } = await serve((res) => res.end());
  const server = servers.pop();
  await new Promise((resolve) => server?.close(resolve));
  await assert.rejects(putMetadata({ httpPort: port, listenAddresses: ['127.0.0.1'] }, {}, 'k', 'v'), /ECONNREFUSED/);
});

test('a value that would break the request is refused before anything is sent', async () => {
  const { seen, port } = await serve((res) => res.writeHead(204).end());
  await assert.rejects(putMetadata({ httpPort: port, listenAddresses: ['127.0.0.1'] }, { DAPR_API_TOKEN: 'a\r\nx-injected: 1' }, 'k', 'v'), /invalid dapr-api-token/);
  assert.equal(seen.length, 0);
});

test('over the sidecar API Unix socket', { skip: process.platform === 'win32' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'courier-put-'));
  try {
    const path = join(dir, 'api.sock');
    const { seen } = await serve((res) => res.writeHead(204).end(), { path });
    await putMetadata({ httpPort: 0, listenAddresses: [], httpSocket: path }, {}, 'appPID', '4242');
    assert.equal(seen[0]?.body, '4242');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
