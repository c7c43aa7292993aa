import { CourierError, GrpcStatus, grpcStatusName } from '../../errors/index.js';
import type { ConnectionOptions } from 'node:tls';
import { ChannelPool, tlsClient, type CallOpener, type CallResult, type ChannelTarget, type ClientCall } from '../../grpc/index.js';
import { tlsClientFor } from '../../grpc/tls.js';
import { LaneChannel, laneChannelSettings, type LaneChannelSettings } from '../../lane/client.js';
import { LANE_PROTOCOL } from '../../lane/wire.js';
import type { AppIdentity } from '../../invoke/identity.js';
import { expectedPeerPath } from '../../sentry/mtls.js';
import { withoutKey, type Metadata } from '../../invoke/headers.js';
import type { RemoteTransport } from '../../invoke/invoker.js';
import { cancelledError, type FlowControl, type InvokeRequest, type ResponseHead, type ResponseSink } from '../../invoke/types.js';
import type { Logger } from '../../observability/logging/index.js';
import {
  API_VERSION_V1,
  encodePayloadChunkHead,
  internalInvokeRequestStreamCodec,
  internalInvokeResponseStreamCodec,
  type InternalInvokeResponse,
} from '../../proto/index.js';
import { CALL_LOCAL_STREAM } from './server.js';
import { verbToEnum } from '../../invoke/verbs.js';
import { grpcTraceHeaders } from '../../observability/tracing/propagation.js';

export interface GrpcRemoteTransportOptions {
  /** The largest message sent or accepted on the hop (the body limit plus framing). */
  readonly maxMessageBytes: number;
  readonly logger: Logger;
  /** Mutual TLS: the client side's TLS options for a target (see sentry/mtls.ts); plaintext without. */
  readonly tls?: (target: ChannelTarget) => ConnectionOptions;
  /**
   * Call Courier sidecars over the lane (`--internal-lane`, default true): a target that does not
   * speak it is called over gRPC. False: gRPC only.
   */
  readonly lane?: boolean | undefined;
}

/**
 * Keepalive and connection settings of the hop, the same for the lane and gRPC.
 *
 * A connection to a host that vanished (no FIN, no RST) is noticed through silence while calls wait
 * on it: nothing received for SILENCE_MS, then a PING unanswered for SILENCE_ACK_TIMEOUT_MS, and its
 * calls fail `reset` (retried elsewhere when idempotent), 1.0-1.15 s after the last byte from the
 * peer, so a call retried elsewhere waits little more than a second in all. The callee's sidecar
 * answers PINGs however slow its app is, so a slow call never trips this; a callee whose event loop
 * stalls for a second does. Idle connections keep the 10 s keepalive.
 * A connection attempt to a host that does not answer gives up after CONNECT_TIMEOUT_MS (covering a
 * lost SYN's retransmission at 1 s, and the TLS handshake); nothing was sent, so it is retried anywhere.
 */
const CONNECT_TIMEOUT_MS = 2000;
const PING_INTERVAL_MS = 10_000;
const PING_TIMEOUT_MS = 5000;
const SILENCE_MS = 300;
const SILENCE_ACK_TIMEOUT_MS = 700;
const IDLE_TIMEOUT_MS = 180_000;
/** A target found not to speak the lane is asked again after this long. */
const LANE_RECHECK_MS = 5 * 60_000;

/** Parses `host:port` or `[v6]:port`. */
export function parseAddress(address: string): { host: string; port: number } {
  const match = /^\[?([^\]]*?)\]?:(\d+)$/.exec(address);
  if (match === null) throw new CourierError('ERR_DIRECT_INVOKE', `invalid sidecar address "${address}"`);
  return { host: match[1] ?? '', port: Number(match[2]) };
}

/**
 * The caller side of the sidecar-to-sidecar hop: each invocation is one `CallLocalStream` call to the
 * target sidecar, over the Courier lane when the target speaks it (src/lane/) and over pooled HTTP/2
 * gRPC otherwise (a Dapr sidecar). The request body is sent as payload chunks as it is read (with
 * flow control pushing back on the reader), and the response is passed on chunk by chunk. Failures
 * are classified so the invoker knows which ones are safe to retry.
 */
export class SidecarTransport implements RemoteTransport {
  readonly #pool: ChannelPool;
  readonly #mtls: boolean;
  readonly #laneSettings: LaneChannelSettings | undefined;
  readonly #lanes = new Map<string, LaneChannel>();
  #closed: Promise<void> | undefined;

  constructor(options: GrpcRemoteTransportOptions) {
    this.#mtls = options.tls !== undefined;
    this.#pool = new ChannelPool({
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      pingIntervalMs: PING_INTERVAL_MS,
      pingTimeoutMs: PING_TIMEOUT_MS,
      silenceMs: SILENCE_MS,
      silenceAckTimeoutMs: SILENCE_ACK_TIMEOUT_MS,
      idleTimeoutMs: IDLE_TIMEOUT_MS,
      maxReceiveMessageBytes: options.maxMessageBytes,
      maxSendMessageBytes: options.maxMessageBytes,
      logger: options.logger,
      ...(options.tls === undefined ? {} : tlsClient(options.tls)),
    });
    if (options.lane ?? true) {
      const tls = options.tls;
      this.#laneSettings = laneChannelSettings({
        connectTimeoutMs: CONNECT_TIMEOUT_MS,
        pingIntervalMs: PING_INTERVAL_MS,
        pingTimeoutMs: PING_TIMEOUT_MS,
        silenceMs: SILENCE_MS,
        silenceAckTimeoutMs: SILENCE_ACK_TIMEOUT_MS,
        idleTimeoutMs: IDLE_TIMEOUT_MS,
        maxSendMessageBytes: options.maxMessageBytes,
        maxReceiveMessageBytes: options.maxMessageBytes,
        ...(tls === undefined ? {} : { createConnection: tlsClientFor(tls, [LANE_PROTOCOL, 'h2']).createConnection, secure: true }),
        recheckMs: LANE_RECHECK_MS,
        logger: options.logger,
      });
    }
  }

  invoke(address: string, request: InvokeRequest, sink: ResponseSink): void {
    let channel: CallOpener;
    try {
      channel = this.channel(address, request.target);
    } catch (err) {
      sink.error(CourierError.from(err));
      return;
    }
    // The call's metadata carries the caller's span as the callee's parent (both encodings, as Dapr sends).
    const call = channel.call(CALL_LOCAL_STREAM, request.trace === undefined ? {} : grpcTraceHeaders(request.trace), { signal: request.signal });
    new OutgoingCall(address, request, sink, call).start();
  }

  /**
   * The pooled channel to the sidecar at `address` that serves `target`. With mTLS the connection must
   * prove to be the target app's sidecar, so connections are pooled per identity.
   */
  channel(address: string, target: AppIdentity): CallOpener {
    const settings = this.#laneSettings;
    if (settings === undefined || this.#closed !== undefined) return this.#pool.get(this.#channelTarget(address, target));
    // Keyed by what the caller already has, so a call to a known sidecar parses and builds nothing.
    const key = this.#mtls ? `${address} ${target.appId}.${target.namespace}` : address;
    let lane = this.#lanes.get(key);
    if (lane === undefined) {
      const channelTarget = this.#channelTarget(address, target);
      lane = new LaneChannel(channelTarget, settings, () => this.#pool.get(channelTarget));
      this.#lanes.set(key, lane);
    }
    return lane;
  }

  #channelTarget(address: string, target: AppIdentity): ChannelTarget {
    const { host, port } = parseAddress(address);
    return this.#mtls ? { host, port, identity: expectedPeerPath(target.appId, target.namespace) } : { host, port };
  }

  close(): Promise<void> {
    this.#closed ??= Promise.all([this.#pool.close(), ...[...this.#lanes.values()].map((lane) => lane.close())]).then(() => undefined);
    return this.#closed;
  }
}

/**
 * The app's response head from the leading `InternalInvokeResponse`: `status.code` ≥ 100 is an HTTP
 * app's status, < 100 a gRPC app's code (0 when absent: an HTTP app's 200 is always explicit).
 */
export function responseHead(response: InternalInvokeResponse, headers: Metadata, declaredLength: string | undefined): ResponseHead {
  const status = response.status ?? {};
  const trailers = response.trailers;
  const typeUrl = response.message?.data?.typeUrl;
  return {
    status: status.code ?? 0,
    headers,
    contentType: response.message?.contentType ?? '',
    contentLength: declaredLength !== undefined && /^\d+$/.test(declaredLength) ? Number(declaredLength) : undefined,
    ...(status.message === undefined || status.message === '' ? {} : { statusMessage: status.message }),
    ...(status.details === undefined || status.details.length === 0 ? {} : { statusDetails: status.details }),
    ...(trailers === undefined || Object.keys(trailers).length === 0 ? {} : { trailers: Object.assign(Object.create(null) as Metadata, trailers) }),
    ...(typeUrl === undefined || typeUrl === '' ? {} : { dataTypeUrl: typeUrl }),
  };
}

class OutgoingCall implements FlowControl {
  readonly #address: string;
  readonly #request: InvokeRequest;
  readonly #sink: ResponseSink;
  readonly #call: ClientCall;
  #headDelivered = false;
  #expectedSeq = 0;
  #seq = 0;
  #bodyError: CourierError | undefined;
  #protocolError: CourierError | undefined;

  constructor(address: string, request: InvokeRequest, sink: ResponseSink, call: ClientCall) {
    this.#address = address;
    this.#request = request;
    this.#sink = sink;
    this.#call = call;
  }

  pause(): void {
    this.#call.pause();
  }

  resume(): void {
    this.#call.resume();
  }

  start(): void {
    const req = this.#request;
    const call = this.#call;
    call.setReader({
      headers: () => {},
      message: (bytes) => this.#onMessage(bytes),
      end: (result) => this.#onEnd(result),
    });
    const leading = internalInvokeRequestStreamCodec.encode({
        request: {
          ver: API_VERSION_V1,
          metadata: req.metadata,
          message: {
            method: req.method,
            contentType: req.contentType,
            // A gRPC caller's call without an http_extension travels without one.
            ...(req.verb === '' ? {} : { httpExtension: { verb: verbToEnum(req.verb), querystring: req.query } }),
            ...(req.dataTypeUrl === undefined || req.dataTypeUrl === '' ? {} : { data: { typeUrl: req.dataTypeUrl } }),
          },
        },
      });
    const body = req.body;
    if (body === null) {
      call.sendMessage(leading);
      call.end();
      return;
    }
    if (Buffer.isBuffer(body)) {
      // The whole body is here: request and payload travel in one message (as Dapr sends its first chunk).
      call.sendMessageParts([leading, encodePayloadChunkHead(body.length, this.#seq++), body]);
      call.end();
      return;
    }
    call.sendMessage(leading);
    body.on('data', (chunk: Buffer) => {
      if (!call.sendMessageParts([encodePayloadChunkHead(chunk.length, this.#seq++), chunk])) {
        body.pause();
        call.onDrain(() => body.resume());
      }
    });
    body.once('end', () => call.end());
    body.once('error', (err) => {
      this.#bodyError = CourierError.from(err, 'ERR_BODY_READ');
      call.cancel();
    });
  }

  #onMessage(bytes: Buffer): void {
    if (this.#protocolError !== undefined) return;
    let msg;
    try {
      msg = internalInvokeResponseStreamCodec.decode(bytes);
    } catch (err) {
      this.#abort(`the target sidecar sent a malformed response: ${(err as Error).message}`);
      return;
    }
    if (!this.#headDelivered) {
      const response = msg.response;
      if (response === null || response === undefined) {
        this.#abort('the target sidecar sent a body chunk before the response');
        return;
      }
      // The app's Content-Length is the sink's to set: taken out while the headers are copied.
      const { metadata: headers, removed: declared } = withoutKey(response.headers ?? {}, 'Content-Length');
      this.#headDelivered = true;
      this.#sink.head(responseHead(response, headers, declared), this);
    } else if (msg.response !== null && msg.response !== undefined) {
      this.#abort('request/response metadata found in non-leading chunk');
      return;
    }
    const payload = msg.payload;
    if (payload === null || payload === undefined) return;
    const seq = payload.seq ?? 0;
    if (seq !== this.#expectedSeq) {
      this.#abort(`invalid sequence number received: ${seq} (expected: ${this.#expectedSeq})`);
      return;
    }
    this.#expectedSeq++;
    const data = payload.data;
    if (data !== undefined && data.length > 0) this.#sink.data(Buffer.from(data.buffer, data.byteOffset, data.length));
  }

  #abort(reason: string): void {
    this.#protocolError = new CourierError('ERR_DIRECT_INVOKE', reason);
    this.#call.cancel();
  }

  #onEnd(result: CallResult): void {
    if (this.#protocolError !== undefined) {
      this.#sink.error(this.#protocolError);
      return;
    }
    if (this.#bodyError !== undefined) {
      this.#sink.error(this.#bodyError);
      return;
    }
    if (result.code === GrpcStatus.OK) {
      if (this.#headDelivered) this.#sink.end();
      else this.#sink.error(new CourierError('ERR_DIRECT_INVOKE', 'the target sidecar ended the call without a response'));
      return;
    }
    this.#sink.error(this.#classify(result));
  }

  #classify(result: CallResult): CourierError {
    const where = `sidecar at ${this.#address}`;
    if (this.#request.signal.aborted) return cancelledError();
    switch (result.transport) {
      case 'connect-failed':
        return new CourierError('ERR_DIRECT_INVOKE', result.message, { grpcCode: GrpcStatus.UNAVAILABLE, retry: 'safe' });
      case 'refused':
        return new CourierError('ERR_DIRECT_INVOKE', `the ${where} refused the call: ${result.message}`, { grpcCode: GrpcStatus.UNAVAILABLE, retry: 'safe' });
      case 'reset':
        return new CourierError('ERR_DIRECT_INVOKE', `the connection to the ${where} broke: ${result.message}`, {
          grpcCode: GrpcStatus.UNAVAILABLE,
          retry: 'idempotent',
        });
      default:
        break;
    }
    const message = result.message === '' ? grpcStatusName(result.code) : result.message;
    switch (result.code) {
      case GrpcStatus.UNAVAILABLE:
      case GrpcStatus.UNAUTHENTICATED:
        return new CourierError('ERR_DIRECT_INVOKE', message, { grpcCode: result.code as GrpcStatus, ...(result.headersReceived ? {} : { retry: 'safe' as const }) });
      case GrpcStatus.PERMISSION_DENIED:
        return new CourierError('ERR_DIRECT_INVOKE', message, { grpcCode: result.code as GrpcStatus, httpStatus: 403 });
      case GrpcStatus.RESOURCE_EXHAUSTED:
        return new CourierError('ERR_BODY_TOO_LARGE', message);
      case GrpcStatus.DEADLINE_EXCEEDED:
        return new CourierError('ERR_DIRECT_INVOKE', message, { grpcCode: result.code as GrpcStatus, httpStatus: 504 });
      default:
        return new CourierError('ERR_DIRECT_INVOKE', message, { grpcCode: result.code as GrpcStatus });
    }
  }
}
