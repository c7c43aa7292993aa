import type { IncomingMessage } from 'node:http';
import { request } from '../../../util/builtin-http.js';

export interface SseEvent {
  readonly event: string;
  readonly data: string;
}

/** A server-sent-events client for tests: collects events and waits for the one it is told to. */
export class SseReader {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  readonly response: IncomingMessage;
  #buffer = '';
  #ended = false;
  #waiters = new Set<() => void>();

  private constructor(response: IncomingMessage) {
    this.response = response;
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      this.#buffer += chunk;
      let end;
      while ((end = this.#buffer.indexOf('\n\n')) >= 0) {
        const block = this.#buffer.slice(0, end);
        this.#buffer = this.#buffer.slice(end + 2);
        let event = 'message';
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) this.comments.push(line.slice(1).trim());
          else if (line.startsWith('event: ')) event = line.slice(7);
          else if (line.startsWith('data: ')) data.push(line.slice(6));
        }
        if (data.length > 0) this.events.push({ event, data: data.join('\n') });
      }
      this.#wake();
    });
    response.once('close', () => {
      this.#ended = true;
      this.#wake();
    });
  }

  static open(port: number, path: string, headers: Record<string, string> = {}): Promise<SseReader> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, headers: { accept: 'text/event-stream', ...headers }, agent: false }, (res) => resolve(new SseReader(res)));
      req.on('error', reject);
      req.end();
    });
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Waits for an event named `event` whose parsed data passes `accept`; returns that data. */
  async next<T = unknown>(event: string, accept: (data: T) => boolean = () => true, timeoutMs = 5000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let from = 0;
    for (;;) {
      for (; from < this.events.length; from++) {
        const e = this.events[from];
        if (e?.event !== event) continue;
        const data = JSON.parse(e.data) as T;
        if (accept(data)) return data;
      }
      if (this.#ended) throw new Error(`the stream ended before a "${event}" event came`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no "${event}" event within ${timeoutMs} ms; got ${this.events.map((e) => e.event).join(', ')}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        const wake = (): void => {
          clearTimeout(timer);
          this.#waiters.delete(wake);
          resolve();
        };
        this.#waiters.add(wake);
      });
    }
  }

  /** Waits until the server ends the stream. */
  async closedByServer(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#ended) {
      if (Date.now() > deadline) throw new Error(`the stream was not ended within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    this.response.destroy();
  }

  #wake(): void {
    for (const wake of [...this.#waiters]) wake();
  }
}
