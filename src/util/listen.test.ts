import assert from 'node:assert/strict';
import { test } from 'node:test';
import { listenOnHosts } from './listen.js';

const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(code), { code });

test('listenOnHosts: the first host picks the port, the others reuse it; a missing address is skipped', async () => {
  const seen: string[] = [];
  const skipped: string[] = [];
  const port = await listenOnHosts(
    ['127.0.0.1', '::1', '10.0.0.1'],
    0,
    (host, p) => {
      seen.push(`${host}:${p}`);
      if (host === '::1') return Promise.reject(errno('EADDRNOTAVAIL'));
      return Promise.resolve(p === 0 ? 4321 : p);
    },
    (host) => skipped.push(host),
  );
  assert.equal(port, 4321);
  assert.deepEqual(seen, ['127.0.0.1:0', '::1:4321', '10.0.0.1:4321']);
  assert.deepEqual(skipped, ['::1']);
});

test('listenOnHosts: a port in use fails at once; no address at all fails', async () => {
  await assert.rejects(listenOnHosts(['127.0.0.1'], 80, () => Promise.reject(errno('EADDRINUSE')), () => {}), /EADDRINUSE/);
  await assert.rejects(listenOnHosts(['::1'], 0, () => Promise.reject(errno('EAFNOSUPPORT')), () => {}), /EAFNOSUPPORT/);
});
