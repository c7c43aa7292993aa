/**
 * `grpc-timeout` encoding, PROTOCOL-HTTP2.md "Timeout": TimeoutValue (a positive integer of at most 8
 * ASCII digits) followed by TimeoutUnit: H (hours), M (minutes), S (seconds), m (milliseconds),
 * u (microseconds) or n (nanoseconds).
 */
const MAX_TIMEOUT_VALUE = 99_999_999;

const unitMs: Readonly<Record<string, number>> = {
  H: 3_600_000,
  M: 60_000,
  S: 1000,
  m: 1,
  u: 1e-3,
  n: 1e-6,
};

/**
 * Encodes a remaining time in ms. Courier's clock is millisecond-grained, so the value is written in
 * milliseconds, rounded up (never shorter than the caller asked), switching to a coarser unit only when
 * it would need more than 8 digits (~27.7 hours); beyond what 8 digits of hours can say it saturates.
 * A non-positive remainder is sent as `1n`: the server learns the deadline has passed.
 */
export function encodeGrpcTimeout(ms: number): string {
  if (!(ms > 0)) return '1n';
  const millis = Math.ceil(ms);
  if (millis <= MAX_TIMEOUT_VALUE) return `${millis}m`;
  const seconds = Math.ceil(ms / 1000);
  if (seconds <= MAX_TIMEOUT_VALUE) return `${seconds}S`;
  const minutes = Math.ceil(ms / 60_000);
  if (minutes <= MAX_TIMEOUT_VALUE) return `${minutes}M`;
  return `${Math.min(Math.ceil(ms / 3_600_000), MAX_TIMEOUT_VALUE)}H`;
}

/**
 * Parses a `grpc-timeout` value into ms (fractional for u/n). Returns undefined when malformed (more
 * than 8 digits, no digits, unknown unit, anything else in the string), which the server answers as
 * grpc-go does, with INTERNAL.
 */
export function parseGrpcTimeout(value: string): number | undefined {
  const n = value.length - 1;
  if (n < 1 || n > 8) return undefined;
  const factor = unitMs[value.charAt(n)];
  if (factor === undefined) return undefined;
  let amount = 0;
  for (let i = 0; i < n; i++) {
    const d = value.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return undefined;
    amount = amount * 10 + d;
  }
  return amount * factor;
}
