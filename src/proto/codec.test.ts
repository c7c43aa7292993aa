import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  encodePayloadChunkHead,
  internalInvokeRequestStreamCodec,
  internalInvokeResponseStreamCodec,
  internalInvokeResponseCodec,
} from './codec.js';
import { HttpVerb } from './types.js';

test('InternalInvokeRequestStream uses Dapr field numbers', () => {
  const bytes = internalInvokeRequestStreamCodec.encode({
    request: {
      ver: 1,
      metadata: { 'Content-Type': { values: ['a'] } },
      message: { method: 'm', contentType: 'c', httpExtension: { verb: HttpVerb.POST, querystring: 'q' } },
    },
  });
  // request = field 1 (0x0a); inside: ver field 1 varint (0x08 0x01), metadata field 2 (0x12),
  // message field 3 (0x1a) with method 1, content_type 3, http_extension 4 {verb 1, querystring 2}.
  const hex = Buffer.from(bytes).toString('hex');
  assert.ok(hex.startsWith('0a'), hex);
  assert.ok(hex.includes('0801'), 'ver=1');
  assert.ok(hex.includes('1a' + '0d' + '0a016d' + '1a0163' + '2205' + '0803' + '120171'), hex);
});

test('payload-only chunk head + data decodes as a payload message, in both directions', () => {
  const data = Buffer.from('hello world');
  for (const seq of [0, 1, 127, 128, 300000]) {
    const bytes = Buffer.concat([encodePayloadChunkHead(data.length, seq), data]);
    const req = internalInvokeRequestStreamCodec.decode(bytes);
    assert.equal(req.request ?? null, null);
    assert.equal(Buffer.from(req.payload?.data ?? []).toString(), 'hello world');
    assert.equal(req.payload?.seq ?? 0, seq);
    const res = internalInvokeResponseStreamCodec.decode(bytes);
    assert.equal(Buffer.from(res.payload?.data ?? []).toString(), 'hello world');
    assert.equal(res.payload?.seq ?? 0, seq);
  }
});

test('a large chunk length is encoded as a multi-byte varint', () => {
  const data = Buffer.alloc(70_000, 1);
  const bytes = Buffer.concat([encodePayloadChunkHead(data.length, 5), data]);
  const decoded = internalInvokeRequestStreamCodec.decode(bytes);
  assert.equal(decoded.payload?.data?.length, 70_000);
  assert.equal(decoded.payload?.seq, 5);
});

test('InternalInvokeResponse round-trips status, headers and Any data', () => {
  const bytes = internalInvokeResponseCodec.encode({
    status: { code: 201, message: 'Created' },
    headers: { 'X-A': { values: ['1', '2'] } },
    message: { contentType: 'text/plain', data: { typeUrl: 'mytype', value: Buffer.from('x') } },
  });
  const back = internalInvokeResponseCodec.decode(bytes);
  assert.equal(back.status?.code, 201);
  assert.deepEqual(back.headers?.['X-A']?.values, ['1', '2']);
  assert.equal(back.message?.data?.typeUrl, 'mytype');
  assert.equal(Buffer.from(back.message?.data?.value ?? []).toString(), 'x');
});

test('SignCertificateRequest and Response use Dapr field numbers', async () => {
  const { signCertificateRequestCodec, signCertificateResponseCodec } = await import('./codec.js');
  const req = Buffer.from(
    signCertificateRequestCodec.encode({ id: 'a', token: 't', trustDomain: 'd', namespace: 'n', certificateSigningRequest: Buffer.from('c'), tokenValidator: 3 }),
  ).toString('hex');
  // id 1, token 2, trust_domain 3, namespace 4, csr 5 (bytes), token_validator 6 (varint)
  assert.equal(req, '0a0161' + '120174' + '1a0164' + '22016e' + '2a0163' + '3003');
  const res = signCertificateResponseCodec.decode(
    Buffer.from('0a0178' + '120179' + '1a0408c0c407', 'hex'),
  );
  assert.equal(Buffer.from(res.workloadCertificate ?? []).toString(), 'x');
  assert.equal(Buffer.from(res.trustChainCertificates?.[0] ?? []).toString(), 'y');
  assert.equal(res.validUntil?.seconds, 123456);
});

test('InvokeServiceRequest, InvokeResponse and the metadata messages use Dapr field numbers', async () => {
  const { invokeServiceRequestCodec, invokeResponseCodec, getMetadataResponseCodec, setMetadataRequestCodec } = await import('./codec.js');
  // InvokeServiceRequest: id 1, message 3 (field 2 is unused) {method 1, data 2 {type_url 1, value 2}, content_type 3}
  const req = Buffer.from(
    invokeServiceRequestCodec.encode({ id: 'b', message: { method: 'm', data: { typeUrl: 't', value: Buffer.from('v') }, contentType: 'c' } }),
  ).toString('hex');
  assert.equal(req, '0a0162' + '1a0e' + '0a016d' + '1206' + '0a0174' + '120176' + '1a0163');
  // InvokeResponse: data 1, content_type 2
  assert.equal(Buffer.from(invokeResponseCodec.encode({ data: { value: Buffer.from('v') }, contentType: 'c' })).toString('hex'), '0a03120176' + '120163');
  // SetMetadataRequest: key 1, value 2
  assert.equal(Buffer.from(setMetadataRequestCodec.encode({ key: 'k', value: 'v' })).toString('hex'), '0a016b' + '120176');
  // GetMetadataResponse: id 1, extended_metadata 4 (map entry key 1 value 2), runtime_version 8
  const md = getMetadataResponseCodec.decode(Buffer.from('0a0161' + '2206' + '0a016b' + '120176' + '4202' + '7631', 'hex'));
  assert.equal(md.id, 'a');
  assert.deepEqual({ ...md.extendedMetadata }, { k: 'v' });
  assert.equal(md.runtimeVersion, 'v1');
});

test('google.rpc.Status and ErrorInfo use their well-known field numbers', async () => {
  const { rpcStatusCodec, errorInfoCodec } = await import('./codec.js');
  // Status: code 1, message 2, details 3; ErrorInfo: reason 1, domain 2, metadata 3
  assert.equal(Buffer.from(rpcStatusCodec.encode({ code: 5, message: 'm', details: [{ typeUrl: 't', value: Buffer.from('v') }] })).toString('hex'), '0805' + '12016d' + '1a06' + '0a0174' + '120176');
  assert.equal(Buffer.from(errorInfoCodec.encode({ reason: 'r', domain: 'd', metadata: { a: 'b' } })).toString('hex'), '0a0172' + '120164' + '1a06' + '0a0161' + '120162');
});
