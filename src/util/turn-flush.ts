// Writes gathered during one turn of the event loop, flushed together once its I/O callbacks have
// run: the frames that several sockets' reads produced in one turn leave in one write per connection.
// Shared by the HTTP/2 and lane endpoints, with one immediate for all of them.
import type { Duplex } from 'node:stream';

/** A connection with frames gathered to write. */
export interface TurnWriter {
  flush(): void;
}

let due: TurnWriter[] = [];
let flushPending = false;

function flushDue(): void {
  const writers = due;
  due = [];
  flushPending = false;
  for (const writer of writers) {
    try {
      writer.flush();
    } catch {
      // A socket that throws on write is failing; its close ends its calls. The others still flush.
    }
  }
}

/** Has `writer.flush()` called once this turn's I/O callbacks have run (the caller calls it once per turn). */
export function flushAfterTurn(writer: TurnWriter): void {
  due.push(writer);
  if (!flushPending) {
    flushPending = true;
    setImmediate(flushDue);
  }
}

/** Writes `pieces` to `socket`: one write, or corked writes (one writev) for several. False when the socket's buffer is full. */
export function writePieces(socket: Duplex, pieces: readonly Uint8Array[]): boolean {
  if (pieces.length === 1) return socket.write(pieces[0]);
  let ok = true;
  socket.cork();
  for (const piece of pieces) ok = socket.write(piece);
  socket.uncork();
  return ok;
}
