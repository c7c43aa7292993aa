import type { Writable } from 'node:stream';

/**
 * Writes `totalBytes` to `out` in pieces of at most `chunkBytes`, waiting for 'drain' whenever the
 * stream asks, then ends it. `fill(offset)` gives the byte each piece is filled with; `onPiece` sees
 * every piece written (to hash what was sent, say).
 */
export function writeBytes(
  out: Pick<Writable, 'write' | 'once' | 'end'>,
  totalBytes: number,
  chunkBytes: number,
  fill: (offset: number) => number = () => 0x7a,
  onPiece?: (piece: Buffer) => void,
): void {
  let sent = 0;
  const pump = (): void => {
    while (sent < totalBytes) {
      const piece = Buffer.alloc(Math.min(chunkBytes, totalBytes - sent), fill(sent));
      onPiece?.(piece);
      sent += piece.length;
      if (!out.write(piece)) {
        out.once('drain', pump);
        return;
      }
    }
    out.end();
  };
  pump();
}
