/**
 * gRPC status codes, as defined by https://grpc.github.io/grpc/core/md_doc_statuscodes.html.
 * The numeric values are part of the wire protocol.
 */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type GrpcStatus = (typeof GrpcStatus)[keyof typeof GrpcStatus];

const names: readonly string[] = Object.keys(GrpcStatus);

/** The canonical upper-case name of a status code, e.g. `UNAVAILABLE`; `CODE(<n>)` for unknown values. */
export function grpcStatusName(code: number): string {
  return names[code] ?? `CODE(${code})`;
}

/** True when `code` is one of the seventeen defined gRPC status codes. */
export function isGrpcStatus(code: number): code is GrpcStatus {
  return Number.isInteger(code) && code >= 0 && code <= 16;
}
