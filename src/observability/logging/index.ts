export { createLogger, silentLogger, formatText, logLevels } from './logger.js';
export type { Logger, LoggerOptions, LogLevel } from './logger.js';
