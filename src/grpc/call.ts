import type { PeerCertificate } from 'node:tls';
import type { CallSignal } from '../invoke/call-signal.js';
import type { Metadata, ReceivedMetadata } from './metadata.js';
import type { CallStatus } from './status.js';
import type { Slotted } from '../util/call-tables.js';

// The call objects the rest of Courier works with, whatever carries them: gRPC over HTTP/2
// (`Http2ClientCall`, `Http2ServerCall`) or the Courier-to-Courier lane (`src/lane/`). Both give the
// same guarantees (ordering, backpressure, cancellation, deadlines, failure classification).

/**
 * What happened to a call that did not end with a status from the server. The layer above decides
 * from it whether sending the request again is safe:
 * - `connect-failed`: no connection could be established (refused, timeout, DNS, TLS); nothing was sent.
 * - `refused`: the server guaranteed it did not process the call: a refusal of the stream, a GOAWAY
 *   whose last stream id is below the call's, or the connection closed before the call was sent.
 * - `reset`: the call or its connection broke after the request may have been processed (a reset by
 *   the server, connection lost mid-call, keepalive timeout). The outcome is unknown.
 */
export type TransportFailure = 'connect-failed' | 'refused' | 'reset';

/**
 * How a call ended. With `transport` absent, `code`/`message` come from the server's status (or were
 * synthesized from a non-gRPC response, or are local: DEADLINE_EXCEEDED, CANCELLED, RESOURCE_EXHAUSTED
 * for size limits). Codes for transport failures: UNAVAILABLE for `connect-failed`, `refused` and a
 * lost connection; for a `reset` by the peer, the spec's mapping of the reset code (CANCEL → CANCELLED,
 * ENHANCE_YOUR_CALM → RESOURCE_EXHAUSTED, INADEQUATE_SECURITY → PERMISSION_DENIED, others → INTERNAL).
 */
export interface CallResult {
  readonly code: number;
  readonly message: string;
  /** Trailers as received (including `grpc-status`/`grpc-message`; see `customMetadata`); empty if none. */
  readonly trailers: ReceivedMetadata;
  /** True when the server sent response headers (it accepted the call; not for Trailers-Only). */
  readonly headersReceived: boolean;
  readonly transport?: TransportFailure;
}

/** Receives a call's response. `end` is called exactly once, last. */
export interface ClientReader {
  /** Response headers as received (custom metadata, plus `:status` and `content-type` over HTTP/2); not for Trailers-Only. */
  headers(metadata: ReceivedMetadata): void;
  message(bytes: Buffer): void;
  end(result: CallResult): void;
}

export interface CallOptions {
  /** Absolute deadline, epoch ms. Sent to the server; the call fails DEADLINE_EXCEEDED when it passes. */
  readonly deadline?: number | undefined;
  /** Aborting cancels the call; it ends with CANCELLED. */
  readonly signal?: CallSignal | undefined;
}

/**
 * One outbound call. Set a reader right away (the response is only read once a reader is set), then
 * send messages and `end()` (half-close).
 *
 * Backpressure works both ways: `sendMessage` returns false when the call's buffer is full (wait for
 * `onDrain`), and `pause()` stops reading so flow control holds the server back. Sends after the call
 * finished are no-ops and never throw. Failures are reported through the reader's `end`, never thrown.
 */
export interface ClientCall {
  /** The method path, `/package.Service/Method`. */
  readonly path: string;
  /** Starts delivering the response to `reader`. Call once, right after creating the call. */
  setReader(reader: ClientReader): void;
  /** Stops delivering messages, and reading them, until `resume`. */
  pause(): void;
  /** Resumes delivery: first the messages already received, then reading. */
  resume(): void;
  /**
   * Sends one message. Returns false when the buffer is full: wait for `onDrain` (the message was still
   * queued). The bytes are not copied: do not modify them afterwards. A message over the send limit
   * fails the call with RESOURCE_EXHAUSTED. After the call finished, or after `end()`, a no-op returning true.
   */
  sendMessage(bytes: Uint8Array): boolean;
  /** Sends one message given as consecutive pieces, never concatenated. Same return value and limits as `sendMessage`. */
  sendMessageParts(parts: readonly Uint8Array[]): boolean;
  /** Calls `callback` once the buffer has room (on the next tick if it has room now); not once the call finished. */
  onDrain(callback: () => void): void;
  /** Half-closes the call: no more messages from this side. */
  end(): void;
  /** Cancels the call. The reader's `end` gets CANCELLED. No-op once finished. */
  cancel(): void;
}

/** Anything a call can be opened on: a `GrpcChannel`, a lane channel, or a wrapper that adds credentials. */
export interface CallOpener {
  call(path: string, metadata: Metadata, options: CallOptions): ClientCall;
}

/**
 * Receives a call's inbound messages in order. After `setReader`, exactly one of `end` (the client
 * half-closed: no more messages) or `error` (cancellation, deadline, protocol violation, size limit,
 * server shutdown) is called, unless the handler ends the call first, which stops delivery silently.
 * Once `end` was called, a later cancellation is signalled through `ServerCall.signal` only.
 */
export interface ServerReader {
  message(bytes: Buffer): void;
  end(): void;
  error(status: CallStatus): void;
}

/** The client end of a call's connection: its address and, with mutual TLS, its verified certificate. */
export interface Peer {
  /** Remote IP address; '' when the socket was already gone when the connection was accepted. */
  readonly address: string;
  readonly port: number;
  /** 'IPv4' or 'IPv6'. */
  readonly family: string;
  /** On a TLS connection whose client certificate was verified: that certificate. */
  readonly certificate?: PeerCertificate | undefined;
}

/**
 * One inbound call on the server: request metadata, a push reader for the client's messages with real
 * backpressure, and the response side (headers, messages, status).
 *
 * Every send after the call finished (ended, cancelled, deadline, shutdown) is a no-op and never
 * throws, so a handler racing a cancellation needs no guards; it should watch `signal` to stop work.
 */
export interface ServerCall extends Slotted {
  /** The method path, `/package.Service/Method`. */
  readonly path: string;
  /** Absolute deadline (epoch ms) the client set, if any. */
  readonly deadline: number | undefined;
  /**
   * Request metadata with repeated fields as arrays (`-bin` values as base64 text); over HTTP/2 also
   * the pseudo-headers and gRPC's own fields. Use `customMetadata(call.metadata)` for the application's part.
   */
  readonly metadata: ReceivedMetadata;
  readonly peer: Peer;
  /**
   * Aborts when the client cancels, the connection is lost, the deadline passes, the transport fails
   * the call (size limit, protocol error), or the server shuts down; not when the call completes
   * normally. The reason is a CourierError whose `grpcCode` says why. Created on first access.
   */
  readonly signal: CallSignal;
  /** The call's final gRPC status code once decided (ended, failed, cancelled); undefined while it runs. */
  readonly statusCode: number | undefined;
  /** True once the call is over (ended by the handler, cancelled, or failed). */
  readonly finished: boolean;
  /** When the call arrived (`performance.now()`), for its latency in the metrics and the API log. */
  readonly startedAt: number;
  /** True for a call that came over the Courier-to-Courier lane (its caller is a Courier sidecar). */
  readonly viaLane?: boolean;
  /** Starts delivering inbound messages to `reader` (once). Until then nothing is read. */
  setReader(reader: ServerReader): void;
  pause(): void;
  resume(): void;
  /** Sends the response headers with `metadata`. Optional: the first message sends them. No-op once sent. */
  sendHeaders(metadata?: Metadata): void;
  /** Sends one message; false when the buffer is full (wait for `onDrain`). Over the send limit: RESOURCE_EXHAUSTED. */
  sendMessage(bytes: Uint8Array): boolean;
  sendMessageParts(parts: readonly Uint8Array[]): boolean;
  onDrain(callback: () => void): void;
  /** Ends the call with `status` and optional custom `trailers` (Trailers-Only when nothing was sent). */
  end(status: CallStatus, trailers?: Metadata): void;
  /** Server shutdown after the grace period: aborts `signal`, fails the reader, resets the call (outcome unknown to the client). */
  cancel(status: CallStatus): void;
}
