import { pino, type Logger as PinoLogger, type DestinationStream } from 'pino';
import { logLevels, type LogLevel } from './levels.js';

export { logLevels, type LogLevel };
export type Logger = PinoLogger;

export interface LoggerOptions {
  level: LogLevel | 'silent';
  /** One JSON object per line (`--log-as-json`); otherwise Dapr-style `key=value` text. */
  json: boolean;
  /** Fields present on every line, e.g. `app_id`. */
  base?: Record<string, string>;
  /** Where lines go; standard output by default. */
  destination?: { write(line: string): void };
}

/**
 * Creates the process logger. Logging is synchronous: a sidecar logs little on the request path,
 * and synchronous writes mean nothing is lost when the process exits on a signal.
 */
export function createLogger(options: LoggerOptions): Logger {
  const out = options.destination ?? { write: (line: string) => void process.stdout.write(line) };
  const destination: DestinationStream = options.json ? out : { write: (line: string) => out.write(formatText(line)) };
  return pino(
    {
      level: options.level,
      base: options.base ?? {},
      messageKey: 'msg',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/** A logger that discards everything; for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

const textOrder = ['time', 'level', 'msg'];

/** Turns one pino JSON line into `time="…" level=info msg="…" key=value …`. */
export function formatText(jsonLine: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(jsonLine) as Record<string, unknown>;
  } catch {
    return jsonLine;
  }
  const parts: string[] = [];
  for (const key of textOrder) {
    if (key in record) parts.push(`${key}=${quote(record[key])}`);
  }
  for (const [key, value] of Object.entries(record)) {
    if (textOrder.includes(key)) continue;
    parts.push(`${key}=${quote(value)}`);
  }
  return `${parts.join(' ')}\n`;
}

function quote(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return /^[A-Za-z0-9_.:/@+-]+$/.test(text) ? text : JSON.stringify(text);
}
