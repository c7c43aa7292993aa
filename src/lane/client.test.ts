// Negotiation: a lane channel to a server that speaks the lane uses it; one to a server that does not
// (a Dapr sidecar, a Courier with --internal-lane=false) falls back to gRPC and the call still succeeds.
// Both in plaintext (the lane's magic) and with mutual TLS (ALPN), as sidecars run them.
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { before, describe, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { GrpcStatus } from '../errors/index.js';
import type { ServerCall } from '../grpc/call.js';
import { GrpcChannel } from '../grpc/channel.js';
import type { ChannelTarget } from '../grpc/connection.js';
import { tlsClient, tlsClientFor, tlsServer } from '../grpc/tls.js';
import { collect, eventually, readAll, sendAll, startEchoServer, startFreezableProxy } from '../grpc/testing/helpers.js';
import { TestCa, type KeyPairPem } from '../../test/framework/test-pki.js';
import { LaneChannel, laneChannelSettings } from './client.js';
import { FRAME_HEAD_BYTES, LANE_PROTOCOL } from './wire.js';

async function echoOnce(channel: LaneChannel, text: string): Promise<string> {
  const call = channel.call('/test.Echo/Unary');
  const done = collect(call);
  sendAll(call, [Buffer.from(text)]);
  const { messages, result } = await done;
  assert.equal(result.code, GrpcStatus.OK, result.message);
  return messages.map((m) => m.toString()).join('');
}

interface Pki {
  ca: string;
  server: KeyPairPem;
  client: KeyPairPem;
}

describe('lane negotiation', () => {
  let pki: Pki;
  before(async () => {
    const ca = await TestCa.create('lane test CA');
    pki = { ca: ca.certPem, server: await ca.server(), client: await ca.client('lane-caller') };
  });

  for (const secure of [false, true]) {
    for (const lane of [true, false]) {
      test(`a server with lane ${lane ? 'on' : 'off'} is called over ${lane ? 'the lane' : 'gRPC'} (${secure ? 'mutual TLS' : 'plaintext'})`, async () => {
        const serverTls = secure ? tlsServer(() => ({ ...pki.server, ca: pki.ca, requestCert: true, rejectUnauthorized: true })) : undefined;
        const { server, target } = await startEchoServer({ lane, ...(serverTls === undefined ? {} : { createServer: serverTls.createServer }) });
        // The handler sees the caller's verified certificate, whichever transport carried the call.
        const callers: string[] = [];
        server.register('/test.Who/Am', (call) => {
          void readAll(call).then(() => {
            callers.push(String(call.peer.certificate?.subject.CN ?? 'none'));
            call.end({ code: GrpcStatus.OK });
          });
        });
        const clientOptions = (): { ca: string; cert: string; key: string; rejectUnauthorized: true } => ({ ...pki.client, ca: pki.ca, rejectUnauthorized: true });
        const negotiated: Array<string | false | null> = [];
        const laneTls = tlsClientFor(clientOptions, [LANE_PROTOCOL, 'h2']);
        const createConnection = (t: ChannelTarget): ReturnType<typeof laneTls.createConnection> => {
          const socket = laneTls.createConnection(t) as TLSSocket;
          socket.once('secureConnect', () => negotiated.push(socket.alpnProtocol));
          return socket;
        };
        let fallback: GrpcChannel | undefined;
        let fallbacks = 0;
        const grpcOptions = secure ? tlsClient(clientOptions) : {};
        const channel = new LaneChannel(target, laneChannelSettings(secure ? { createConnection, secure: true } : {}), () => {
          fallbacks++;
          return (fallback ??= new GrpcChannel(target, grpcOptions));
        });
        try {
          assert.equal(channel.mode, 'unknown');
          const replies = await Promise.all(['a', 'b', 'c'].map((text) => echoOnce(channel, text)));
          assert.deepEqual(replies, ['a', 'b', 'c']);
          assert.equal(await echoOnce(channel, 'again'), 'again');
          assert.equal(channel.mode, lane ? 'lane' : 'grpc');
          assert.equal(fallback === undefined, lane);
          if (!lane) assert.ok(fallbacks >= 1);
          assert.equal(server.laneConnectionCount, lane ? 1 : 0);
          if (secure) assert.deepEqual(negotiated, [lane ? LANE_PROTOCOL : 'h2']);
          const who = channel.call('/test.Who/Am');
          const whoDone = collect(who);
          sendAll(who, []);
          assert.equal((await whoDone).result.code, GrpcStatus.OK);
          assert.deepEqual(callers, [secure ? 'lane-caller' : 'none']);
        } finally {
          await Promise.all([channel.close(), fallback?.close()]);
          await server.close({ graceMs: 0 });
        }
      });
    }
  }

  test('with TLS, an HTTP/2-only client (a Dapr sidecar) is still served over gRPC by a lane server', async () => {
    const serverTls = tlsServer(() => ({ ...pki.server, ca: pki.ca, requestCert: true, rejectUnauthorized: true }));
    const { server, target } = await startEchoServer({ lane: true, createServer: serverTls.createServer });
    const channel = new GrpcChannel(target, tlsClient(() => ({ ...pki.client, ca: pki.ca, rejectUnauthorized: true })));
    try {
      const call = channel.call('/test.Echo/Unary');
      const done = collect(call);
      sendAll(call, [Buffer.from('over h2')]);
      const { messages, result } = await done;
      assert.equal(result.code, GrpcStatus.OK, result.message);
      assert.equal(Buffer.concat(messages).toString(), 'over h2');
      assert.equal(server.laneConnectionCount, 0);
    } finally {
      await channel.close();
      await server.close({ graceMs: 0 });
    }
  });
});

// Silence detection with the lane's default settings (300 ms without a byte while calls wait, then 700 ms
// for a PING's answer): a peer that vanished without a FIN fails the calls waiting on it at once; a
// slow app behind a healthy connection does not, because its sidecar answers the PINGs.
describe('lane silence detection', () => {
  const noFallback = (): never => {
    throw new Error('the server speaks the lane');
  };

  test('a call on a connection that stops answering fails reset within about 1 s; the next call opens a new connection', async () => {
    const { server, target } = await startEchoServer({ lane: true });
    const held: ServerCall[] = [];
    server.register('/test.Hold/Call', (call) => {
      held.push(call);
      call.setReader({ message: () => {}, end: () => {}, error: () => {} });
    });
    const proxy = await startFreezableProxy(target.port);
    const settings = laneChannelSettings();
    assert.equal(settings.silenceMs, 300);
    assert.equal(settings.silenceAckTimeoutMs, 700);
    const channel = new LaneChannel({ host: '127.0.0.1', port: proxy.port }, settings, noFallback);
    try {
      assert.equal(await echoOnce(channel, 'warm'), 'warm');
      const call = channel.call('/test.Hold/Call');
      const done = collect(call);
      sendAll(call, [Buffer.from('hold')]);
      await eventually(() => held.length === 1, 5000, 'the held call');
      proxy.freeze();
      const frozenAt = performance.now();
      const { result } = await done;
      const ms = Math.round(performance.now() - frozenAt);
      console.log(`# lane: a call waiting on a frozen connection failed ${ms} ms after the freeze: ${result.message}`);
      assert.equal(result.code, GrpcStatus.UNAVAILABLE);
      assert.equal(result.transport, 'reset', 'the callee may have processed it: retried only when idempotent');
      assert.match(result.message, /was lost: nothing received for 300ms while calls were waiting, and a ping was not acknowledged within 700ms/);
      assert.ok(ms < 4000, `failed after ${ms} ms`);
      await eventually(() => channel.connectionCount === 0, 1000, 'the dead connection to be gone');
      // New connections through the proxy are forwarded: the next call works, on a new connection.
      assert.equal(await echoOnce(channel, 'again'), 'again');
      assert.equal(channel.connectionCount, 1);
    } finally {
      await channel.close();
      await proxy.close();
      await server.close({ graceMs: 0 });
    }
  });

  test('a slow handler (3 s) on a healthy connection completes: the silence PINGs are answered', async () => {
    const { server, target } = await startEchoServer({ lane: true });
    const sockets: Socket[] = [];
    let pingsWhileWaiting = -1;
    let writtenAtStart = 0;
    server.register('/test.Slow/Call', (call) => {
      void readAll(call).then((messages) => {
        writtenAtStart = sockets[0]?.bytesWritten ?? 0;
        setTimeout(() => {
          // All the client wrote while the app was busy: PING frames (8-byte payload each).
          pingsWhileWaiting = ((sockets[0]?.bytesWritten ?? 0) - writtenAtStart) / (FRAME_HEAD_BYTES + 8);
          for (const m of messages) call.sendMessage(m);
          call.end({ code: GrpcStatus.OK });
        }, 3000);
      });
    });
    const createConnection = (t: ChannelTarget): Socket => {
      const socket = netConnect({ host: t.host, port: t.port, noDelay: true });
      sockets.push(socket);
      return socket;
    };
    const channel = new LaneChannel(target, laneChannelSettings({ createConnection }), noFallback);
    try {
      const started = performance.now();
      const call = channel.call('/test.Slow/Call');
      const done = collect(call);
      sendAll(call, [Buffer.from('slow')]);
      const { messages, result } = await done;
      const ms = Math.round(performance.now() - started);
      console.log(`# lane: a 3 s call on a healthy connection took ${ms} ms; the client sent ${pingsWhileWaiting} silence PINGs meanwhile`);
      assert.equal(result.code, GrpcStatus.OK, result.message);
      assert.equal(Buffer.concat(messages).toString(), 'slow');
      assert.ok(ms >= 2900, `${ms} ms`);
      assert.ok(Number.isInteger(pingsWhileWaiting) && pingsWhileWaiting >= 2, `pings while waiting: ${pingsWhileWaiting}`);
      assert.equal(sockets.length, 1, 'one connection throughout');
    } finally {
      await channel.close();
      await server.close({ graceMs: 0 });
    }
  });
});
