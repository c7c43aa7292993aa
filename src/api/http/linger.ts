import type { Socket } from 'node:net';
import type { ServerResponse } from 'node:http';

/** How long, at most, a refused request's connection is kept open to read and discard what still arrives. */
export const LINGER_MS = 5_000;
/**
 * How much of a refused request's body is read and discarded, at most, before the connection is reset,
 * once the client has had `LINGER_MIN_MS` to read the answer (a client that writes as fast as loopback
 * allows sends this much in milliseconds, before its own event loop has read anything).
 */
export const LINGER_BYTES = 4 * 1024 * 1024;
/** The connection is kept at least this long after the answer, however much arrives meanwhile. */
const LINGER_MIN_MS = 1_000;
const CHECK_EVERY_MS = 50;

/**
 * Closes the connection of an answered request whose body is still arriving (a 413 for a body over
 * `--max-body-size`) the way nginx's lingering close does. Closing a socket with unread data makes the
 * kernel answer with a reset, which can reach the client before it has read the answer: it then sees
 * EPIPE or ECONNRESET instead of the 413. So, once the answer is written, the write side is closed
 * (the client reads the answer, then end of stream), and what the client still sends is read and
 * discarded until it closes its side, or for at most `LINGER_MS` or `LINGER_BYTES`, whichever comes
 * first (the byte bound only after `LINGER_MIN_MS`); then the socket is destroyed.
 *
 * Call after `res.end()` of a response that carries `Connection: close`.
 */
export function lingerAfterAnswer(res: ServerResponse): void {
  const socket = res.socket;
  const req = res.req;
  if (socket === null || req.complete) return;
  // Node's server asks the socket to close once the response is written (destroySoon: end, then
  // destroy on 'finish'); this listener runs after it and replaces the destroy with the linger.
  res.once('finish', () => {
    if (socket.destroyed) return;
    // eslint-disable-next-line @typescript-eslint/unbound-method -- the very function Node registered
    socket.removeListener('finish', socket.destroy);
    const started = socket.bytesRead;
    const answeredAt = Date.now();
    const check = setInterval(() => {
      const waited = Date.now() - answeredAt;
      if ((socket.bytesRead - started > LINGER_BYTES && waited >= LINGER_MIN_MS) || waited >= LINGER_MS) socket.destroy();
    }, CHECK_EVERY_MS);
    check.unref();
    socket.once('close', () => clearInterval(check));
    // The rest of the body is read and dropped (nothing listens to the request any more).
    req.removeAllListeners('data');
    req.resume();
    if (socket.writableFinished) endWhenPeerDoes(socket);
    else socket.once('finish', () => endWhenPeerDoes(socket));
  });
}

/** With the answer written, the connection closes as soon as the client closes its side. */
function endWhenPeerDoes(socket: Socket): void {
  if (socket.readableEnded) socket.destroy();
  else socket.once('end', () => socket.destroy());
}
