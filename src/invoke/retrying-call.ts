import type { Readable } from 'node:stream';
import type { CourierError } from '../errors/index.js';
import type { Logger } from '../observability/logging/index.js';
import { ReplayableBody } from './body.js';
import type { InstanceOutcome } from './balancer.js';
import type { RetryPolicy } from './retry.js';
import type { RetryBudget } from './retry-budget.js';
import { cancelledError, type FlowControl, type InvokeRequest, type ResponseHead, type ResponseSink } from './types.js';

/** How the attempts of one call are made: to instances of an app, or to an external HTTP service. */
export interface AttemptSender<Target> {
  /** Makes one attempt of `request`; its outcome goes to `sink` (through `error` when it could not be made). */
  send(request: InvokeRequest<Target>, sink: ResponseSink): void;
  /** The attempt that just failed with `error` is about to be retried: stop using what it used (an instance, say). */
  retrying(error: CourierError): void;
  /** For the log line of a retry: where the failed attempt went. */
  describeAttempt(): string;
  /**
   * The attempt just sent has its outcome: its answer's head arrived (`success`, or `failure` /
   * `overload` by its status), or it failed. Called once per attempt (for the load balancer's figures).
   */
  settled?(outcome: AttemptOutcome): void;
  /**
   * Whether the next attempt can go to an instance this call has not tried. The
   * built-in retries then go at once (waiting helps only when the same instance is tried again).
   */
  hasUntried?(): boolean;
}

/** How an attempt ended, for the balancer: answered, failed (the instance could not serve it), overloaded, or abandoned by the caller. */
export type AttemptOutcome = InstanceOutcome;

/**
 * What an answer's status says about the instance that gave it: 429 and RESOURCE_EXHAUSTED are
 * `overload`; 5xx and the gRPC codes of a server in trouble (UNKNOWN, INTERNAL, UNAVAILABLE) are
 * `failure`; anything else (4xx included: the request's fault) is `success`.
 */
export function attemptOutcome(status: number): AttemptOutcome {
  if (status < 100) return status === 8 ? 'overload' : status === 2 || status === 13 || status === 14 ? 'failure' : 'success';
  return status === 429 ? 'overload' : status >= 500 ? 'failure' : 'success';
}

/**
 * One call across its retries, for any kind of target: it is the sink of each attempt, passes the
 * response on once its head arrives, and after a failure decides with `policy` whether to try again.
 * A retry happens only while nothing of the response has been passed on, the policy allows another
 * attempt and calls the error retryable for the verb, the caller is still waiting, and the request
 * body can be sent again (bodies of unknown length are kept, up to `replayLimitBytes`, while attempts
 * read them).
 */
export class RetryingCall<Target> implements ResponseSink {
  readonly #request: InvokeRequest<Target>;
  readonly #sink: ResponseSink;
  readonly #sender: AttemptSender<Target>;
  readonly #policy: RetryPolicy;
  readonly #logger: Logger;
  readonly #body: ReplayableBody | undefined;
  readonly #budget: RetryBudget | undefined;
  #retries = 0;
  #headSeen = false;
  #timer: NodeJS.Timeout | undefined;
  #done = false;

  constructor(
    request: InvokeRequest<Target>,
    sink: ResponseSink,
    sender: AttemptSender<Target>,
    policy: RetryPolicy,
    replayLimitBytes: number,
    logger: Logger,
    budget?: RetryBudget,
  ) {
    this.#request = request;
    this.#budget = budget;
    this.#sink = sink;
    this.#sender = sender;
    this.#policy = policy;
    this.#logger = logger;
    if (request.body !== null && !Buffer.isBuffer(request.body) && policy.maxRetries > 0) {
      this.#body = new ReplayableBody(request.body, replayLimitBytes);
    }
  }

  start(): void {
    this.#budget?.called();
    this.#request.signal.addEventListener('abort', this);
    this.#attempt();
  }

  /** The `abort` listener of the request's signal (the call itself: no closure per call). */
  handleEvent(): void {
    // Only a call waiting between attempts is ended here; an attempt in flight ends through its sink.
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#fail(cancelledError());
    }
  }

  #attempt(): void {
    this.#timer = undefined;
    if (this.#request.signal.aborted) {
      this.#fail(cancelledError());
      return;
    }
    const body: Readable | Buffer | null = this.#body === undefined ? this.#request.body : this.#body.open();
    const attempt = body === this.#request.body ? this.#request : { ...this.#request, body };
    this.#sender.send(attempt, this);
  }

  head(head: ResponseHead, flow: FlowControl): void {
    this.#headSeen = true;
    this.#sender.settled?.(attemptOutcome(head.status));
    this.#sink.head(head, flow);
  }

  data(chunk: Buffer): void {
    this.#sink.data(chunk);
  }

  end(): void {
    if (this.#done) return;
    this.#done = true;
    this.#request.signal.removeEventListener('abort', this);
    this.#sink.end();
  }

  error(error: CourierError): void {
    if (this.#done) return;
    if (!this.#headSeen) this.#sender.settled?.(this.#request.signal.aborted ? 'cancelled' : 'failure');
    const policy = this.#policy;
    const replayable = this.#body === undefined || this.#body.replayable;
    if (
      !this.#headSeen &&
      this.#retries < policy.maxRetries &&
      replayable &&
      !this.#request.signal.aborted &&
      policy.retryable(error, this.#request.verb) &&
      this.#budget?.tryRetry() !== false
    ) {
      this.#retries++;
      this.#sender.retrying(error);
      this.#logger.debug({ to: this.#sender.describeAttempt(), retry: this.#retries, err: error.message }, 'retrying invocation');
      this.#timer = setTimeout(() => this.#attempt(), this.#sender.hasUntried?.() === true ? 0 : policy.backoffMs);
      return;
    }
    this.#fail(error);
  }

  #fail(error: CourierError): void {
    if (this.#done) return;
    this.#done = true;
    this.#request.signal.removeEventListener('abort', this);
    const final =
      this.#retries > 0 && error.code === 'ERR_DIRECT_INVOKE'
        ? error.withMessage(`${error.message} (after ${this.#retries} ${this.#retries === 1 ? 'retry' : 'retries'})`)
        : error;
    this.#sink.error(final);
  }
}
