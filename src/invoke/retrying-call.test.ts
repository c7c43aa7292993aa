import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { CourierError } from '../errors/index.js';
import { silentLogger } from '../observability/logging/index.js';
import { builtInRetryPolicy, type RetryPolicy } from './retry.js';
import { RetryingCall, type AttemptSender } from './retrying-call.js';
import type { InvokeRequest, ResponseHead, ResponseSink } from './types.js';

const fast: RetryPolicy = { ...builtInRetryPolicy, backoffMs: 1 };
const head: ResponseHead = { status: 200, headers: {}, contentType: '', contentLength: undefined };
const flow = { pause: () => {}, resume: () => {} };

function request(verb: string, body: InvokeRequest['body'] = null, signal = new AbortController().signal): InvokeRequest<string> {
  return { target: 'svc', caller: { appId: 'a', namespace: 'default' }, method: 'm', verb, query: '', contentType: '', metadata: {}, body, contentLength: undefined, signal, clientAddress: '127.0.0.1' };
}

/** A sender whose attempts play the given outcomes in turn, recording what each attempt was sent. */
function sender(outcomes: Array<'ok' | CourierError>): AttemptSender<string> & { bodies: string[]; retried: number } {
  let next = 0;
  const s = {
    bodies: [] as string[],
    retried: 0,
    send(req: InvokeRequest<string>, sink: ResponseSink): void {
      const outcome = outcomes[next++] ?? 'ok';
      const deliver = (text: string): void => {
        s.bodies.push(text);
        if (outcome === 'ok') {
          sink.head(head, flow);
          sink.end();
        } else sink.error(outcome);
      };
      const body = req.body;
      if (body === null || Buffer.isBuffer(body)) {
        deliver(body?.toString() ?? '');
        return;
      }
      const chunks: Buffer[] = [];
      body.on('data', (c: Buffer) => chunks.push(c));
      body.once('end', () => deliver(Buffer.concat(chunks).toString()));
    },
    retrying(): void {
      s.retried++;
    },
    describeAttempt: () => 'svc',
  };
  return s;
}

function run(req: InvokeRequest<string>, attempts: AttemptSender<string>, policy = fast): Promise<'ok' | CourierError> {
  return new Promise((resolve) => {
    const sink: ResponseSink = { head: () => {}, data: () => {}, end: () => resolve('ok'), error: (e) => resolve(e) };
    new RetryingCall(req, sink, attempts, policy, 1024, silentLogger()).start();
  });
}

const notSent = (): CourierError => new CourierError('ERR_DIRECT_INVOKE', 'cannot connect', { retry: 'safe' });
const unanswered = (): CourierError => new CourierError('ERR_DIRECT_INVOKE', 'closed before answering', { retry: 'idempotent' });

test('a request that was certainly not sent is retried, and a streamed body is sent whole again', async () => {
  const s = sender([notSent(), notSent()]);
  const outcome = await run(request('POST', Readable.from([Buffer.from('pay'), Buffer.from('load')])), s);
  assert.equal(outcome, 'ok');
  assert.deepEqual(s.bodies, ['payload', 'payload', 'payload']);
  assert.equal(s.retried, 2);
});

test('a connection broken before any answer is retried for idempotent verbs only', async () => {
  assert.equal(await run(request('PUT'), sender([unanswered()])), 'ok');
  const post = await run(request('POST'), sender([unanswered()]));
  assert.ok(post instanceof CourierError);
  assert.equal(post.message, 'closed before answering', 'no retry, so no retry count');
});

test('after the last retry the error says how many were made; other errors end the call at once', async () => {
  const s = sender([notSent(), notSent(), notSent(), notSent(), notSent()]);
  const failed = await run(request('GET'), s);
  assert.ok(failed instanceof CourierError);
  assert.equal(failed.message, 'cannot connect (after 3 retries)');
  assert.equal(s.bodies.length, 4);
  const permanent = sender([new CourierError('ERR_DIRECT_INVOKE', 'certificate not trusted')]);
  assert.equal(((await run(request('GET'), permanent)) as CourierError).message, 'certificate not trusted');
  assert.equal(permanent.bodies.length, 1);
});

test('a caller that gives up while the call waits for its next attempt ends it at once', async () => {
  const abort = new AbortController();
  const s = sender([notSent(), 'ok']);
  const pending = run(request('GET', null, abort.signal), s, { ...fast, backoffMs: 60_000 });
  abort.abort();
  const outcome = await pending;
  assert.ok(outcome instanceof CourierError);
  assert.match(outcome.message, /cancelled/);
  assert.equal(s.bodies.length, 1);
});

test('the policy decides: no retries when it allows none', async () => {
  const s = sender([notSent()]);
  const outcome = await run(request('GET'), s, { ...fast, maxRetries: 0 });
  assert.ok(outcome instanceof CourierError);
  assert.equal(s.bodies.length, 1);
});

test('a retry goes at once when the sender has an untried instance, and waits the backoff when not', async () => {
  const slow: RetryPolicy = { ...builtInRetryPolicy, backoffMs: 300 };
  const timed = async (untried: boolean): Promise<number> => {
    const s = { ...sender([notSent()]), hasUntried: () => untried };
    const started = performance.now();
    assert.equal(await run(request('GET'), s, slow), 'ok');
    return performance.now() - started;
  };
  const atOnce = await timed(true);
  const waited = await timed(false);
  assert.ok(atOnce < 250, `went at once (${atOnce.toFixed(0)} ms)`);
  assert.ok(waited >= 290, `waited the backoff (${waited.toFixed(0)} ms)`);
});
