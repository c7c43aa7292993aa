import { parseAllDocuments } from 'yaml';
import { CourierError, errorMessage } from '../errors/index.js';
import { isNotRegular, readRegularFile } from './regular-file.js';

/** One YAML document of a file, with where it came from for error messages. */
export interface YamlDocument {
  readonly file: string;
  /** 1-based position of the document in its file. */
  readonly index: number;
  readonly value: unknown;
}

/**
 * Expands `$VAR` and `${VAR}` from the environment, as Dapr does for Configuration and resource
 * files before parsing them (Go's os.ExpandEnv: unset variables become empty, `$$` stays `$$`).
 */
export function expandEnv(text: string, env: NodeJS.ProcessEnv = process.env): string {
  return text.replace(/\$(?:\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))/g, (_m, braced: string | undefined, bare: string | undefined) => {
    const name = braced ?? bare ?? '';
    return env[name] ?? '';
  });
}

/**
 * Reads every document of a YAML file, which must be a regular file (see `readRegularFile`).
 * Throws ERR_INVALID_CONFIG naming the file, line and reason.
 */
export function readYamlDocuments(file: string, options: { expand?: boolean } = {}): YamlDocument[] {
  let text: string;
  try {
    const read = readRegularFile(file);
    if (isNotRegular(read)) throw new Error(`it is ${read.notRegular}, not a regular file`);
    text = read;
  } catch (err) {
    throw new CourierError('ERR_INVALID_CONFIG', `${file}: cannot be read: ${errorMessage(err)}`);
  }
  return parseYamlDocuments(file, text, options);
}

/** Parses the documents of YAML text read from `file`. Throws ERR_INVALID_CONFIG naming the file, line and reason. */
export function parseYamlDocuments(file: string, source: string, options: { expand?: boolean } = {}): YamlDocument[] {
  let text = source;
  if (options.expand !== false) text = expandEnv(text);
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true });
  const out: YamlDocument[] = [];
  let index = 0;
  for (const doc of Array.isArray(docs) ? docs : [docs]) {
    index++;
    const problem = doc.errors[0];
    if (problem !== undefined) {
      const line = problem.linePos?.[0];
      const where = line === undefined ? '' : `:${line.line}:${line.col}`;
      throw new CourierError('ERR_INVALID_CONFIG', `${file}${where}: invalid YAML: ${problem.message.split('\n')[0]}`);
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) continue;
    out.push({ file, index, value });
  }
  return out;
}
