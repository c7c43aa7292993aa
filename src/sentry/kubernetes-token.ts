import { readFileSync } from '../util/builtins.js';
import { CourierError, errorMessage } from '../errors/index.js';

/** Where Dapr's injector mounts the projected ServiceAccount token meant for the Sentry. */
export const DAPR_SENTRY_TOKEN_PATH = '/var/run/secrets/dapr.io/sentrytoken/token';
/** Names another file to read the token from (e.g. a differently mounted volume). */
export const KUBERNETES_TOKEN_FILE_ENV = 'COURIER_SENTRY_KUBERNETES_TOKEN_FILE';

/**
 * The token file a sidecar reads, and whether it was named explicitly (then it must exist): the file named
 * by COURIER_SENTRY_KUBERNETES_TOKEN_FILE, else by DAPR_SENTRY_TOKEN_FILE (as the injector sets it; used
 * only when it does not hold a join token), else Dapr's path.
 */
export function kubernetesTokenFile(env: NodeJS.ProcessEnv = process.env): { readonly file: string; readonly explicit: boolean } {
  const named = env[KUBERNETES_TOKEN_FILE_ENV] || env.DAPR_SENTRY_TOKEN_FILE;
  return named !== undefined && named !== '' ? { file: named, explicit: true } : { file: DAPR_SENTRY_TOKEN_PATH, explicit: false };
}

/**
 * The projected ServiceAccount token, read afresh (the kubelet rotates it, so each certificate request
 * reads the file again); undefined when the default file does not exist (not in a pod set up for
 * Courier). A file named explicitly must exist, and any file found must be readable and not empty.
 */
export function readKubernetesToken(location: { readonly file: string; readonly explicit: boolean } = kubernetesTokenFile()): string | undefined {
  let text: string;
  try {
    text = readFileSync(location.file, 'utf8').trim();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!location.explicit && (code === 'ENOENT' || code === 'ENOTDIR')) return undefined;
    throw new CourierError('ERR_INVALID_CONFIG', `the Kubernetes ServiceAccount token ${location.file} cannot be read: ${errorMessage(err)}`);
  }
  if (text === '') throw new CourierError('ERR_INVALID_CONFIG', `the Kubernetes ServiceAccount token ${location.file} is empty`);
  return text;
}
