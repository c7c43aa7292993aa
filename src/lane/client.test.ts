// Negotiation: a lane channel to a server that speaks the lane uses it; one to a server that does not
// (a Dapr sidecar, a Courier with --internal-lane=false) falls back to gRPC and the call still succeeds.
// Both in plaintext (the lane's magic) and with mutual TLS (ALPN), as sidecars run them.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { GrpcStatus } from '../errors/index.js';
import { GrpcChannel } from '../grpc/channel.js';
import type { ChannelTarget } from '../grpc/connection.js';
import { tlsClient, tlsClientFor, tlsServer } from '../grpc/tls.js';
import { collect, readAll, sendAll, startEchoServer } from '../grpc/testing/helpers.js';
import { TestCa, type KeyPairPem } from '../../test/framework/test-pki.js';
import { LaneChannel, laneChannelSettings } from './client.js';
import { LANE_PROTOCOL } from './wire.js';

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
