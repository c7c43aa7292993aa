import { loadConfiguration, defaultConfiguration } from '../config/configuration.js';
import { CourierError, errorMessage } from '../errors/index.js';
import { defaultRegistry } from '../nameresolution/index.js';
import { MdnsResolver } from '../nameresolution/mdns/index.js';
import { createLogger } from '../observability/logging/index.js';
import type { NameResolver, ResolverStatus } from '../nameresolution/index.js';
import { courierHome } from '../runtime/options.js';
import { listRunRecords } from '../runtime/run-registry.js';
import { apiHeaders, callSidecar } from './run/sidecar-api.js';
import { formatDuration } from '../util/duration.js';
import { formatFlagHelp, parseFlags, type FlagSpec } from './flags.js';

export const resolveFlags: readonly FlagSpec[] = [
  { name: 'config', short: 'c', type: 'string', placeholder: '<file>', help: 'the Configuration whose spec.nameResolution to use (default: the embedded default)' },
  { name: 'namespace', short: 'n', type: 'string', placeholder: '<ns>', defaultText: '$NAMESPACE or "default"', help: 'the namespace of the app' },
  { name: 'output', short: 'o', type: 'string', placeholder: '<format>', defaultText: 'table', help: 'table or json' },
  { name: 'help', short: 'h', type: 'bool', help: 'show this help' },
];

export const resolveUsage = `Usage: courier resolve <app-id> [flags]

Asks the name resolver a sidecar would use (the Configuration's spec.nameResolution) for the instances
of an app id, and shows what it sees: each instance's address, how long it has been known and when
it leaves rotation if it is not heard from, and what the resolver did to find them.

Flags:
${formatFlagHelp(resolveFlags)}
`;

export async function resolveMain(argv: readonly string[]): Promise<number> {
  const { values, rest } = parseFlags('resolve', argv, resolveFlags, { allowPositionals: true });
  if (values.get('help') === true) {
    process.stdout.write(resolveUsage);
    return 0;
  }
  const appId = rest[0];
  if (appId === undefined || rest.length > 1) throw new CourierError('ERR_INVALID_FLAG', 'courier resolve needs exactly one app id (see courier resolve --help)');
  const configFile = values.get('config') as string | undefined;
  const namespace = (values.get('namespace') as string | undefined) ?? process.env.NAMESPACE ?? 'default';
  const format = (values.get('output') as string | undefined) ?? 'table';
  const configuration = configFile === undefined ? defaultConfiguration : loadConfiguration(configFile);
  const logger = createLogger({ level: 'warn', json: false, destination: { write: (line: string) => void process.stderr.write(line) } });
  const home = courierHome(process.env);
  const resolver: NameResolver = defaultRegistry().create(
    configuration.nameResolution ?? {},
    { logger, courierHome: home, startupWaitMs: STARTUP_WAIT_MS },
    `${configFile ?? 'the default configuration'}: spec.nameResolution`,
  );
  const describe: (() => ResolverStatus) | undefined = resolver.status?.bind(resolver);
  try {
    const request = { appId, namespace };
    const started = Date.now();
    let rows: { address: string; instance?: string; known?: string; expiresIn?: string }[] = [];
    let failure: string | undefined;
    try {
      if (resolver instanceof MdnsResolver) {
        const view = await resolver.view(appId);
        rows = view.instances.map((i) => ({ address: i.address, instance: i.instance, known: formatDuration(i.ageMs), expiresIn: formatDuration(Math.max(0, i.expiresInMs)) }));
      } else {
        const found = await resolver.resolve(request);
        rows = found.map((a) => ({ address: a.address, ...(a.expiresAtMs === undefined ? {} : { expiresIn: formatDuration(Math.max(0, a.expiresAtMs - Date.now())) }) }));
      }
    } catch (err) {
      // A registry that cannot be read is no reason to stop here: the running sidecars' view follows.
      if (describe === undefined) throw err;
      failure = errorMessage(err);
    }
    const tookMs = Date.now() - started;
    const tried = resolver.lastLookup?.(request);
    const own = describe?.();
    const sidecars = describe === undefined ? [] : await sidecarViews(home, resolver.component, request);
    const unhealthy = sidecars.filter((v) => !v.status.healthy);
    const storeUnhealthy = failure !== undefined || own?.healthy === false || unhealthy.length > 0;
    if (format === 'json') {
      const store =
        own === undefined
          ? undefined
          : {
              path: own.store,
              healthy: !storeUnhealthy,
              ...(failure === undefined ? {} : { error: failure }),
              ...(own.healthy ? {} : { unhealthySince: own.unhealthySince, cause: own.cause }),
            };
      const seen = sidecars.map((v) => ({
        appId: v.appId,
        pid: v.pid,
        healthy: v.status.healthy,
        ...(v.status.healthy ? {} : { unhealthySince: v.status.unhealthySince, cause: v.status.cause }),
        lastKnown: v.status.lastKnown[`${namespace}/${appId}`] ?? null,
      }));
      const out = { appId, namespace, resolver: resolver.component, lookup: tried ?? failure ?? null, tookMs, instances: rows, ...(store === undefined ? {} : { store, sidecars: seen }) };
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    } else {
      process.stdout.write(`app id ${appId} in namespace ${namespace}, ${resolver.component} name resolver${tried === undefined ? '' : `: ${tried}`}\n`);
      if (failure !== undefined) process.stdout.write(`this command could not read the registry: ${failure}\n`);
      else if (rows.length === 0) process.stdout.write('no instance found\n');
      for (const r of rows) {
        process.stdout.write(`  ${r.address}${r.instance === undefined ? '' : `  ${r.instance}`}${r.known === undefined ? '' : `  known for ${r.known}`}${r.expiresIn === undefined ? '' : `  leaves rotation in ${r.expiresIn} unless heard from`}\n`);
      }
      for (const v of unhealthy) {
        const known = v.status.lastKnown[`${namespace}/${appId}`];
        process.stdout.write(
          `database ${v.status.store} unhealthy since ${v.status.unhealthySince ?? '?'} (${v.status.cause ?? 'unknown cause'}), as seen by the sidecar of ${v.appId} (pid ${v.pid}); ` +
            (known === undefined
              ? `it has no last known answer for ${appId}\n`
              : `its calls to ${appId} use the last known answer, read at ${known.readAt}:${known.addresses.length === 0 ? ' no instance' : ''}\n`),
        );
        for (const address of known?.addresses ?? []) process.stdout.write(`  ${address}  (last known)\n`);
      }
    }
    const lastKnownAny = unhealthy.some((v) => (v.status.lastKnown[`${namespace}/${appId}`]?.addresses.length ?? 0) > 0);
    return rows.length > 0 || lastKnownAny ? 0 : 1;
  } catch (err) {
    throw new CourierError('ERR_DIRECT_INVOKE', `the ${resolver.component} name resolver failed: ${errorMessage(err)}`);
  } finally {
    await resolver.close();
  }
}

/** How long this command waits for a locked registry before reporting what the running sidecars see. */
const STARTUP_WAIT_MS = 1000;

interface SidecarView {
  appId: string;
  pid: number;
  status: ResolverStatus;
}

/**
 * The name resolution status of every sidecar running from this Courier home (their run records)
 * that uses the same component and namespace, from `GET /v1.0/metadata`. A sidecar that does not
 * answer within a second is left out.
 */
async function sidecarViews(home: string, component: string, request: { namespace: string }): Promise<SidecarView[]> {
  const records = listRunRecords(home).filter((r) => r.namespace === request.namespace);
  const views = await Promise.all(
    records.map(async (record): Promise<SidecarView | undefined> => {
      try {
        const res = await callSidecar(record, { method: 'GET', path: '/v1.0/metadata', headers: apiHeaders(process.env), timeoutMs: 1000 });
        if (res.status !== 200) return undefined;
        const body = JSON.parse(res.body.toString('utf8')) as { nameResolution?: ResolverStatus & { component?: string } };
        const status = body.nameResolution;
        if (status?.component !== component || typeof status.healthy !== 'boolean') return undefined;
        return { appId: record.appId, pid: record.pid, status };
      } catch {
        return undefined;
      }
    }),
  );
  return views.filter((v): v is SidecarView => v !== undefined);
}
