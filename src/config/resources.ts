import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { CourierError, errorMessage } from '../errors/index.js';
import { readYamlDocuments } from './yaml-file.js';
import { schemaError } from './schema-errors.js';

/** A resource from `--resources-path`, as Dapr's files describe it. */
export interface ResourceDocument {
  readonly file: string;
  readonly kind: string;
  readonly name: string;
  readonly type: string | undefined;
  readonly version: string | undefined;
  readonly scopes: readonly string[] | undefined;
}

const resourceSchema = z
  .object({
    apiVersion: z.string({ error: 'is required' }),
    kind: z.string({ error: 'is required' }),
    metadata: z.object({ name: z.string({ error: 'is required' }).min(1, 'must not be empty') }).loose(),
    spec: z.object({ type: z.string().optional(), version: z.string().optional() }).loose().optional(),
    scopes: z.array(z.string()).optional(),
    auth: z.unknown().optional(),
  })
  .loose();

/**
 * Reads every `.yaml`/`.yml` file in the resource directories (not recursively, as Dapr does) and
 * validates the common resource shape. A file that is not valid YAML, or a resource without
 * `apiVersion`, `kind` or `metadata.name`, is an error naming the file. What each kind means is up to
 * the caller: Courier acts on none of Dapr's component types, which it reports at start.
 */
export function loadResources(paths: readonly string[]): ResourceDocument[] {
  const out: ResourceDocument[] = [];
  for (const dir of paths) {
    let names: string[];
    try {
      if (!statSync(dir).isDirectory()) throw new Error('not a directory');
      names = readdirSync(dir).sort();
    } catch (err) {
      throw new CourierError('ERR_INVALID_CONFIG', `--resources-path ${dir}: ${errorMessage(err)}`);
    }
    for (const name of names) {
      if (!/\.ya?ml$/i.test(name)) continue;
      const file = join(dir, name);
      for (const doc of readYamlDocuments(file)) {
        const where = doc.index > 1 ? `${file} (document ${doc.index})` : file;
        const parsed = resourceSchema.safeParse(doc.value);
        if (!parsed.success) throw schemaError(where, parsed.error);
        out.push({
          file,
          kind: parsed.data.kind,
          name: parsed.data.metadata.name,
          type: parsed.data.spec?.type,
          version: parsed.data.spec?.version,
          scopes: parsed.data.scopes,
        });
      }
    }
  }
  return out;
}
