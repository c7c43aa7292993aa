import type { RetryBudgetSettings } from '../invoke/retry-budget.js';
import type { BalancerKind } from '../invoke/balancer.js';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { HealthProbeOptions } from '../channel/app-health.js';
import type { AppProtocol } from '../channel/app-protocol.js';
import type { LogLevel } from '../observability/logging/index.js';
import type { ConnectionLimits } from '../util/connection-limit.js';

/** Everything a sidecar needs to start, resolved from flags and environment (see cli/sidecar-command.ts). */
/** Where a sidecar runs, as daprd's `--mode`. */
export const sidecarModes = ['standalone', 'kubernetes'] as const;
export type SidecarMode = (typeof sidecarModes)[number];

export interface SidecarOptions {
  readonly appId: string;
  /** `NAMESPACE`, default `default`. */
  readonly namespace: string;
  /** `--app-port`; undefined for a sidecar that only makes calls. */
  readonly appPort: number | undefined;
  /** `--app-protocol`, with the deprecated `--app-ssl` already applied. */
  readonly appProtocol: AppProtocol;
  readonly appChannelAddress: string;
  /** `--dapr-http-port`; 0 picks a free port. */
  readonly httpPort: number;
  /** `--dapr-grpc-port`: reserved for Dapr's gRPC API. */
  readonly grpcPort: number;
  /** `--dapr-internal-grpc-port`; undefined picks a stable port derived from the app id, or a free one. */
  readonly internalGrpcPort: number | undefined;
  readonly internalGrpcListenAddress: string;
  /** `--dapr-listen-addresses`: where the HTTP API listens. */
  readonly listenAddresses: readonly string[];
  /**
   * `--unix-domain-socket`: a directory; the HTTP and gRPC APIs then listen on
   * `<dir>/dapr-<app-id>-http.socket` and `<dir>/dapr-<app-id>-grpc.socket` instead of TCP ports.
   */
  readonly unixDomainSocket: string | undefined;
  readonly configFile: string | undefined;
  readonly resourcesPaths: readonly string[];
  readonly maxBodyBytes: number;
  readonly readBufferBytes: number;
  /** `--max-request-headers`: the most header lines an HTTP API request may carry; 0 is unlimited. */
  readonly maxRequestHeaders: number;
  /** `--app-max-concurrency`; -1 is unlimited. */
  readonly appMaxConcurrency: number;
  readonly healthProbe: HealthProbeOptions | undefined;
  /** `--app-ready-timeout`: how long a call that arrives before the app is ready waits for it. */
  readonly appReadyTimeoutMs: number;
  /** `--max-connections` and `--handshake-timeout`, applied to every listening port. */
  readonly limits: ConnectionLimits;
  /** `--internal-lane`: serve and use the Courier-to-Courier lane (false: gRPC over HTTP/2 only). */
  readonly internalLane: boolean;
  /** `--load-balancing`: how an instance of the target app is chosen (undefined: p2c). */
  readonly loadBalancing?: BalancerKind | undefined;
  /** `--outlier-ejection`: failures in a row that eject an instance for a while; 0: never (undefined: 5). */
  readonly outlierEjection?: number | undefined;
  /** The retry budget of each target (`--retry-budget`); undefined: retries are not budgeted. */
  readonly retryBudget?: RetryBudgetSettings | undefined;
  /** `--scheduler-slice`: the time slice, in µs, the event loop's thread asks Linux for; undefined or 0: the kernel's own. */
  readonly schedulerSliceUs?: number | undefined;
  readonly logLevel: LogLevel;
  readonly logAsJson: boolean;
  /** `--enable-profiling` with `--profile-port`: where runtime diagnostics are served; undefined when off. */
  readonly profilePort: number | undefined;
  /** `--enable-api-logging`: true or false when given; undefined leaves it to `spec.logging.apiLogging.enabled`. */
  readonly enableApiLogging: boolean | undefined;
  /** `--metrics-port` (0: a free port, written to the run record). */
  readonly metricsPort: number;
  /** `--metrics-listen-address` (Dapr's default: every interface, so a Prometheus elsewhere can scrape). */
  readonly metricsListenAddress: string;
  /** `--dapr-public-port`: the health endpoints alone, on an address a kubelet can reach; undefined: not served. */
  readonly publicPort?: number | undefined;
  /** `--dapr-public-listen-address` (default: every interface). */
  readonly publicListenAddress?: string | undefined;
  /** `--enable-metrics`; Configuration `spec.metrics.enabled: false` also turns metrics off. */
  readonly enableMetrics: boolean;
  /** `--tap-header-values`: a tap client of the metrics port may see header values (`headers=show`); otherwise they are redacted. */
  readonly tapHeaderValues: boolean;
  /** `--dapr-graceful-shutdown-seconds`, in ms: how long in-flight calls may take to finish on shutdown. */
  readonly gracefulShutdownMs: number;
  /** `--dapr-block-shutdown-duration`, in ms: how long a SIGTERM waits (serving) before the graceful shutdown, unless the app turns unhealthy first. */
  readonly blockShutdownMs?: number | undefined;
  /** `--mode`: `kubernetes` in a Pod (the kubernetes name resolver by default, no run record). Default standalone. */
  readonly mode?: SidecarMode | undefined;
  /** `DAPR_API_TOKEN`. */
  readonly apiToken: string | undefined;
  /** `APP_API_TOKEN`. */
  readonly appApiToken: string | undefined;
  /** Where Courier keeps its state: `COURIER_HOME`, default `~/.courier`. */
  readonly courierHome: string;
  /** Mutual TLS between sidecars (`--enable-mtls`); undefined when off. */
  readonly mtls: MtlsOptions | undefined;
}

export interface MtlsOptions {
  /** `--sentry-address` (host:port). */
  readonly sentryAddress: string;
  /** `DAPR_TRUST_ANCHORS` (PEM) or `--trust-anchors-file` (watched). */
  readonly trustAnchors: { readonly pem: string } | { readonly file: string };
  /** The join token for the Sentry: `COURIER_SENTRY_TOKEN`, or the file named by `DAPR_SENTRY_TOKEN_FILE`. */
  readonly token: string | undefined;
  /** `--control-plane-trust-domain` / `DAPR_CONTROLPLANE_TRUST_DOMAIN` (default `localhost`). */
  readonly controlPlaneTrustDomain: string;
  /** `--control-plane-namespace` / `DAPR_CONTROLPLANE_NAMESPACE` (default `default`). */
  readonly controlPlaneNamespace: string;
}

/** `COURIER_HOME`, or `~/.courier`. */
export function courierHome(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.COURIER_HOME;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : join(homedir(), '.courier');
}
