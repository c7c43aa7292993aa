import { readFileSync } from '../../util/builtins.js';
import { Agent } from 'undici';
import { CourierError, errorMessage } from '../../errors/index.js';

/**
 * How the Sentry talks to the API server (its key set, its pods): a connection pool that checks the
 * server against the cluster CA when one is given, and the Sentry's own ServiceAccount token as the
 * bearer, read again for each request since the kubelet rotates it.
 */
export function apiServerAgent(caPem: string | undefined, connections?: number): Agent {
  return new Agent({ ...(connections === undefined ? {} : { connections }), ...(caPem === undefined ? {} : { connect: { ca: caPem } }) });
}

/** `Bearer <token>` from `file`; `what` names the use in the error when the file cannot be read. */
export function bearerAuthorization(file: string, what: string): string {
  try {
    return `Bearer ${readFileSync(file, 'utf8').trim()}`;
  } catch (err) {
    throw new CourierError('ERR_INVALID_CONFIG', `the token file ${file} for ${what} cannot be read: ${errorMessage(err)}`);
  }
}
