import { hostname } from 'node:os';
import type { Readable } from 'node:stream';
import { CourierError } from '../errors/index.js';
import type { Logger } from '../observability/logging/index.js';
import type { AddressBook } from './address-book.js';
import { ReplayableBody } from './body.js';
import { addForwardedHeaders, DESTINATION_APP_ID, setIdentityHeaders } from './headers.js';
import { sameIdentity, type AppIdentity } from './identity.js';
import { isRetryable, type RetryPolicy } from './retry.js';
import { cancelledError, type FlowControl, type Invoke, type InvokeRequest, type ResponseHead, type ResponseSink } from './types.js';

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
  readonly retry: RetryPolicy;
  /** How much of a request body is kept so a safe retry can send it again. */
  readonly replayLimitBytes: number;
  readonly logger: Logger;
}

/**
 * The invocation pipeline on the caller's side (Dapr's `direct_messaging.go`): a call to this
 * sidecar's own app id and namespace goes straight to the local app; any other goes to an instance of
 * the target found by name resolution, with built-in retries for failures that are safe to retry.
 */
export class Invoker implements Invoke {
  readonly #options: InvokerOptions;
  readonly #hostname = hostname();

  constructor(options: InvokerOptions) {
    this.#options = options;
  }

  invoke(request: InvokeRequest, sink: ResponseSink): void {
    const { self } = this.#options;
    if (sameIdentity(request.target, self)) {
      setIdentityHeaders(request.metadata, self, self.appId);
      this.#options.appChannel.invoke(request, sink);
      return;
    }
    setIdentityHeaders(request.metadata, request.caller, request.target.appId);
    addForwardedHeaders(request.metadata, request.clientAddress, this.#options.sidecarAddress, this.#hostname);
    request.metadata[DESTINATION_APP_ID] = { values: [request.target.appId] };
    new RemoteCall(this.#options, request, sink).start();
  }
}

/** One call to another sidecar, across its retries. Acts as the sink of each attempt. */
class RemoteCall implements ResponseSink {
  readonly #options: InvokerOptions;
  readonly #request: InvokeRequest;
  readonly #sink: ResponseSink;
  readonly #tried = new Set<string>();
  readonly #body: ReplayableBody | undefined;
  #retries = 0;
  #address = '';
  #headSeen = false;
  #timer: NodeJS.Timeout | undefined;
  #done = false;
  readonly #onAbort = (): void => {
    // Only a call waiting between attempts is ended here; an attempt in flight ends through its sink.
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#fail(cancelledError());
    }
  };

  constructor(options: InvokerOptions, request: InvokeRequest, sink: ResponseSink) {
    this.#options = options;
    this.#request = request;
    this.#sink = sink;
    if (request.body !== null && !Buffer.isBuffer(request.body) && options.retry.maxRetries > 0) {
      this.#body = new ReplayableBody(request.body, options.replayLimitBytes);
    }
  }

  start(): void {
    this.#request.signal.addEventListener('abort', this.#onAbort, { once: true });
    this.#attempt();
  }

  #attempt(): void {
    this.#timer = undefined;
    const target = this.#request.target;
    this.#options.addressBook.pick(target, this.#tried).then(
      (address) => {
        if (this.#done) return;
        if (this.#request.signal.aborted) {
          this.#fail(cancelledError());
          return;
        }
        this.#address = address;
        this.#tried.add(address);
        const body: Readable | Buffer | null = this.#body === undefined ? this.#request.body : this.#body.open();
        const attempt = body === this.#request.body ? this.#request : { ...this.#request, body };
        this.#options.transport.invoke(address, attempt, this);
      },
      (err: unknown) => this.#fail(CourierError.from(err, 'ERR_DIRECT_INVOKE')),
    );
  }

  head(head: ResponseHead, flow: FlowControl): void {
    this.#headSeen = true;
    this.#sink.head(head, flow);
  }

  data(chunk: Buffer): void {
    this.#sink.data(chunk);
  }

  end(): void {
    if (this.#done) return;
    this.#done = true;
    this.#request.signal.removeEventListener('abort', this.#onAbort);
    this.#sink.end();
  }

  error(error: CourierError): void {
    if (this.#done) return;
    const { retry, addressBook, logger } = this.#options;
    const replayable = this.#body === undefined || this.#body.replayable;
    if (
      !this.#headSeen &&
      this.#retries < retry.maxRetries &&
      replayable &&
      !this.#request.signal.aborted &&
      isRetryable(error, this.#request.verb)
    ) {
      this.#retries++;
      addressBook.eject(this.#address, this.#request.target);
      logger.debug({ address: this.#address, retry: this.#retries, err: error.message }, 'retrying invocation');
      this.#timer = setTimeout(() => this.#attempt(), retry.backoffMs);
      return;
    }
    this.#fail(error);
  }

  #fail(error: CourierError): void {
    if (this.#done) return;
    this.#done = true;
    this.#request.signal.removeEventListener('abort', this.#onAbort);
    const final =
      this.#retries > 0 && error.code === 'ERR_DIRECT_INVOKE'
        ? error.withMessage(`${error.message} (after ${this.#retries} ${this.#retries === 1 ? 'retry' : 'retries'})`)
        : error;
    this.#sink.error(final);
  }
}
