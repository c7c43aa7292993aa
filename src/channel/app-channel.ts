import { CourierError } from '../errors/index.js';
import type { Invoke, InvokeRequest, ResponseSink } from '../invoke/types.js';

/**
 * The readiness of the channel to the local app.
 * - `none`: no `--app-port`; this sidecar only makes calls.
 * - `starting`: waiting for the app's port to accept connections, or for the first successful probe.
 * - `ready`: calls are forwarded.
 * - `unhealthy`: health probes failed `threshold` times in a row; calls are refused until one succeeds.
 * - `closed`: the sidecar is shutting down.
 */
export type AppChannelState =
  | { readonly t: 'none' }
  | { readonly t: 'starting' }
  | { readonly t: 'ready' }
  | { readonly t: 'unhealthy'; readonly reason: string }
  | { readonly t: 'closed' };

/** The channel from a sidecar to its own app (Dapr's `AppChannel`). */
export interface AppChannel extends Invoke {
  readonly state: AppChannelState;
  /** Starts waiting for the app and probing its health. */
  start(): void;
  /** Calls `listener` on every state change; returns a function that removes it. */
  onStateChange(listener: (state: AppChannelState) => void): () => void;
  /** Stops probes and closes connections to the app; calls in flight are aborted. */
  close(): Promise<void>;
}

/**
 * Dapr's message for an app that cannot take calls. The callee answers before dispatching anything to
 * the app, so a caller may safely try another instance (`retry: 'safe'`).
 */
export function appNotReadyError(): CourierError {
  return new CourierError('ERR_DIRECT_INVOKE', 'app is not in a healthy state', { grpcCode: 14, retry: 'safe' });
}

/** The channel of a sidecar started without `--app-port`. */
export class NoAppChannel implements AppChannel {
  readonly state: AppChannelState = { t: 'none' };
  start(): void {}
  onStateChange(): () => void {
    return () => {};
  }
  invoke(_request: InvokeRequest, sink: ResponseSink): void {
    sink.error(new CourierError('ERR_DIRECT_INVOKE', 'app channel is not initialized: this sidecar was started without --app-port'));
  }
  async close(): Promise<void> {}
}
