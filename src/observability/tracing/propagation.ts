import { grpcPeersOnly, type ReceivedMetadata, type Metadata as GrpcMetadata } from '../../grpc/metadata.js';
import type { Metadata } from '../../invoke/headers.js';
import { formatGrpcTraceBin, formatTraceparent, parseGrpcTraceBin, parseTraceparent, type TraceContext } from './context.js';

/**
 * Where trace context travels on each hop (Dapr's rules, spec §7.1):
 * - app → sidecar over HTTP: `traceparent`/`tracestate` headers;
 * - app → sidecar over gRPC, and sidecar → sidecar: `grpc-trace-bin` first, else `traceparent`/`tracestate`
 *   in the call's metadata; a sidecar sends both;
 * - sidecar → HTTP app: `traceparent`/`tracestate` of the callee's span; sidecar → gRPC app: those and `grpc-trace-bin`.
 */

function firstOf(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : value?.[0];
}

/** The trace context in a call's received gRPC metadata, if a valid one is there. */
export function traceFromGrpcMetadata(md: ReceivedMetadata): TraceContext | undefined {
  const traceState = firstOf(md.tracestate);
  const bin = firstOf(md['grpc-trace-bin']);
  if (bin !== undefined) {
    const ctx = parseGrpcTraceBin(bin, traceState);
    if (ctx !== undefined) return ctx;
  }
  return parseTraceparent(firstOf(md.traceparent), traceState);
}

/**
 * The metadata that carries `ctx` on a gRPC call to another sidecar (both encodings, as Dapr sends).
 * For gRPC peers only, and built only for them: over the Courier lane the callee reads the context
 * from the request's own metadata (see `traceFromInvokeMetadata`), so nothing is encoded twice.
 */
export function grpcTraceHeaders(ctx: TraceContext): GrpcMetadata {
  return grpcPeersOnly(() => {
    const headers: GrpcMetadata = {};
    setGrpcTraceMetadata(headers, ctx);
    return headers;
  });
}

/**
 * The trace context a Courier caller put in the request's metadata (`traceparent`, `tracestate`, set by
 * `setTraceMetadata`); an older Courier forwards its app's `Traceparent` under the canonical name.
 */
export function traceFromInvokeMetadata(md: Metadata | undefined): TraceContext | undefined {
  if (md === undefined) return undefined;
  const traceparent = md.traceparent?.values?.[0] ?? md.Traceparent?.values?.[0];
  return parseTraceparent(traceparent, md.tracestate?.values?.[0] ?? md.Tracestate?.values?.[0]);
}

function isTraceKey(key: string): boolean {
  const c = key.charCodeAt(0) | 0x20; // first letter in lower case
  if (c !== 0x74 /* t */ && c !== 0x67 /* g */) return false;
  const lower = key.toLowerCase();
  return lower === 'traceparent' || lower === 'tracestate' || lower === 'grpc-trace-bin';
}

/**
 * Replaces whatever trace headers invocation metadata holds (under any casing) with `ctx`: the
 * context the next hop sees as its parent. `binary` adds `grpc-trace-bin` too (for a gRPC app).
 * Returns the `traceparent` value set. `mayHoldTraceKeys: false` (the caller knows there are none)
 * skips the search for other casings.
 */
export function setTraceMetadata(md: Metadata, ctx: TraceContext, binary: boolean, mayHoldTraceKeys = true): string {
  if (mayHoldTraceKeys) for (const key in md) if (isTraceKey(key)) delete md[key];
  const traceparent = formatTraceparent(ctx);
  md.traceparent = { values: [traceparent] };
  if (ctx.traceState !== undefined) md.tracestate = { values: [ctx.traceState] };
  if (binary) md['grpc-trace-bin'] = { values: [formatGrpcTraceBin(ctx)] };
  return traceparent;
}

/**
 * Puts `ctx` in gRPC metadata in both encodings, as a sidecar sends it to the next sidecar or to a gRPC
 * app, replacing what the metadata held (a proxied call relays the app's own metadata).
 */
export function setGrpcTraceMetadata(md: GrpcMetadata, ctx: TraceContext): void {
  md.traceparent = formatTraceparent(ctx);
  md['grpc-trace-bin'] = formatGrpcTraceBin(ctx);
  if (ctx.traceState !== undefined) md.tracestate = ctx.traceState;
  else delete md.tracestate;
}
