// Bodies: byte-exact passthrough with a correct Content-Length (S21), the body limit (S30, S09),
// streaming large bodies through both sidecars, and cancellation (S31).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer as createNetServer, connect, type Server as NetServer } from 'node:net';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestEnv } from '../framework/env.js';
import { startSidecar, type SidecarProcess } from '../framework/sidecar-process.js';
import { startApp, type TestApp } from '../framework/test-app.js';
import { send } from '../framework/http-client.js';
import { writeBytes } from '../framework/streams.js';

const fidelity: Record<string, string> = {
  null: 'null',
  empty: '',
  'json-object': '{"key":"value"}',
  'plain-text': 'hello world',
  large: 'x'.repeat(8192),
  false: 'false',
  zero: '0',
  'empty-string': '""',
};

/** A caller sidecar with a 64 KiB body limit and a target app (/count) behind its own sidecar. */
async function limitedCaller(env: TestEnv): Promise<{ small: SidecarProcess; echo: TestApp }> {
  const small = await startSidecar(env, { appId: 'small', args: ['--max-body-size', '64Ki'] });
  const echo = await startApp(env, (app) => app.route('/count', (_req, res, body) => res.end(String(body.length))));
  echo.checkConnectionsOnClose = false;
  await startSidecar(env, { appId: 'target', appPort: echo.port, waitForApp: true });
  return { small, echo };
}

describe('bodies', () => {
  const env = new TestEnv();
  let appB: TestApp;
  let a: SidecarProcess;
  let b: SidecarProcess;
  let staleApp: NetServer;
  let staleSidecar: SidecarProcess;
  let slowClosed: Promise<void>;
  let markSlowClosed: () => void = () => {};

  before(async () => {
    appB = await startApp(env, (app) => {
      for (const [name, body] of Object.entries(fidelity)) app.route(`/${name}`, (_req, res) => res.end(body));
      app.route('/sha256', (_req, res, body) => {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end(`${body.length} ${createHash('sha256').update(body).digest('hex')}`);
      });
      app.route('/stream-out', (req, res) => {
        const total = Number(new URL(req.url ?? '', 'http://x').searchParams.get('bytes'));
        res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
        writeBytes(res, total, 64 * 1024);
      });
      app.route('/slow', (req, res) => {
        req.socket.once('close', () => markSlowClosed());
        const timer = setTimeout(() => res.end('Client waited longer than it should have.'), 10_000);
        res.once('close', () => clearTimeout(timer));
      });
      app.route('/count', (_req, res, body) => res.end(String(body.length)));
    });
    appB.checkConnectionsOnClose = false;
    a = await startSidecar(env, { appId: 'a', args: ['--max-body-size', '200Mi'] });
    b = await startSidecar(env, { appId: 'b', appPort: appB.port, waitForApp: true, args: ['--max-body-size', '200Mi'] });

    // An app that declares more body than it sends, then closes the connection.
    staleApp = createNetServer((socket) => {
      socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 999\r\n\r\n"ok"'));
    });
    await new Promise<void>((r) => staleApp.listen(0, '127.0.0.1', r));
    env.track({ close: () => new Promise<void>((r) => staleApp.close(() => r())) });
    staleSidecar = await startSidecar(env, { appId: 'stale', appPort: (staleApp.address() as AddressInfo).port, waitForApp: true });
  });
  after(() => env.close());

  test('S21: bodies arrive byte-exact with a correct Content-Length, locally and remotely', async () => {
    for (const [name, body] of Object.entries(fidelity)) {
      for (const [sidecar, via] of [[a, 'remote'], [b, 'local']] as const) {
        const res = await send(sidecar.httpPort, { method: 'GET', path: `/v1.0/invoke/b/method/${name}` });
        assert.equal(res.status, 200, `${name} ${via}`);
        assert.equal(res.text, body, `${name} ${via}`);
        if (res.headers['content-length'] !== undefined) assert.equal(Number(res.headers['content-length']), Buffer.byteLength(body), `${name} ${via}`);
      }
    }
  });

  test('S21: an app that declares a false Content-Length and closes: the bytes it sent, with their true length', async () => {
    for (const sidecar of [a, staleSidecar]) {
      const res = await send(sidecar.httpPort, { method: 'GET', path: '/v1.0/invoke/stale/method/stale-content-length' });
      assert.equal(res.status, 200);
      assert.equal(res.text, '"ok"');
      if (res.headers['content-length'] !== undefined) assert.equal(res.headers['content-length'], '4');
    }
  });

  test('S30: the default limit of 4 MiB: 4 MiB passes, one byte more is 413 before the body is read', async () => {
    const env2 = new TestEnv();
    try {
      const small = await startSidecar(env2, { appId: 'small', args: [] });
      const echo = await startApp(env2, (app) => app.route('/count', (_req, res, body) => res.end(String(body.length))));
      await startSidecar(env2, { appId: 'target', appPort: echo.port, waitForApp: true });
      const ok = await send(small.httpPort, { method: 'POST', path: '/v1.0/invoke/target/method/count', body: Buffer.alloc(4 * 1024 * 1024, 1) });
      assert.equal(ok.status, 200);
      assert.equal(ok.text, String(4 * 1024 * 1024));
      // Only the head is sent: the answer must come without the sidecar waiting for (or reading) the body.
      const answer = await new Promise<string>((resolve, reject) => {
        let text = '';
        const socket = connect(small.httpPort, '127.0.0.1', () => {
          socket.write(`POST /v1.0/invoke/target/method/count HTTP/1.1\r\nHost: x\r\nContent-Length: ${4 * 1024 * 1024 + 1}\r\n\r\n`);
        });
        socket.on('data', (d: Buffer) => (text += d.toString()));
        socket.on('close', () => resolve(text));
        socket.on('error', reject);
      });
      assert.match(answer, /^HTTP\/1\.1 413 /);
      assert.match(answer, /\r\nConnection: close\r\n/i);
      assert.match(answer, /"errorCode":"ERR_BODY_TOO_LARGE"/);
      assert.equal(echo.seen.length, 1, 'the oversized call never reached the app');
    } finally {
      await env2.close();
    }
  });

  test('a chunked body over the limit is cut off with 413 and the connection closed', async () => {
    const env2 = new TestEnv();
    try {
      const { small, echo } = await limitedCaller(env2);
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: small.httpPort, method: 'POST', path: '/v1.0/invoke/target/method/count' }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        // 1 MiB in 16 KiB chunks, no Content-Length: chunked encoding.
        let sent = 0;
        const write = (): void => {
          while (sent < 1024 * 1024) {
            sent += 16 * 1024;
            if (!req.write(Buffer.alloc(16 * 1024, 2))) {
              req.once('drain', write);
              return;
            }
          }
          req.end();
        };
        write();
      });
      assert.equal(status, 413);
      assert.equal(echo.seen.filter((r) => r.url === '/count').length, 0, 'the app never got a partial body as a complete request');
    } finally {
      await env2.close();
    }
  });

  test('a client that reads only after sending more of an oversized body still gets the 413; one that never stops is cut off', async () => {
    const env2 = new TestEnv();
    try {
      const { small, echo } = await limitedCaller(env2);
      const head = 'POST /v1.0/invoke/target/method/count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n';
      const chunk = (bytes: number): string => `${bytes.toString(16)}\r\n${'y'.repeat(bytes)}\r\n`;
      // Over the limit at once, then a pause (the sidecar answers 413 meanwhile), then more body before
      // reading: closing at once with that data unread would reset the connection and lose the answer.
      const answer = await new Promise<string>((resolve, reject) => {
        let text = '';
        const socket = connect(small.httpPort, '127.0.0.1', () => {
          socket.pause();
          socket.write(head + chunk(100 * 1024));
          setTimeout(() => {
            socket.write(chunk(200 * 1024));
            socket.end(chunk(0));
            socket.resume();
          }, 300);
        });
        socket.on('data', (d: Buffer) => (text += d.toString()));
        socket.on('close', () => resolve(text));
        socket.on('error', (err) => reject(new Error(`${err.message}; read so far: ${JSON.stringify(text.slice(0, 80))}`)));
      });
      assert.match(answer, /^HTTP\/1\.1 413 /);
      assert.match(answer, /"errorCode":"ERR_BODY_TOO_LARGE"/);
      // A client that keeps sending for ever is read for a bounded time and amount, then cut off.
      const started = Date.now();
      const cut = await new Promise<string>((resolve) => {
        let text = '';
        const socket = connect(small.httpPort, '127.0.0.1', () => {
          socket.write(head);
          const more = (): void => {
            while (socket.writable && socket.write(chunk(16 * 1024)));
            if (socket.writable) socket.once('drain', more);
          };
          more();
        });
        socket.on('data', (d: Buffer) => (text += d.toString()));
        socket.on('error', () => {});
        socket.on('close', () => resolve(text));
      });
      assert.match(cut, /^HTTP\/1\.1 413 /);
      assert.ok(Date.now() - started < 30_000, 'the sidecar stopped reading a body it had refused');
      const after = await send(small.httpPort, { method: 'GET', path: '/v1.0/healthz' });
      assert.equal(after.status, 204, 'the sidecar still serves');
      assert.equal(echo.seen.filter((r) => r.url === '/count').length, 0, 'the app never got a refused body');
    } finally {
      await env2.close();
    }
  });

  test('100 MiB streams up through both sidecars intact (--max-body-size 200Mi)', async () => {
    const total = 100 * 1024 * 1024;
    const hash = createHash('sha256');
    const answer = await new Promise<string>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port: a.httpPort, method: 'POST', path: '/v1.0/invoke/b/method/sha256', headers: { 'content-length': total } },
        (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve(`${res.statusCode} ${text}`));
        },
      );
      req.on('error', reject);
      writeBytes(req, total, 256 * 1024, (offset) => offset % 251, (piece) => hash.update(piece));
    });
    assert.equal(answer, `200 ${total} ${hash.digest('hex')}`);
  });

  test('a 50 MiB response streams down through both sidecars intact', async () => {
    const total = 50 * 1024 * 1024;
    const res = await fetch(a.url(`/v1.0/invoke/b/method/stream-out?bytes=${total}`));
    assert.equal(res.status, 200);
    let received = 0;
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      received += chunk.length;
      if (chunk.some((byte) => byte !== 0x7a)) assert.fail('corrupted byte');
    }
    assert.equal(received, total);
  });

  test('S31: a caller that gives up cancels the call all the way to the app', async () => {
    slowClosed = new Promise<void>((resolve) => (markSlowClosed = resolve));
    const abort = new AbortController();
    const started = Date.now();
    const call = send(a.httpPort, { method: 'POST', path: '/v1.0/invoke/b/method/slow', body: 'x', signal: abort.signal });
    await sleep(1000);
    abort.abort();
    await assert.rejects(call);
    await slowClosed;
    assert.ok(Date.now() - started < 5000, 'the app saw its connection close soon after the caller left');
  });

  test('a caller that closes the connection mid-upload leaves both sidecars serving', async () => {
    await new Promise<void>((resolve) => {
      const socket = connect(a.httpPort, '127.0.0.1', () => {
        socket.write('POST /v1.0/invoke/b/method/count HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n');
        socket.write(Buffer.alloc(100_000, 3));
        setTimeout(() => {
          socket.destroy();
          resolve();
        }, 200);
      });
    });
    const res = await send(a.httpPort, { method: 'POST', path: '/v1.0/invoke/b/method/count', body: 'abc' });
    assert.equal(res.text, '3');
  });
});
