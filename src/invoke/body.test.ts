import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { LimitedBody, readWholeBody, ReplayableBody } from './body.js';
import { CourierError } from '../errors/index.js';

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

test('LimitedBody passes a body under the limit through unchanged', async () => {
  const source = Readable.from([Buffer.from('hello '), Buffer.from('world')], { objectMode: false });
  assert.equal((await collect(new LimitedBody(source, 11))).toString(), 'hello world');
});

test('LimitedBody fails with ERR_BODY_TOO_LARGE past the limit and stops reading the source', async () => {
  const source = new PassThrough();
  const body = new LimitedBody(source, 10);
  source.write(Buffer.alloc(8));
  source.write(Buffer.alloc(8));
  await assert.rejects(collect(body), (err: unknown) => err instanceof CourierError && err.code === 'ERR_BODY_TOO_LARGE');
  assert.equal(source.isPaused(), true);
});

test('LimitedBody reports a source that closes early as ERR_BODY_READ', async () => {
  const source = new PassThrough();
  const body = new LimitedBody(source, 100);
  source.write('part');
  source.destroy();
  await assert.rejects(collect(body), (err: unknown) => err instanceof CourierError && err.code === 'ERR_BODY_READ');
});

test('ReplayableBody repeats what an attempt consumed, then continues with the rest', async () => {
  const source = new PassThrough();
  const replay = new ReplayableBody(source, 1024);
  const first = replay.open();
  source.write('abc');
  const got: Buffer[] = [];
  await new Promise<void>((resolve) => first.once('data', (c: Buffer) => (got.push(c), resolve())));
  assert.equal(Buffer.concat(got).toString(), 'abc');
  // the first attempt fails; a second attempt sees the whole body from the start
  first.destroy();
  const second = replay.open();
  setImmediate(() => source.end('def'));
  assert.equal((await collect(second)).toString(), 'abcdef');
  assert.equal(replay.replayable, true);
});

test('ReplayableBody stops being replayable past its limit, but the current attempt still gets everything', async () => {
  const source = new PassThrough();
  const replay = new ReplayableBody(source, 4);
  const attempt = replay.open();
  source.end('0123456789');
  assert.equal((await collect(attempt)).toString(), '0123456789');
  assert.equal(replay.replayable, false);
});

test('ReplayableBody opened after the source ended replays everything and ends', async () => {
  const source = Readable.from([Buffer.from('xy'), Buffer.from('z')]);
  const replay = new ReplayableBody(source, 100);
  assert.equal((await collect(replay.open())).toString(), 'xyz');
  assert.equal((await collect(replay.open())).toString(), 'xyz');
});

function readWhole(source: Readable, length: number): Promise<Buffer | CourierError> {
  return new Promise((resolve) => readWholeBody(source, length, { ready: (_r: undefined, body: Buffer) => resolve(body) }, undefined, { error: resolve }));
}

test('readWholeBody joins the chunks of a body of the declared length', async () => {
  const one = await readWhole(Readable.from([Buffer.from('hello')]), 5);
  assert.ok(Buffer.isBuffer(one));
  assert.equal(one.toString(), 'hello');
  const several = await readWhole(Readable.from([Buffer.from('he'), Buffer.from('ll'), Buffer.from('o!')]), 6);
  assert.ok(Buffer.isBuffer(several));
  assert.equal(several.toString(), 'hello!');
});

test('readWholeBody reports a body that ends short, closes early or fails as ERR_BODY_READ', async () => {
  const short = await readWhole(Readable.from([Buffer.from('hel')]), 5);
  assert.ok(short instanceof CourierError && short.code === 'ERR_BODY_READ', String(short));
  const source = new PassThrough();
  const closed = readWhole(source, 5);
  source.write('he');
  source.destroy();
  const c = await closed;
  assert.ok(c instanceof CourierError && c.code === 'ERR_BODY_READ', String(c));
  const failing = new PassThrough();
  const failed = readWhole(failing, 5);
  failing.destroy(new Error('socket hang up'));
  const f = await failed;
  assert.ok(f instanceof CourierError && f.code === 'ERR_BODY_READ' && /socket hang up/.test(f.message), String(f));
});
