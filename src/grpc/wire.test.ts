import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GrpcStatus } from '../errors/index.js';
import { appendCustomMetadata, customMetadata, isGrpcContentType, isReservedHeader, metadataFromRawHeaders } from './metadata.js';
import { decodeGrpcMessage, encodeGrpcMessage, grpcCodeForHttpStatus, grpcCodeForRstCode, parseGrpcStatus } from './status.js';
import { encodeGrpcTimeout, parseGrpcTimeout } from './timeout.js';

describe('grpc-message percent-encoding', () => {
  test('plain printable ASCII is sent as is', () => {
    assert.equal(encodeGrpcMessage('not found: /a b'), 'not found: /a b');
  });

  test('%, control characters and non-ASCII are percent-encoded as UTF-8 bytes', () => {
    assert.equal(encodeGrpcMessage('100% done'), '100%25 done');
    assert.equal(encodeGrpcMessage('line1\nline2\t.'), 'line1%0Aline2%09.');
    assert.equal(encodeGrpcMessage('ü€'), '%C3%BC%E2%82%AC');
    assert.equal(encodeGrpcMessage('😀'), '%F0%9F%98%80');
  });

  test('round-trips arbitrary text', () => {
    for (const text of ['', 'a', '%', '%%41', 'ü\r\n€ 100% 😀 \u0000\u007f']) {
      assert.equal(decodeGrpcMessage(encodeGrpcMessage(text)), text);
    }
  });

  test('decoding is lenient: broken escapes stay, raw UTF-8 from a sloppy peer is understood', () => {
    assert.equal(decodeGrpcMessage('50%'), '50%');
    assert.equal(decodeGrpcMessage('%zz and %4'), '%zz and %4');
    assert.equal(decodeGrpcMessage('%c3%bc'), 'ü');
    // Node hands header bytes over as latin1: 'ü' sent raw arrives as two latin1 characters.
    assert.equal(decodeGrpcMessage(Buffer.from('ü', 'utf8').toString('latin1')), 'ü');
    assert.equal(decodeGrpcMessage('%FF'), '\uFFFD');
  });
});

describe('grpc-status and status mappings', () => {
  test('parses decimal codes, rejects anything else', () => {
    assert.equal(parseGrpcStatus('0'), 0);
    assert.equal(parseGrpcStatus('14'), 14);
    assert.equal(parseGrpcStatus(''), undefined);
    assert.equal(parseGrpcStatus('1a'), undefined);
    assert.equal(parseGrpcStatus(undefined), undefined);
    assert.equal(parseGrpcStatus(['1', '2']), undefined);
  });

  test('HTTP statuses map as in http-grpc-status-mapping.md', () => {
    assert.equal(grpcCodeForHttpStatus(400), GrpcStatus.INTERNAL);
    assert.equal(grpcCodeForHttpStatus(401), GrpcStatus.UNAUTHENTICATED);
    assert.equal(grpcCodeForHttpStatus(403), GrpcStatus.PERMISSION_DENIED);
    assert.equal(grpcCodeForHttpStatus(404), GrpcStatus.UNIMPLEMENTED);
    for (const s of [429, 502, 503, 504]) assert.equal(grpcCodeForHttpStatus(s), GrpcStatus.UNAVAILABLE);
    assert.equal(grpcCodeForHttpStatus(500), GrpcStatus.UNKNOWN);
    assert.equal(grpcCodeForHttpStatus(415), GrpcStatus.UNKNOWN);
  });

  test('RST_STREAM codes map as in PROTOCOL-HTTP2.md "Errors"', () => {
    assert.equal(grpcCodeForRstCode(0), GrpcStatus.INTERNAL);
    assert.equal(grpcCodeForRstCode(2), GrpcStatus.INTERNAL);
    assert.equal(grpcCodeForRstCode(7), GrpcStatus.UNAVAILABLE);
    assert.equal(grpcCodeForRstCode(8), GrpcStatus.CANCELLED);
    assert.equal(grpcCodeForRstCode(11), GrpcStatus.RESOURCE_EXHAUSTED);
    assert.equal(grpcCodeForRstCode(12), GrpcStatus.PERMISSION_DENIED);
  });
});

describe('grpc-timeout', () => {
  test('encodes milliseconds, rounded up, in at most 8 digits', () => {
    assert.equal(encodeGrpcTimeout(1500), '1500m');
    assert.equal(encodeGrpcTimeout(0.2), '1m');
    assert.equal(encodeGrpcTimeout(99_999_999), '99999999m');
    assert.equal(encodeGrpcTimeout(100_000_000), '100000S');
    assert.equal(encodeGrpcTimeout(1e12), '16666667M');
    assert.equal(encodeGrpcTimeout(1e14), '27777778H');
    assert.equal(encodeGrpcTimeout(1e20), '99999999H');
    assert.equal(encodeGrpcTimeout(0), '1n');
    assert.equal(encodeGrpcTimeout(-5), '1n');
    for (const ms of [1, 999, 123_456_789, 1e12]) assert.ok((parseGrpcTimeout(encodeGrpcTimeout(ms)) ?? 0) >= ms);
  });

  test('parses every unit', () => {
    assert.equal(parseGrpcTimeout('2H'), 7_200_000);
    assert.equal(parseGrpcTimeout('3M'), 180_000);
    assert.equal(parseGrpcTimeout('4S'), 4000);
    assert.equal(parseGrpcTimeout('5m'), 5);
    assert.equal(parseGrpcTimeout('6000u'), 6);
    assert.equal(parseGrpcTimeout('7000000n'), 7);
    assert.equal(parseGrpcTimeout('99999999S'), 99_999_999_000);
  });

  test('rejects malformed values', () => {
    for (const bad of ['', 'S', '1', '123456789S', '1s', '1.5S', '-1S', ' 1S', '1 S', '1SS']) {
      assert.equal(parseGrpcTimeout(bad), undefined, bad);
    }
  });
});

describe('metadata', () => {
  test('raw headers keep repeated fields as arrays', () => {
    const md = metadataFromRawHeaders(['a', '1', 'b', '2', 'a', '3', 'a', '4', 'x-bin', 'AAE']);
    assert.deepEqual({ ...md }, { a: ['1', '3', '4'], b: '2', 'x-bin': 'AAE' });
  });

  test('customMetadata strips pseudo-headers and gRPC protocol fields but keeps user-agent', () => {
    const md = customMetadata({
      ':path': '/a/b',
      ':authority': 'x',
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-timeout': '1S',
      'grpc-encoding': 'identity',
      'grpc-accept-encoding': 'identity',
      'grpc-status': '0',
      'grpc-message': 'x',
      'user-agent': 'ua',
      'x-custom': ['1', '2'],
      'trace-bin': 'AAEC',
    });
    assert.deepEqual({ ...md }, { 'user-agent': 'ua', 'x-custom': ['1', '2'], 'trace-bin': 'AAEC' });
    assert.equal(isReservedHeader(':status'), true);
    assert.equal(isReservedHeader('grpc-status-details-bin'), false);
  });

  test('appendCustomMetadata lowercases keys and never overrides protocol fields', () => {
    const out = appendCustomMetadata({ ':path': '/x', te: 'trailers' }, { ':path': '/evil', TE: 'no', 'X-Key': 'v', 'user-agent': 'mine', skip: undefined });
    assert.deepEqual(out, { ':path': '/x', te: 'trailers', 'x-key': 'v', 'user-agent': 'mine' });
  });

  test('gRPC content types', () => {
    for (const ok of ['application/grpc', 'application/grpc+proto', 'application/grpc+json', 'application/grpc+x', 'Application/GRPC', 'application/grpc;charset=x']) {
      assert.equal(isGrpcContentType(ok), true, ok);
    }
    for (const bad of [undefined, '', 'application/json', 'application/grpc-web', 'application/grpcx', 'text/plain']) {
      assert.equal(isGrpcContentType(bad), false, String(bad));
    }
  });
});
