import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRequestHead } from './fast-path.js';

/** A head from its lines, joined with CRLF (without the final blank line, as the parser gets it). */
function head(...lines: string[]): string {
  return lines.join('\r\n');
}

/** A parse that must succeed. */
function parsed(text: string, maxHeaders = 100): NonNullable<ReturnType<typeof parseRequestHead>> {
  const result = parseRequestHead(text, maxHeaders);
  assert.ok(result !== undefined, `expected the head to be parsed: ${JSON.stringify(text)}`);
  return result;
}

/** A head that must be left to node:http. */
function rejected(text: string, maxHeaders = 100): void {
  assert.equal(parseRequestHead(text, maxHeaders), undefined, `expected the head to be refused: ${JSON.stringify(text)}`);
}

describe('parseRequestHead: heads the fast path serves', () => {
  test('a POST invocation: method, target, headers in order, Content-Length, keep-alive', () => {
    const h = parsed(head('POST /v1.0/invoke/b/method/echo?x=1&y=%20 HTTP/1.1', 'Host: 127.0.0.1:3500', 'Content-Type: text/plain', 'Content-Length: 5', 'X-Custom: a b'));
    assert.deepEqual(h, {
      method: 'POST',
      target: '/v1.0/invoke/b/method/echo?x=1&y=%20',
      rawHeaders: ['Host', '127.0.0.1:3500', 'Content-Type', 'text/plain', 'Content-Length', '5', 'X-Custom', 'a b'],
      contentLength: 5,
      keepAlive: true,
    });
  });

  test('a GET without Content-Length has contentLength 0', () => {
    const h = parsed(head('GET /v1.0/healthz HTTP/1.1', 'Host: x'));
    assert.equal(h.method, 'GET');
    assert.equal(h.target, '/v1.0/healthz');
    assert.deepEqual(h.rawHeaders, ['Host', 'x']);
    assert.equal(h.contentLength, 0);
    assert.equal(h.keepAlive, true);
  });

  test('header names keep their case and values are trimmed of surrounding blanks, inner blanks kept', () => {
    const h = parsed(head('PUT /orders HTTP/1.1', 'hOsT:x', 'dapr-app-id: \t b \t', 'X-Inner:  one\t two  ', 'X-Empty:', 'X-Blank:   ', 'Content-Length: 0'));
    assert.deepEqual(h.rawHeaders, ['hOsT', 'x', 'dapr-app-id', 'b', 'X-Inner', 'one\t two', 'X-Empty', '', 'X-Blank', '', 'Content-Length', '0']);
    assert.equal(h.contentLength, 0);
  });

  test('repeated headers other than Host and Content-Length are all kept, in order', () => {
    const h = parsed(head('GET /x HTTP/1.1', 'X-A: 1', 'Host: h', 'X-A: 2', 'x-a: 3'));
    assert.deepEqual(h.rawHeaders, ['X-A', '1', 'Host', 'h', 'X-A', '2', 'x-a', '3']);
  });

  test('header values may hold latin1 bytes (obs-text) and visible ASCII', () => {
    const h = parsed(head('GET /x HTTP/1.1', 'Host: h', 'X-Latin: caf\xe9', 'X-Punct: !"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'));
    assert.equal(h.rawHeaders[3], 'caf\xe9');
    assert.equal(h.rawHeaders[5], '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');
  });

  test('Content-Length: leading zeros, no blank after the colon, trailing blanks', () => {
    assert.equal(parsed(head('POST /x HTTP/1.1', 'Host: h', 'Content-Length: 007')).contentLength, 7);
    assert.equal(parsed(head('POST /x HTTP/1.1', 'Host: h', 'content-length:12')).contentLength, 12);
    assert.equal(parsed(head('POST /x HTTP/1.1', 'Host: h', 'CONTENT-LENGTH: 65536 \t')).contentLength, 65536);
    assert.equal(parsed(head('POST /x HTTP/1.1', 'Host: h', 'Content-Length: 999999999999999')).contentLength, 999_999_999_999_999);
  });

  test('Connection: close (in any case, alone or in a list) turns keep-alive off', () => {
    assert.equal(parsed(head('GET /x HTTP/1.1', 'Host: h', 'Connection: close')).keepAlive, false);
    assert.equal(parsed(head('GET /x HTTP/1.1', 'Host: h', 'Connection: keep-alive, close')).keepAlive, false);
    assert.equal(parsed(head('GET /x HTTP/1.1', 'Host: h', 'connection: Close')).keepAlive, false);
    assert.equal(parsed(head('GET /x HTTP/1.1', 'Host: h', 'Connection: close,keep-alive')).keepAlive, false);
  });

  test('Connection without close keeps the connection open', () => {
    assert.equal(parsed(head('GET /x HTTP/1.1', 'Host: h', 'Connection: keep-alive')).keepAlive, true);
    assert.equal(parsed(head('GET /x HTTP/1.1', 'Host: h', 'Connection: closed')).keepAlive, true);
    assert.equal(parsed(head('GET /x HTTP/1.1', 'Host: h', 'Connection: x-close-later')).keepAlive, true);
    assert.equal(parsed(head('GET /x HTTP/1.1', 'Host: h', 'X-Connection: close')).keepAlive, true);
  });

  test('every method that is a token other than HEAD and CONNECT is parsed', () => {
    for (const method of ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND']) {
      assert.equal(parsed(head(`${method} /v1.0/invoke/b/method/m HTTP/1.1`, 'Host: h')).method, method);
    }
  });

  test('exactly maxHeaders header lines are accepted; 0 means unlimited', () => {
    const lines = ['Host: h', ...Array.from({ length: 9 }, (_, i) => `X-${i}: ${i}`)];
    assert.equal(parsed(head('GET /x HTTP/1.1', ...lines), 10).rawHeaders.length, 20);
    const many = ['Host: h', ...Array.from({ length: 500 }, (_, i) => `X-${i}: ${i}`)];
    assert.equal(parsed(head('GET /x HTTP/1.1', ...many), 0).rawHeaders.length, 1002);
  });
});

describe('parseRequestHead: heads left to node:http', () => {
  const ok = ['GET /x HTTP/1.1', 'Host: h'];

  test('a well-formed control head is accepted (the rejections below differ from it in one thing)', () => {
    parsed(head(...ok));
    parsed(head(...ok, 'X-A: b'));
  });

  test('an empty head, a request line alone, or no Host', () => {
    rejected('');
    rejected('GET /x HTTP/1.1');
    rejected(head('GET /x HTTP/1.1', 'X-A: b'));
  });

  test('two Host lines, in any case', () => {
    rejected(head(...ok, 'Host: h'));
    rejected(head(...ok, 'host: other'));
  });

  test('HTTP versions other than 1.1 and malformed request lines', () => {
    rejected(head('GET /x HTTP/1.0', 'Host: h'));
    rejected(head('GET /x HTTP/2.0', 'Host: h'));
    rejected(head('GET /x http/1.1', 'Host: h'));
    rejected(head('GET /x', 'Host: h'));
    rejected(head('GET /x HTTP/1.1 ', 'Host: h'));
    rejected(head(' GET /x HTTP/1.1', 'Host: h'));
    rejected(head('GET  /x HTTP/1.1', 'Host: h'));
    rejected(head('GET\t/x HTTP/1.1', 'Host: h'));
  });

  test('absolute-form, asterisk-form and authority-form targets', () => {
    rejected(head('GET http://x/ HTTP/1.1', 'Host: x'));
    rejected(head('OPTIONS * HTTP/1.1', 'Host: x'));
    rejected(head('CONNECT x:443 HTTP/1.1', 'Host: x:443'));
    rejected(head('GET x/y HTTP/1.1', 'Host: x'));
  });

  test('a target with a space, a control character or a non-ASCII byte', () => {
    rejected(head('GET /a b HTTP/1.1', 'Host: h'));
    rejected(head('GET /a\x01b HTTP/1.1', 'Host: h'));
    rejected(head('GET /a\x7fb HTTP/1.1', 'Host: h'));
    rejected(head('GET /caf\xe9 HTTP/1.1', 'Host: h'));
    rejected(head('GET /a\rb HTTP/1.1', 'Host: h'));
  });

  test('HEAD and CONNECT', () => {
    rejected(head('HEAD /v1.0/invoke/b/method/m HTTP/1.1', 'Host: h'));
    rejected(head('CONNECT /v1.0/invoke/b/method/m HTTP/1.1', 'Host: h'));
  });

  test('a method with a character outside the token set', () => {
    rejected(head('GE(T /x HTTP/1.1', 'Host: h'));
    rejected(head('GET: /x HTTP/1.1', 'Host: h'));
    rejected(head('G\xc9T /x HTTP/1.1', 'Host: h'));
    rejected(head('GE"T /x HTTP/1.1', 'Host: h'));
  });

  test('Transfer-Encoding in any form', () => {
    rejected(head(...ok, 'Transfer-Encoding: chunked'));
    rejected(head(...ok, 'transfer-encoding: identity'));
    rejected(head(...ok, 'Content-Length: 5', 'Transfer-Encoding: chunked'));
  });

  test('Expect and Upgrade', () => {
    rejected(head(...ok, 'Expect: 100-continue'));
    rejected(head(...ok, 'expect: something-else'));
    rejected(head(...ok, 'Upgrade: websocket', 'Connection: Upgrade'));
    rejected(head(...ok, 'Upgrade: h2c'));
    rejected(head(...ok, 'Connection: keep-alive, Upgrade'));
  });

  test('a malformed, signed, listed or repeated Content-Length', () => {
    rejected(head(...ok, 'Content-Length: +5'));
    rejected(head(...ok, 'Content-Length: -1'));
    rejected(head(...ok, 'Content-Length: 1, 1'));
    rejected(head(...ok, 'Content-Length: 1 1'));
    rejected(head(...ok, 'Content-Length: 0x10'));
    rejected(head(...ok, 'Content-Length: 5.0'));
    rejected(head(...ok, 'Content-Length:'));
    rejected(head(...ok, 'Content-Length: 1000000000000000'));
    rejected(head(...ok, 'Content-Length: 5', 'Content-Length: 5'));
    rejected(head(...ok, 'Content-Length: 5', 'content-length: 6'));
  });

  test('header values with control characters', () => {
    for (const c of ['\x00', '\x01', '\x08', '\x0b', '\x0c', '\x1b', '\x1f', '\x7f']) {
      rejected(head(...ok, `X-A: a${c}b`));
      rejected(head(...ok, `X-A: ${c}`));
    }
  });

  test('a character outside latin1 in a header value', () => {
    rejected(head(...ok, 'X-A: \u0100'));
    rejected(head(...ok, 'X-A: \u20ac'));
  });

  test('malformed header lines: a blank before the colon, no colon, an empty or non-token name', () => {
    rejected(head(...ok, 'Foo : bar'));
    rejected(head(...ok, 'Foo\t: bar'));
    rejected(head(...ok, 'Foo bar'));
    rejected(head(...ok, ': bar'));
    rejected(head(...ok, ':'));
    rejected(head(...ok, 'Fo(o: bar'));
    rejected(head(...ok, 'Fo\xe9o: bar'));
    rejected(head(...ok, ''));
  });

  test('obs-fold: a line starting with a space or a tab', () => {
    rejected(head(...ok, 'X-A: one', ' two'));
    rejected(head(...ok, 'X-A: one', '\ttwo'));
    rejected(head('GET /x HTTP/1.1', ' Host: h'));
  });

  test('a bare CR or bare LF inside a line', () => {
    rejected(head(...ok, 'X-A: a\rb'));
    rejected(head(...ok, 'X-A: a\r'));
    rejected(head(...ok, 'X-A: a\nb'));
    rejected('GET /x HTTP/1.1\nHost: h');
    rejected('GET /x HTTP/1.1\r\nHost: h\nX-A: b');
    rejected('GET /x HTTP/1.1\rHost: h');
  });

  test('more header lines than maxHeaders', () => {
    const lines = ['Host: h', ...Array.from({ length: 10 }, (_, i) => `X-${i}: ${i}`)];
    rejected(head('GET /x HTTP/1.1', ...lines), 10);
    rejected(head('GET /x HTTP/1.1', 'Host: h', 'X-A: b'), 1);
    parsed(head('GET /x HTTP/1.1', 'Host: h'), 1);
  });
});
