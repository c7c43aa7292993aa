import type { Readable } from 'node:stream';
import { CourierError, GrpcStatus } from '../errors/index.js';
import { ReplayableBody } from '../invoke/body.js';
import { CallAbort } from '../invoke/call-signal.js';
import { deadlineError, setRemaining } from '../invoke/deadline.js';
import type { RetryBudget } from '../invoke/retry-budget.js';
import type { RetryPolicy } from '../invoke/retry.js';
import { attemptOutcome, type AttemptSender } from '../invoke/retrying-call.js';
import { cancelledError, type FlowControl, type InvokeRequest, type ResponseHead, type ResponseSink } from '../invoke/types.js';
import type { Logger } from '../observability/logging/index.js';
import type { SidecarMetrics } from '../observability/metrics/sidecar-metrics.js';
import { formatDuration } from '../util/duration.js';
import type { CallPolicy } from './policies.js';
import { hasCode } from './codes.js';

export interface PolicyCallOptions {
  readonly policy: CallPolicy;
  /** The built-in retries, which also run unless the app has a `targets.apps` entry (as in Dapr). */
  readonly builtIn: RetryPolicy;
  readonly budget: RetryBudget | undefined;
  readonly replayLimitBytes: number;
  readonly logger: Logger;
  readonly metrics: SidecarMetrics | undefined;
  /** The caller's deadline (`Courier-Timeout`), a `performance.now()` time: it bounds every attempt and every wait. */
  readonly deadline?: number | undefined;
}

/** Dapr's exponential backoff (cenkalti/backoff defaults): 500 ms first, ×1.5 each time, ±50 % random. */
const EXPONENTIAL_INITIAL_MS = 500;
const EXPONENTIAL_MULTIPLIER = 1.5;
const EXPONENTIAL_RANDOMIZATION = 0.5;

/**
 * One call under a Resiliency policy: each attempt passes the circuit breaker and is bounded by the
 * timeout; a failed attempt is tried again as the retry policy says (and, for failures that never
 * reached the app, as the built-in retries say), within the retry budget. An attempt fails with an
 * error, a timeout, or an answer whose status is below 200 or above 399 (an HTTP app) or not OK (a
 * gRPC app). An answer that will be retried is read and dropped; the last attempt's answer reaches
 * the caller unchanged. Nothing is retried once part of an answer has been passed on, after the
 * caller gave up, or when the request body could not be kept whole for a replay (a body of unknown
 * length, or one larger than the replay limit).
 */
export class PolicyCall<Target> {
  readonly #request: InvokeRequest<Target>;
  readonly #sink: ResponseSink;
  readonly #sender: AttemptSender<Target>;
  readonly #options: PolicyCallOptions;
  readonly #body: ReplayableBody | undefined;
  /** Retries made by the policy, and by the built-in rules. */
  #retries = 0;
  #builtInRetries = 0;
  /** Counts attempts; events of an earlier attempt are ignored. */
  #attempt = 0;
  #abort: CallAbort | undefined;
  #breakerToken: number | undefined;
  #timeout: NodeJS.Timeout | undefined;
  #deadlineTimer: NodeJS.Timeout | undefined;
  /** The wait chosen when an answer was dropped for a retry. */
  #plannedWaitMs: number | undefined;
  #wait: NodeJS.Timeout | undefined;
  /** The answer of the current attempt is being read and dropped before a retry. */
  #draining = false;
  #passed = false;
  #done = false;

  constructor(request: InvokeRequest<Target>, sink: ResponseSink, sender: AttemptSender<Target>, options: PolicyCallOptions) {
    this.#request = request;
    this.#sink = sink;
    this.#sender = sender;
    this.#options = options;
    if (request.body !== null && !Buffer.isBuffer(request.body)) this.#body = new ReplayableBody(request.body, options.replayLimitBytes);
  }

  start(): void {
    this.#options.budget?.called();
    this.#request.signal.addEventListener('abort', this);
    const deadline = this.#options.deadline;
    if (deadline !== undefined) this.#deadlineTimer = setTimeout(() => this.#deadlinePassed(), Math.max(0, deadline - performance.now()));
    this.#send();
  }

  /** The caller's deadline passed: whatever is under way ends, with DEADLINE_EXCEEDED if nothing was passed on yet. */
  #deadlinePassed(): void {
    this.#deadlineTimer = undefined;
    if (this.#done) return;
    const error = deadlineError(describeTarget(this.#request.target));
    if (this.#wait !== undefined) {
      clearTimeout(this.#wait);
      this.#wait = undefined;
    }
    this.#attempt++;
    this.#abort?.abort(error);
    if (this.#passed) {
      this.#finish();
      this.#sink.error(error);
      return;
    }
    this.#sender.settled?.('cancelled');
    this.#fail(error);
  }

  /** The caller went away: the attempt in flight (or the wait for the next) ends. */
  handleEvent(): void {
    if (this.#wait !== undefined) {
      clearTimeout(this.#wait);
      this.#wait = undefined;
      this.#fail(cancelledError());
      return;
    }
    this.#abort?.abort(this.#request.signal.reason);
  }

  #send(): void {
    this.#wait = undefined;
    const request = this.#request;
    if (request.signal.aborted) {
      this.#fail(cancelledError());
      return;
    }
    const { policy } = this.#options;
    const breaker = policy.breaker;
    if (breaker !== undefined) {
      const token = breaker.admit();
      if (typeof token !== 'number') {
        this.#fail(
          new CourierError('ERR_DIRECT_INVOKE', `fail to invoke, id: ${describeTarget(request.target)}, err: circuit breaker is ${token === 'open' ? 'open' : 'half-open and busy'}`, {
            grpcCode: GrpcStatus.UNAVAILABLE,
          }),
        );
        return;
      }
      this.#breakerToken = token;
    }
    const attempt = ++this.#attempt;
    this.#draining = false;
    const abort = new CallAbort();
    this.#abort = abort;
    const body: Readable | Buffer | null = this.#body === undefined ? request.body : this.#body.open();
    const timeoutMs = policy.policies.timeoutMs;
    // The time left travels with the attempt, so the target's sidecar stops its app's work when it runs out.
    if (this.#options.deadline !== undefined) setRemaining(request, this.#options.deadline);
    if (timeoutMs !== undefined) {
      this.#timeout = setTimeout(() => this.#timedOut(attempt, timeoutMs), timeoutMs);
    }
    this.#sender.send({ ...request, body, signal: abort }, new AttemptSink(this, attempt));
  }

  #timedOut(attempt: number, timeoutMs: number): void {
    this.#timeout = undefined;
    if (attempt !== this.#attempt || this.#done) return;
    const { policy, metrics } = this.#options;
    metrics?.resiliencyActivated(policy.policies.resource, policy.namespace, 'timeout', policy.metricsTarget);
    const error = new CourierError('ERR_DIRECT_INVOKE', `fail to invoke, id: ${describeTarget(this.#request.target)}, err: timeout after ${formatDuration(timeoutMs)}`, {
      grpcCode: GrpcStatus.DEADLINE_EXCEEDED,
    });
    // The attempt's own events (its cancellation) are ignored from here on.
    this.#attempt++;
    this.#abort?.abort(error);
    if (this.#draining) {
      // The answer being dropped took too long: retry now, as its failure is already counted.
      this.#retry(error, 'policy');
      return;
    }
    this.#sender.settled?.('failure');
    this.#attemptFailed(error);
  }

  /** @internal */
  head(attempt: number, head: ResponseHead, flow: FlowControl): void {
    if (attempt !== this.#attempt || this.#done) {
      flow.resume();
      return;
    }
    const outcome = attemptOutcome(head.status);
    this.#sender.settled?.(outcome);
    const failed = head.status < 100 ? head.status !== 0 : head.status < 200 || head.status > 399;
    const breaker = this.#options.policy.breaker;
    if (breaker !== undefined && this.#breakerToken !== undefined) {
      if (failed) breaker.failed(this.#breakerToken);
      else breaker.succeeded(this.#breakerToken);
      this.#breakerToken = undefined;
    }
    if (failed && this.#policyMayRetry() && this.#statusMatches(head.status) && this.#planRetry() && this.#options.budget?.tryRetry() !== false) {
      // Read and drop this answer, then try again (the timeout still bounds the wait for its end).
      // The budget is taken now: an answer that could not be retried must reach the caller.
      this.#draining = true;
      flow.resume();
      return;
    }
    this.#clearTimeout();
    this.#passed = true;
    this.#sink.head(head, flow);
  }

  /** @internal */
  data(attempt: number, chunk: Buffer): void {
    if (attempt !== this.#attempt || this.#done || this.#draining) return;
    this.#sink.data(chunk);
  }

  /** @internal */
  end(attempt: number): void {
    if (attempt !== this.#attempt || this.#done) return;
    if (this.#draining) {
      this.#clearTimeout();
      this.#retry(undefined, 'policy');
      return;
    }
    this.#finish();
    this.#sink.end();
  }

  /** @internal */
  error(attempt: number, error: CourierError): void {
    if (attempt !== this.#attempt || this.#done) return;
    this.#clearTimeout();
    if (this.#draining) {
      if (this.#request.signal.aborted) this.#fail(cancelledError());
      else this.#retry(error, 'policy');
      return;
    }
    if (this.#passed) {
      this.#finish();
      this.#sink.error(error);
      return;
    }
    this.#sender.settled?.(this.#request.signal.aborted ? 'cancelled' : 'failure');
    this.#attemptFailed(error);
  }

  #attemptFailed(error: CourierError): void {
    const breaker = this.#options.policy.breaker;
    if (breaker !== undefined && this.#breakerToken !== undefined) {
      breaker.failed(this.#breakerToken);
      this.#breakerToken = undefined;
    }
    const request = this.#request;
    if (request.signal.aborted) {
      this.#fail(cancelledError());
      return;
    }
    // Failures that never reached the app are the built-in retries' (unless a named target turned them off).
    const builtIn = this.#options.builtIn;
    if (!this.#options.policy.policies.named && this.#builtInRetries < builtIn.maxRetries && this.#replayable(false) && builtIn.retryable(error, request.verb)) {
      this.#retryOrFail(error, 'built-in');
      return;
    }
    // An error that is the caller's (a bad body, a refusal) is not made better by trying again.
    if (this.#policyMayRetry() && error.httpStatus >= 500) {
      this.#retryOrFail(error, 'policy');
      return;
    }
    this.#fail(error);
  }

  /** Waits and makes the next attempt when the retry budget allows; otherwise fails with `error`. */
  #retryOrFail(error: CourierError, kind: 'policy' | 'built-in'): void {
    const budget = this.#options.budget;
    if (budget !== undefined && !budget.tryRetry()) {
      this.#fail(error.withMessage(`${error.message} (not retried: the retry budget for this target is spent)`));
      return;
    }
    this.#retry(error, kind);
  }

  /** Waits and makes the next attempt (the budget already allowed it). `error`: the failure, when it was not an answer dropped. */
  #retry(error: CourierError | undefined, kind: 'policy' | 'built-in'): void {
    const { policy, metrics, logger } = this.#options;
    const final = error ?? new CourierError('ERR_DIRECT_INVOKE', 'the answer was a failure the retry policy matches');
    const planned = this.#plannedWaitMs;
    this.#plannedWaitMs = undefined;
    const waitMs = kind === 'policy' ? (planned ?? this.#backoffMs(this.#retries + 1)) : this.#builtInWaitMs();
    const deadline = this.#options.deadline;
    if (planned === undefined && deadline !== undefined && performance.now() + waitMs >= deadline) {
      // No time left for another attempt: the caller gets the failure now rather than at its deadline.
      this.#fail(final.withMessage(`${final.message} (not retried: the caller's deadline comes first)`));
      return;
    }
    const retries = kind === 'policy' ? ++this.#retries : ++this.#builtInRetries;
    if (kind === 'policy') metrics?.resiliencyActivated(policy.policies.resource, policy.namespace, 'retry', policy.metricsTarget);
    this.#sender.retrying(final);
    // A policy's retries are logged as Dapr logs them (info); the built-in ones at debug, as elsewhere.
    if (kind === 'policy') logger.info({ to: this.#sender.describeAttempt(), retry: retries, policy: policy.policies.retry?.name, err: final.message }, 'retrying invocation');
    else logger.debug({ to: this.#sender.describeAttempt(), retry: retries, kind, err: final.message }, 'retrying invocation');
    this.#attempt++;
    this.#wait = setTimeout(() => this.#send(), waitMs);
  }

  /**
   * Before an answer is dropped for a retry: picks the wait, and says whether the retry can start
   * before the caller's deadline (if not, the answer is passed on instead).
   */
  #planRetry(): boolean {
    const waitMs = this.#backoffMs(this.#retries + 1);
    const deadline = this.#options.deadline;
    if (deadline !== undefined && performance.now() + waitMs >= deadline) return false;
    this.#plannedWaitMs = waitMs;
    return true;
  }

  /** The built-in retries wait only when no untried instance is left (after `retrying` marked the failed one). */
  #builtInWaitMs(): number {
    return this.#sender.hasUntried?.() === true ? 0 : this.#options.builtIn.backoffMs;
  }

  #policyMayRetry(): boolean {
    const retry = this.#options.policy.policies.retry;
    if (retry === undefined || this.#request.signal.aborted) return false;
    if (retry.maxRetries >= 0 && this.#retries >= retry.maxRetries) return false;
    return this.#replayable(true);
  }

  /** Whether the request body can be sent again: whole (or kept whole so far, within the replay limit). */
  #replayable(wholeOnly: boolean): boolean {
    const body = this.#body;
    if (body === undefined) return true;
    // A policy replays only bodies of known length (Dapr never replays a streamed request).
    if (wholeOnly && this.#request.contentLength === undefined) return false;
    return body.replayable;
  }

  #statusMatches(status: number): boolean {
    const retry = this.#options.policy.policies.retry;
    if (retry === undefined) return false;
    const codes = status < 100 ? retry.grpcStatusCodes : retry.httpStatusCodes;
    return codes === undefined || hasCode(codes, status);
  }

  #backoffMs(retry: number): number {
    const spec = this.#options.policy.policies.retry;
    if (spec === undefined) return 0;
    if (spec.policy === 'constant') return spec.durationMs;
    const base = Math.min(EXPONENTIAL_INITIAL_MS * EXPONENTIAL_MULTIPLIER ** (retry - 1), spec.maxIntervalMs);
    const jittered = base * (1 - EXPONENTIAL_RANDOMIZATION + Math.random() * 2 * EXPONENTIAL_RANDOMIZATION);
    return Math.min(jittered, spec.maxIntervalMs);
  }

  #clearTimeout(): void {
    if (this.#timeout !== undefined) {
      clearTimeout(this.#timeout);
      this.#timeout = undefined;
    }
  }

  #finish(): void {
    this.#done = true;
    this.#clearTimeout();
    if (this.#deadlineTimer !== undefined) {
      clearTimeout(this.#deadlineTimer);
      this.#deadlineTimer = undefined;
    }
    this.#request.signal.removeEventListener('abort', this);
  }

  #fail(error: CourierError): void {
    if (this.#done) return;
    this.#finish();
    const tries = this.#retries + this.#builtInRetries;
    const final = tries > 0 && error.code === 'ERR_DIRECT_INVOKE' ? error.withMessage(`${error.message} (after ${tries} ${tries === 1 ? 'retry' : 'retries'})`) : error;
    this.#sink.error(final);
  }
}

/** The sink of one attempt: passes its events on with the attempt's number, so a stale attempt's are dropped. */
class AttemptSink<Target> implements ResponseSink {
  readonly #call: PolicyCall<Target>;
  readonly #attempt: number;

  constructor(call: PolicyCall<Target>, attempt: number) {
    this.#call = call;
    this.#attempt = attempt;
  }

  head(head: ResponseHead, flow: FlowControl): void {
    this.#call.head(this.#attempt, head, flow);
  }

  data(chunk: Buffer): void {
    this.#call.data(this.#attempt, chunk);
  }

  end(): void {
    this.#call.end(this.#attempt);
  }

  error(error: CourierError): void {
    this.#call.error(this.#attempt, error);
  }
}

function describeTarget(target: unknown): string {
  const t = target as { appId?: string; id?: string };
  return t.appId ?? t.id ?? '';
}
