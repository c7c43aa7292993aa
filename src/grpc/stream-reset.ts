import type { Http2Stream } from 'node:http2';
import { addAbortSignal, PassThrough } from 'node:stream';
import { h2 } from './status.js';

/**
 * Node's internal AbortError class, which Node does not export. Obtained once from a throwaway stream:
 * `addAbortSignal` with an already-aborted signal destroys the stream with an AbortError at once.
 */
const AbortErrorClass: (new () => Error) | undefined = (() => {
  const probe = new PassThrough();
  probe.on('error', () => {});
  addAbortSignal(AbortSignal.abort(), probe);
  const error = probe.errored;
  return error instanceof Error && error.name === 'AbortError' ? (error.constructor as new () => Error) : undefined;
})();

/**
 * Resets a stream with RST_STREAM(CANCEL), the spec's cancellation (PROTOCOL-HTTP2.md "Client
 * Cancellation").
 *
 * Node quirk: `stream.close(NGHTTP2_CANCEL)` first ends the writable side, so when we had not
 * half-closed yet the peer receives END_STREAM and only then the RST: a server would see a complete
 * request (and deliver "end" to its reader) before learning it was cancelled. Destroying the stream
 * with Node's own AbortError makes Node send RST_STREAM(CANCEL) alone (that is how Node implements the
 * request `signal` option). Falls back to `close` if the class could not be obtained.
 */
export function cancelStream(stream: Http2Stream): void {
  if (stream.destroyed) return;
  if (AbortErrorClass !== undefined && !stream.writableEnded) stream.destroy(new AbortErrorClass());
  else stream.close(h2.NGHTTP2_CANCEL);
}
