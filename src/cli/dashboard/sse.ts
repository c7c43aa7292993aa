import type { ServerResponse } from 'node:http';

/**
 * One server-sent-events response with a bounded send buffer. A page that reads slower than events
 * come (a background tab, a stalled connection) does not make the CLI hold an ever-growing queue:
 * past `limitBytes` of unsent data, events are dropped and counted, and the page is told how many
 * (`event: dropped`) once the socket drains.
 */
export class SseStream {
  readonly #res: ServerResponse;
  readonly #limitBytes: number;
  #dropped = 0;
  #closed = false;

  constructor(res: ServerResponse, limitBytes: number) {
    this.#res = res;
    this.#limitBytes = limitBytes;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // Tells a reverse proxy not to buffer the stream (nginx).
      'x-accel-buffering': 'no',
    });
    // How long EventSource waits before it reconnects after the CLI restarts.
    res.write('retry: 2000\n\n');
    res.on('drain', () => {
      if (this.#dropped === 0 || this.#closed) return;
      const dropped = this.#dropped;
      this.#dropped = 0;
      this.#write(`event: dropped\ndata: ${dropped}\n\n`);
    });
    res.once('close', () => (this.#closed = true));
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Sends one event; false when it was dropped (buffer full or stream closed). */
  send(event: string, data: unknown): boolean {
    if (this.#closed) return false;
    if (this.#res.writableLength > this.#limitBytes) {
      this.#dropped++;
      return false;
    }
    // JSON has no raw newlines, so one `data:` line carries the whole event.
    this.#write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    return true;
  }

  /** A comment line: keeps idle connections (and the proxies between) from timing out. */
  ping(): void {
    if (!this.#closed && this.#res.writableLength <= this.#limitBytes) this.#write(': ping\n\n');
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#res.end();
  }

  #write(text: string): void {
    this.#res.write(text);
  }
}
