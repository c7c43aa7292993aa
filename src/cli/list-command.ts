import { stringify } from 'yaml';
import { flagError, formatFlagHelp, parseFlags, type FlagSpec } from './flags.js';
import { listInstances, type Instance } from './run/sidecar-api.js';
import { renderTable } from './table.js';

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

/**
 * One line of `courier list`; the keys are those of `-o json`: first Dapr CLI's (`dapr list`, same
 * spelling and types: numbers are 0 and strings empty when unknown), then Courier's own.
 */
export interface ListRow {
  readonly appId: string;
  readonly httpPort: number;
  readonly grpcPort: number;
  /** 0 when the sidecar has no app port. */
  readonly appPort: number;
  readonly metricsEnabled: boolean;
  readonly command: string;
  readonly age: string;
  readonly created: string;
  /** The sidecar's pid (Dapr's name for it). */
  readonly daprdPid: number;
  /** The `courier run` process; 0 when there is none or it is gone. */
  readonly cliPid: number;
  /** The app started beside the sidecar; 0 when there is none or it is gone. */
  readonly appPid: number;
  /** `--max-body-size` in MB (Dapr's unit), rounded up. */
  readonly maxRequestBodySize: number;
  /** `--read-buffer-size` in KB (Dapr's unit), rounded up. */
  readonly httpReadBufferSize: number;
  readonly runTemplatePath: string;
  readonly appLogPath: string;
  readonly daprdLogPath: string;
  readonly runTemplateName: string;
  /** The sidecar's pid (the same as `daprdPid`). */
  readonly courierPid: number;
  readonly namespace: string;
  readonly internalGrpcPort: number;
}

/** Courier's defaults, for records written before the sizes were recorded. */
const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;
const DEFAULT_READ_BUFFER_BYTES = 16 * 1024;

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
    appPort: record.appPort ?? 0,
    metricsEnabled: record.metricsEnabled ?? true,
    command: instance.appCommand,
    age: valid ? formatAge(now.getTime() - started.getTime()) : '',
    created: valid ? formatCreated(started) : '',
    daprdPid: record.pid,
    cliPid: instance.cli?.pid ?? 0,
    appPid: instance.app?.pid ?? 0,
    maxRequestBodySize: Math.ceil((record.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES) / (1024 * 1024)),
    httpReadBufferSize: Math.ceil((record.readBufferBytes ?? DEFAULT_READ_BUFFER_BYTES) / 1024),
    runTemplatePath: instance.runTemplatePath,
    appLogPath: instance.appLogPath,
    daprdLogPath: instance.daprdLogPath,
    runTemplateName: instance.runTemplateName,
    courierPid: record.pid,
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

/** `dapr list`'s columns, in its order. */
const columns: ReadonlyArray<readonly [string, (row: ListRow) => string]> = [
  ['APP ID', (r) => r.appId],
  ['HTTP PORT', (r) => String(r.httpPort)],
  ['GRPC PORT', (r) => String(r.grpcPort)],
  ['APP PORT', (r) => String(r.appPort)],
  ['COMMAND', (r) => truncate(r.command, 40)],
  ['AGE', (r) => r.age],
  ['CREATED', (r) => r.created],
  ['DAPRD PID', (r) => String(r.daprdPid)],
  ['CLI PID', (r) => String(r.cliPid)],
  ['APP PID', (r) => String(r.appPid)],
  ['RUN_TEMPLATE_PATH', (r) => r.runTemplatePath],
  ['APP_LOG_PATH', (r) => r.appLogPath],
  ['DAPRD_LOG_PATH', (r) => r.daprdLogPath],
];

/** The `courier list` table, as `dapr list` prints it. */
export function formatTable(rows: readonly ListRow[]): string {
  if (rows.length === 0) return 'No Courier instances found.\n';
  return renderTable(
    columns.map(([title]) => title),
    rows.map((row) => columns.map(([, cell]) => cell(row))),
  );
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
