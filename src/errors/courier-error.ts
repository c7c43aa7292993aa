import { errorCatalogue, type ErrorCode } from './codes.js';
import type { GrpcStatus } from './grpc-status.js';

export interface CourierErrorOptions {
  /** Overrides the catalogue's HTTP status for this instance (e.g. 404 for a missing app id). */
  httpStatus?: number;
  /** Overrides the catalogue's gRPC status for this instance. */
  grpcCode?: GrpcStatus;
  cause?: unknown;
}

const brand = Symbol.for('courier.CourierError');

/**
 * The one error type of Courier. Every failure that reaches a caller, a log line or the CLI is a
 * CourierError with a stable `code` from the catalogue; `httpStatus` and `grpcCode` say how it is
 * rendered for each protocol (see `render.ts`). The message is written for the caller and never
 * contains a stack trace.
 */
export class CourierError extends Error {
  readonly code: ErrorCode;
  readonly httpStatus: number;
  readonly grpcCode: GrpcStatus;
  readonly [brand] = true;

  constructor(code: ErrorCode, message: string, options: CourierErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CourierError';
    this.code = code;
    this.httpStatus = options.httpStatus ?? errorCatalogue[code].httpStatus;
    this.grpcCode = options.grpcCode ?? errorCatalogue[code].grpcCode;
  }

  /** Works across duplicate copies of the module, like undici's and connect-es's errors. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[brand] === true;
  }

  /** Converts anything caught into a CourierError, keeping CourierErrors as they are. */
  static from(value: unknown, code: ErrorCode = 'ERR_INTERNAL'): CourierError {
    if (value instanceof CourierError) return value;
    return new CourierError(code, errorMessage(value), { cause: value });
  }
}

/** A short, caller-safe description of any thrown value (never a stack trace). */
export function errorMessage(value: unknown): string {
  if (value instanceof Error) {
    const code = (value as NodeJS.ErrnoException).code;
    const msg = value.message || value.name;
    return code !== undefined && !msg.includes(code) ? `${msg} (${code})` : msg;
  }
  if (typeof value === 'string') return value;
  return String(value);
}
