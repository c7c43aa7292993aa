import { readFileSync } from '../util/builtins.js';
import { CourierError, errorMessage } from '../errors/index.js';
import { courierHome } from '../runtime/options.js';
import { listRunRecords, type RunRecord } from '../runtime/run-registry.js';
import { flagError, formatFlagHelp, parseFlags, type FlagSpec } from './flags.js';
import { apiHeaders, callSidecar } from './run/sidecar-api.js';

export const invokeFlags: readonly FlagSpec[] = [
  { name: 'app-id', short: 'a', type: 'string', placeholder: '<id>', help: 'the app to invoke (required)' },
  { name: 'method', short: 'm', type: 'string', placeholder: '<method>', help: 'the method to invoke, e.g. orders or v1/orders?id=1 (required)' },
  { name: 'verb', short: 'v', type: 'string', placeholder: '<verb>', defaultText: 'POST', help: 'the HTTP verb' },
  { name: 'data', short: 'd', type: 'string', placeholder: '<body>', help: 'the request body (sent as application/json)' },
  { name: 'data-file', type: 'string', placeholder: '<file>', help: 'a file whose content is the request body' },
  { name: 'header', short: 'H', type: 'list', placeholder: '<name:value>', help: 'a request header (repeatable)' },
  { name: 'kubernetes', short: 'k', type: 'bool', hidden: true, help: '' },
  { name: 'unix-domain-socket', short: 'u', type: 'string', hidden: true, help: '' },
  { name: 'help', short: 'h', type: 'bool', help: 'show this help' },
];

export const invokeUsage = `Usage: courier invoke --app-id <id> --method <method> [flags]

Calls a method of a running app through a Courier sidecar on this machine (the app's own sidecar if it
is here, else any running one), prints the response body, and exits 1 if the status is not 2xx or 3xx.

Examples:
  courier invoke --app-id nodeapp --method neworder --data '{"data": {"orderId": 1}}'
  courier invoke -a nodeapp -m order/1 -v GET

Flags:
${formatFlagHelp(invokeFlags)}
`;

const INVOKE_TIMEOUT_MS = 60_000;

export interface InvokeRequest {
  readonly appId: string;
  readonly method: string;
  readonly verb: string;
  readonly body: Buffer | undefined;
  readonly headers: Readonly<Record<string, string>>;
}

/** Turns `courier invoke` arguments into the request to send (undefined for --help). Throws ERR_INVALID_FLAG. */
export function parseInvokeArgs(argv: readonly string[], readFile: (path: string) => Buffer = (p) => readFileSync(p)): InvokeRequest | undefined {
  const cmd = 'invoke';
  const { values } = parseFlags(cmd, argv, invokeFlags);
  if (values.get('help') === true) return undefined;
  if (values.get('kubernetes') === true) throw flagError(cmd, '--kubernetes is not supported: Courier runs apps on this machine only');
  if (values.has('unix-domain-socket')) throw flagError(cmd, '--unix-domain-socket is not supported: Courier sidecars listen on TCP ports');
  const str = (name: string): string | undefined => values.get(name) as string | undefined;
  const appId = str('app-id');
  if (appId === undefined || appId === '') throw flagError(cmd, '--app-id is required');
  const method = (str('method') ?? '').replace(/^\/+/, '');
  if (method === '') throw flagError(cmd, '--method is required');
  const verb = (str('verb') ?? 'POST').toUpperCase();
  if (!/^[A-Z]+$/.test(verb)) throw flagError(cmd, `--verb: "${verb}" is not an HTTP verb`);
  const data = str('data');
  const dataFile = str('data-file');
  if (data !== undefined && dataFile !== undefined) throw flagError(cmd, '--data and --data-file cannot both be given');
  let body: Buffer | undefined;
  if (data !== undefined) body = Buffer.from(data, 'utf8');
  if (dataFile !== undefined) {
    try {
      body = readFile(dataFile);
    } catch (err) {
      throw flagError(cmd, `--data-file ${dataFile}: ${errorMessage(err)}`);
    }
  }
  const headers: Record<string, string> = {};
  for (const raw of (values.get('header') as string[] | undefined) ?? []) {
    const colon = raw.indexOf(':');
    const name = colon < 0 ? '' : raw.slice(0, colon).trim();
    if (name === '' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw flagError(cmd, `--header "${raw}" is not of the form name:value`);
    headers[name.toLowerCase()] = raw.slice(colon + 1).trim();
  }
  if (body !== undefined && headers['content-type'] === undefined) headers['content-type'] = 'application/json';
  return { appId, method, verb, body, headers };
}

/** The target app's own sidecar if it runs here, else any running sidecar. */
export function chooseSidecar(records: readonly RunRecord[], appId: string): RunRecord | undefined {
  return records.find((r) => r.appId === appId) ?? records[0];
}

export async function invokeMain(argv: readonly string[]): Promise<number> {
  const request = parseInvokeArgs(argv);
  if (request === undefined) {
    process.stdout.write(invokeUsage);
    return 0;
  }
  const sidecar = chooseSidecar(listRunRecords(courierHome(process.env)), request.appId);
  if (sidecar === undefined) throw new CourierError('ERR_BAD_REQUEST', 'no running Courier sidecar found; start one with courier run');
  const path = `/v1.0/invoke/${encodeURIComponent(request.appId)}/method/${request.method}`;
  let res;
  try {
    res = await callSidecar(sidecar, {
      method: request.verb,
      path,
      headers: { ...request.headers, ...apiHeaders(process.env) },
      ...(request.body === undefined ? {} : { body: request.body }),
      timeoutMs: INVOKE_TIMEOUT_MS,
    });
  } catch (err) {
    throw new CourierError('ERR_DIRECT_INVOKE', `error invoking app ${request.appId}: cannot reach the sidecar of ${sidecar.appId} on ${sidecar.httpSocket ?? `port ${sidecar.httpPort}`}: ${errorMessage(err)}`);
  }
  const text = res.body.toString('utf8');
  if (res.status >= 200 && res.status < 400) {
    if (text !== '') process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    process.stdout.write('✅  App invoked successfully\n');
    return 0;
  }
  process.stderr.write(`❌  Error invoking app ${request.appId}: HTTP ${res.status}${res.statusText === '' ? '' : ` ${res.statusText}`}\n`);
  if (text !== '') process.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
  return 1;
}
