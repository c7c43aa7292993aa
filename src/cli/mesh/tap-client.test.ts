import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TapEvent } from '../../observability/mesh/contract.js';
import { parseTapEvent, tapMesh, tapPath } from './tap-client.js';
import type { SidecarRef, TappedCall } from './view-types.js';

const call = (n: number, extra: Partial<TapEvent> = {}): TapEvent => ({
  at: 1_700_000_000_000 + n,
  direction: 'inbound',
  srcAppId: 'a',
  dstAppId: 'b',
  method: 'POST',
  path: `/orders/${n}`,
  status: 200,
  latencyMs: 2.5,
  traceId: '0af7651916cd43dd8448eb211c80319c',
  headers: { 'content-type': '[redacted]' },
  errorCode: '',
  ...extra,
});

async function waitFor(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

test('the query carries the filters the sidecar applies', () => {
  assert.equal(tapPath({}), '/courier/v1/tap');
  assert.equal(
    tapPath({ path: '/orders', method: 'GET', status: '5xx', direction: 'inbound', app: 'a', headers: true }),
    '/courier/v1/tap?path=%2Forders&method=GET&status=5xx&direction=inbound&app=a&headers=show',
  );
});

test('a tap event is checked, and tells which app reported it', () => {
  assert.deepEqual(parseTapEvent(JSON.stringify(call(1)), 'b'), { ...call(1), reportedBy: 'b' });
  // Given by address, the sidecar is known by the event's own side.
  assert.equal(parseTapEvent(JSON.stringify(call(1, { direction: 'outbound' })), '')?.reportedBy, 'a');
  assert.equal(parseTapEvent('{"direction":"sideways"}', 'b'), undefined);
  assert.equal(parseTapEvent('not json', 'b'), undefined);
  assert.deepEqual(parseTapEvent('{"direction":"inbound","headers":{"x":1,"y":"v"}}', 'b')?.headers, { y: 'v' });
});

describe('tapMesh', () => {
  const streams: ServerResponse[] = [];
  const requests: IncomingMessage[] = [];
  let server: Server;
  let port = 0;
  let respond: (req: IncomingMessage, res: ServerResponse) => void = () => undefined;

  before(async () => {
    server = createServer((req, res) => {
      requests.push(req);
      respond(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const ref = (appId: string): SidecarRef => ({ appId, metricsUrl: `http://127.0.0.1:${port}`, source: 'run-record' });

  test('events of every stream, whatever the chunks; drops reported; close() ends the streams', async () => {
    requests.length = 0;
    streams.length = 0;
    respond = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': open\n\n');
      streams.push(res);
    };
    const got: TappedCall[] = [];
    const dropped: Array<[string, number]> = [];
    const errors: string[] = [];
    const session = tapMesh(
      [ref('b'), ref('b2')],
      { status: '2xx' },
      { token: 't0k', onDropped: (r, n) => dropped.push([r.appId, n]), onError: (_r, m) => errors.push(m) },
      (e) => got.push(e),
    );
    await waitFor(() => streams.length === 2, 'both streams');
    assert.deepEqual(
      requests.map((r) => [r.url, r.headers['dapr-api-token'], r.headers.accept]),
      [
        ['/courier/v1/tap?status=2xx', 't0k', 'text/event-stream'],
        ['/courier/v1/tap?status=2xx', 't0k', 'text/event-stream'],
      ],
    );
    const [first, second] = streams as [ServerResponse, ServerResponse];
    // An event split mid-JSON and mid-line across writes, a drop notice, two events in one write.
    const text = `event: call\ndata: ${JSON.stringify(call(1))}\n\n`;
    first.write(text.slice(0, 17));
    await sleep(20);
    first.write(text.slice(17, 40));
    await sleep(20);
    first.write(`${text.slice(40)}: dropped 4\n`);
    second.write(`event: call\r\ndata: ${JSON.stringify(call(2))}\r\n\r\nevent: call\r\ndata: ${JSON.stringify(call(3))}\r\n\r\n`);
    await waitFor(() => got.length === 3, 'three events');
    assert.deepEqual(got.map((e) => [e.reportedBy, e.path]).sort(), [
      ['b', '/orders/1'],
      ['b2', '/orders/2'],
      ['b2', '/orders/3'],
    ]);
    assert.deepEqual(dropped, [['b', 4]]);
    await session.close();
    await session.ended;
    assert.deepEqual(errors, []);
    await waitFor(() => streams.every((s) => s.destroyed || s.writableEnded || s.closed), 'the server side to see the streams closed');
  });

  test('a stream refused or ended by its sidecar is reported, and ended resolves when none is left', async () => {
    respond = (req, res) => {
      if (req.url?.includes('method=GET') === true) {
        res.writeHead(401).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`event: call\ndata: ${JSON.stringify(call(9))}\n\n`);
    };
    const errors: string[] = [];
    const got: TappedCall[] = [];
    const refused = tapMesh([ref('b')], { method: 'GET' }, { onError: (_r, m) => errors.push(m) }, (e) => got.push(e));
    await refused.ended;
    assert.match(errors[0] ?? '', /HTTP 401 on \/courier\/v1\/tap: the API token was refused/);
    errors.length = 0;
    const ending = tapMesh([ref('b')], {}, { onError: (_r, m) => errors.push(m) }, (e) => got.push(e));
    await ending.ended;
    assert.deepEqual(got.map((e) => e.path), ['/orders/9']);
    assert.deepEqual(errors, ['the sidecar ended the stream']);
    await ending.close();
  });

  test('a sidecar that is not there is reported at once', async () => {
    const errors: string[] = [];
    const session = tapMesh([{ appId: 'x', metricsUrl: 'http://127.0.0.1:1', source: 'run-record' }], {}, { onError: (_r, m) => errors.push(m) }, () => undefined);
    await session.ended;
    assert.match(errors[0] ?? '', /connection refused/);
  });
});
