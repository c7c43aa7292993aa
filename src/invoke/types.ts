import type { Readable } from 'node:stream';
import { CourierError, GrpcStatus } from '../errors/index.js';
import type { Any } from '../proto/index.js';
import type { CallSignal } from './call-signal.js';
import type { Metadata } from './headers.js';
import type { AppIdentity } from './identity.js';
import type { TraceContext } from '../observability/tracing/context.js';
import type { SpiffeId } from '../security/spiffe.js';

/**
 * One invocation as it flows through a sidecar: from the HTTP API (or the internal server, at the
 * callee) through the pipeline to an app channel or another sidecar. Bodies are streams end to end;
 * nothing on this path holds a whole body in memory, apart from small bodies of known length (up to
 * `WHOLE_BODY_LIMIT_BYTES`), which are read whole first: one write each way, and nothing to replay.
 */
export interface InvokeRequest<Target = AppIdentity> {
  /**
   * What is being called: an app and namespace (the default, and always so past the invoker), or
   * a non-Dapr HTTP service (see `InvokeTarget`).
   */
  readonly target: Target;
  /** The app making the call (this sidecar's app at the caller; the verified caller at the callee). */
  readonly caller: AppIdentity;
  /** The caller's SPIFFE ID, from its verified certificate: at the callee with mTLS only. */
  readonly callerSpiffe?: SpiffeId | undefined;
  /** The normalized method: no leading `/`, already checked by `normalizeMethod`. */
  readonly method: string;
  /**
   * The HTTP verb in upper case (`GET`, `POST`, …). From a gRPC caller it is whatever its
   * `http_extension` said: `NONE` (or `CONNECT`) as given, and `''` when there was no extension. Only an
   * HTTP app needs a real verb; its channel refuses the others as Dapr does.
   */
  readonly verb: string;
  /** The raw query string, without `?`; empty when none. */
  readonly query: string;
  /** The request's Content-Type; empty when none. */
  readonly contentType: string;
  /** `InvokeRequest.data.type_url` from a gRPC caller (a protobuf message's type); absent for raw bodies. */
  readonly dataTypeUrl?: string | undefined;
  /** Headers to forward, by canonical name (see headers.ts). Stages may add identity headers. */
  readonly metadata: Metadata;
  /**
   * The body, or null for a request without one: a stream (consumed at most once per attempt), or the
   * whole body when it is small and was already read (see `WHOLE_BODY_LIMIT_BYTES`).
   */
  readonly body: Readable | Buffer | null;
  /** The exact body length when known (Content-Length); undefined for a streamed body of unknown length. */
  readonly contentLength: number | undefined;
  /** Aborted when the caller goes away or gives up; every stage stops work when it fires. */
  readonly signal: CallSignal;
  /** The address the call came from (the app, at the caller's sidecar), for Forwarded headers. */
  readonly clientAddress: string;
  /**
   * The span of this call in this sidecar (its context is what the next hop sees as parent); undefined
   * when tracing is off, and then trace headers travel as the caller sent them.
   */
  readonly trace?: TraceContext | undefined;
}

/**
 * A request body of known length up to this size is read whole before it is sent on (HTTP API and
 * internal server): it then travels in one write, goes to the app with one write, and can be sent
 * again by a retry without being kept aside. Longer bodies, and bodies of unknown length, stream.
 */
export const WHOLE_BODY_LIMIT_BYTES = 64 * 1024;

/** The status line and headers of a response. */
export interface ResponseHead {
  /**
   * The app's status: an HTTP status (≥ 100) from an HTTP app, a gRPC status code (< 100) from a gRPC
   * app (Dapr's `IsHTTPResponse` rule). Callers translate it with `translate.ts`.
   */
  readonly status: number;
  /** A gRPC app's status message (with a non-OK `status`). */
  readonly statusMessage?: string | undefined;
  /** A gRPC app's status details (`google.rpc.Status.details`), passed on unchanged. */
  readonly statusDetails?: readonly Any[] | undefined;
  /** A gRPC app's trailing metadata, by the same naming rules as `headers`. */
  readonly trailers?: Metadata | undefined;
  /** `InvokeResponse.data.type_url` from a gRPC app; absent for raw bodies. */
  readonly dataTypeUrl?: string | undefined;
  /** Response headers by canonical name, without hop-by-hop headers and Content-Length. */
  readonly headers: Metadata;
  /** The response's Content-Type; empty when none. */
  readonly contentType: string;
  /**
   * The exact length of the body that follows, when known. Only set when it is certain
   * (the whole body was read, or the response to HEAD/204/304 declared it).
   */
  readonly contentLength: number | undefined;
}

/** Lets a sink slow down the producer of a response body. */
export interface FlowControl {
  pause(): void;
  resume(): void;
}

/**
 * Where a response goes, one event at a time (undici's dispatch-handler shape): `head` once, then
 * `data` for each body chunk, then `end`; or `error` at any point (before `head`: the call failed;
 * after: the body was cut short). Exactly one of `end` or `error` is called.
 */
export interface ResponseSink {
  head(head: ResponseHead, flow: FlowControl): void;
  data(chunk: Buffer): void;
  end(): void;
  error(error: CourierError): void;
}

/** Anything that can carry out an invocation: the pipeline, an app channel, a remote transport. */
export interface Invoke<Target = AppIdentity> {
  invoke(request: InvokeRequest<Target>, sink: ResponseSink): void;
}

/**
 * A non-Dapr HTTP service being called (Dapr's "external" invocation): a loaded `HTTPEndpoint`
 * resource, by name, or an `http://` / `https://` URL given in place of an app id. The request goes to
 * `origin` + the path `basePath` joined with `/<method>`, plus `?<query>`.
 */
export interface ExternalTarget {
  readonly kind: 'endpoint' | 'url';
  /** The endpoint's name, or the URL as the caller wrote it: how messages name the target. */
  readonly id: string;
  /** `scheme://host[:port]` (scheme and host in lower case, default ports omitted). */
  readonly origin: string;
  /** The path of the base URL (`/` when it has none), percent-encoded as in a URL. */
  readonly basePath: string;
}

/** What the APIs can call: an app (`appid` or `appid.namespace`), or an external HTTP service. */
export type InvokeTarget = AppIdentity | ExternalTarget;

export function isExternalTarget(target: InvokeTarget): target is ExternalTarget {
  return 'origin' in target;
}

/** RFC 9110 §9.2.2: methods whose repetition has the same effect as one request. */
export const idempotentVerbs: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** The error of a call whose caller went away or gave up. */
export function cancelledError(): CourierError {
  return new CourierError('ERR_DIRECT_INVOKE', 'the call was cancelled by the caller', { grpcCode: GrpcStatus.CANCELLED });
}
