import { CourierError } from '../errors/index.js';
import { createLogger } from '../observability/logging/index.js';
import { Sidecar } from '../runtime/sidecar.js';
import { compileWhenServing } from '../runtime/heap-flags.js';
import { installLeanAsyncBind } from '../runtime/async-bind.js';
import { parseSidecarArgs, sidecarUsage } from './sidecar-command.js';

/**
 * `courier sidecar`: runs until SIGTERM, SIGINT or `POST /v1.0/shutdown`, then shuts down gracefully
 * and exits 0, also when the signal arrives while it is still starting. A second signal during
 * shutdown exits at once with status 1.
 */
export async function sidecarMain(argv: readonly string[]): Promise<number> {
  const parsed = parseSidecarArgs(argv);
  if (parsed === 'help') {
    process.stdout.write(sidecarUsage);
    return 0;
  }
  const { options, warnings } = parsed;
  installLeanAsyncBind();
  const logger = createLogger({
    level: options.logLevel,
    json: options.logAsJson,
    base: { app_id: options.appId, scope: 'courier' },
  });
  for (const warning of warnings) logger.warn(warning);
  const sidecar = new Sidecar(options, logger);

  let stopping = false;
  const exitCode = new Promise<number>((resolve) => {
    const stop = (reason: string, block = false): void => {
      if (stopping) {
        logger.warn(`${reason} again: exiting now`);
        resolve(1);
        return;
      }
      stopping = true;
      logger.info(`${reason}: stopping`);
      (block ? sidecar.blockShutdown() : Promise.resolve())
        .then(() => sidecar.stop())
        .then(
          () => resolve(0),
          (err: unknown) => {
            logger.error({ err: CourierError.from(err).message }, 'shutdown failed');
            resolve(1);
          },
        );
    };
    // Only a SIGTERM waits out --dapr-block-shutdown-duration (a kubelet stopping the Pod), as daprd.
    process.on('SIGTERM', () => stop('received SIGTERM', true));
    process.on('SIGINT', () => stop('received SIGINT'));
    sidecar.onShutdownRequest(() => stop('shutdown requested through the API'));
  });

  try {
    await sidecar.start();
    compileWhenServing();
  } catch (err) {
    // A signal or a shutdown request during start-up: the stop already under way decides the status.
    if (stopping) return exitCode;
    const error = CourierError.from(err);
    if (error.code === 'ERR_INVALID_CONFIG' || error.code === 'ERR_INVALID_FLAG') {
      // A mistake in what the user gave: one plain line, as the CLI reports its other errors.
      process.stderr.write(`courier sidecar: ${error.message}\n`);
    } else {
      logger.fatal({ code: error.code }, error.message);
    }
    await sidecar.stop({ quiet: true }).catch(() => {});
    return 1;
  }
  return exitCode;
}
