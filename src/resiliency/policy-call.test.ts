import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { CourierError } from '../errors/index.js';
import { CallAbort } from '../invoke/call-signal.js';
import { RetryBudget } from '../invoke/retry-budget.js';
import { builtInRetryPolicy, type RetryPolicy } from '../invoke/retry.js';
import type { AttemptOutcome, AttemptSender } from '../invoke/retrying-call.js';
import type { InvokeRequest, ResponseHead, ResponseSink } from '../invoke/types.js';
import { silentLogger } from '../observability/logging/index.js';
import type { CallPolicy } from './policies.js';
import { PolicyCall } from './policy-call.js';
import { parseCodes, type AppPolicies, type RetrySpec } from './resource.js';

const builtIn: RetryPolicy = { ...builtInRetryPolicy, backoffMs: 1 };
const retry = (maxRetries: number, codes?: string): RetrySpec => ({
  name: 'r',
  policy: 'constant',
  durationMs: 1,
  maxIntervalMs: 1,
  maxRetries,
  httpStatusCodes: codes === undefined ? undefined : parseCodes(codes, 'http'),
  grpcStatusCodes: undefined,
});

function policy(p: Partial<AppPolicies>): CallPolicy {
  const policies: AppPolicies = { resource: 'res', timeoutMs: undefined, timeoutName: undefined, retry: undefined, breaker: undefined, breakerCacheSize: 100, named: true, ...p };
  return { policies, breaker: undefined, metricsTarget: 'app_svc', namespace: 'default' };
}

type Step = number | 'hang' | CourierError;

/** Attempts that answer with the given statuses (body `answer <n>`), hang, or fail, in turn. */
function attempts(steps: Step[]): AttemptSender<string> & { bodies: string[]; outcomes: AttemptOutcome[]; signals: CallAbort[] } {
  let next = 0;
  const s = {
    bodies: [] as string[],
    outcomes: [] as AttemptOutcome[],
    signals: [] as CallAbort[],
    send(req: InvokeRequest<string>, sink: ResponseSink): void {
      const step = steps[next++] ?? 200;
      const n = next;
      s.signals.push(req.signal as CallAbort);
      const answer = (text: string): void => {
        s.bodies.push(text);
        if (step === 'hang') {
          req.signal.addEventListener('abort', () => sink.error(new CourierError('ERR_DIRECT_INVOKE', 'cancelled')));
          return;
        }
        if (step instanceof CourierError) {
          sink.error(step);
          return;
        }
        const head: ResponseHead = { status: step, headers: {}, contentType: 'text/plain', contentLength: undefined };
        sink.head(head, { pause: () => {}, resume: () => {} });
        sink.data(Buffer.from(`answer ${n}`));
        sink.end();
      };
      const body = req.body;
      if (body === null || Buffer.isBuffer(body)) answer(body?.toString() ?? '');
      else {
        const chunks: Buffer[] = [];
        body.on('data', (c: Buffer) => chunks.push(c));
        body.once('end', () => answer(Buffer.concat(chunks).toString()));
      }
    },
    retrying: () => {},
    describeAttempt: () => 'svc',
    settled: (o: AttemptOutcome) => void s.outcomes.push(o),
  };
  return s;
}

interface Result {
  status?: number;
  body: string;
  error?: CourierError;
}

function run(p: CallPolicy, sender: AttemptSender<string>, options: { verb?: string; body?: InvokeRequest['body']; contentLength?: number; budget?: RetryBudget } = {}): Promise<Result> {
  const req: InvokeRequest<string> = {
    target: 'svc',
    caller: { appId: 'a', namespace: 'default' },
    method: 'm',
    verb: options.verb ?? 'GET',
    query: '',
    contentType: '',
    metadata: {},
    body: options.body ?? null,
    contentLength: options.contentLength,
    signal: new CallAbort(),
    clientAddress: '127.0.0.1',
  };
  return new Promise((resolve) => {
    const result: Result = { body: '' };
    const sink: ResponseSink = {
      head: (h) => (result.status = h.status),
      data: (c) => (result.body += c.toString()),
      end: () => resolve(result),
      error: (e) => resolve({ ...result, error: e }),
    };
    new PolicyCall(req, sink, sender, { policy: p, builtIn, budget: options.budget, replayLimitBytes: 1024, logger: silentLogger(), metrics: undefined }).start();
  });
}

test('failed answers that match are dropped and retried; the caller gets the first good answer only', async () => {
  const s = attempts([503, 500, 200]);
  const r = await run(policy({ retry: retry(5, '500-599') }), s);
  assert.equal(r.status, 200);
  assert.equal(r.body, 'answer 3');
  assert.deepEqual(s.outcomes, ['failure', 'failure', 'success']);
});

test('an answer outside the matching codes, or the last one allowed, reaches the caller unchanged', async () => {
  assert.deepEqual(await run(policy({ retry: retry(5, '500-599') }), attempts([404])), { status: 404, body: 'answer 1' });
  assert.deepEqual(await run(policy({ retry: retry(2) }), attempts([500, 502, 503, 200])), { status: 503, body: 'answer 3' });
  assert.deepEqual(await run(policy({ retry: retry(2) }), attempts([302])), { status: 302, body: 'answer 1' }, '3xx is a success');
});

test('with the retry budget spent, a failed answer is passed on instead of dropped', async () => {
  const budget = new RetryBudget({ ratio: 0, minPerSecond: 0 });
  assert.deepEqual(await run(policy({ retry: retry(5) }), attempts([500, 200]), { budget }), { status: 500, body: 'answer 1' });
  const error = await run(policy({ retry: retry(5) }), attempts([new CourierError('ERR_DIRECT_INVOKE', 'boom')]), { budget });
  assert.match(error.error?.message ?? '', /boom \(not retried: the retry budget for this target is spent\)/);
});

test('a timeout ends a hung attempt (cancelling it) and the retry gets the answer', async () => {
  const s = attempts(['hang', 200]);
  const started = performance.now();
  const r = await run(policy({ timeoutMs: 50, timeoutName: 't', retry: retry(1) }), s);
  assert.deepEqual(r, { status: 200, body: 'answer 2' });
  assert.ok(performance.now() - started >= 45);
  assert.equal(s.signals[0]?.aborted, true, 'the timed-out attempt was cancelled');
  assert.deepEqual(s.outcomes, ['failure', 'success']);
  const failed = await run(policy({ timeoutMs: 20, retry: retry(0) }), attempts(['hang']));
  assert.equal(failed.error?.grpcCode, 4, 'DEADLINE_EXCEEDED');
  assert.match(failed.error?.message ?? '', /timeout after 20ms/);
});

test('a streamed body of unknown length is never replayed by a policy; one of known length is', async () => {
  const streamed = await run(policy({ retry: retry(3) }), attempts([500, 200]), { verb: 'POST', body: Readable.from([Buffer.from('abc')]) });
  assert.deepEqual(streamed, { status: 500, body: 'answer 1' });
  const s = attempts([500, 200]);
  const known = await run(policy({ retry: retry(3) }), s, { verb: 'POST', body: Readable.from([Buffer.from('abc')]), contentLength: 3 });
  assert.deepEqual(known, { status: 200, body: 'answer 2' });
  assert.deepEqual(s.bodies, ['abc', 'abc']);
});

test('under default policies the built-in retries still run for calls that never reached the app; a named target turns them off', async () => {
  const notSent = (): CourierError => new CourierError('ERR_DIRECT_INVOKE', 'refused', { retry: 'safe' });
  const s = attempts([notSent(), notSent(), 200]);
  assert.deepEqual(await run(policy({ named: false }), s), { status: 200, body: 'answer 3' });
  const named = await run(policy({ named: true }), attempts([notSent(), 200]));
  assert.match(named.error?.message ?? '', /^refused$/);
});

test("errors that are the caller's (4xx) are not retried by a policy", async () => {
  const denied = new CourierError('ERR_DIRECT_INVOKE', 'denied by the access-control policy', { httpStatus: 403, grpcCode: 7 });
  const r = await run(policy({ retry: retry(3) }), attempts([denied, 200]));
  assert.equal(r.error, denied);
});
