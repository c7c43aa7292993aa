import type { Logger } from '../observability/logging/index.js';
import type { CallOpener, CallResult, ServerCall } from './call.js';
import { customMetadata, type Metadata } from './metadata.js';
import type { CallStatus } from './status.js';

export interface RelayOptions {
  /** The metadata sent upstream (already edited by the caller of `relayCall`). */
  readonly metadata: Metadata;
  readonly logger?: Logger | undefined;
  /** Called once, when the downstream call has been given its final status. */
  readonly onFinish?: ((status: CallStatus) => void) | undefined;
}

/**
 * Forwards `downstream` (a call this server received) to a new call at the same path on `upstream`, as
 * opaque messages: nothing is decoded, so any service can be relayed. Messages flow both ways in order;
 * the downstream's half-close half-closes upstream; the upstream's headers, trailers and status (with
 * `grpc-status-details-bin`) go back unchanged. Flow control is kept end to end: when one side cannot
 * take more, the other side is no longer read, so at most one message per direction waits in the relay.
 * The downstream's deadline becomes the upstream's, and cancelling either side ends both.
 */
export function relayCall(downstream: ServerCall, upstream: CallOpener, options: RelayOptions): void {
  const up = upstream.call(downstream.path, options.metadata, { deadline: downstream.deadline, signal: downstream.signal });
  const resumeDownstream = (): void => downstream.resume();
  const resumeUpstream = (): void => up.resume();
  up.setReader({
    headers: (metadata) => downstream.sendHeaders(customMetadata(metadata)),
    message: (bytes) => {
      if (!downstream.sendMessage(bytes)) {
        up.pause();
        downstream.onDrain(resumeUpstream);
      }
    },
    end: (result: CallResult) => {
      const status: CallStatus = { code: result.code, message: result.message };
      if (!downstream.finished) {
        downstream.end(status, customMetadata(result.trailers));
        options.logger?.debug({ path: downstream.path, code: result.code, transport: result.transport }, 'proxied call ended');
      }
      options.onFinish?.(status);
    },
  });
  downstream.setReader({
    message: (bytes) => {
      if (!up.sendMessage(bytes)) {
        downstream.pause();
        up.onDrain(resumeDownstream);
      }
    },
    end: () => up.end(),
    // The downstream was cancelled, timed out or failed: its signal has cancelled the upstream call.
    error: () => up.cancel(),
  });
}
