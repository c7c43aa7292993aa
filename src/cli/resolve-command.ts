import { loadConfiguration, defaultConfiguration } from '../config/configuration.js';
import { CourierError, errorMessage } from '../errors/index.js';
import { defaultRegistry } from '../nameresolution/index.js';
import { MdnsResolver } from '../nameresolution/mdns/index.js';
import { createLogger } from '../observability/logging/index.js';
import { courierHome } from '../runtime/options.js';
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
  const resolver = defaultRegistry().create(configuration.nameResolution ?? {}, { logger, courierHome: courierHome(process.env) }, `${configFile ?? 'the default configuration'}: spec.nameResolution`);
  try {
    const request = { appId, namespace };
    const started = Date.now();
    let rows: { address: string; instance?: string; known?: string; expiresIn?: string }[];
    if (resolver instanceof MdnsResolver) {
      const view = await resolver.view(appId);
      rows = view.instances.map((i) => ({ address: i.address, instance: i.instance, known: formatDuration(i.ageMs), expiresIn: formatDuration(Math.max(0, i.expiresInMs)) }));
    } else {
      const found = await resolver.resolve(request);
      rows = found.map((a) => ({ address: a.address, ...(a.expiresAtMs === undefined ? {} : { expiresIn: formatDuration(Math.max(0, a.expiresAtMs - Date.now())) }) }));
    }
    const tried = resolver.lastLookup?.(request);
    if (format === 'json') {
      process.stdout.write(`${JSON.stringify({ appId, namespace, resolver: resolver.component, lookup: tried ?? null, tookMs: Date.now() - started, instances: rows }, null, 2)}\n`);
    } else {
      process.stdout.write(`app id ${appId} in namespace ${namespace}, ${resolver.component} name resolver${tried === undefined ? '' : `: ${tried}`}\n`);
      if (rows.length === 0) process.stdout.write('no instance found\n');
      for (const r of rows) {
        process.stdout.write(`  ${r.address}${r.instance === undefined ? '' : `  ${r.instance}`}${r.known === undefined ? '' : `  known for ${r.known}`}${r.expiresIn === undefined ? '' : `  leaves rotation in ${r.expiresIn} unless heard from`}\n`);
      }
    }
    return rows.length === 0 ? 1 : 0;
  } catch (err) {
    throw new CourierError('ERR_DIRECT_INVOKE', `the ${resolver.component} name resolver failed: ${errorMessage(err)}`);
  } finally {
    await resolver.close();
  }
}
