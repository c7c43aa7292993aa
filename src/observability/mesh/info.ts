import { version } from '../../version.js';
import type { MeshInfo } from './contract.js';

/**
 * What the sidecar knows of itself, read when `GET /courier/v1/info` is asked (so hot reloads of the
 * access-control policy and of Resiliency resources show at once). The sidecar fills it from its own
 * fields; the builder below only adds what any process knows (version, pid, uptime).
 */
export interface MeshFacts {
  readonly appId: string;
  readonly namespace: string;
  readonly startedAt: Date;
  /** `host:port` of the internal server, as registered with name resolution. */
  readonly address: string;
  /** Undefined when the sidecar has no app (`--app-port` not given). */
  readonly app: { readonly protocol: string; readonly port: number; readonly healthy: boolean } | undefined;
  /** The workload certificate; undefined when mTLS is off. */
  readonly certificate: { readonly spiffeId: string; readonly notAfter: Date } | undefined;
  readonly resolver: string;
  /** The Configuration resource's name; empty without `--config`. */
  readonly config: string;
  /** The policy in force; undefined when there is none (every call allowed). */
  readonly accessControl: { readonly defaultAction: 'allow' | 'deny'; readonly appIds: readonly string[] } | undefined;
  /** The Resiliency resources in force; undefined when there are none. */
  readonly resiliency: { readonly resources: readonly string[]; readonly targets: readonly string[] } | undefined;
  readonly tracing: { readonly samplingRate: number; readonly exporter: string };
}

export function meshInfo(facts: MeshFacts, now = Date.now()): MeshInfo {
  const certificate = facts.certificate;
  return {
    appId: facts.appId,
    namespace: facts.namespace,
    version,
    pid: process.pid,
    startedAt: facts.startedAt.toISOString(),
    uptimeSeconds: Math.max(0, Math.floor((now - facts.startedAt.getTime()) / 1000)),
    address: facts.address,
    appProtocol: facts.app?.protocol ?? '',
    appPort: facts.app?.port ?? 0,
    appHealthy: facts.app === undefined ? null : facts.app.healthy,
    identity: certificate?.spiffeId ?? null,
    mtls: certificate !== undefined,
    certificateExpiry: certificate === undefined ? null : certificate.notAfter.toISOString(),
    resolver: facts.resolver,
    config: facts.config,
    accessControl: { defaultAction: facts.accessControl?.defaultAction ?? 'allow', policies: [...new Set(facts.accessControl?.appIds ?? [])].sort() },
    resiliency: { resources: [...(facts.resiliency?.resources ?? [])], targets: [...(facts.resiliency?.targets ?? [])].sort() },
    tracing: { samplingRate: facts.tracing.samplingRate, exporter: facts.tracing.exporter },
  };
}
