import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './ports.js';
import { ChannelPool, tlsClient } from '../../src/grpc/index.js';
import { signCertificateRequestCodec, signCertificateResponseCodec, type SignCertificateRequest, type SignCertificateResponse } from '../../src/proto/index.js';
import { loadOrCreateTokenSecret, mintJoinToken } from '../../src/security/index.js';
import { accepts } from './child.js';
import { courierBin, type TestEnv } from './env.js';

/** A `courier sentry` child process with its own credentials directory in the test's home. */
export class SentryProcess {
  readonly dir: string;
  port = 0;
  #child: ChildProcess | undefined;
  #output = '';
  readonly #args: string[];
  readonly #env: TestEnv;

  constructor(env: TestEnv, args: string[] = [], dir = join(env.home, 'certs')) {
    this.#env = env;
    this.dir = dir;
    this.#args = args;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get output(): string {
    return this.#output;
  }

  /** Waits until the output matches `pattern`; fails with the output if the Sentry exits or time runs out. */
  async waitFor(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = pattern.exec(this.#output);
      if (m !== null) return m;
      const child = this.#child;
      if (child === undefined || child.exitCode !== null || Date.now() > deadline) throw new Error(`the Sentry: no ${String(pattern)} in its output:\n${this.#output}`);
      await sleep(20);
    }
  }

  /** The process id of the running Sentry (-1 when not started). */
  get pid(): number {
    return this.#child?.pid ?? -1;
  }

  /** The root certificate sidecars must trust. */
  get trustAnchors(): string {
    return readFileSync(join(this.dir, 'ca.crt'), 'utf8');
  }

  /** A join token for an app id (minted with the Sentry's secret, as `courier sentry token` does). */
  token(appId: string, namespace = 'default', expiresAtMs?: number): string {
    return mintJoinToken(loadOrCreateTokenSecret(this.dir), { appId, namespace, ...(expiresAtMs === undefined ? {} : { expiresAtMs }) });
  }

  /** Starts (or restarts, on the same port) and waits until it accepts connections. */
  async start(): Promise<this> {
    if (this.port === 0) this.port = await freePort();
    const child = spawn(process.execPath, [courierBin, 'sentry', '--issuer-credentials', this.dir, '--port', String(this.port), ...this.#args], {
      env: { ...process.env, COURIER_HOME: this.#env.home },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (d: Buffer) => (this.#output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.#output += d.toString()));
    this.#child = child;
    const deadline = Date.now() + 20_000;
    while (!(await accepts(this.port))) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the Sentry did not start\n${this.#output}`);
      await sleep(25);
    }
    return this;
  }

  /** The environment and flags that give a sidecar mTLS with this Sentry. */
  sidecar(appId: string, namespace = 'default'): { args: string[]; env: Record<string, string> } {
    return {
      args: ['--enable-mtls', '--sentry-address', this.address],
      env: { DAPR_TRUST_ANCHORS: this.trustAnchors, COURIER_SENTRY_TOKEN: this.token(appId, namespace), NAMESPACE: namespace },
    };
  }

  async stop(): Promise<void> {
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000)]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }

  close(): Promise<void> {
    return this.stop();
  }
}

export async function startSentry(env: TestEnv, args: string[] = []): Promise<SentryProcess> {
  return env.track(new SentryProcess(env, args)).start();
}

/** What the Sentry answered one SignCertificate call. */
export interface SignOutcome {
  readonly code: number;
  readonly message: string;
  readonly response: SignCertificateResponse | undefined;
}

/**
 * A SignCertificate caller that sends any request, well formed or not, from a chosen loopback source
 * address (127.0.0.0/8 all reaches a Sentry listening on 127.0.0.1), optionally presenting a client
 * certificate. The Sentry's own identity is not checked: this plays an arbitrary client.
 */
export class SentryCaller {
  readonly #pool: ChannelPool;
  readonly #port: number;

  constructor(sentry: { port: number; trustAnchors: string }, options: { localAddress?: string; key?: string; cert?: string } = {}) {
    this.#port = sentry.port;
    const anchors = sentry.trustAnchors;
    const { localAddress, key, cert } = options;
    this.#pool = new ChannelPool({
      ...tlsClient(() => ({
        ca: anchors,
        servername: 'localhost',
        checkServerIdentity: () => undefined,
        ...(localAddress === undefined ? {} : { localAddress }),
        ...(key === undefined || cert === undefined ? {} : { key, cert }),
      })),
    });
  }

  /** Sends `request` (or raw bytes) and resolves with the status and any decoded answer. */
  call(request: SignCertificateRequest | Uint8Array): Promise<SignOutcome> {
    const bytes = request instanceof Uint8Array ? request : signCertificateRequestCodec.encode(request);
    return new Promise((resolve) => {
      const call = this.#pool.get({ host: '127.0.0.1', port: this.#port }).call('/dapr.proto.sentry.v1.CA/SignCertificate', {});
      let reply: Buffer | undefined;
      call.setReader({
        headers: () => {},
        message: (m) => (reply = Buffer.from(m)),
        end: (r) => resolve({ code: r.code, message: r.message, response: reply === undefined ? undefined : signCertificateResponseCodec.decode(reply) }),
      });
      call.sendMessage(bytes);
      call.end();
    });
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}
