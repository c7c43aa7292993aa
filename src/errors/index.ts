export { CourierError, errorMessage } from './courier-error.js';
export type { CourierErrorOptions, RetrySafety } from './courier-error.js';
export { errorCatalogue } from './codes.js';
export type { ErrorCode, ErrorCategory } from './codes.js';
export { GrpcStatus, grpcStatusName, isGrpcStatus } from './grpc-status.js';
export { httpStatusFromGrpc, grpcStatusFromHttp } from './status-map.js';
export { renderHttpError, renderGrpcError } from './render.js';
export type { HttpErrorRendering } from './render.js';
