import type { Metadata } from '../../invoke/headers.js';
import type { Span } from './tracer.js';

/**
 * The names and attributes of service-invocation spans, as Dapr gives them: `CallLocal/<appid>/<method>`
 * with `rpc.service=ServiceInvocation` and `net.peer.name`, plus the request's `dapr-*` headers. Only
 * recorded spans are touched; callers check `span.recording` first so an unsampled call builds nothing.
 */

/**
 * Names a recorded call span. `appId` is the app being called (the target at the caller, this
 * sidecar's app at the callee); `peer` is the other side (the target at the caller, the calling app
 * at the callee); `protocol` is the API the call came in on.
 */
export function describeCallSpan(span: Span, appId: string, method: string, peer: string, verb: string, protocol: 'http' | 'grpc'): void {
  span.name = `CallLocal/${appId}/${method}`;
  span.set('rpc.service', 'ServiceInvocation');
  span.set('rpc.method', method);
  span.set('net.peer.name', peer);
  span.set('dapr.protocol', protocol);
  if (verb !== '') span.set('http.request.method', verb);
}

/**
 * Names a recorded span of a proxied gRPC call (`dapr-app-id`): its method as OpenTelemetry names gRPC
 * spans (`package.Service/Method`), with `rpc.system=grpc` and the app on the other side as `net.peer.name`.
 */
export function describeProxySpan(span: Span, path: string, peer: string): void {
  const name = path.startsWith('/') ? path.slice(1) : path;
  const slash = name.lastIndexOf('/');
  span.name = name;
  span.set('rpc.system', 'grpc');
  span.set('rpc.service', slash < 0 ? name : name.slice(0, slash));
  span.set('rpc.method', slash < 0 ? '' : name.slice(slash + 1));
  span.set('net.peer.name', peer);
  span.set('dapr.protocol', 'grpc');
}

/** Adds the request's `dapr-*` headers (Dapr records them on sampled spans), tokens excepted. */
export function addDaprHeaders(span: Span, md: Metadata): void {
  for (const key in md) {
    if (key.length < 6 || (key.charCodeAt(0) | 0x20) !== 0x64 /* d */) continue;
    const lower = key.toLowerCase();
    if (!lower.startsWith('dapr-') || lower === 'dapr-api-token') continue;
    const values = md[key]?.values;
    if (values !== undefined && values.length > 0) span.set(lower, values.join(','));
  }
}

/**
 * Ends the span of a call answered over gRPC (the callee's CallLocal, the gRPC API's InvokeService):
 * the app's status (`appStatus`, an HTTP status ≥ 100 or a gRPC code) and the call's own status.
 */
export function endGrpcCallSpan(span: Span | undefined, appStatus: number, status: { code: number; message?: string | undefined }): void {
  if (span?.recording !== true) return;
  if (appStatus >= 100) span.set('http.response.status_code', appStatus);
  let failure: string | undefined;
  if (status.code !== 0) failure = status.message ?? `gRPC status ${status.code}`;
  else if (appStatus >= 500) failure = `HTTP ${appStatus}`;
  else if (appStatus > 0 && appStatus < 100) failure = `the app answered gRPC status ${appStatus}`;
  endCallSpan(span, status.code, failure);
}

/**
 * Ends a call span with the answer's status: `status` ≥ 100 is an HTTP status (ERROR from 500 on),
 * below 100 a gRPC code (ERROR when not OK); `failure` (the sidecar's own error) always means ERROR.
 */
export function endCallSpan(span: Span, status: number, failure?: string): void {
  if (!span.recording) return;
  if (status >= 100) span.set('http.response.status_code', status);
  else span.set('rpc.grpc.status_code', status);
  if (failure !== undefined) span.end(failure);
  else if (status >= 500) span.end(`HTTP ${status}`);
  else if (status > 0 && status < 100) span.end(`gRPC status ${status}`);
  else span.end();
}
