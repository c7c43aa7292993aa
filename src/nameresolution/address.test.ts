import { test } from 'node:test';
import assert from 'node:assert/strict';
import { joinHostPort } from './address.js';

test('joinHostPort brackets IPv6 literals like Go net.JoinHostPort', () => {
  assert.equal(joinHostPort('127.0.0.1', 50002), '127.0.0.1:50002');
  assert.equal(joinHostPort('orders.local', 50002), 'orders.local:50002');
  assert.equal(joinHostPort('::1', 50002), '[::1]:50002');
  assert.equal(joinHostPort('fe80::1%eth0', 50002), '[fe80::1%eth0]:50002');
  assert.equal(joinHostPort('[::1]', 50002), '[::1]:50002');
});
