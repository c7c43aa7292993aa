import { test } from 'node:test';
import assert from 'node:assert/strict';
import { traceIdOf } from './api-log.js';

test('the trace id of a W3C traceparent, and nothing for one that is not valid', () => {
  assert.equal(traceIdOf('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'), '4bf92f3577b34da6a3ce929d0e0e4736');
  assert.equal(traceIdOf(' 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00 '), '4bf92f3577b34da6a3ce929d0e0e4736');
  assert.equal(traceIdOf('00-00000000000000000000000000000000-00f067aa0ba902b7-01'), undefined, 'an all-zero trace id is invalid');
  assert.equal(traceIdOf('00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01'), undefined, 'upper case is not allowed');
  assert.equal(traceIdOf('garbage'), undefined);
  assert.equal(traceIdOf(undefined), undefined);
  assert.equal(traceIdOf(['00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01']), undefined);
});
