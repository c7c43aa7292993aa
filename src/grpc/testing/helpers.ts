// Test helpers for the gRPC transport's own tests: a server with a few echo-style handlers, and a
// client-side collector that turns a call into a promise.
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { GrpcStatus } from '../../errors/index.js';
import type { CallOptions, CallResult, ClientCall } from '../call.js';
import { LaneChannel, laneChannelSettings } from '../../lane/client.js';
import { GrpcChannel, type GrpcChannelOptions } from '../channel.js';
import type { ChannelTarget } from '../connection.js';
import type { Metadata, ReceivedMetadata } from '../metadata.js';
import { GrpcServer, type GrpcServerOptions } from '../server.js';
import { H2Channel } from '../../h2/client.js';
import type { ServerCall } from '../call.js';

export interface Collected {
  headers: ReceivedMetadata | undefined;
  messages: Buffer[];
  result: CallResult;
}

/** Sets a reader on `call` that keeps everything, resolving when the call ends. */
export function collect(call: ClientCall): Promise<Collected> {
  return new Promise((resolve) => {
    const out: Omit<Collected, 'result'> = { headers: undefined, messages: [] };
    call.setReader({
      headers: (md) => {
        out.headers = md;
      },
      message: (bytes) => {
        out.messages.push(Buffer.from(bytes));
      },
      end: (result) => resolve({ ...out, result }),
    });
  });
}

/** Reads all of a server call's messages, resolving at the client's half-close (or rejecting). */
export function readAll(call: ServerCall): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const messages: Buffer[] = [];
    call.setReader({
      message: (bytes) => messages.push(Buffer.from(bytes)),
      end: () => resolve(messages),
      error: (status) => reject(Object.assign(new Error(status.message ?? 'failed'), { code: status.code })),
    });
  });
}

/**
 * Handlers used across tests:
 * - `/test.Echo/Unary`: echoes the one request message, echoes request metadata `x-echo*` as response
 *   headers and `x-trailer*` as trailers.
 * - `/test.Echo/ClientStream`: answers with the count of messages received, as text.
 * - `/test.Echo/ServerStream`: the request is `count:size`; answers with `count` messages of `size` bytes.
 * - `/test.Echo/Bidi`: echoes each message as it arrives.
 * - `/test.Echo/Fail`: ends with the status in request metadata `x-code` / `x-message` (Trailers-Only).
 */
export function registerEchoHandlers(server: GrpcServer): void {
  server.register('/test.Echo/Unary', (call) => {
    void readAll(call).then(
      (messages) => {
        const headers: Record<string, string | string[]> = {};
        const trailers: Record<string, string | string[]> = {};
        for (const [key, value] of Object.entries(call.metadata)) {
          if (value === undefined) continue;
          if (key.startsWith('x-echo')) headers[key] = value;
          if (key.startsWith('x-trailer')) trailers[key] = value;
        }
        call.sendHeaders(headers);
        for (const m of messages) call.sendMessage(m);
        call.end({ code: GrpcStatus.OK }, trailers);
      },
      () => {},
    );
  });
  server.register('/test.Echo/ClientStream', (call) => {
    void readAll(call).then(
      (messages) => {
        call.sendMessage(Buffer.from(String(messages.length)));
        call.end({ code: GrpcStatus.OK });
      },
      () => {},
    );
  });
  server.register('/test.Echo/ServerStream', (call) => {
    void readAll(call).then(
      (messages) => {
        const [count, size] = (messages[0]?.toString() ?? '0:0').split(':').map(Number);
        for (let i = 0; i < (count ?? 0); i++) call.sendMessage(Buffer.alloc(size ?? 0, i % 256));
        call.end({ code: GrpcStatus.OK });
      },
      () => {},
    );
  });
  server.register('/test.Echo/Bidi', (call) => {
    call.setReader({
      message: (bytes) => call.sendMessage(bytes),
      end: () => call.end({ code: GrpcStatus.OK }),
      error: () => {},
    });
  });
  server.register('/test.Echo/Fail', (call) => {
    const code = Number(call.metadata['x-code'] ?? GrpcStatus.INTERNAL);
    const message = call.metadata['x-message'];
    call.end({ code, message: typeof message === 'string' ? decodeURIComponent(message) : 'failed' }, { 'x-detail': 'yes' });
  });
}

export async function startEchoServer(
  options: GrpcServerOptions = {},
  host = '127.0.0.1',
): Promise<{ server: GrpcServer; address: AddressInfo; target: { host: string; port: number } }> {
  const server = new GrpcServer(options);
  registerEchoHandlers(server);
  const address = await server.listen(host, 0);
  return { server, address, target: { host, port: address.port } };
}

/** Sends `messages` then half-closes. */
export function sendAll(call: ClientCall, messages: readonly Uint8Array[]): void {
  for (const m of messages) call.sendMessage(m);
  call.end();
}

/** Resolves after `ms` (for waiting on the other side, never for asserting speed). */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `predicate` every few ms until it holds; rejects after `timeoutMs`. */
export async function eventually(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await delay(5);
  }
}

/**
 * A TCP proxy in front of `port` that can be frozen: it stops forwarding in both directions without
 * closing anything, like a peer that vanished or a dropped NAT mapping.
 */
export async function startFreezableProxy(port: number): Promise<{ port: number; freeze(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const pairs: [Socket, Socket][] = [];
  const server = createNetServer((downstream) => {
    const upstream = netConnect({ host: '127.0.0.1', port });
    for (const s of [downstream, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    downstream.pipe(upstream).pipe(downstream);
    pairs.push([downstream, upstream]);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    freeze: () => {
      for (const [a, b] of pairs) {
        a.unpipe(b);
        b.unpipe(a);
        a.pause();
        b.pause();
      }
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * The clients whose call semantics the shared suites check against our server: node:http2's
 * (`GrpcChannel`, which carries calls to a daprd peer and to a `grpcs` app), Courier's own HTTP/2
 * client (`H2Channel`, which carries calls to a plaintext gRPC app), and the Courier-to-Courier lane.
 */
export type TransportKind = 'http2' | 'h2' | 'lane';
export const TRANSPORTS: readonly TransportKind[] = ['http2', 'h2', 'lane'];

/** A client of either transport, with what the tests look at. */
export interface TestChannel {
  call(path: string, metadata?: Metadata, options?: CallOptions): ClientCall;
  readonly connectionCount: number;
  readonly label: string;
  close(): Promise<void>;
}

/**
 * A channel of `kind` to `target`: a `GrpcChannel`, or a `LaneChannel` (whose gRPC fallback, used
 * only if the server does not speak the lane, has the same options).
 */
export function openChannel(kind: TransportKind, target: ChannelTarget, options: GrpcChannelOptions = {}): TestChannel {
  if (kind === 'http2') return new GrpcChannel(target, options);
  if (kind === 'h2') {
    // Silence detection and a custom socket are GrpcChannel's alone (a local app needs neither).
    const { silenceMs: _silence, silenceAckTimeoutMs: _ack, createConnection: _create, scheme: _scheme, ...h2Options } = options;
    return new H2Channel(target, h2Options);
  }
  let fallback: GrpcChannel | undefined;
  const lane = new LaneChannel(
    target,
    laneChannelSettings({
      ...(options.maxReceiveMessageBytes === undefined ? {} : { maxReceiveMessageBytes: options.maxReceiveMessageBytes }),
      ...(options.maxSendMessageBytes === undefined ? {} : { maxSendMessageBytes: options.maxSendMessageBytes }),
      ...(options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }),
      ...(options.pingIntervalMs === undefined ? {} : { pingIntervalMs: options.pingIntervalMs }),
      ...(options.pingTimeoutMs === undefined ? {} : { pingTimeoutMs: options.pingTimeoutMs }),
      ...(options.silenceMs === undefined ? {} : { silenceMs: options.silenceMs }),
      ...(options.silenceAckTimeoutMs === undefined ? {} : { silenceAckTimeoutMs: options.silenceAckTimeoutMs }),
      ...(options.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: options.idleTimeoutMs }),
    }),
    () => (fallback ??= new GrpcChannel(target, options)),
  );
  return {
    call: (path, metadata, callOptions) => lane.call(path, metadata, callOptions),
    get connectionCount() {
      return lane.connectionCount;
    },
    label: lane.label,
    close: async () => {
      await Promise.all([lane.close(), fallback?.close()]);
    },
  };
}

/** Rejects when `promise` has not settled within `ms` (for a result that must come, instead of hanging the test). */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
