import { CourierError, GrpcStatus } from '../errors/index.js';
import { parseDuration } from '../util/duration.js';
import { CallAbort } from './call-signal.js';
import type { Invoke, InvokeRequest, ResponseSink } from './types.js';

/**
 * The header that carries a call's deadline: how long the caller is still willing to wait, as a Go
 * duration (`1.5s`, `800ms`) or a number of milliseconds. An app may send it to its sidecar; the
 * sidecar bounds the whole call with it (every attempt and every wait between retries) and sends the
 * time that is left with each attempt, so the target's sidecar stops its app's work when it runs out.
 */
export const TIMEOUT_HEADER = 'Courier-Timeout';

/** The longest deadline accepted (a day): more is a mistake, not a wish to wait. */
const MAX_TIMEOUT_MS = 86_400_000;

/**
 * The deadline a request's `Courier-Timeout` header asks for, as a `performance.now()` time;
 * undefined without the header. A value that is not a positive duration is the caller's mistake.
 */
export function requestDeadline(request: InvokeRequest<unknown>): number | undefined {
  const text = timeoutHeader(request);
  if (text === undefined) return undefined;
  const ms = parseDuration(text, 'ms');
  if (ms === undefined || !(ms > 0) || ms > MAX_TIMEOUT_MS) {
    throw new CourierError('ERR_MALFORMED_REQUEST', `the ${TIMEOUT_HEADER} header "${text}" is not a duration such as 800ms or 2s (or a number of milliseconds)`);
  }
  return performance.now() + ms;
}

/** The header's value: by its canonical name (HTTP callers, other sidecars) or in lower case (gRPC callers). */
function timeoutHeader(request: InvokeRequest<unknown>): string | undefined {
  const md = request.metadata;
  return md[TIMEOUT_HEADER]?.values?.[0] ?? md['courier-timeout']?.values?.[0];
}

/** Sets the header to the time left before `deadline`, in whole milliseconds (at least 1). */
export function setRemaining(request: InvokeRequest<unknown>, deadline: number): number {
  const left = Math.max(1, Math.ceil(deadline - performance.now()));
  const md = request.metadata;
  delete md['courier-timeout'];
  md[TIMEOUT_HEADER] = { values: [`${left}ms`] };
  return left;
}

export function deadlineError(target: string): CourierError {
  return new CourierError('ERR_DIRECT_INVOKE', `fail to invoke, id: ${target}, err: the caller's deadline (${TIMEOUT_HEADER}) passed`, { grpcCode: GrpcStatus.DEADLINE_EXCEEDED });
}

/**
 * The target's side of a deadline: a call that arrives with `Courier-Timeout` is cancelled at the
 * app when that time has passed (the caller has given up by then). Calls without the header pass
 * straight through.
 */
export class CalleeDeadlines implements Invoke {
  readonly #app: Invoke;

  constructor(app: Invoke) {
    this.#app = app;
  }

  invoke(request: InvokeRequest, sink: ResponseSink): void {
    let deadline: number | undefined;
    try {
      deadline = requestDeadline(request);
    } catch (err) {
      sink.error(err as CourierError);
      return;
    }
    if (deadline === undefined) {
      this.#app.invoke(request, sink);
      return;
    }
    const abort = new CallAbort();
    const outer = request.signal;
    const cancel = (): void => abort.abort(outer.reason);
    outer.addEventListener('abort', cancel);
    const timer = setTimeout(() => abort.abort(deadlineError(request.target.appId)), Math.max(0, deadline - performance.now()));
    const done = (): void => {
      clearTimeout(timer);
      outer.removeEventListener('abort', cancel);
    };
    this.#app.invoke({ ...request, signal: abort }, {
      head: (head, flow) => sink.head(head, flow),
      data: (chunk) => sink.data(chunk),
      end: () => {
        done();
        sink.end();
      },
      error: (error) => {
        done();
        sink.error(abort.aborted && !outer.aborted ? deadlineError(request.target.appId) : error);
      },
    });
  }
}
