import type { CourierError } from '../errors/index.js';
import { methodToPath } from '../invoke/method.js';
import type { FlowControl, InvokeRequest, ResponseHead, ResponseSink } from '../invoke/types.js';
import type { SidecarMetrics } from '../observability/metrics/sidecar-metrics.js';
import { appCallFailed } from '../observability/mesh/traffic.js';

/** The method label of the gRPC client metrics for calls to a gRPC app. */
const ON_INVOKE = '/dapr.proto.runtime.v1.AppCallback/OnInvoke';

/**
 * The client metrics of one call to the app: passes the response on unchanged and, when it is over,
 * records Dapr's HTTP client metrics (`dapr_http_client_*`: status, body bytes each way, time to the
 * response head) for an HTTP app, or the gRPC client metrics (`OnInvoke`, its status, round trip) for
 * a gRPC app, and the mesh views' inbound traffic (and a tap event while somebody taps). Made only
 * when metrics are on.
 */
export class AppCallMeter implements ResponseSink {
  readonly #sink: ResponseSink;
  readonly #metrics: SidecarMetrics;
  readonly #request: InvokeRequest;
  readonly #started = performance.now();
  #headMs = 0;
  #status = 0;
  #received = 0;

  readonly #grpc: boolean;

  constructor(sink: ResponseSink, metrics: SidecarMetrics, request: InvokeRequest, grpc = false) {
    this.#sink = sink;
    this.#metrics = metrics;
    this.#request = request;
    this.#grpc = grpc;
  }

  head(head: ResponseHead, flow: FlowControl): void {
    this.#headMs = performance.now() - this.#started;
    this.#status = head.status;
    this.#sink.head(head, flow);
  }

  data(chunk: Buffer): void {
    this.#received += chunk.length;
    this.#sink.data(chunk);
  }

  end(): void {
    this.#record(undefined);
    this.#sink.end();
  }

  error(error: CourierError): void {
    if (this.#grpc && this.#status === 0) this.#status = error.grpcCode === 0 ? 2 : error.grpcCode;
    this.#record(error);
    this.#sink.error(error);
  }

  #record(error: CourierError | undefined): void {
    const request = this.#request;
    const metrics = this.#metrics;
    const status = this.#status;
    let ms: number;
    let verb: string;
    if (this.#grpc) {
      ms = performance.now() - this.#started;
      verb = 'GRPC';
      metrics.grpcClientCall(ON_INVOKE, status, ms);
    } else {
      ms = status === 0 ? performance.now() - this.#started : this.#headMs;
      verb = request.verb;
      const path = metrics.pathsLabelled ? metrics.pathLabel(methodToPath(request.method), '_') : '_';
      metrics.httpClientRequest(verb, path, status, request.contentLength ?? 0, this.#received, ms);
    }
    metrics.appCallEnded(request.caller.appId, request.callerSpiffe, verb, request.method, appCallFailed(status, this.#grpc), ms);
    if (metrics.tap.active) metrics.tap.invocation('inbound', request, verb, status, ms, error?.code ?? '');
  }
}
