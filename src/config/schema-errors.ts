import type { z } from 'zod';
import { CourierError } from '../errors/index.js';

/**
 * Turns a zod failure into one clear line: `<file>: <key path>: <reason>`. Only the first issue is
 * reported; fixing it and running again shows the next.
 */
export function schemaError(where: string, error: z.ZodError): CourierError {
  const issue = error.issues[0];
  if (issue === undefined) return new CourierError('ERR_INVALID_CONFIG', `${where}: invalid`);
  const path = issue.path.map(String).join('.');
  let reason = issue.message;
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => `"${k}"`).join(', ');
    return new CourierError('ERR_INVALID_CONFIG', `${where}: ${path === '' ? '' : `${path}: `}unknown key ${keys}`);
  }
  if (issue.code === 'invalid_type' && issue.input === undefined) reason = 'is required';
  return new CourierError('ERR_INVALID_CONFIG', `${where}: ${path === '' ? '' : `${path} `}${reason}`.replace(/ {2,}/g, ' '));
}
