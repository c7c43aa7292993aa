// A reader of server-sent events (the WHATWG event-stream format) fed with whatever chunks the socket
// delivers: a line, a field or a UTF-8 character may be split across chunks, and lines may end in LF,
// CRLF or CR.

/** One dispatched event: its name (`message` unless the stream named it) and its data lines joined by LF. */
export interface SseEvent {
  readonly event: string;
  readonly data: string;
  readonly id: string;
}

export interface SseHandlers {
  readonly onEvent: (event: SseEvent) => void;
  /** A comment line (`: text`), without the colon and the one space after it. */
  readonly onComment?: (text: string) => void;
}

export class SseParser {
  readonly #handlers: SseHandlers;
  readonly #decoder = new TextDecoder('utf-8');
  #buffer = '';
  /** A chunk ended in CR: an LF starting the next one belongs to the same line end. */
  #skipLf = false;
  #event = '';
  #data: string[] = [];
  #id = '';

  constructor(handlers: SseHandlers) {
    this.#handlers = handlers;
  }

  /** Feeds the next chunk of the stream. */
  push(chunk: Uint8Array | string): void {
    let text = typeof chunk === 'string' ? chunk : this.#decoder.decode(chunk, { stream: true });
    if (text === '') return;
    if (this.#skipLf && text.startsWith('\n')) text = text.slice(1);
    this.#skipLf = false;
    this.#buffer += text;
    let start = 0;
    for (;;) {
      const cr = this.#buffer.indexOf('\r', start);
      const lf = this.#buffer.indexOf('\n', start);
      if (cr < 0 && lf < 0) break;
      const end = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
      const line = this.#buffer.slice(start, end);
      if (end === cr && this.#buffer[end + 1] === '\n') start = end + 2;
      else {
        start = end + 1;
        // A CR at the very end: its LF may be the first byte of the next chunk.
        if (end === cr && end === this.#buffer.length - 1) this.#skipLf = true;
      }
      this.#line(line);
    }
    this.#buffer = this.#buffer.slice(start);
  }

  #line(line: string): void {
    if (line === '') {
      this.#dispatch();
      return;
    }
    if (line.startsWith(':')) {
      this.#handlers.onComment?.(line.slice(line.startsWith(': ') ? 2 : 1));
      return;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.#event = value;
        break;
      case 'data':
        this.#data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) this.#id = value;
        break;
      default:
      // `retry` and unknown fields: nothing to do for a reader that does not reconnect.
    }
  }

  #dispatch(): void {
    if (this.#data.length > 0) this.#handlers.onEvent({ event: this.#event === '' ? 'message' : this.#event, data: this.#data.join('\n'), id: this.#id });
    this.#event = '';
    this.#data = [];
  }
}
