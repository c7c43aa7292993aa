import { readFileSync } from '../../util/builtins.js';
import { join } from 'node:path';
import { CourierError } from '../../errors/index.js';
import { loadOrCreateTokenSecret, mintJoinToken } from '../../security/index.js';
import { formatText } from '../../observability/logging/index.js';
import { ManagedProcess } from './processes.js';
import { NODE_FLAGS, withLauncherEnv } from '../../runtime/heap-flags.js';

/** How long the Sentry may take to start listening. */
const START_TIMEOUT_MS = 20_000;
/**
 * How long the join tokens of a run can be used. A sidecar needs its token to get its first
 * certificate and renews with that certificate afterwards; the token serves again only if the
 * certificate expired meanwhile (a machine that slept through the renewal), so it is made to outlast
 * any such pause of a run left going, without being valid forever.
 */
export const RUN_TOKEN_TTL_MS = 30 * 24 * 3_600_000;

/**
 * The Sentry that `courier run` starts when a configuration asks for mTLS: one per `courier run`,
 * on a loopback port of its own choosing, with the certificate authority in `$COURIER_HOME/certs` (created on first
 * use, or by `courier init`). Each sidecar gets a join token for its own app id and the trust anchors;
 * apps get neither.
 */
export class LocalSentry {
  readonly address: string;
  readonly #process: ManagedProcess;
  readonly #certs: string;

  private constructor(address: string, process: ManagedProcess, certs: string) {
    this.address = address;
    this.#process = process;
    this.#certs = certs;
  }

  static async start(options: { home: string; mainScript: string; env: NodeJS.ProcessEnv; say: (line: string) => void }): Promise<LocalSentry> {
    const certs = join(options.home, 'certs');
    const stderr: string[] = [];
    // The Sentry binds port 0 itself (no window in which another listener can take a port chosen
    // here) and names the address it got in its "Sentry listening" line. It logs JSON at info level
    // so that line can be read; what the user sees is, as before, its warnings and errors as text.
    let listening: ((address: string) => void) | undefined;
    const bound = new Promise<string>((resolve) => (listening = resolve));
    const stdout = (line: string): void => {
      const record = parseLogLine(line);
      if (record === undefined) return options.say(`== SENTRY == ${line}`);
      if (record.msg === SENTRY_LISTENING && typeof record.address === 'string') listening?.(record.address);
      if (record.level !== 'info' && record.level !== 'debug' && record.level !== 'trace') options.say(`== SENTRY == ${formatText(line).trimEnd()}`);
    };
    const child = await ManagedProcess.start({
      command: process.execPath,
      args: [...NODE_FLAGS, options.mainScript, 'sentry', '--issuer-credentials', certs, '--port', '0', '--listen-address', '127.0.0.1', '--log-level', 'info', '--log-as-json'],
      cwd: options.home,
      env: withLauncherEnv(options.env),
      stdout,
      stderr: (l: string) => (stderr.push(l), options.say(`== SENTRY == ${l}`)),
      supervised: true,
    });
    let timer: NodeJS.Timeout | undefined;
    const failed = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), START_TIMEOUT_MS);
      timer.unref();
      void child.exited.then(() => resolve(undefined), () => resolve(undefined));
    });
    const address = await Promise.race([bound, failed]);
    clearTimeout(timer);
    if (address === undefined || !child.running) {
      await child.stop(1000);
      throw new CourierError('ERR_INVALID_CONFIG', `the local Sentry did not start: ${stderr.slice(-5).join(' ') || 'no output'}`);
    }
    options.say(`✅  Local Sentry (certificate authority) is up on ${address} (pid ${child.pid}): calls between sidecars use mutual TLS`);
    return new LocalSentry(address, child, certs);
  }

  /** The sidecar flags and environment that turn mTLS on for one app. */
  sidecarSettings(appId: string, namespace: string): { flags: string[]; env: Record<string, string> } {
    return {
      flags: ['--enable-mtls', '--sentry-address', this.address],
      env: {
        DAPR_TRUST_ANCHORS: readFileSync(join(this.#certs, 'ca.crt'), 'utf8'),
        COURIER_SENTRY_TOKEN: mintJoinToken(loadOrCreateTokenSecret(this.#certs), { appId, namespace, expiresAtMs: Date.now() + RUN_TOKEN_TTL_MS }),
      },
    };
  }

  async stop(): Promise<void> {
    await this.#process.stop(5000);
  }
}

/** The message of the Sentry's line that names the address it listens on (src/cli/sentry-command.ts). */
const SENTRY_LISTENING = 'Sentry listening';

/** One JSON log line of the Sentry, or undefined for anything else it writes. */
function parseLogLine(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const record = JSON.parse(line) as unknown;
    return typeof record === 'object' && record !== null ? (record as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
