import { hostname } from 'node:os';
import { CourierError } from '../errors/index.js';
import type { Logger } from '../observability/logging/index.js';
import type { SidecarMetrics } from '../observability/metrics/sidecar-metrics.js';
import type { AddressBook } from './address-book.js';
import { addForwardedHeaders, DESTINATION_APP_ID, setIdentityHeaders } from './headers.js';
import { sameIdentity, type AppIdentity } from './identity.js';
import type { RetryPolicies, RetryPolicy } from './retry.js';
import { RetryingCall, type AttemptOutcome, type AttemptSender } from './retrying-call.js';
import type { RetryBudgets } from './retry-budget.js';
import { requestDeadline } from './deadline.js';
import { PolicyCall } from '../resiliency/policy-call.js';
import type { CallPolicy } from '../resiliency/policies.js';
import {
  cancelledError,
  type FlowControl,
  type ResponseHead,
  isExternalTarget,
  type ExternalTarget,
  type Invoke,
  type InvokeRequest,
  type InvokeTarget,
  type ResponseSink,
} from './types.js';

/** Sends an invocation to another sidecar's internal server. */
export interface RemoteTransport {
  /** Calls the sidecar at `address` (`host:port` or `[v6]:port`). */
  invoke(address: string, request: InvokeRequest, sink: ResponseSink): void;
  close(): Promise<void>;
}

export interface InvokerOptions {
  readonly self: AppIdentity;
  /** This sidecar's own address, for the `by=` of Forwarded headers. */
  readonly sidecarAddress: string;
  readonly appChannel: Invoke;
  readonly addressBook: AddressBook;
  readonly transport: RemoteTransport;
  /** Calls to non-Dapr HTTP services (HTTPEndpoint resources and URL targets). */
  readonly external: Invoke<ExternalTarget>;
  readonly retries: RetryPolicies;
  /** How much of a request body is kept so a safe retry can send it again. */
  readonly replayLimitBytes: number;
  readonly logger: Logger;
  /** Service-invocation metrics; undefined when metrics are off. */
  readonly metrics?: SidecarMetrics | undefined;
  /** The Resiliency policies in force, read per call (they are replaced when the resources change). */
  readonly resiliency?: (() => OutboundPolicies | undefined) | undefined;
  /** The retry budget of each target; undefined: retries are not budgeted. */
  readonly budgets?: RetryBudgets | undefined;
}

/** The seam for Resiliency policies (src/resiliency), loaded only when a Resiliency resource is. */
export interface OutboundPolicies {
  /** The built-in retries as the resources tune them (`DaprBuiltInServiceRetries`). */
  readonly builtIn: RetryPolicy | undefined;
  /**
   * Starts `request` to `targetId` under the policy that applies to it, with `sender` making each
   * attempt; false when no policy applies (the caller then makes it with the built-in retries).
   */
  run<Target>(targetId: string, request: InvokeRequest<Target>, sink: ResponseSink, sender: AttemptSender<Target>, deadline: number | undefined): boolean;
}

/**
 * The invocation pipeline on the caller's side (Dapr's `direct_messaging.go`): a call to an external
 * HTTP service goes to it directly; a call to this sidecar's own app id and namespace goes straight
 * to the local app; any other goes to an instance of the target found by name resolution. Calls
 * that leave the sidecar get the retries of their policy (the built-in ones unless configured).
 */
export class Invoker implements Invoke<InvokeTarget> {
  readonly #options: InvokerOptions;
  readonly #hostname = hostname();

  constructor(options: InvokerOptions) {
    this.#options = options;
  }

  invoke(request: InvokeRequest<InvokeTarget>, sink: ResponseSink): void {
    const options = this.#options;
    const target = request.target;
    if (isExternalTarget(target)) {
      // No identity or Forwarded headers go to a service outside the Dapr world (see docs/external-endpoints.md).
      const external = request as InvokeRequest<ExternalTarget>;
      const deadline = this.#deadline(request, sink);
      if (deadline === null) return;
      this.#send(target.id, external, sink, new ExternalAttempts(options.external, target), options.retries.forCall(target, request.method), deadline);
      return;
    }
    const app = request as InvokeRequest;
    const deadline = this.#deadline(request, sink);
    if (deadline === null) return;
    const { self } = options;
    if (sameIdentity(target, self)) {
      setIdentityHeaders(request.metadata, self, self.appId);
      options.appChannel.invoke(app, sink);
      return;
    }
    setIdentityHeaders(request.metadata, request.caller, target.appId);
    addForwardedHeaders(request.metadata, request.clientAddress, options.sidecarAddress, this.#hostname);
    request.metadata[DESTINATION_APP_ID] = { values: [target.appId] };
    const metrics = options.metrics;
    if (metrics !== undefined) {
      metrics.requestSent(target.appId);
      sink = new MeteredSink(sink, metrics, app);
    }
    this.#send(target.appId, app, sink, new SidecarAttempts(options), options.retries.forCall(target, request.method), deadline);
  }

  /** The caller's deadline (`Courier-Timeout`); null when the header is malformed (the call has been failed). */
  #deadline(request: InvokeRequest<InvokeTarget>, sink: ResponseSink): number | undefined | null {
    try {
      return requestDeadline(request);
    } catch (err) {
      sink.error(CourierError.from(err, 'ERR_MALFORMED_REQUEST'));
      return null;
    }
  }

  /** Makes a call that leaves this sidecar: under its Resiliency policy when one applies, else with the built-in retries. */
  #send<Target>(targetId: string, request: InvokeRequest<Target>, sink: ResponseSink, sender: AttemptSender<Target>, builtIn: RetryPolicy, deadline: number | undefined): void {
    const options = this.#options;
    const policies = options.resiliency?.();
    if (policies?.run(targetId, request, sink, sender, deadline) === true) return;
    const policy = policies?.builtIn ?? builtIn;
    const budget = options.budgets?.for(targetId);
    if (deadline === undefined) {
      new RetryingCall(request, sink, sender, policy, options.replayLimitBytes, options.logger, budget).start();
      return;
    }
    // A deadline needs what a policy call does (attempts that can be cut short, waits that end early).
    new PolicyCall(request, sink, sender, {
      policy: NO_POLICY,
      builtIn: policy,
      budget,
      replayLimitBytes: options.replayLimitBytes,
      logger: options.logger,
      metrics: undefined,
      deadline,
    }).start();
  }
}

/** What a call with a deadline but no Resiliency policy runs under: the built-in retries only (nothing is recorded as a policy). */
const NO_POLICY: CallPolicy = {
  policies: { resource: '', timeoutMs: undefined, timeoutName: undefined, retry: undefined, breaker: undefined, breakerCacheSize: 0, named: false },
  breaker: undefined,
  metricsTarget: '',
  namespace: '',
};

/** The internal method every call to another sidecar uses (the gRPC client metrics' method label). */
const CALL_LOCAL_STREAM_METHOD = '/dapr.proto.internals.v1.ServiceInvocation/CallLocalStream';

const NONE_TRIED: ReadonlySet<string> = new Set();

/** The attempts of a call to another app: each on an instance picked by the address book, skipping those tried. */
class SidecarAttempts implements AttemptSender<AppIdentity> {
  readonly #options: InvokerOptions;
  /** Addresses that failed this call, made only when one does. */
  #tried: Set<string> | undefined;
  #address = '';
  #target: AppIdentity | undefined;
  /** When the attempt in flight was sent (for the balancer's latency figures). */
  #sentAt = 0;

  constructor(options: InvokerOptions) {
    this.#options = options;
  }

  send(request: InvokeRequest, sink: ResponseSink): void {
    this.#target = request.target;
    const book = this.#options.addressBook;
    const tried = this.#tried ?? NONE_TRIED;
    // A fresh cached answer (the common case) is used at once; otherwise the resolver is asked.
    const cached = book.pickCached(request.target, tried);
    if (cached !== undefined) {
      this.#sendTo(cached, request, sink);
      return;
    }
    book.pick(request.target, tried).then(
      (address) => {
        if (request.signal.aborted) {
          sink.error(cancelledError());
          return;
        }
        this.#sendTo(address, request, sink);
      },
      // Resolution failures carry no retry safety: they end the call.
      (err: unknown) => sink.error(CourierError.from(err, 'ERR_DIRECT_INVOKE')),
    );
  }

  #sendTo(address: string, request: InvokeRequest, sink: ResponseSink): void {
    this.#address = address;
    this.#sentAt = performance.now();
    this.#options.addressBook.started(address);
    this.#options.transport.invoke(address, request, sink);
  }

  settled(outcome: AttemptOutcome): void {
    if (this.#sentAt === 0) return;
    this.#options.addressBook.finished(this.#address, performance.now() - this.#sentAt, outcome);
    this.#sentAt = 0;
  }

  hasUntried(): boolean {
    if (this.#target === undefined) return false;
    // The attempt that just failed counts as tried (whether or not `retrying` has recorded it yet).
    return this.#options.addressBook.hasUntried(this.#target, this.#tried ?? NONE_TRIED, this.#address);
  }

  retrying(): void {
    if (this.#target !== undefined) this.#options.metrics?.retried(this.#target.appId);
    (this.#tried ??= new Set()).add(this.#address);
    this.#options.addressBook.eject(this.#address, this.#target);
  }

  describeAttempt(): string {
    return this.#address;
  }
}

/**
 * The caller's record of a call to another app (Dapr's `res_recv_total` and `res_recv_latency_ms`, and
 * the mesh views' outbound traffic with them): the answer's status and round trip when its head
 * arrives, or the failure's status. While somebody taps, the call is shown then too.
 */
class MeteredSink implements ResponseSink {
  readonly #sink: ResponseSink;
  readonly #metrics: SidecarMetrics;
  readonly #request: InvokeRequest;
  readonly #started = performance.now();
  #answered = false;

  constructor(sink: ResponseSink, metrics: SidecarMetrics, request: InvokeRequest) {
    this.#sink = sink;
    this.#metrics = metrics;
    this.#request = request;
  }

  head(head: ResponseHead, flow: FlowControl): void {
    this.#answered = true;
    const ms = performance.now() - this.#started;
    const metrics = this.#metrics;
    const request = this.#request;
    metrics.responseReceived(request.target.appId, head.status, ms);
    if (metrics.tap.active) metrics.tap.invocation('outbound', request, request.verb, head.status, ms, '');
    this.#sink.head(head, flow);
  }

  data(chunk: Buffer): void {
    this.#sink.data(chunk);
  }

  end(): void {
    this.#metrics.grpcClientCall(CALL_LOCAL_STREAM_METHOD, 0, performance.now() - this.#started);
    this.#sink.end();
  }

  error(error: CourierError): void {
    const ms = performance.now() - this.#started;
    if (!this.#answered) {
      this.#answered = true;
      const metrics = this.#metrics;
      const request = this.#request;
      metrics.responseReceived(request.target.appId, error.httpStatus, ms);
      // No answer came: the tap shows status 0 and Courier's error code.
      if (metrics.tap.active) metrics.tap.invocation('outbound', request, request.verb, 0, ms, error.code);
    }
    this.#metrics.grpcClientCall(CALL_LOCAL_STREAM_METHOD, error.grpcCode === 0 ? 2 : error.grpcCode, ms);
    this.#sink.error(error);
  }
}

/** The attempts of a call to an external HTTP service: each through its connection pool. */
class ExternalAttempts implements AttemptSender<ExternalTarget> {
  readonly #channel: Invoke<ExternalTarget>;
  readonly #target: ExternalTarget;

  constructor(channel: Invoke<ExternalTarget>, target: ExternalTarget) {
    this.#channel = channel;
    this.#target = target;
  }

  send(request: InvokeRequest<ExternalTarget>, sink: ResponseSink): void {
    this.#channel.invoke(request, sink);
  }

  retrying(): void {
    // A connection that failed is already gone from the pool; the next attempt opens a new one.
  }

  describeAttempt(): string {
    return this.#target.origin;
  }
}
