import { Readable } from 'node:stream';
import { CourierError } from '../errors/index.js';
import { formatQuantity } from '../util/quantity.js';

export function bodyTooLargeError(limitBytes: number): CourierError {
  return new CourierError('ERR_BODY_TOO_LARGE', `the request body is larger than the limit of ${formatQuantity(limitBytes)} (--max-body-size)`);
}

export function bodyClosedError(): CourierError {
  return new CourierError('ERR_BODY_READ', 'the caller closed the connection before sending the whole request body');
}

/**
 * Passes a request body through unchanged while counting it: past `limitBytes` it stops reading
 * the source and fails with ERR_BODY_TOO_LARGE, so nothing beyond the limit is read into memory.
 * Backpressure is kept: the source is read only as fast as this stream is consumed.
 */
export class LimitedBody extends Readable {
  readonly #source: Readable;
  readonly #limitBytes: number;
  #received = 0;
  #ended = false;

  constructor(source: Readable, limitBytes: number) {
    super();
    this.#source = source;
    this.#limitBytes = limitBytes;
    source.on('data', (chunk: Buffer) => this.#onData(chunk));
    source.pause();
    source.once('end', () => {
      this.#ended = true;
      this.push(null);
    });
    source.once('error', (err) => this.destroy(CourierError.from(err, 'ERR_BODY_READ')));
    source.once('close', () => {
      if (!this.#ended && !this.destroyed) this.destroy(bodyClosedError());
    });
  }

  /** Bytes read from the source so far. */
  get received(): number {
    return this.#received;
  }

  override _read(): void {
    this.#source.resume();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#source.pause();
    callback(error);
  }

  #onData(chunk: Buffer): void {
    this.#received += chunk.length;
    if (this.#received > this.#limitBytes) {
      this.#source.pause();
      this.destroy(bodyTooLargeError(this.#limitBytes));
      return;
    }
    if (!this.push(chunk)) this.#source.pause();
  }
}

/**
 * Lets a request body be sent again after a failed attempt. While an attempt reads the body, the
 * chunks it took are kept, up to `limitBytes`; `open()` then returns a stream that repeats them and
 * continues with the rest of the source. Past the limit the body is no longer replayable and only
 * the current attempt may use it.
 */
export class ReplayableBody {
  readonly #source: Readable;
  readonly #limitBytes: number;
  readonly #kept: Buffer[] = [];
  #keptBytes = 0;
  #overflowed = false;
  #sourceEnded = false;
  #sourceError: Error | undefined;
  #current: AttemptBody | undefined;
  #listening = false;

  constructor(source: Readable, limitBytes: number) {
    this.#source = source;
    this.#limitBytes = limitBytes;
  }

  /** True while every byte taken so far can be sent again. */
  get replayable(): boolean {
    return !this.#overflowed;
  }

  /** A stream over the whole body for one attempt; a previous attempt's stream stops receiving data. */
  open(): Readable {
    this.#current?.detach();
    const attempt = new AttemptBody(this, [...this.#kept]);
    this.#current = attempt;
    if (!this.#listening) this.#listen();
    return attempt;
  }

  /** @internal called by AttemptBody when it wants more data. */
  pull(): void {
    if (this.#sourceEnded) this.#current?.finish(this.#sourceError);
    else this.#source.resume();
  }

  #listen(): void {
    this.#listening = true;
    this.#source.on('data', (chunk: Buffer) => {
      if (!this.#overflowed) {
        this.#keptBytes += chunk.length;
        if (this.#keptBytes > this.#limitBytes) {
          this.#overflowed = true;
          this.#kept.length = 0;
        } else {
          this.#kept.push(chunk);
        }
      }
      const current = this.#current;
      if (current === undefined || !current.offer(chunk)) this.#source.pause();
    });
    this.#source.pause();
    this.#source.once('end', () => {
      this.#sourceEnded = true;
      this.#current?.finish(undefined);
    });
    this.#source.once('error', (err) => {
      this.#sourceEnded = true;
      this.#sourceError = err;
      this.#current?.finish(err);
    });
  }
}

class AttemptBody extends Readable {
  readonly #owner: ReplayableBody;
  readonly #replay: Buffer[];
  #detached = false;

  constructor(owner: ReplayableBody, replay: Buffer[]) {
    super();
    this.#owner = owner;
    this.#replay = replay;
  }

  override _read(): void {
    while (this.#replay.length > 0) {
      const chunk = this.#replay.shift() as Buffer;
      if (!this.push(chunk)) return;
    }
    this.#owner.pull();
  }

  offer(chunk: Buffer): boolean {
    if (this.#detached || this.destroyed) return false;
    return this.push(chunk);
  }

  finish(error: Error | undefined): void {
    if (this.#detached || this.destroyed || this.#replay.length > 0) return;
    if (error === undefined) this.push(null);
    else this.destroy(error);
  }

  detach(): void {
    this.#detached = true;
  }
}

/** Who gets a body read whole: `ready` with it, or `call.error` when it could not be read. */
export interface WholeBodyConsumer<R, C extends { error(error: CourierError): void }> {
  ready(request: R, body: Buffer, call: C): void;
}

const READER = Symbol('courier.body.reader');
type TaggedSource = Readable & { [READER]?: WholeBodyReader<unknown, { error(error: CourierError): void }> };

/** The state of one whole-body read; the source's listeners are shared functions that find it by a tag. */
class WholeBodyReader<R, C extends { error(error: CourierError): void }> {
  readonly length: number;
  readonly consumer: WholeBodyConsumer<R, C>;
  readonly request: R;
  readonly call: C;
  first: Buffer | undefined;
  chunks: Buffer[] | undefined;
  received = 0;
  settled = false;

  constructor(length: number, consumer: WholeBodyConsumer<R, C>, request: R, call: C) {
    this.length = length;
    this.consumer = consumer;
    this.request = request;
    this.call = call;
  }

  finish(error: CourierError | undefined): void {
    if (this.settled) return;
    this.settled = true;
    if (error === undefined && this.received !== this.length) error = bodyClosedError();
    if (error !== undefined) {
      this.call.error(error);
      return;
    }
    const body = this.chunks === undefined ? (this.first ?? Buffer.alloc(0)) : Buffer.concat(this.chunks, this.received);
    this.consumer.ready(this.request, body, this.call);
  }
}

function onWholeData(this: TaggedSource, chunk: Buffer): void {
  const reader = this[READER];
  if (reader === undefined || reader.settled) return;
  reader.received += chunk.length;
  if (reader.first === undefined) reader.first = chunk;
  else (reader.chunks ??= [reader.first]).push(chunk);
}

function onWholeEnd(this: TaggedSource): void {
  this[READER]?.finish(undefined);
}

function onWholeError(this: TaggedSource, err: Error): void {
  this[READER]?.finish(CourierError.from(err, 'ERR_BODY_READ'));
}

function onWholeClose(this: TaggedSource): void {
  // 'close' follows 'end' on every request: only a body cut short needs an error (built only then).
  const reader = this[READER];
  if (reader !== undefined && !reader.settled) reader.finish(bodyClosedError());
}

/**
 * Reads a request body of known, small length whole (see `WHOLE_BODY_LIMIT_BYTES`), then calls exactly
 * one of `consumer.ready(request, body, call)` or `call.error` (the caller closed the connection first,
 * or the read failed). One small object per call: the listeners are shared, and stay on the source
 * (they do nothing once the read is settled) instead of being removed one by one.
 */
export function readWholeBody<R, C extends { error(error: CourierError): void }>(
  source: Readable,
  length: number,
  consumer: WholeBodyConsumer<R, C>,
  request: R,
  call: C,
): void {
  (source as TaggedSource)[READER] = new WholeBodyReader(length, consumer, request, call);
  source.on('data', onWholeData);
  source.on('end', onWholeEnd);
  source.on('error', onWholeError);
  source.on('close', onWholeClose);
}
