// The log levels alone, without the logger: flag parsing (shared with `courier run`, which does not log
// through pino) needs only these.
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'fatal';
export const logLevels: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'fatal'];
