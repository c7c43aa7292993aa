import { errorCatalogue, type ErrorCode } from './codes.js';
import type { GrpcStatus } from './grpc-status.js';

export interface CourierErrorOptions {
  /** Overrides the catalogue's HTTP status for this instance (e.g. 404 for a missing app id). */
  httpStatus?: number;
  /** Overrides the catalogue's gRPC status for this instance. */
  grpcCode?: GrpcStatus;
  cause?: unknown;
  /**
   * For a failed invocation: whether sending the same request again is safe.
   * `safe`: the callee certainly did not start on it (connection never made, stream refused,
   * callee answered before dispatching). `idempotent`: the outcome is unknown, so only requests
   * whose method is idempotent (RFC 9110 §9.2.2) may be replayed. Absent: never replay.
   */
  retry?: RetrySafety;
}

export type RetrySafety = 'safe' | 'idempotent';

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
  readonly retry: RetrySafety | undefined;
  readonly [brand] = true;

  constructor(code: ErrorCode, message: string, options: CourierErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CourierError';
    this.code = code;
    this.httpStatus = options.httpStatus ?? errorCatalogue[code].httpStatus;
    this.grpcCode = options.grpcCode ?? errorCatalogue[code].grpcCode;
    this.retry = options.retry;
  }

  /** The same error with a new message (e.g. prefixed with the target), keeping code, statuses and retry safety. */
  withMessage(message: string): CourierError {
    const options: CourierErrorOptions = { httpStatus: this.httpStatus, grpcCode: this.grpcCode, cause: this.cause ?? this };
    if (this.retry !== undefined) options.retry = this.retry;
    return new CourierError(this.code, message, options);
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
