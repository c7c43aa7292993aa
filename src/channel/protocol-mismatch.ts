import { errorMessage } from '../errors/index.js';
import { APP_CLOSED } from '../http1/client.js';
import { tls } from '../util/builtins.js';
import type { Logger } from '../observability/logging/index.js';
import { usesTls, type AppProtocol } from './app-protocol.js';

export interface ProtocolMismatchOptions {
  readonly protocol: AppProtocol;
  readonly host: string;
  readonly port: number;
  readonly logger: Logger;
}

/** How long a TLS handshake with the app may take when checking whether it speaks TLS. */
const TLS_CHECK_TIMEOUT_MS = 1000;
/** A check's answer is reused this long, so a burst of failing calls costs one handshake. */
const TLS_CHECK_REUSE_MS = 5000;

/** The error texts of a TLS client that met a server answering in plain text. */
const notTlsPattern = /wrong version number|packet length too long|unknown protocol|record layer failure|http request/i;
const noAlpnPattern = /no application protocol/i;

/** OpenSSL's error lines: `<hex>:error:<code>:SSL routines:<function>:<reason>:<source file>:<line>:`. */
const opensslLine = /[0-9A-Fa-f]+:error:[0-9A-Fa-f]+:SSL routines:[^:]*:([^:\n]+)(?::[^\n]*)?\n?/g;

/**
 * A transport error's message on one line, OpenSSL's reports reduced to their reason
 * (`TLS: wrong version number`), for the error returned to callers.
 */
export function transportErrorText(message: string): string {
  return message.replace(opensslLine, 'TLS: $1 ').replace(/\s+/g, ' ').trim();
}

/**
 * Explains calls to the app that fail because the app speaks another protocol than `--app-protocol`
 * says: TLS where plain text was expected or the reverse, HTTP/2 where HTTP/1.1 was expected or the
 * reverse. The failure alone is often enough (a TLS client reading a plain-text answer, an HTTP/1.1
 * parser reading HTTP/2 frames); when it is not (a plain-text request to a TLS server is simply
 * dropped), one TLS handshake with the app tells. Each likely cause is logged once, as a warning.
 */
export class ProtocolMismatch {
  readonly #options: ProtocolMismatchOptions;
  readonly #address: string;
  readonly #logged = new Set<string>();
  #tlsCheck: { readonly at: number; readonly speaksTls: Promise<boolean> } | undefined;

  constructor(options: ProtocolMismatchOptions) {
    this.#options = options;
    this.#address = options.host.includes(':') ? `[${options.host}]:${options.port}` : `${options.host}:${options.port}`;
  }

  /**
   * The likely cause of a failure that happened before the app answered, when it points to a protocol
   * mismatch; undefined when it does not. Resolves at once unless the app must be asked.
   */
  explain(error: unknown): string | undefined | Promise<string | undefined> {
    const protocol = this.#options.protocol;
    const code = (error as NodeJS.ErrnoException | undefined)?.code ?? '';
    const message = errorMessage(error);
    if (usesTls(protocol)) {
      if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || notTlsPattern.test(message)) {
        return this.#report(
          `the app at ${this.#address} does not speak TLS (it answered in plain text): serve TLS in the app, or use --app-protocol ${protocol === 'https' ? 'http or h2c' : 'grpc'}`,
        );
      }
      if (noAlpnPattern.test(message)) {
        return this.#report(
          protocol === 'https'
            ? `the app at ${this.#address} accepts only HTTP/2 over TLS: use --app-protocol grpcs for a gRPC app`
            : `the app at ${this.#address} does not offer HTTP/2 over TLS (ALPN h2): use --app-protocol https for an HTTPS app`,
        );
      }
      return undefined;
    }
    const data = (error as { data?: unknown } | undefined)?.data;
    if (protocol === 'http' && typeof data === 'string' && data.length >= 9) {
      // The HTTP/1.1 client's parser error keeps the bytes it could not read: an HTTP/2 frame head
      // (SETTINGS or GOAWAY) or a TLS record (alert or handshake) says what the app speaks.
      const type = data.charCodeAt(3);
      if (data.charCodeAt(0) === 0 && (type === 0x04 || type === 0x07)) {
        return this.#report(`the app at ${this.#address} answered in HTTP/2: use --app-protocol h2c (or grpc for a gRPC app)`);
      }
      if ((data.charCodeAt(0) === 0x15 || data.charCodeAt(0) === 0x16) && data.charCodeAt(1) === 0x03) return this.#report(this.#speaksTls());
    }
    if ((protocol === 'h2c' || protocol === 'grpc') && /protocol error/i.test(message)) {
      return this.#report(`the app at ${this.#address} did not answer in HTTP/2: use --app-protocol http for an HTTP/1.1 app`);
    }
    if (closedWithoutAnswer(code, message)) {
      return this.#checkTls().then((speaksTls) => (speaksTls ? this.#report(this.#speaksTls()) : undefined));
    }
    return undefined;
  }

  #speaksTls(): string {
    const protocol = this.#options.protocol;
    const instead = protocol === 'grpc' ? 'grpcs' : protocol === 'h2c' ? 'https (or grpcs for a gRPC app)' : 'https';
    return `the app at ${this.#address} speaks TLS: use --app-protocol ${instead}`;
  }

  #report(cause: string): string {
    if (!this.#logged.has(cause)) {
      this.#logged.add(cause);
      this.#options.logger.warn({ app_protocol: this.#options.protocol }, `calls to the app fail: ${cause}`);
    }
    return cause;
  }

  /** Whether the app completes a TLS handshake (certificate not verified), asked at most every few seconds. */
  #checkTls(): Promise<boolean> {
    const now = Date.now();
    if (this.#tlsCheck !== undefined && now - this.#tlsCheck.at < TLS_CHECK_REUSE_MS) return this.#tlsCheck.speaksTls;
    const speaksTls = new Promise<boolean>((resolve) => {
      const socket = tls().connect({
        host: this.#options.host,
        port: this.#options.port,
        rejectUnauthorized: false,
        ALPNProtocols: ['h2', 'http/1.1'],
      });
      socket.unref();
      const done = (result: boolean): void => {
        clearTimeout(timer);
        socket.removeAllListeners();
        socket.on('error', () => {});
        socket.destroy();
        resolve(result);
      };
      const timer = setTimeout(() => done(false), TLS_CHECK_TIMEOUT_MS);
      timer.unref();
      socket.once('secureConnect', () => done(true));
      socket.once('error', () => done(false));
      socket.once('close', () => done(false));
    });
    this.#tlsCheck = { at: now, speaksTls };
    return speaksTls;
  }
}

/** A plain-text connection the app closed (or reset) before answering anything. */
function closedWithoutAnswer(code: string, message: string): boolean {
  return (
    code === 'UND_ERR_SOCKET' ||
    code === APP_CLOSED ||
    code === 'ECONNRESET' ||
    code === 'EPIPE' ||
    /closed before HTTP\/2 was established|other side closed|socket hang up/i.test(message)
  );
}
