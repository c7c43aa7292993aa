// Flow control end to end: a paused reader on either side makes the other side's sendMessage report
// a full buffer, and nothing piles up in memory while it waits.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { GrpcStatus } from '../errors/index.js';
import type { CallResult, ClientCall } from './call.js';
import type { GrpcServer } from './server.js';
import type { ServerCall } from './call.js';
import { delay, eventually, openChannel, startEchoServer, TRANSPORTS, type TestChannel } from './testing/helpers.js';

const CHUNK = Buffer.alloc(64 * 1024, 0x5a);

// A garbage collection before measuring memory, so garbage does not count as buffered data.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Sends `count` copies of CHUNK, honouring backpressure; resolves with how often the buffer was full. */
function pump(send: (b: Buffer) => boolean, onDrain: (cb: () => void) => void, count: number, done: () => void): Promise<number> {
  return new Promise((resolve) => {
    let sent = 0;
    let full = 0;
    const next = (): void => {
      while (sent < count) {
        sent++;
        if (!send(CHUNK)) {
          full++;
          onDrain(next);
          return;
        }
      }
      done();
      resolve(full);
    };
    next();
  });
}

for (const kind of TRANSPORTS) describe(`backpressure (${kind})`, () => {
  let server: GrpcServer;
  let channel: TestChannel;
  const inbound: ServerCall[] = [];

  before(async () => {
    const started = await startEchoServer({ maxReceiveMessageBytes: 1024 * 1024, lane: true });
    server = started.server;
    server.register('/test.Flow/Upload', (call) => inbound.push(call));
    server.register('/test.Flow/Download', (call) => {
      const count = Number(call.metadata['x-count']);
      let full = 0;
      void pump(
        (b) => {
          const ok = call.sendMessage(b);
          if (!ok) full++;
          return ok;
        },
        (cb) => call.onDrain(cb),
        count,
        () => call.end({ code: GrpcStatus.OK }, { 'x-full': String(full) }),
      );
    });
    channel = openChannel(kind, started.target);
  });

  after(async () => {
    await channel.close();
    await server.close({ graceMs: 0 });
  });

  test('a paused server reader holds the client back; resuming delivers everything', async () => {
    inbound.length = 0;
    const call = channel.call('/test.Flow/Upload');
    const ended = new Promise<CallResult>((resolve) => call.setReader({ headers: () => {}, message: () => {}, end: resolve }));
    let received = 0;
    let halfClosed = false;
    let firstFull = false;
    const sending = pump(
      (b) => {
        const ok = call.sendMessage(b);
        if (!ok) firstFull = true;
        return ok;
      },
      (cb) => call.onDrain(cb),
      200,
      () => call.end(),
    );
    await eventually(() => inbound.length === 1, 5000, 'the call to reach the server');
    const serverCall = inbound[0] as ServerCall;
    serverCall.pause();
    serverCall.setReader({
      message: () => {
        received++;
      },
      end: () => {
        halfClosed = true;
        serverCall.end({ code: GrpcStatus.OK });
      },
      error: () => assert.fail('no error expected'),
    });
    await eventually(() => firstFull, 5000, 'sendMessage to report a full buffer');
    await delay(100);
    assert.equal(received, 0, 'a paused reader gets nothing');
    assert.equal(halfClosed, false);
    serverCall.resume();
    const full = await sending;
    assert.ok(full > 0);
    assert.equal((await ended).code, GrpcStatus.OK);
    assert.equal(received, 200);
  });

  test('a paused client reader holds the server back; resuming delivers everything', async () => {
    const call: ClientCall = channel.call('/test.Flow/Download', { 'x-count': '200' });
    let received = 0;
    const ended = new Promise<CallResult>((resolve) =>
      call.setReader({
        headers: () => {},
        message: () => {
          received++;
          if (received === 1) {
            call.pause();
            setTimeout(() => call.resume(), 200);
          }
        },
        end: resolve,
      }),
    );
    call.end();
    await delay(150);
    assert.equal(received, 1, 'nothing is delivered while paused');
    const result = await ended;
    assert.equal(result.code, GrpcStatus.OK);
    assert.equal(received, 200);
    assert.ok(Number(result.trailers['x-full']) > 0, "the server's sendMessage reported a full buffer");
  });

  test('~50 MB through a paused-then-resumed reader does not pile up in memory', async () => {
    inbound.length = 0;
    const total = 800; // 800 × 64 KiB = 50 MiB
    const call = channel.call('/test.Flow/Upload');
    const ended = new Promise<CallResult>((resolve) => call.setReader({ headers: () => {}, message: () => {}, end: resolve }));
    gc();
    const baseline = process.memoryUsage().arrayBuffers;
    let accepted = 0;
    const sending = pump(
      (b) => {
        accepted++;
        return call.sendMessage(b);
      },
      (cb) => call.onDrain(cb),
      total,
      () => call.end(),
    );
    await eventually(() => inbound.length === 1, 5000, 'the call to reach the server');
    const serverCall = inbound[0] as ServerCall;
    let received = 0;
    serverCall.pause();
    serverCall.setReader({
      message: (bytes) => {
        received += bytes.length;
        // Pause now and then, as a slow consumer would.
        if (received % (10 * CHUNK.length) === 0) {
          serverCall.pause();
          setTimeout(() => serverCall.resume(), 2);
        }
      },
      end: () => serverCall.end({ code: GrpcStatus.OK }),
      error: () => {},
    });
    await delay(300);
    // While the reader is paused the sender is held back after a few windows' worth of data...
    const acceptedWhilePaused = accepted;
    assert.ok(acceptedWhilePaused * CHUNK.length < 8 * 1024 * 1024, `${acceptedWhilePaused} messages accepted while paused`);
    // ...and that is all that is held in memory.
    gc();
    const heldWhilePaused = process.memoryUsage().arrayBuffers - baseline;
    assert.ok(heldWhilePaused < 16 * 1024 * 1024, `${(heldWhilePaused / 1048576).toFixed(1)} MiB held while paused`);
    serverCall.resume();
    await sending;
    assert.equal((await ended).code, GrpcStatus.OK);
    assert.equal(received, total * CHUNK.length);
  });
});
