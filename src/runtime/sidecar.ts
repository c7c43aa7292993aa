import { join } from 'node:path';
import type { AccessControlPolicy, parseAccessControl } from '../acl/index.js';
import { HttpApiServer } from '../api/http/server.js';
import { GrpcApiServer } from '../api/grpc/server.js';
import { calleeProxy, callerProxy } from '../api/grpc/proxy.js';
import { GrpcAppChannel } from '../channel/grpc-app-channel.js';
import type { GetMetadataResponse } from '../proto/index.js';
import { InternalServer } from '../api/internal/server.js';
import { SidecarTransport } from '../api/internal/transport.js';
import { NoAppChannel, type AppChannel, type AppChannelState } from '../channel/app-channel.js';
import { HttpAppChannel } from '../channel/http-app-channel.js';
import { H2cAppChannel } from '../channel/h2c-app-channel.js';
import { isGrpcProtocol } from '../channel/app-protocol.js';
import type { Configuration } from '../config/configuration.js';
import { defaultConfiguration } from '../config/defaults.js';
import { ExternalChannel } from '../endpoints/external-channel.js';
import type { EndpointResources } from '../endpoints/index.js';
import { CourierError, errorMessage } from '../errors/index.js';
import { ApiLog } from '../observability/api-log.js';
import { AddressBook } from '../invoke/address-book.js';
import type { AppIdentity } from '../invoke/identity.js';
import { Invoker, type OutboundPolicies } from '../invoke/invoker.js';
import { RetryBudgets } from '../invoke/retry-budget.js';
import { CalleeDeadlines } from '../invoke/deadline.js';
import type { ResourceDocument } from '../config/resources.js';
import type { ResourcesWatch } from '../config/resources-watch.js';
import { builtInRetryPolicies } from '../invoke/retry.js';
import { TargetResolver } from '../invoke/target.js';
import { defaultRegistry, type NameResolver } from '../nameresolution/index.js';
import type { Logger } from '../observability/logging/index.js';
import { version } from '../version.js';
import type { SentryClient } from '../sentry/client.js';
import type { WorkloadIdentity } from '../sentry/identity.js';
import { clientTls, serverTls } from '../sentry/mtls.js';
import type { ResiliencyRunnerOptions } from '../resiliency/index.js';
import type { ConfigurationWatch, watchConfiguration as WatchConfiguration } from '../config/watch.js';
import type { SidecarOptions } from './options.js';
import { IdleMemoryReclaimer } from './idle-memory.js';
import { requestSchedulerSlice } from './scheduler-slice.js';
import type { DiagnosticsServer, RuntimeDiagnostics } from '../observability/diagnostics.js';
import type { SidecarMetrics } from '../observability/metrics/sidecar-metrics.js';
import type { MetricsServer } from '../observability/metrics/server.js';
import { PublicHealthServer } from '../api/http/health.js';
import { Tracer } from '../observability/tracing/tracer.js';
import { tracingSettings, type ExporterSettings } from '../observability/tracing/settings.js';
import { meshInfo, type MeshFacts } from '../observability/mesh/info.js';
import { formatSpiffeId } from '../security/spiffe.js';
import { stableInternalPort } from './ports.js';
import { processStartTime, removeRunRecord, writeRunRecord } from './run-registry.js';

/** How long a resolver answer is reused: new instances are called within this, dead ones leave at their liveness deadline. */
const RESOLVER_CACHE_TTL_MS = 1000;
/** The resources of a sidecar without --resources-path. */
const NO_ENDPOINTS: EndpointResources & { applied: readonly ResourceDocument[] } = { applied: [], endpoints: [], secretStores: new Map(), targets: new Map() };
/** How long an instance that failed a call is skipped while others are available. */
const EJECT_MS = 5000;
/** How long a call waits for an app id with no instance to appear (daprd: 5 retries, 100 ms apart). */
const EMPTY_RETRY_MS = 500;
/** At most this much of a request body is kept for a retry. */
const REPLAY_LIMIT_BYTES = 4 * 1024 * 1024;
/** Room for the protobuf framing around a body of `--max-body-size` in a message to a gRPC app. */
const MESSAGE_OVERHEAD_BYTES = 64 * 1024;

/** What a running sidecar reports about itself. */
export interface SidecarInfo {
  readonly appId: string;
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly internalGrpcPort: number;
}

/**
 * One Courier sidecar: the composition root that builds every part from the options, starts them in
 * order (app channel, internal server, HTTP API, registration) and closes them in reverse.
 */
export class Sidecar {
  readonly #options: SidecarOptions;
  readonly #logger: Logger;
  readonly #self: AppIdentity;
  readonly #extended = new Map<string, string>();
  readonly #startedAt = new Date();
  #configuration: Configuration = defaultConfiguration;
  /** `spec.accessControl`'s parser, loaded with `--config`. */
  #parseAcl: typeof parseAccessControl | undefined;
  #endpoints: EndpointResources | undefined;
  #external: ExternalChannel | undefined;
  #resolver: NameResolver | undefined;
  #appChannel: AppChannel | undefined;
  #transport: SidecarTransport | undefined;
  #internal: InternalServer | undefined;
  #http: HttpApiServer | undefined;
  #grpcApi: GrpcApiServer | undefined;
  #runFile: string | undefined;
  #info: SidecarInfo | undefined;
  #registered = false;
  #identity: WorkloadIdentity | undefined;
  #sentry: SentryClient | undefined;
  #accessControl: AccessControlPolicy | undefined;
  #configWatch: ConfigurationWatch | undefined;
  /** The Resiliency policies in force and the resources and targets they come from (replaced whole when the resources change). */
  #resiliency: LoadedResiliency | undefined;
  /** Tracing as configured at start (for the mesh info). */
  #tracing = { samplingRate: 0, exporter: '' };
  #resourcesWatch: ResourcesWatch | undefined;
  #stopping: Promise<void> | undefined;
  #reclaimer: IdleMemoryReclaimer | undefined;
  #diagnostics: { readonly monitor: RuntimeDiagnostics; readonly server: DiagnosticsServer } | undefined;
  #metricsServer: MetricsServer | undefined;
  #publicServer: PublicHealthServer | undefined;
  #tracer: Tracer | undefined;
  /** Aborted when a stop is requested, so that a start still under way gives up at its next step. */
  readonly #starting = new AbortController();
  readonly #shutdownListeners: Array<() => void> = [];

  constructor(options: SidecarOptions, logger: Logger) {
    this.#options = options;
    this.#logger = logger;
    this.#self = { appId: options.appId, namespace: options.namespace };
  }

  get info(): SidecarInfo | undefined {
    return this.#info;
  }

  /** Called when something asks the sidecar to stop (`POST /v1.0/shutdown`). */
  onShutdownRequest(listener: () => void): void {
    this.#shutdownListeners.push(listener);
  }

  async start(): Promise<SidecarInfo> {
    const options = this.#options;
    const log = this.#logger;
    log.info({ version, app_id: options.appId, namespace: options.namespace }, 'starting Courier sidecar');
    if (options.schedulerSliceUs !== undefined && options.schedulerSliceUs > 0) {
      const slice = requestSchedulerSlice(options.schedulerSliceUs);
      if (slice.kind === 'set') log.debug({ slice_us: slice.sliceUs }, 'scheduler slice set');
      else log.debug({ reason: slice.kind === 'ignored' ? 'the kernel keeps no slice for this thread (Linux before 6.12, or a real-time policy)' : slice.reason }, "scheduler slice left at the kernel's default");
    }

    // The Configuration loader, its schemas and the access-control parser are loaded only with --config,
    // the resource loaders only with --resources-path: a sidecar carries only what it uses.
    const configFile = options.configFile;
    let watchConfiguration: typeof WatchConfiguration | undefined;
    if (configFile !== undefined) {
      const [{ loadConfiguration }, watch, acl] = await Promise.all([import('../config/configuration.js'), import('../config/watch.js'), import('../acl/index.js')]);
      this.#configuration = loadConfiguration(configFile);
      watchConfiguration = watch.watchConfiguration;
      this.#parseAcl = acl.parseAccessControl;
    }
    for (const section of this.#configuration.unappliedSections) {
      log.warn({ config: this.#configuration.file }, `spec.${section} in the configuration is not applied by this version of Courier`);
    }
    if (this.#configuration.mtlsEnabled && options.mtls === undefined) {
      log.warn({ config: this.#configuration.file }, 'spec.mtls.enabled is true but --enable-mtls is not set: calls between sidecars are not encrypted');
    }
    this.#accessControl = this.#parseAccessControl(this.#configuration, true);
    if (configFile !== undefined && watchConfiguration !== undefined) {
      this.#configWatch = watchConfiguration(configFile, this.#configuration, (next) => this.#reloadConfiguration(next), (err) =>
        log.error({ config: options.configFile, err: errorMessage(err) }, 'the changed configuration was refused; the current access-control policy stays in force'),
      );
    }
    const endpoints = options.resourcesPaths.length === 0 ? NO_ENDPOINTS : await this.#loadResources();
    this.#endpoints = endpoints;
    if (options.mtls !== undefined) {
      const mtls = options.mtls;
      // Loaded only with mTLS on: the X.509 and CSR code is most of a sidecar's idle memory otherwise.
      const [{ TrustAnchors }, { SentryClient }, { WorkloadIdentity }] = await this.#untilStopped(
        Promise.all([import('../sentry/trust-anchors.js'), import('../sentry/client.js'), import('../sentry/identity.js')]),
      );
      const anchorLog = log.child({ scope: 'mtls' });
      const anchors = 'file' in mtls.trustAnchors ? TrustAnchors.fromFile(mtls.trustAnchors.file, anchorLog) : TrustAnchors.fromPem(mtls.trustAnchors.pem, anchorLog);
      this.#sentry = new SentryClient(mtls.sentryAddress, { trustDomain: mtls.controlPlaneTrustDomain, namespace: mtls.controlPlaneNamespace }, () => anchors.pem);
      this.#identity = new WorkloadIdentity({
        appId: options.appId,
        namespace: options.namespace,
        sentry: this.#sentry,
        trustAnchors: anchors,
        token: mtls.token,
        logger: anchorLog,
      });
      await this.#untilStopped(this.#identity.start());
    }
    // daprd's rule: in Kubernetes mode the kubernetes resolver, unless the Configuration names another.
    const resolution = this.#configuration.nameResolution ?? {};
    this.#resolver = defaultRegistry().create(
      options.mode === 'kubernetes' && (resolution.component ?? '') === '' ? { ...resolution, component: 'kubernetes' } : resolution,
      { logger: log.child({ scope: 'nameresolution' }), courierHome: options.courierHome },
      `${this.#configuration.file ?? 'the default configuration'}: spec.nameResolution`,
    );

    const metrics = await this.#untilStopped(this.#createMetrics());
    const tracer = await this.#untilStopped(this.#createTracer());
    this.#tracer = tracer;

    let grpcApp: GrpcAppChannel | undefined;
    let appChannel: AppChannel;
    const protocol = options.appProtocol;
    const appLog = log.child({ scope: 'app-channel' });
    if (options.appPort === undefined) appChannel = new NoAppChannel();
    else if (isGrpcProtocol(protocol)) {
      grpcApp = new GrpcAppChannel({
        host: options.appChannelAddress,
        port: options.appPort,
        maxConcurrency: options.appMaxConcurrency,
        appApiToken: options.appApiToken,
        healthProbe: options.healthProbe,
        readyTimeoutMs: options.appReadyTimeoutMs,
        maxMessageBytes: options.maxBodyBytes + MESSAGE_OVERHEAD_BYTES,
        tls: protocol === 'grpcs',
        logger: appLog,
        metrics,
      });
      appChannel = grpcApp;
    } else {
      const channelOptions = {
        host: options.appChannelAddress,
        port: options.appPort,
        maxConcurrency: options.appMaxConcurrency,
        appApiToken: options.appApiToken,
        healthProbe: options.healthProbe,
        readyTimeoutMs: options.appReadyTimeoutMs,
        logger: appLog,
        metrics,
      };
      appChannel = protocol === 'h2c' ? new H2cAppChannel(channelOptions) : new HttpAppChannel({ ...channelOptions, tls: protocol === 'https' });
    }
    this.#appChannel = appChannel;
    appChannel.onStateChange((state) => this.#onAppState(state));

    const identity = this.#identity;
    this.#transport = new SidecarTransport({
      maxMessageBytes: options.maxBodyBytes + 64 * 1024,
      logger: log.child({ scope: 'transport' }),
      lane: options.internalLane,
      ...(identity === undefined ? {} : { tls: clientTls(identity) }),
    });
    const addressBook = new AddressBook(this.#resolver, {
      cacheTtlMs: RESOLVER_CACHE_TTL_MS,
      ejectMs: EJECT_MS,
      emptyRetryMs: EMPTY_RETRY_MS,
      balancer: options.loadBalancing ?? 'p2c',
      ejection: options.outlierEjection === 0 ? false : { consecutiveFailures: options.outlierEjection },
      onLookup: metrics === undefined ? undefined : (resolver, result) => metrics.resolved(resolver, result),
    });
    const sidecarAddress = options.internalGrpcListenAddress;
    this.#external = new ExternalChannel({
      endpoints: endpoints.endpoints,
      maxConcurrency: options.appMaxConcurrency,
      logger: log.child({ scope: 'external' }),
    });
    const replayLimitBytes = Math.min(REPLAY_LIMIT_BYTES, options.maxBodyBytes);
    const budgets = options.retryBudget === undefined ? undefined : new RetryBudgets(options.retryBudget);
    if (options.resourcesPaths.length > 0) {
      const resiliencyOptions = { namespace: options.namespace, replayLimitBytes, budgets, logger: log.child({ scope: 'resiliency' }), metrics };
      this.#resiliency = await this.#untilStopped(this.#loadResiliency(endpoints.applied, resiliencyOptions, true));
      const { watchResources } = await import('../config/resources-watch.js');
      this.#resourcesWatch = watchResources(options.resourcesPaths, () => void this.#reloadResiliency(resiliencyOptions));
    }
    const invoker = new Invoker({
      self: this.#self,
      sidecarAddress,
      appChannel,
      addressBook,
      transport: this.#transport,
      external: this.#external,
      retries: builtInRetryPolicies,
      replayLimitBytes,
      logger: log.child({ scope: 'invoke' }),
      metrics,
      resiliency: () => this.#resiliency?.policies,
      budgets,
    });
    const targets = new TargetResolver(options.namespace, endpoints.targets);

    this.#internal = new InternalServer({
      self: this.#self,
      // A call that carries its caller's deadline (Courier-Timeout) is cancelled at the app when it passes.
      appChannel: new CalleeDeadlines(appChannel),
      maxBodyBytes: options.maxBodyBytes,
      logger: log.child({ scope: 'internal' }),
      appProtocol: isGrpcProtocol(protocol) ? 'grpc' : 'http',
      accessControl: () => this.#accessControl,
      limits: options.limits,
      lane: options.internalLane,
      metrics,
      tracer,
      ...(identity === undefined ? {} : { tls: serverTls(identity) }),
    });
    const proxyToApp = calleeProxy({
      self: this.#self,
      appProtocol: options.appProtocol,
      app: grpcApp,
      mtls: identity !== undefined,
      accessControl: () => this.#accessControl,
      logger: log.child({ scope: 'proxy' }),
      metrics,
      tracer,
    });
    this.#internal.setProxy(proxyToApp.remote);
    identity?.onChange(() => {
      this.#internal?.updateTls();
      log.info('new connections use the renewed certificate');
    });
    const internalGrpcPort = await this.#untilStopped(this.#listenInternal());

    const apiLogging = this.#configuration.apiLogging;
    const apiLog =
      (options.enableApiLogging ?? apiLogging.enabled ?? false)
        ? new ApiLog({ obfuscateUrls: apiLogging.obfuscateURLs === true, omitHealthChecks: apiLogging.omitHealthChecks === true, logger: log.child({ scope: 'api' }) })
        : undefined;
    const readiness = { notReady: (): string[] => this.#notReady(), outboundReady: (): boolean => this.#info !== undefined };
    this.#http = new HttpApiServer({
      apiLog,
      metrics,
      tracer,
      self: this.#self,
      invoker,
      targets,
      maxBodyBytes: options.maxBodyBytes,
      maxHeaderBytes: options.readBufferBytes,
      maxRequestHeaders: options.maxRequestHeaders,
      apiToken: options.apiToken,
      readiness,
      metadata: { describe: () => this.#describe(), setExtended: (k, v) => this.#extended.set(k, v) },
      requestShutdown: () => {
        for (const listener of this.#shutdownListeners) listener();
      },
      limits: options.limits,
      logger: log.child({ scope: 'http' }),
    });
    const sockets = options.unixDomainSocket === undefined ? undefined : apiSocketPaths(options.unixDomainSocket, options.appId);
    const httpPort = await this.#listenApi('HTTP API', this.#http, options.httpPort, '--dapr-http-port', sockets?.http);
    if (options.publicPort !== undefined) {
      // Up as early as the HTTP API, so a liveness probe passes while readiness still says why not.
      const server = new PublicHealthServer(options.appId, readiness);
      this.#publicServer = server;
      const host = options.publicListenAddress ?? '0.0.0.0';
      const publicPort = await this.#untilStopped(inUseNamed(server.listen(host, options.publicPort), options.publicPort, '--dapr-public-port'));
      log.info({ address: hostPort(host, publicPort) }, 'public health endpoints listening');
    }

    this.#grpcApi = new GrpcApiServer({
      apiLog,
      metrics,
      tracer,
      self: this.#self,
      invoker,
      targets,
      maxBodyBytes: options.maxBodyBytes,
      apiToken: options.apiToken,
      metadata: { describe: () => this.#describeGrpc(), setExtended: (k, v) => this.#extended.set(k, v) },
      requestShutdown: () => {
        for (const listener of this.#shutdownListeners) listener();
      },
      limits: options.limits,
      logger: log.child({ scope: 'grpc-api' }),
    });
    const transport = this.#transport;
    this.#grpcApi.setProxy(
      callerProxy({
        self: this.#self,
        pick: (target) => addressBook.pick(target, new Set()),
        sidecarChannel: (address, target) => transport.channel(address, target),
        local: proxyToApp.local,
        logger: log.child({ scope: 'proxy' }),
        metrics,
        tracer,
      }),
    );
    const grpcPort = await this.#listenApi('gRPC API', this.#grpcApi, options.grpcPort, '--dapr-grpc-port', sockets?.grpc);

    await this.#untilStopped(
      this.#resolver.register({
        appId: options.appId,
        namespace: options.namespace,
        host: sidecarAddress,
        internalPort: internalGrpcPort,
        httpPort,
        ...(options.appPort === undefined ? {} : { appPort: options.appPort }),
      }),
    );
    this.#registered = true;
    log.info({ component: this.#resolver.component, address: hostPort(sidecarAddress, internalGrpcPort) }, 'registered with name resolution');

    appChannel.start();
    let metricsPort = options.metricsPort;
    if (metrics !== undefined) {
      const { MetricsServer } = await import('../observability/metrics/server.js');
      const address = hostPort(sidecarAddress, internalGrpcPort);
      this.#metricsServer = new MetricsServer(metrics, log.child({ scope: 'metrics' }), {
        apiToken: options.apiToken,
        tapHeaderValues: options.tapHeaderValues,
        info: () => meshInfo(this.#meshFacts(address)),
      });
      const host = options.metricsListenAddress;
      metricsPort = await this.#untilStopped(inUseNamed(this.#metricsServer.listen(host, options.metricsPort), options.metricsPort, '--metrics-port'));
      log.info({ address: hostPort(host, metricsPort) }, 'metrics (Prometheus) listening');
    }
    let profilePort: number | undefined;
    if (options.profilePort !== undefined) {
      const { RuntimeDiagnostics, DiagnosticsServer } = await import('../observability/diagnostics.js');
      const monitor = new RuntimeDiagnostics();
      const server = new DiagnosticsServer(monitor, options.apiToken, log.child({ scope: 'profiling' }));
      this.#diagnostics = { monitor, server };
      profilePort = await this.#untilStopped(server.listen('127.0.0.1', options.profilePort));
      log.info({ address: hostPort('127.0.0.1', profilePort) }, 'profiling: GET /debug/runtime, GET /debug/cpu-profile?seconds=N, GET /debug/alloc-profile?seconds=N');
    }
    // In a Pod nothing reads a run record (and the root file system is read-only).
    if (options.mode !== 'kubernetes') this.#runFile = writeRunRecord(options.courierHome, {
      appId: options.appId,
      namespace: options.namespace,
      pid: process.pid,
      startTime: processStartTime(process.pid),
      httpPort,
      grpcPort,
      internalGrpcPort,
      appPort: options.appPort ?? null,
      metricsPort,
      metricsEnabled: metrics !== undefined,
      maxBodyBytes: options.maxBodyBytes,
      readBufferBytes: options.readBufferBytes,
      listenAddresses: options.listenAddresses,
      ...(profilePort === undefined ? {} : { profilePort }),
      ...(sockets === undefined ? {} : { httpSocket: sockets.http, grpcSocket: sockets.grpc }),
      startedAt: this.#startedAt.toISOString(),
      command: process.argv.slice(1),
      cwd: process.cwd(),
    });
    this.#reclaimer = IdleMemoryReclaimer.start({ logger: log.child({ scope: 'memory' }) });
    // Ready (healthz, outbound calls) only now, with every port listening, the metrics port included.
    const info: SidecarInfo = { appId: options.appId, httpPort, grpcPort, internalGrpcPort };
    this.#info = info;
    log.info('Courier sidecar is up');
    return info;
  }

  /**
   * `--dapr-block-shutdown-duration`: after a SIGTERM, keeps everything serving until the duration has
   * passed or the app turns unhealthy (with the app health check on), so an app that is stopping can
   * still make and take calls; resolves at once without it, or before start-up has finished.
   */
  blockShutdown(): Promise<void> {
    const blockMs = this.#options.blockShutdownMs ?? 0;
    const channel = this.#appChannel;
    if (blockMs <= 0 || this.#info === undefined || this.#stopping !== undefined) return Promise.resolve();
    const log = this.#logger;
    const unhealthy = (): void => log.info('the app is unhealthy: ending the shutdown block');
    if (channel?.state.t === 'unhealthy') {
      unhealthy();
      return Promise.resolve();
    }
    log.info({ block_ms: blockMs }, 'blocking shutdown until the block duration passes or the app turns unhealthy');
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        unsubscribe?.();
        resolve();
      };
      const timer = setTimeout(done, blockMs);
      timer.unref();
      const unsubscribe = channel?.onStateChange((state) => {
        if (state.t !== 'unhealthy') return;
        unhealthy();
        done();
      });
    });
  }

  /**
   * Stops in reverse order: leave name resolution first so callers stop choosing this instance, stop
   * accepting calls, let those in flight finish within the grace period, then close everything.
   */
  stop(options: { quiet?: boolean } = {}): Promise<void> {
    this.#starting.abort();
    this.#stopping ??= this.#stop(options.quiet === true);
    return this.#stopping;
  }

  async #stop(quiet: boolean): Promise<void> {
    const log = this.#logger;
    const graceMs = this.#options.gracefulShutdownMs;
    if (!quiet) log.info({ grace_ms: graceMs }, 'shutting down');
    if (this.#runFile !== undefined) removeRunRecord(this.#runFile);
    this.#configWatch?.close();
    this.#resourcesWatch?.close();
    this.#reclaimer?.close();
    this.#diagnostics?.monitor.close();
    await settle(log, 'profiling endpoint', this.#diagnostics?.server.close());
    await settle(log, 'metrics endpoint', this.#metricsServer?.close());
    await settle(log, 'public health endpoints', this.#publicServer?.close());
    await settle(log, 'name resolution', this.#resolver?.close());
    await Promise.all([
      settle(log, 'HTTP API', this.#http?.close(graceMs)),
      settle(log, 'gRPC API', this.#grpcApi?.close(graceMs)),
      settle(log, 'internal server', this.#internal?.close(graceMs)),
    ]);
    await settle(log, 'app channel', this.#appChannel?.close());
    await settle(log, 'external endpoints', this.#external?.close());
    await settle(log, 'transport', this.#transport?.close());
    // The last spans go out (bounded by a short timeout: a collector that is down does not hold the stop).
    await settle(log, 'span export', this.#tracer?.close());
    this.#identity?.close();
    await settle(log, 'Sentry client', this.#sentry?.close());
    if (!quiet) log.info('stopped');
  }

  /**
   * Resolves as `work` does, unless a stop is requested first: then it rejects at once, so start-up
   * never outlives a SIGTERM however long a step waits (a Sentry that does not answer, say).
   */
  #untilStopped<T>(work: Promise<T>): Promise<T> {
    const signal = this.#starting.signal;
    const interrupted = (): CourierError => new CourierError('ERR_INTERNAL', 'start-up was interrupted: the sidecar is stopping');
    if (signal.aborted) {
      work.catch(() => {});
      return Promise.reject(interrupted());
    }
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => reject(interrupted());
      signal.addEventListener('abort', onAbort, { once: true });
      work.then(
        (value) => {
          signal.removeEventListener('abort', onAbort);
          if (signal.aborted) reject(interrupted());
          else resolve(value);
        },
        (err: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    });
  }

  /**
   * The tracer of `spec.tracing` and the `OTEL_EXPORTER_OTLP_*` variables; undefined when the sampling
   * rate is 0. The OpenTelemetry SDK is loaded only when an exporter is configured.
   */
  async #createTracer(): Promise<Tracer | undefined> {
    const log = this.#logger;
    const settings = tracingSettings(this.#configuration.tracing, process.env);
    if (settings.warning !== undefined) log.warn({ config: this.#configuration.file }, settings.warning);
    this.#tracing = { samplingRate: settings.samplingRate, exporter: settings.samplingRate === 0 ? '' : settings.exporters.map(exporterKind).join(',') };
    if (settings.samplingRate === 0) {
      log.info({ reason: 'spec.tracing.samplingRate: "0"' }, 'tracing is off: trace headers pass through unchanged');
      return undefined;
    }
    let sink;
    if (settings.exporters.length > 0) {
      const { createSpanExport, describeExporter } = await import('../observability/tracing/export.js');
      sink = await createSpanExport(settings.exporters, this.#options.appId, log.child({ scope: 'tracing' }), process.env);
      log.info({ sampling_rate: settings.samplingRate, exporters: settings.exporters.map(describeExporter) }, 'tracing: sampled spans are exported');
    } else {
      log.debug({ sampling_rate: settings.samplingRate }, 'tracing: trace context is propagated; no exporter is configured');
    }
    return new Tracer(settings.samplingRate, sink);
  }

  /** The metrics of `--enable-metrics` and `spec.metrics`, with the figures read when scraped. */
  async #createMetrics(): Promise<SidecarMetrics | undefined> {
    const spec = this.#configuration.metrics;
    if (!this.#options.enableMetrics || spec.enabled === false) {
      this.#logger.info({ reason: this.#options.enableMetrics ? 'spec.metrics.enabled: false' : '--enable-metrics=false' }, 'metrics are off');
      return undefined;
    }
    const { SidecarMetrics, metricsSettings } = await import('../observability/metrics/sidecar-metrics.js');
    const metrics = new SidecarMetrics(metricsSettings(this.#options.appId, spec), this.#logger.child({ scope: 'metrics' }));

    const appId = this.#options.appId;
    const startSeconds = Math.round((Date.now() - performance.now()) / 1000);
    metrics.addGauge('process_cpu_seconds_total', 'User and system CPU time spent, in seconds.', () => {
      const usage = process.cpuUsage();
      return [{ value: (usage.user + usage.system) / 1e6, labels: {} }];
    }, 'counter');
    metrics.addGauge('process_resident_memory_bytes', 'Resident memory size in bytes.', () => [{ value: process.memoryUsage.rss(), labels: {} }]);
    metrics.addGauge('process_start_time_seconds', 'Start time of the process since the Unix epoch, in seconds.', () => [{ value: startSeconds, labels: {} }]);
    metrics.addGauge('courier_mtls_certificate_expiry_timestamp_seconds', "When this sidecar's workload certificate expires (mTLS only), seconds since the Unix epoch.", () => {
      const identity = this.#identity;
      return identity === undefined ? [] : [{ value: Math.floor(identity.current.notAfter.getTime() / 1000), labels: { app_id: appId } }];
    });
    return metrics;
  }

  /**
   * Reads `--resources-path`: the resources that apply to this app (namespace, scopes), the secret
   * stores and HTTPEndpoints among them (validated, secrets resolved), and a note for the rest.
   */
  async #loadResources(): Promise<EndpointResources & { applied: readonly ResourceDocument[] }> {
    const log = this.#logger;
    const [{ loadResources, selectResources }, { isEndpointResource, loadEndpointResources }] = await Promise.all([import('../config/resources.js'), import('../endpoints/index.js')]);
    const loaded = loadResources(this.#options.resourcesPaths);
    for (const { file, reason } of loaded.skipped) log.warn({ file }, `${file} in --resources-path is not read: ${reason}`);
    const { applied, notApplied } = selectResources(loaded.resources, this.#self);
    for (const { resource, reason } of notApplied) {
      log.info(
        { file: resource.file, kind: resource.kind, name: resource.name },
        reason === 'scopes'
          ? `resource ${resource.kind}/${resource.name} is not loaded: its scopes (${(resource.scopes ?? []).join(', ')}) do not include ${this.#self.appId}`
          : `resource ${resource.kind}/${resource.name} is not loaded: it belongs to namespace ${resource.namespace ?? ''}`,
      );
    }
    const endpoints = loadEndpointResources(applied, process.env, (message) => log.warn(message));
    for (const store of endpoints.secretStores.values()) log.info({ name: store.name, type: store.type }, 'secret store loaded');
    for (const endpoint of endpoints.endpoints) {
      log.info({ name: endpoint.name, baseUrl: `${endpoint.target.origin}${endpoint.target.basePath}`, headers: endpoint.headers.length, tls: endpoint.tls !== undefined }, 'HTTPEndpoint loaded');
    }
    for (const r of applied) {
      if (!isEndpointResource(r) && r.kind !== 'Resiliency') log.warn({ file: r.file, kind: r.kind, name: r.name }, `resource ${r.kind}/${r.name} is not used: Courier provides service invocation only`);
    }
    return { ...endpoints, applied };
  }

  /**
   * Builds the Resiliency policies from the applicable resources; undefined when there are none. A
   * mistake stops the sidecar at start; on reload it throws, and the caller keeps the policies in force.
   */
  async #loadResiliency(applied: readonly ResourceDocument[], options: ResiliencyRunnerOptions, atStart: boolean): Promise<LoadedResiliency | undefined> {
    if (!applied.some((r) => r.kind === 'Resiliency')) {
      if (!atStart && this.#resiliency !== undefined) options.logger.info('no Resiliency resource any more: calls get the built-in retries only');
      return undefined;
    }
    const { loadResiliency, ResiliencyRunner, describeRetry } = await import('../resiliency/index.js');
    const spec = loadResiliency(applied, (message) => options.logger.warn(message));
    if (spec === undefined) return undefined;
    options.metrics?.clearBreakerStates();
    for (const name of spec.resources) options.metrics?.resiliencyLoaded(name, options.namespace);
    options.logger.info(
      {
        resources: spec.resources,
        timeouts: [...spec.timeouts.keys()],
        retries: [...spec.retries.values()].map(describeRetry),
        circuitBreakers: [...spec.breakers.values()].map((b) => `${b.name}: ${b.tripExpression}`),
        apps: [...spec.apps.keys()],
      },
      atStart ? 'resiliency policies loaded' : 'resiliency policies reloaded',
    );
    return { policies: new ResiliencyRunner(spec, options), resources: spec.resources, targets: [...spec.apps.keys()] };
  }

  /** The resource directories changed: the Resiliency policies are replaced atomically, or kept if the new files are bad. */
  async #reloadResiliency(options: ResiliencyRunnerOptions): Promise<void> {
    try {
      const { loadResources, selectResources } = await import('../config/resources.js');
      const { applied } = selectResources(loadResources(this.#options.resourcesPaths).resources, this.#self);
      this.#resiliency = await this.#loadResiliency(applied, options, false);
    } catch (err) {
      options.logger.error({ err: errorMessage(err) }, 'the changed resources were refused; the resiliency policies in force stay');
    }
  }

  /** Listens on the TCP port (or, with `--unix-domain-socket`, the socket) of one API; resolves with the port, 0 on a socket. */
  async #listenApi(
    what: string,
    api: { listen(addresses: readonly string[], port: number): Promise<number>; listenUnix(path: string): Promise<void> },
    port: number,
    flag: string,
    socket: string | undefined,
  ): Promise<number> {
    if (socket !== undefined) {
      await this.#untilStopped(api.listenUnix(socket));
      this.#logger.info({ socket }, `${what} listening on a Unix domain socket`);
      return 0;
    }
    const addresses = this.#options.listenAddresses;
    const bound = await this.#untilStopped(inUseNamed(api.listen(addresses, port), port, flag));
    this.#logger.info({ addresses: addresses.map((a) => hostPort(a, bound)) }, `${what} listening`);
    return bound;
  }

  async #listenInternal(): Promise<number> {
    const internal = this.#internal as InternalServer;
    const host = this.#options.internalGrpcListenAddress;
    const wanted = this.#options.internalGrpcPort;
    if (wanted !== undefined) return inUseNamed(internal.listen(host, wanted), wanted, '--dapr-internal-grpc-port');
    try {
      return await internal.listen(host, stableInternalPort(this.#options.appId));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      return internal.listen(host, 0);
    }
  }

  /** Parses `spec.accessControl`; at start a bad policy stops the sidecar, on reload it throws to the watcher. */
  #parseAccessControl(configuration: Configuration, atStart: boolean): AccessControlPolicy | undefined {
    const where = `${configuration.file ?? 'configuration'}: spec.accessControl`;
    const parse = this.#parseAcl;
    if (parse === undefined) return undefined;
    const { policy, warnings } = parse(configuration.accessControl, where, isGrpcProtocol(this.#options.appProtocol) ? 'grpc' : 'http');
    for (const warning of warnings) this.#logger.warn({ config: configuration.file }, warning);
    if (policy !== undefined) {
      this.#logger.info({ policy: policy.describe() }, atStart ? 'access-control policy in force' : 'access-control policy reloaded');
      if (this.#options.mtls === undefined) {
        this.#logger.warn('without --enable-mtls callers are not identified, so only the global default action of the access-control policy applies');
      }
    } else if (!atStart) {
      this.#logger.info('access-control policy removed: every call is allowed');
    }
    return policy;
  }

  /** A changed configuration file: the access-control policy is replaced atomically, or kept if the new one is bad. */
  #reloadConfiguration(next: Configuration): void {
    const policy = this.#parseAccessControl(next, false);
    this.#accessControl = policy;
    if (JSON.stringify(next.nameResolution ?? null) !== JSON.stringify(this.#configuration.nameResolution ?? null)) {
      this.#logger.warn('spec.nameResolution changed; it applies when the sidecar restarts');
    }
    this.#configuration = next;
  }

  /** What `GET /courier/v1/info` reports, read from the parts in force now. */
  #meshFacts(address: string): MeshFacts {
    const options = this.#options;
    const credentials = this.#identity?.current;
    const acl = this.#accessControl;
    const resiliency = this.#resiliency;
    const state = this.#appChannel?.state.t;
    return {
      appId: options.appId,
      namespace: options.namespace,
      startedAt: this.#startedAt,
      address,
      app: options.appPort === undefined ? undefined : { protocol: options.appProtocol, port: options.appPort, healthy: state === 'ready' },
      certificate: credentials === undefined ? undefined : { spiffeId: formatSpiffeId(credentials.spiffeId), notAfter: credentials.notAfter },
      resolver: this.#resolver?.component ?? '',
      config: this.#configuration.file === undefined ? '' : this.#configuration.name,
      accessControl: acl === undefined ? undefined : { defaultAction: acl.defaultAction, appIds: acl.policyAppIds },
      resiliency: resiliency === undefined ? undefined : { resources: resiliency.resources, targets: resiliency.targets },
      tracing: this.#tracing,
    };
  }

  #onAppState(state: AppChannelState): void {
    if (state.t === 'ready') this.#logger.info('app channel is ready');
  }

  #notReady(): string[] {
    const reasons: string[] = [];
    if (this.#info === undefined || !this.#registered) reasons.push('sidecar');
    const state = this.#appChannel?.state;
    if (state !== undefined && state.t !== 'ready' && state.t !== 'none') reasons.push('app-channel');
    return reasons;
  }

  #httpEndpointNames(): string[] {
    return (this.#endpoints?.endpoints ?? []).map((e) => e.name);
  }

  /** The metadata of `GetMetadata` on the gRPC API: the same facts as `GET /v1.0/metadata`. */
  #describeGrpc(): GetMetadataResponse {
    const options = this.#options;
    const out: GetMetadataResponse = {
      id: options.appId,
      runtimeVersion: `courier-${version}`,
      enabledFeatures: [],
      registeredComponents: [],
      extendedMetadata: Object.fromEntries(this.#extended),
      httpEndpoints: this.#httpEndpointNames().map((name) => ({ name })),
    };
    if (options.appPort !== undefined) {
      const health = options.healthProbe;
      out.appConnectionProperties = {
        port: options.appPort,
        protocol: options.appProtocol,
        channelAddress: options.appChannelAddress,
        ...(options.appMaxConcurrency > 0 ? { maxConcurrency: options.appMaxConcurrency } : {}),
        ...(health === undefined
          ? {}
          : {
              health: {
                ...(isGrpcProtocol(options.appProtocol) ? {} : { healthCheckPath: health.path }),
                healthProbeInterval: `${health.intervalMs / 1000}s`,
                healthProbeTimeout: `${health.timeoutMs}ms`,
                healthThreshold: health.threshold,
              },
            }),
      };
    }
    return out;
  }

  #describe(): Record<string, unknown> {
    const options = this.#options;
    const out: Record<string, unknown> = {
      id: options.appId,
      runtimeVersion: `courier-${version}`,
      enabledFeatures: [],
      actors: [],
      components: [],
      extended: Object.fromEntries(this.#extended),
      subscriptions: [],
      httpEndpoints: this.#httpEndpointNames().map((name) => ({ name })),
    };
    // Courier's own field (Dapr clients ignore it): the name resolver's registry health, for `courier resolve`.
    const resolution = this.#resolver?.status?.();
    if (resolution !== undefined) out.nameResolution = { component: this.#resolver?.component, ...resolution };
    if (options.appPort !== undefined) {
      const health = options.healthProbe;
      out.appConnectionProperties = {
        port: options.appPort,
        protocol: options.appProtocol,
        channelAddress: options.appChannelAddress,
        ...(options.appMaxConcurrency > 0 ? { maxConcurrency: options.appMaxConcurrency } : {}),
        ...(health === undefined
          ? {}
          : {
              health: {
                healthCheckPath: health.path,
                healthProbeInterval: `${health.intervalMs / 1000}s`,
                healthProbeTimeout: `${health.timeoutMs}ms`,
                healthThreshold: health.threshold,
              },
            }),
      };
    }
    return out;
  }
}

async function settle(log: Logger, what: string, work: Promise<void> | undefined): Promise<void> {
  try {
    await work;
  } catch (err) {
    log.warn({ err: errorMessage(err) }, `error while closing the ${what}`);
  }
}

/** A port another process holds: one line that names the port and the flag that chose it. */
async function inUseNamed(listening: Promise<number>, port: number, flag: string): Promise<number> {
  try {
    return await listening;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    throw new CourierError('ERR_INVALID_FLAG', `port ${port} (${flag}) is already in use`, { cause: err });
  }
}

/** Resiliency policies with what they were built from. */
interface LoadedResiliency {
  readonly policies: OutboundPolicies;
  readonly resources: readonly string[];
  /** The app ids of `spec.targets.apps`. */
  readonly targets: readonly string[];
}

/** An exporter as the mesh info names it. */
function exporterKind(exporter: ExporterSettings): string {
  return exporter.kind === 'otlp' ? `otlp-${exporter.protocol}` : exporter.kind;
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Where `--unix-domain-socket <dir>` puts the API sockets, as daprd lays them out. */
export function apiSocketPaths(dir: string, appId: string): { readonly http: string; readonly grpc: string } {
  return { http: join(dir, `dapr-${appId}-http.socket`), grpc: join(dir, `dapr-${appId}-grpc.socket`) };
}
