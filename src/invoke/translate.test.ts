import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GrpcStatus } from '../errors/index.js';
import { ERROR_INFO_TYPE_URL, errorInfoCodec, rpcStatusCodec } from '../proto/index.js';
import { newMetadata } from './headers.js';
import {
  detailsFromTrailer,
  grpcErrorJson,
  grpcMetadataFromInvoke,
  grpcResultForHttpStatus,
  invokeMetadataFromGrpc,
  statusDetailsTrailer,
} from './translate.js';

test('an HTTP app status becomes the gRPC status of Dapr’s CodeFromHTTPStatus table', () => {
  const table: [number, number][] = [
    [200, GrpcStatus.OK],
    [204, GrpcStatus.OK],
    [408, GrpcStatus.CANCELLED],
    [500, GrpcStatus.UNKNOWN],
    [400, GrpcStatus.INTERNAL],
    [504, GrpcStatus.DEADLINE_EXCEEDED],
    [404, GrpcStatus.NOT_FOUND],
    [409, GrpcStatus.ALREADY_EXISTS],
    [403, GrpcStatus.PERMISSION_DENIED],
    [401, GrpcStatus.UNAUTHENTICATED],
    [429, GrpcStatus.RESOURCE_EXHAUSTED],
    [501, GrpcStatus.UNIMPLEMENTED],
    [503, GrpcStatus.UNAVAILABLE],
    [418, GrpcStatus.UNKNOWN],
    [302, GrpcStatus.UNKNOWN],
  ];
  for (const [http, code] of table) assert.equal(grpcResultForHttpStatus(http, Buffer.alloc(0)).code, code, `HTTP ${http}`);
});

test('an HTTP error carries the status text and an ErrorInfo with the code and the first 63 characters of the body', () => {
  const body = Buffer.from('é'.repeat(70));
  const result = grpcResultForHttpStatus(404, body);
  assert.equal(result.message, 'Not Found');
  assert.equal(result.details.length, 1);
  const [detail] = result.details;
  assert.equal(detail?.typeUrl, ERROR_INFO_TYPE_URL);
  const info = errorInfoCodec.decode(detail?.value ?? new Uint8Array());
  assert.equal(info.reason, 'Not Found');
  assert.equal(info.domain, 'dapr.io');
  assert.deepEqual({ ...info.metadata }, { 'http.code': '404', 'http.error_message': 'é'.repeat(63) });
  assert.deepEqual(grpcResultForHttpStatus(201, body).details, []);
});

test('status details survive the grpc-status-details-bin trailer', () => {
  const details = grpcResultForHttpStatus(500, Buffer.from('boom')).details;
  const trailer = statusDetailsTrailer(GrpcStatus.UNKNOWN, 'Internal Server Error', details);
  const status = rpcStatusCodec.decode(Buffer.from(trailer, 'base64'));
  assert.equal(status.code, GrpcStatus.UNKNOWN);
  assert.equal(status.message, 'Internal Server Error');
  assert.deepEqual(detailsFromTrailer(trailer)?.map((d) => d.typeUrl), [ERROR_INFO_TYPE_URL]);
  assert.equal(detailsFromTrailer(undefined), undefined);
  assert.equal(detailsFromTrailer('%%%not-base64-protobuf\u0007'), undefined);
});

test('a gRPC app error is rendered as the JSON of google.rpc.Status', () => {
  const details = grpcResultForHttpStatus(404, Buffer.from('missing')).details;
  assert.deepEqual(JSON.parse(grpcErrorJson(5, 'no such thing', details)), {
    code: 5,
    message: 'no such thing',
    details: [{ '@type': ERROR_INFO_TYPE_URL, reason: 'Not Found', domain: 'dapr.io', metadata: { 'http.code': '404', 'http.error_message': 'missing' } }],
  });
  assert.deepEqual(JSON.parse(grpcErrorJson(2, '', [{ typeUrl: 'type.example.com/x.Y', value: Buffer.from([1, 2, 3]) }])), {
    code: 2,
    details: [{ '@type': 'type.example.com/x.Y', value: 'AQID' }],
  });
  assert.equal(grpcErrorJson(13, '', []), '{"code":13}');
});

test('invocation metadata becomes gRPC metadata as Dapr converts it for gRPC apps', () => {
  const md = newMetadata();
  md['Content-Type'] = { values: ['application/json'] };
  md['X-Custom'] = { values: ['a', 'b'] };
  md[':authority'] = { values: ['example'] };
  md['grpc-timeout'] = { values: ['1S'] };
  md['Connection'] = { values: ['close'] };
  md['destination-app-id'] = { values: ['b'] };
  md['dapr-api-token'] = { values: ['secret'] };
  md['trace-bin'] = { values: ['AQID'] };
  md['Bad Name'] = { values: ['x'] };
  md['Empty'] = { values: [] };
  assert.deepEqual(
    { ...grpcMetadataFromInvoke(md) },
    {
      'dapr-content-type': 'application/json',
      'x-custom': ['a', 'b'],
      'dapr-authority': 'example',
      'dapr-grpc-timeout': '1S',
      'dapr-connection': 'close',
      'trace-bin': 'AQID',
    },
  );
  assert.deepEqual({ ...grpcMetadataFromInvoke(undefined) }, {});
});

test('received gRPC metadata keeps custom keys with every value and drops protocol fields', () => {
  const md = invokeMetadataFromGrpc(
    { ':path': '/x', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '1S', 'x-multi': ['1', '2'], 'user-agent': 'ua', 'dapr-api-token': 't' },
    new Set(['dapr-api-token']),
  );
  assert.deepEqual(JSON.parse(JSON.stringify(md)), { 'x-multi': { values: ['1', '2'] }, 'user-agent': { values: ['ua'] } });
});
