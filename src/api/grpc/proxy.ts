import type { AccessControlPolicy } from '../../acl/index.js';
import type { CallSignal } from '../../invoke/call-signal.js';
import { isGrpcProtocol, type AppProtocol } from '../../channel/app-protocol.js';
import { CourierError, GrpcStatus } from '../../errors/index.js';
import { customMetadata, relayCall, type CallOpener, type CallStatus, type Metadata, type ServerCall } from '../../grpc/index.js';
import type { AppChannelState } from '../../channel/app-channel.js';
import { formatSpiffeId, spiffeIdOfPeer, type SpiffeId } from '../../security/spiffe.js';
import { sameIdentity, type AppIdentity } from '../../invoke/identity.js';
import { TargetResolver } from '../../invoke/target.js';
import type { Logger } from '../../observability/logging/index.js';
import type { SidecarMetrics } from '../../observability/metrics/sidecar-metrics.js';
import { SpanKind, type Span, type Tracer } from '../../observability/tracing/tracer.js';
import { setGrpcTraceMetadata, traceFromGrpcMetadata } from '../../observability/tracing/propagation.js';
import { describeProxySpan, endGrpcCallSpan } from '../../observability/tracing/call-spans.js';

/** Metadata naming the target of a proxied call (Dapr `GRPCProxyAppIDKey`), and the callee id, read first. */
const APP_ID_KEY = 'dapr-app-id';
const CALLEE_KEY = 'dapr-callee-app-id';
const CALLER_KEY = 'dapr-caller-app-id';
const CALLER_NAMESPACE_KEY = 'dapr-caller-namespace';
/** Never forwarded: the routing key, one hop's credential, and identities this sidecar sets itself. */
const callerDropped: ReadonlySet<string> = new Set([APP_ID_KEY, 'dapr-api-token', CALLEE_KEY, CALLER_KEY, CALLER_NAMESPACE_KEY, 'destination-app-id']);
/** Never passed to the app: the hop's routing keys and a token meant for a sidecar. */
const calleeDropped: ReadonlySet<string> = new Set(['dapr-api-token', APP_ID_KEY, 'destination-app-id']);

function first(value: string | number | readonly string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'number') return String(value);
  return typeof value === 'string' ? value : value[0];
}

/**
 * The span of a proxied call, a child of the context its metadata carries; `forwarded` (the metadata
 * relayed on) then carries the span's own context instead. Undefined with tracing off.
 */
function proxySpan(tracer: Tracer | undefined, kind: SpanKind, call: ServerCall, peer: string, forwarded: Metadata): Span | undefined {
  if (tracer === undefined) return undefined;
  const span = tracer.start(kind, traceFromGrpcMetadata(call.metadata));
  setGrpcTraceMetadata(forwarded, span);
  if (span.recording) describeProxySpan(span, call.path, peer);
  return span;
}

/** Ends a call that could not be proxied with the error's gRPC status. */
function refuse(call: ServerCall, error: CourierError): void {
  call.end({ code: error.grpcCode === GrpcStatus.OK ? GrpcStatus.INTERNAL : error.grpcCode, message: error.message });
}

export interface CallerProxyOptions {
  readonly self: AppIdentity;
  /** Picks the address of an instance of `target` (the invoker's address book). */
  readonly pick: (target: AppIdentity) => Promise<string>;
  /** The pooled channel to the sidecar at `address` serving `target` (with mTLS: verified as `target`). */
  readonly sidecarChannel: (address: string, target: AppIdentity) => CallOpener;
  /** The local app, for a call whose target is this sidecar's own app. */
  readonly local: (call: ServerCall, metadata: Metadata) => void;
  readonly logger: Logger;
  /** Service-invocation and gRPC client metrics; undefined when metrics are off. */
  readonly metrics?: SidecarMetrics | undefined;
  /** Tracing; undefined when it is off. */
  readonly tracer?: Tracer | undefined;
}

/**
 * The caller side of transparent gRPC proxying (Dapr's proxy mode, `pkg/messaging/grpc_proxy.go`): a
 * call to a service Courier does not implement, carrying `dapr-app-id: <id>` (or `<id>.<namespace>`),
 * is forwarded frame by frame to the target's sidecar, with `dapr-app-id` removed and the caller and
 * callee ids added.
 */
export function callerProxy(options: CallerProxyOptions): (call: ServerCall) => void {
  const targets = new TargetResolver(options.self.namespace);
  return (call) => {
    const md = call.metadata;
    const appId = first(md[CALLEE_KEY]) ?? first(md[APP_ID_KEY]);
    if (appId === undefined || appId === '') {
      call.end({ code: GrpcStatus.UNKNOWN, message: `failed to proxy request: required metadata ${CALLEE_KEY} or ${APP_ID_KEY} not found` });
      return;
    }
    let target: AppIdentity;
    try {
      target = targets.app(appId.trim());
    } catch (err) {
      refuse(call, CourierError.from(err));
      return;
    }
    const metadata = customMetadata(md, callerDropped);
    metadata[CALLER_KEY] = options.self.appId;
    metadata[CALLER_NAMESPACE_KEY] = options.self.namespace;
    metadata[CALLEE_KEY] = target.appId;
    if (sameIdentity(target, options.self)) {
      options.local(call, metadata);
      return;
    }
    const metrics = options.metrics;
    const span = proxySpan(options.tracer, SpanKind.CLIENT, call, target.appId, metadata);
    let onFinish: ((status: CallStatus, errorCode?: string) => void) | undefined;
    if (metrics !== undefined || span !== undefined) {
      metrics?.requestSent(target.appId);
      const started = performance.now();
      onFinish = (status, errorCode = '') => {
        endGrpcCallSpan(span, 0, status);
        if (metrics === undefined) return;
        const ms = performance.now() - started;
        metrics.responseReceived(target.appId, status.code, ms);
        metrics.grpcClientCall(call.path, status.code, ms);
        if (metrics.tap.active) metrics.tap.proxiedCall('outbound', options.self.appId, target.appId, call.path, call.metadata, span, status.code, ms, errorCode);
      };
    }
    options.pick(target).then(
      (address) => {
        if (call.finished) return;
        relayCall(call, options.sidecarChannel(address, target), { metadata, logger: options.logger, onFinish });
      },
      (err: unknown) => {
        if (call.finished) return;
        const error = CourierError.from(err, 'ERR_DIRECT_INVOKE');
        onFinish?.({ code: error.grpcCode === GrpcStatus.OK ? GrpcStatus.INTERNAL : error.grpcCode, message: error.message }, error.code);
        refuse(call, error);
      },
    );
  };
}

/** Relays a proxied call to the local app; a refusal of the app channel (unhealthy app) is the call's answer. */
function relayToApp(call: ServerCall, app: CallOpener, metadata: Metadata, logger: Logger, onFinish: ((status: CallStatus) => void) | undefined): void {
  try {
    relayCall(call, app, { metadata, logger, onFinish });
  } catch (err) {
    if (!call.finished) refuse(call, CourierError.from(err, 'ERR_DIRECT_INVOKE'));
  }
}

export interface CalleeProxyOptions {
  readonly self: AppIdentity;
  readonly appProtocol: AppProtocol;
  /**
   * Opens a call to the local gRPC app (adds the app token), once it is ready; undefined without
   * `--app-port`.
   */
  readonly app:
    | (CallOpener & {
        readonly state: AppChannelState;
        whenReady(signal: CallSignal, ready: () => void, fail: (error: CourierError) => void): void;
      })
    | undefined;
  /** Mutual TLS is on: the caller's identity comes from its verified certificate. */
  readonly mtls: boolean;
  readonly accessControl: () => AccessControlPolicy | undefined;
  readonly logger: Logger;
  /** Service-invocation, gRPC client and access-control metrics; undefined when metrics are off. */
  readonly metrics?: SidecarMetrics | undefined;
  /** Tracing; undefined when it is off. */
  readonly tracer?: Tracer | undefined;
}

/**
 * The callee side of transparent gRPC proxying: a proxied call arriving on the internal port is checked
 * against the access-control policy with the full method as the operation (verbs do not apply), and
 * forwarded to the local gRPC app; `local` forwards a call the public port received for this
 * sidecar's own app.
 */
export function calleeProxy(options: CalleeProxyOptions): {
  readonly remote: (call: ServerCall) => void;
  readonly local: (call: ServerCall, metadata: Metadata) => void;
} {
  const toApp = (call: ServerCall, metadata: Metadata, onFinish?: (status: CallStatus) => void): void => {
    if (options.app === undefined) {
      call.end({ code: GrpcStatus.UNAVAILABLE, message: `failed to proxy request: app channel is not initialized: ${options.self.appId}'s sidecar was started without --app-port` });
      return;
    }
    if (!isGrpcProtocol(options.appProtocol)) {
      call.end({
        code: GrpcStatus.UNIMPLEMENTED,
        message: `failed to proxy request: app ${options.self.appId} is an HTTP app (--app-protocol ${options.appProtocol}); gRPC proxying needs --app-protocol grpc or grpcs`,
      });
      return;
    }
    const app = options.app;
    if (app.state.t === 'ready') {
      relayToApp(call, app, metadata, options.logger, onFinish);
      return;
    }
    // A call that arrives while the app is still starting waits for it, bounded (as daprd waits for the app port).
    app.whenReady(
      call.signal,
      () => relayToApp(call, app, metadata, options.logger, onFinish),
      (err) => {
        if (!call.finished) refuse(call, err);
      },
    );
  };
  return {
    local: toApp,
    remote: (call) => {
      if (call.path.startsWith('/dapr.proto.')) {
        // Dapr's own services (actors, and whatever newer sidecars add) are not apps' services.
        call.end({ code: GrpcStatus.UNIMPLEMENTED, message: `unknown method ${call.path}: Courier provides service invocation only` });
        return;
      }
      const md = customMetadata(call.metadata, calleeDropped);
      const callee = first(md[CALLEE_KEY]);
      if (callee !== undefined && callee !== options.self.appId) {
        call.end({ code: GrpcStatus.NOT_FOUND, message: `failed to proxy request: this sidecar serves app ${options.self.appId}, not ${callee}` });
        return;
      }
      let spiffe: SpiffeId | undefined;
      if (options.mtls) {
        spiffe = spiffeIdOfPeer(call.peer.certificate);
        if (spiffe === undefined) {
          call.end({ code: GrpcStatus.UNAUTHENTICATED, message: 'the caller presented no SPIFFE identity' });
          return;
        }
        // The verified certificate says who is calling, whatever the metadata claims.
        md[CALLER_KEY] = spiffe.appId;
        md[CALLER_NAMESPACE_KEY] = spiffe.namespace;
      }
      md[CALLEE_KEY] = options.self.appId;
      const metrics = options.metrics;
      const caller = first(md[CALLER_KEY]) ?? 'unknown';
      const span = proxySpan(options.tracer, SpanKind.SERVER, call, caller, md);
      metrics?.requestReceived(caller);
      const policy = options.accessControl();
      if (policy !== undefined) {
        const decision = policy.evaluate(spiffe, { operation: call.path, verb: '', isHttp: false });
        metrics?.accessControl(decision.allowed, decision.scope, caller, spiffe?.trustDomain ?? '', first(md[CALLER_NAMESPACE_KEY]) ?? options.self.namespace);
        if (!decision.allowed) {
          metrics?.responseSent(caller, GrpcStatus.PERMISSION_DENIED);
          options.logger.info(
            { caller: spiffe === undefined ? 'unverified' : formatSpiffeId(spiffe), operation: call.path, scope: decision.scope },
            'proxied call denied by the access-control policy',
          );
          endGrpcCallSpan(span, 0, { code: GrpcStatus.PERMISSION_DENIED, message: decision.message });
          call.end({ code: GrpcStatus.PERMISSION_DENIED, message: decision.message });
          return;
        }
      }
      if (metrics === undefined && span === undefined) {
        toApp(call, md);
        return;
      }
      const started = performance.now();
      toApp(call, md, (status) => {
        endGrpcCallSpan(span, 0, status);
        if (metrics === undefined) return;
        const ms = performance.now() - started;
        metrics.responseSent(caller, status.code);
        metrics.grpcClientCall(call.path, status.code, ms);
        metrics.appCallEnded(caller, spiffe, 'GRPC', call.path, status.code !== GrpcStatus.OK, ms);
        if (metrics.tap.active) metrics.tap.proxiedCall('inbound', caller, options.self.appId, call.path, call.metadata, span, status.code, ms, '');
      });
    },
  };
}
