// Negotiation: a lane channel to a server that speaks the lane uses it; one to a server that does not
// (a Dapr sidecar, a Courier with --internal-lane=false) falls back to gRPC and the call still succeeds.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GrpcStatus } from '../errors/index.js';
import { GrpcChannel } from '../grpc/channel.js';
import { collect, sendAll, startEchoServer } from '../grpc/testing/helpers.js';
import { LaneChannel, laneChannelSettings } from './client.js';

async function echoOnce(channel: LaneChannel, text: string): Promise<string> {
  const call = channel.call('/test.Echo/Unary');
  const done = collect(call);
  sendAll(call, [Buffer.from(text)]);
  const { messages, result } = await done;
  assert.equal(result.code, GrpcStatus.OK, result.message);
  return messages.map((m) => m.toString()).join('');
}

describe('lane negotiation', () => {
  for (const lane of [true, false]) {
    test(`a server with lane ${lane ? 'on' : 'off'} is called over ${lane ? 'the lane' : 'gRPC'}`, async () => {
      const { server, target } = await startEchoServer({ lane });
      let fallback: GrpcChannel | undefined;
      let fallbacks = 0;
      const channel = new LaneChannel(target, laneChannelSettings(), () => {
        fallbacks++;
        return (fallback ??= new GrpcChannel(target));
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
      } finally {
        await Promise.all([channel.close(), fallback?.close()]);
        await server.close({ graceMs: 0 });
      }
    });
  }
});
