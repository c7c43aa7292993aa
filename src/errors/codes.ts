import { GrpcStatus } from './grpc-status.js';

/**
 * The category of an error code, as Dapr labels `dapr_error_code_total` (`spec.metrics.recordErrorCodes`):
 * Dapr's own for the codes Dapr defines, `common` for Courier's.
 */
export type ErrorCategory = 'service-invocation' | 'health' | 'common';

/**
 * The catalogue of Courier's error codes. Codes that Dapr defines keep Dapr's names and statuses so
 * that clients written for Dapr see the same `errorCode`; the others are Courier's own and are marked
 * so in docs/errors.md. A code, once published, keeps its meaning.
 */
export const errorCatalogue = {
  /** Service invocation failed: resolution, transport, or the callee reported an error. */
  ERR_DIRECT_INVOKE: { httpStatus: 500, grpcCode: GrpcStatus.INTERNAL, category: 'service-invocation' },
  /** `GET /v1.0/healthz` while the sidecar (or its app channel) is not ready. */
  ERR_HEALTH_NOT_READY: { httpStatus: 500, grpcCode: GrpcStatus.INTERNAL, category: 'health' },
  /** `GET /v1.0/healthz?appid=X` where X is not this sidecar's app id. */
  ERR_HEALTH_APPID_NOT_MATCH: { httpStatus: 500, grpcCode: GrpcStatus.INTERNAL, category: 'health' },
  /** `GET /v1.0/healthz/outbound` before outbound calls can be made. */
  ERR_OUTBOUND_HEALTH_NOT_READY: { httpStatus: 500, grpcCode: GrpcStatus.INTERNAL, category: 'health' },
  /** A request the API cannot accept as sent. */
  ERR_BAD_REQUEST: { httpStatus: 400, grpcCode: GrpcStatus.INVALID_ARGUMENT, category: 'common' },
  /** The request body could not be read from the caller. */
  ERR_BODY_READ: { httpStatus: 400, grpcCode: GrpcStatus.INVALID_ARGUMENT, category: 'common' },
  /** The request is not well formed. */
  ERR_MALFORMED_REQUEST: { httpStatus: 400, grpcCode: GrpcStatus.INVALID_ARGUMENT, category: 'common' },
  /** Courier: the request body is larger than `--max-body-size`. */
  ERR_BODY_TOO_LARGE: { httpStatus: 413, grpcCode: GrpcStatus.RESOURCE_EXHAUSTED, category: 'common' },
  /** Courier: the request head has more headers than `--max-request-headers`, or is larger than `--read-buffer-size`. */
  ERR_HEADERS_TOO_LARGE: { httpStatus: 431, grpcCode: GrpcStatus.RESOURCE_EXHAUSTED, category: 'common' },
  /** A Dapr API that Courier does not provide (state, pub/sub, actors, ...). */
  ERR_API_UNIMPLEMENTED: { httpStatus: 501, grpcCode: GrpcStatus.UNIMPLEMENTED, category: 'common' },
  /** `DAPR_API_TOKEN` is set and the request's `dapr-api-token` is missing or wrong. */
  ERR_API_TOKEN: { httpStatus: 401, grpcCode: GrpcStatus.UNAUTHENTICATED, category: 'common' },
  /** Courier: a command-line flag is unknown or has a bad value. */
  ERR_INVALID_FLAG: { httpStatus: 400, grpcCode: GrpcStatus.INVALID_ARGUMENT, category: 'common' },
  /** Courier: a configuration, resource or run file is unreadable or invalid. */
  ERR_INVALID_CONFIG: { httpStatus: 400, grpcCode: GrpcStatus.INVALID_ARGUMENT, category: 'common' },
  /**
   * Courier: a certificate signing request sent to the Sentry is not a PKCS#10 request, its
   * self-signature does not verify, or its key is not Ed25519 or ECDSA P-256.
   */
  ERR_CSR_INVALID: { httpStatus: 400, grpcCode: GrpcStatus.INVALID_ARGUMENT, category: 'common' },
  /** Courier: an internal invariant failed; never expected. */
  ERR_INTERNAL: { httpStatus: 500, grpcCode: GrpcStatus.INTERNAL, category: 'common' },
} as const satisfies Record<string, { httpStatus: number; grpcCode: GrpcStatus; category: ErrorCategory }>;

export type ErrorCode = keyof typeof errorCatalogue;
