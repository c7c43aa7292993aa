import type { Readable } from 'node:stream';

/**
 * Reads `stream` to its end, holding at most `maxBytes`: resolves with the bytes, or with undefined as
 * soon as there would be more (its data is then no longer read; the caller drains or destroys the
 * stream). Rejects when the stream fails; its error listener stays, so a late error is never unhandled.
 */
export function readAtMost(stream: Readable, maxBytes: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (): void => {
      stream.off('data', onData);
      stream.off('end', onEnd);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) {
        stop();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      stop();
      resolve(Buffer.concat(chunks, size));
    };
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', reject);
  });
}
