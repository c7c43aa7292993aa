import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CourierError } from '../../errors/index.js';
import { loadOrCreateTokenSecret, mintJoinToken } from '../../security/index.js';
import { freePort } from './free-port.js';
import { ManagedProcess } from './processes.js';
import { NODE_FLAGS } from '../../runtime/heap-flags.js';

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
 * on a free loopback port, with the certificate authority in `$COURIER_HOME/certs` (created on first
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
    const port = await freePort();
    const stderr: string[] = [];
    const child = await ManagedProcess.start({
      command: process.execPath,
      args: [...NODE_FLAGS, options.mainScript, 'sentry', '--issuer-credentials', certs, '--port', String(port), '--listen-address', '127.0.0.1', '--log-level', 'warn'],
      cwd: options.home,
      env: options.env,
      stdout: (l: string) => options.say(`== SENTRY == ${l}`),
      stderr: (l: string) => (stderr.push(l), options.say(`== SENTRY == ${l}`)),
      supervised: true,
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(await accepts(port))) {
      if (!child.running || Date.now() > deadline) {
        await child.stop(1000);
        throw new CourierError('ERR_INVALID_CONFIG', `the local Sentry did not start: ${stderr.slice(-5).join(' ') || 'no output'}`);
      }
      await sleep(50);
    }
    options.say(`✅  Local Sentry (certificate authority) is up on 127.0.0.1:${port} (pid ${child.pid}): calls between sidecars use mutual TLS`);
    return new LocalSentry(`127.0.0.1:${port}`, child, certs);
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

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => (socket.destroy(), resolve(false)));
  });
}
