import { GrpcStatus } from './grpc-status.js';

/**
 * Status translation between gRPC and HTTP, exactly as Dapr does it
 * (`pkg/messaging/v1/util.go` HTTPStatusFromCode / CodeFromHTTPStatus).
 * The two tables are intentionally not inverses of each other: that is Dapr's behaviour and
 * clients depend on it (for example HTTP 400 becomes INTERNAL, while INVALID_ARGUMENT becomes 400).
 */
const httpByGrpc: Readonly<Record<GrpcStatus, number>> = {
  [GrpcStatus.OK]: 200,
  [GrpcStatus.CANCELLED]: 408,
  [GrpcStatus.UNKNOWN]: 500,
  [GrpcStatus.INVALID_ARGUMENT]: 400,
  [GrpcStatus.DEADLINE_EXCEEDED]: 504,
  [GrpcStatus.NOT_FOUND]: 404,
  [GrpcStatus.ALREADY_EXISTS]: 409,
  [GrpcStatus.PERMISSION_DENIED]: 403,
  [GrpcStatus.RESOURCE_EXHAUSTED]: 429,
  [GrpcStatus.FAILED_PRECONDITION]: 400,
  [GrpcStatus.ABORTED]: 409,
  [GrpcStatus.OUT_OF_RANGE]: 400,
  [GrpcStatus.UNIMPLEMENTED]: 501,
  [GrpcStatus.INTERNAL]: 500,
  [GrpcStatus.UNAVAILABLE]: 503,
  [GrpcStatus.DATA_LOSS]: 500,
  [GrpcStatus.UNAUTHENTICATED]: 401,
};

/** The HTTP status an HTTP caller sees for a gRPC status (500 for codes outside the table). */
export function httpStatusFromGrpc(code: number): number {
  return httpByGrpc[code as GrpcStatus] ?? 500;
}

/** The gRPC status a gRPC caller sees for an HTTP app's status code. */
export function grpcStatusFromHttp(status: number): GrpcStatus {
  if (status >= 200 && status < 300) return GrpcStatus.OK;
  switch (status) {
    case 408:
      return GrpcStatus.CANCELLED;
    case 500:
      return GrpcStatus.UNKNOWN;
    case 400:
      return GrpcStatus.INTERNAL;
    case 504:
      return GrpcStatus.DEADLINE_EXCEEDED;
    case 404:
      return GrpcStatus.NOT_FOUND;
    case 409:
      return GrpcStatus.ALREADY_EXISTS;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 429:
      return GrpcStatus.RESOURCE_EXHAUSTED;
    case 501:
      return GrpcStatus.UNIMPLEMENTED;
    case 503:
      return GrpcStatus.UNAVAILABLE;
    default:
      return GrpcStatus.UNKNOWN;
  }
}
