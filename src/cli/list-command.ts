import { stringify } from 'yaml';
import { flagError, formatFlagHelp, parseFlags, type FlagSpec } from './flags.js';
import { listInstances, type Instance } from './run/sidecar-api.js';

export const listFlags: readonly FlagSpec[] = [
  { name: 'output', short: 'o', type: 'string', placeholder: '<format>', defaultText: 'table', help: 'table, json or yaml' },
  { name: 'kubernetes', short: 'k', type: 'bool', hidden: true, help: '' },
  { name: 'help', short: 'h', type: 'bool', help: 'show this help' },
];

export const listUsage = `Usage: courier list [flags]

Lists the Courier sidecars running on this machine (from $COURIER_HOME/run), with the app each serves
and the processes of \`courier run\` that started them.

Flags:
${formatFlagHelp(listFlags)}
`;

/** One line of `courier list`; the keys are those of `-o json`. */
export interface ListRow {
  readonly appId: string;
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly appPort: number | null;
  readonly command: string;
  readonly age: string;
  readonly created: string;
  readonly courierPid: number;
  readonly cliPid: number | null;
  readonly appPid: number | null;
  readonly runTemplatePath: string;
  readonly namespace: string;
  readonly internalGrpcPort: number;
}

export type OutputFormat = 'table' | 'json' | 'yaml';

export async function listMain(argv: readonly string[]): Promise<number> {
  const { values } = parseFlags('list', argv, listFlags);
  if (values.get('help') === true) {
    process.stdout.write(listUsage);
    return 0;
  }
  if (values.get('kubernetes') === true) throw flagError('list', '--kubernetes is not supported: Courier runs apps on this machine only');
  const format = ((values.get('output') as string | undefined) ?? 'table').toLowerCase();
  if (format !== 'table' && format !== 'json' && format !== 'yaml') {
    throw flagError('list', `--output: "${format}" is not one of table, json, yaml`);
  }
  const instances = await listInstances(process.env);
  const now = new Date();
  process.stdout.write(formatList(instances.map((i) => toRow(i, now)), format));
  return 0;
}

export function toRow(instance: Instance, now: Date): ListRow {
  const { record } = instance;
  const started = new Date(record.startedAt);
  const valid = !Number.isNaN(started.getTime());
  return {
    appId: record.appId,
    httpPort: record.httpPort,
    grpcPort: record.grpcPort,
    appPort: record.appPort,
    command: instance.appCommand,
    age: valid ? formatAge(now.getTime() - started.getTime()) : '',
    created: valid ? formatCreated(started) : '',
    courierPid: record.pid,
    cliPid: instance.cliPid ?? null,
    appPid: instance.appPid ?? null,
    runTemplatePath: instance.runTemplatePath,
    namespace: record.namespace,
    internalGrpcPort: record.internalGrpcPort,
  };
}

export function formatList(rows: readonly ListRow[], format: OutputFormat): string {
  switch (format) {
    case 'json':
      return `${JSON.stringify(rows, null, 2)}\n`;
    case 'yaml':
      return rows.length === 0 ? '[]\n' : stringify(rows);
    case 'table':
      return formatTable(rows);
  }
}

const columns: ReadonlyArray<readonly [string, (row: ListRow) => string]> = [
  ['APP ID', (r) => r.appId],
  ['HTTP PORT', (r) => String(r.httpPort)],
  ['GRPC PORT', (r) => String(r.grpcPort)],
  ['APP PORT', (r) => (r.appPort === null ? '' : String(r.appPort))],
  ['COMMAND', (r) => truncate(r.command, 40)],
  ['AGE', (r) => r.age],
  ['CREATED', (r) => r.created],
  ['COURIER PID', (r) => String(r.courierPid)],
  ['CLI PID', (r) => (r.cliPid === null ? '' : String(r.cliPid))],
  ['APP PID', (r) => (r.appPid === null ? '' : String(r.appPid))],
];

/** Columns padded to their widest cell, two spaces apart, as `dapr list` prints them. */
export function formatTable(rows: readonly ListRow[]): string {
  if (rows.length === 0) return 'No Courier instances found.\n';
  const cells = [columns.map(([title]) => title), ...rows.map((row) => columns.map(([, cell]) => cell(row)))];
  const widths = columns.map((_, i) => Math.max(...cells.map((line) => (line[i] ?? '').length)));
  return cells
    .map((line) =>
      line
        .map((cell, i) => (i === line.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
    .concat('\n');
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 3)}...`;
}

/** `12s`, `5m`, `3h`, `2d`: the largest whole unit, as `dapr list` shows ages. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h`;
  return `${Math.floor(h / 24)}d`;
}

/** `2024-01-31 15:45.02` in local time: the CREATED column's format in `dapr list`. */
export function formatCreated(date: Date): string {
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())} ${two(date.getHours())}:${two(date.getMinutes())}.${two(date.getSeconds())}`;
}
