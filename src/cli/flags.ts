import { CourierError } from '../errors/index.js';

/**
 * Command-line flags in the style of daprd and the dapr CLI: `--name value`, `--name=value`,
 * `-name value` (Go's single-dash long form), short aliases (`-a value`), booleans (`--flag`,
 * `--flag=false`), repeatable string lists, and `--` ending the flags. The first positional argument
 * ends the flags too when `stopAtPositional` is set (`courier run --app-id x node app.js`: what follows
 * `node` belongs to the app).
 */
export interface FlagSpec {
  readonly name: string;
  readonly short?: string;
  readonly aliases?: readonly string[];
  readonly type: 'string' | 'int' | 'bool' | 'list';
  readonly help: string;
  /** Shown in help as the default; the command applies defaults itself. */
  readonly defaultText?: string;
  /** Shown in help after the flag name, e.g. `<port>`. */
  readonly placeholder?: string;
  /** Accepted for compatibility but has no effect in Courier; the text says why (logged as a warning). */
  readonly ignored?: string;
  /** Not shown in help (compatibility aliases and the like). */
  readonly hidden?: boolean;
}

export interface ParsedFlags {
  /** Values by flag name: string, number, boolean or string[] (for `list`). */
  readonly values: ReadonlyMap<string, string | number | boolean | string[]>;
  /** Arguments after the flags (the app command for `run`). */
  readonly rest: readonly string[];
}

export function parseFlags(
  command: string,
  argv: readonly string[],
  specs: readonly FlagSpec[],
  options: { stopAtPositional?: boolean; allowPositionals?: boolean } = {},
): ParsedFlags {
  const byName = new Map<string, FlagSpec>();
  for (const spec of specs) {
    byName.set(`--${spec.name}`, spec);
    byName.set(`-${spec.name}`, spec);
    for (const alias of spec.aliases ?? []) {
      byName.set(`--${alias}`, spec);
      byName.set(`-${alias}`, spec);
    }
    if (spec.short !== undefined) byName.set(`-${spec.short}`, spec);
  }
  const values = new Map<string, string | number | boolean | string[]>();
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      rest.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      if (options.stopAtPositional === true) {
        rest.push(...argv.slice(i));
        break;
      }
      if (options.allowPositionals === true) {
        rest.push(arg);
        continue;
      }
      throw flagError(command, `unexpected argument "${arg}"`);
    }
    const eq = arg.indexOf('=');
    const key = eq < 0 ? arg : arg.slice(0, eq);
    const spec = byName.get(key);
    if (spec === undefined) throw flagError(command, `unknown flag ${key}`);
    let raw: string | undefined = eq < 0 ? undefined : arg.slice(eq + 1);
    if (spec.type === 'bool') {
      values.set(spec.name, parseBool(command, spec, raw));
      continue;
    }
    if (raw === undefined) {
      const next = argv[i + 1];
      if (next === undefined) throw flagError(command, `flag --${spec.name} needs a value`);
      raw = next;
      i++;
    }
    switch (spec.type) {
      case 'int': {
        if (!/^-?\d+$/.test(raw.trim())) throw flagError(command, `flag --${spec.name}: "${raw}" is not a whole number`);
        values.set(spec.name, Number(raw));
        break;
      }
      case 'list': {
        const list = (values.get(spec.name) as string[] | undefined) ?? [];
        list.push(raw);
        values.set(spec.name, list);
        break;
      }
      default:
        values.set(spec.name, raw);
    }
  }
  return { values, rest };
}

function parseBool(command: string, spec: FlagSpec, raw: string | undefined): boolean {
  if (raw === undefined) return true;
  const v = raw.toLowerCase();
  if (['true', '1', 't', 'yes'].includes(v)) return true;
  if (['false', '0', 'f', 'no'].includes(v)) return false;
  throw flagError(command, `flag --${spec.name}: "${raw}" is not true or false`);
}

export function flagError(command: string, message: string): CourierError {
  return new CourierError('ERR_INVALID_FLAG', `courier ${command}: ${message} (see "courier ${command} --help")`);
}

/** Help text listing the flags. */
export function formatFlagHelp(specs: readonly FlagSpec[]): string {
  const rows = specs
    .filter((s) => s.hidden !== true)
    .map((s) => {
      const names = `${s.short === undefined ? '    ' : `-${s.short}, `}--${s.name}${s.type === 'bool' ? '' : ` ${s.placeholder ?? '<value>'}`}`;
      const help = `${s.help}${s.defaultText === undefined ? '' : ` (default ${s.defaultText})`}`;
      return [names, help] as const;
    });
  const width = Math.min(44, Math.max(...rows.map(([n]) => n.length)) + 2);
  return rows.map(([n, h]) => `  ${n.padEnd(width)}${h}`).join('\n');
}
