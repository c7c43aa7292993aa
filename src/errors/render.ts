import { CourierError } from './courier-error.js';

/**
 * How an error is written to an HTTP caller. Dapr's shape, `{"errorCode": ..., "message": ...}`,
 * except for the API-token failure, which Dapr answers in plain text and clients match on.
 */
export interface HttpErrorRendering {
  status: number;
  contentType: string;
  body: string;
}

export function renderHttpError(error: unknown): HttpErrorRendering {
  const err = CourierError.from(error);
  if (err.code === 'ERR_API_TOKEN') {
    return { status: err.httpStatus, contentType: 'text/plain; charset=utf-8', body: `${err.message}\n` };
  }
  return {
    status: err.httpStatus,
    contentType: 'application/json',
    body: JSON.stringify({ errorCode: err.code, message: err.message }),
  };
}

/** How an error is written to a gRPC caller: a status code and a message. */
export function renderGrpcError(error: unknown): { code: number; message: string } {
  const err = CourierError.from(error);
  return { code: err.grpcCode, message: err.message };
}
