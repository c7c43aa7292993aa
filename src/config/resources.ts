import { readdirSync, statSync } from '../util/builtins.js';
import { join } from 'node:path';
import { z } from 'zod';
import { CourierError, errorMessage } from '../errors/index.js';
import { isNotRegular, readRegularFile } from './regular-file.js';
import { parseYamlDocuments } from './yaml-file.js';
import { schemaError } from './schema-errors.js';

/** A resource from `--resources-path`, as Dapr's files describe it. */
export interface ResourceDocument {
  readonly file: string;
  /** The file, with `(document N)` when it is not the file's first document: for messages. */
  readonly where: string;
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  /** `metadata.namespace`, when given. */
  readonly namespace: string | undefined;
  readonly type: string | undefined;
  readonly version: string | undefined;
  readonly scopes: readonly string[] | undefined;
  /** The whole document, validated in detail by the code that understands its kind. */
  readonly value: unknown;
}

/** What `loadResources` read, and what it did not. */
export interface LoadedResources {
  readonly resources: readonly ResourceDocument[];
  /** Entries with a YAML name that are not regular files (FIFOs, sockets, devices, directories): not read. */
  readonly skipped: ReadonlyArray<{ readonly file: string; readonly reason: string }>;
}

const resourceSchema = z
  .object({
    apiVersion: z.string({ error: 'is required' }),
    kind: z.string({ error: 'is required' }),
    metadata: z.object({ name: z.string({ error: 'is required' }).min(1, 'must not be empty'), namespace: z.string().optional() }).loose(),
    spec: z.object({ type: z.string().optional(), version: z.string().optional() }).loose().optional(),
    scopes: z.array(z.string()).optional(),
    auth: z.unknown().optional(),
  })
  .loose();

/**
 * Reads every `.yaml`/`.yml` file in the resource directories (not recursively, as Dapr does) and
 * validates the common resource shape. A file that is not valid YAML, or a resource without
 * `apiVersion`, `kind` or `metadata.name`, is an error naming the file. Only regular files are read
 * (a symlink to one is fine): anything else with a YAML name is reported in `skipped`, because
 * reading a FIFO or a device could block start-up forever. What each kind means is up to the caller.
 */
export function loadResources(paths: readonly string[]): LoadedResources {
  const resources: ResourceDocument[] = [];
  const skipped: Array<{ file: string; reason: string }> = [];
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
      let text: string;
      try {
        const read = readRegularFile(file);
        if (isNotRegular(read)) {
          skipped.push({ file, reason: `it is ${read.notRegular}, not a regular file` });
          continue;
        }
        text = read;
      } catch (err) {
        throw new CourierError('ERR_INVALID_CONFIG', `${file}: cannot be read: ${errorMessage(err)}`);
      }
      for (const doc of parseYamlDocuments(file, text)) {
        const where = doc.index > 1 ? `${file} (document ${doc.index})` : file;
        const parsed = resourceSchema.safeParse(doc.value);
        if (!parsed.success) throw schemaError(where, parsed.error);
        resources.push({
          file,
          where,
          apiVersion: parsed.data.apiVersion,
          kind: parsed.data.kind,
          name: parsed.data.metadata.name,
          namespace: nonEmpty(parsed.data.metadata.namespace),
          type: parsed.data.spec?.type,
          version: parsed.data.spec?.version,
          scopes: parsed.data.scopes,
          value: doc.value,
        });
      }
    }
  }
  return { resources, skipped };
}

/** Why a resource does not apply to this sidecar, or undefined when it does. */
export type NotApplied = 'namespace' | 'scopes';

/**
 * The resources that apply to the app `self`, as Dapr's loader picks them: one whose
 * `metadata.namespace` names another namespace is left out, and so is one whose `scopes` list other
 * app ids (an empty or absent list applies to every app). Two resources of the same kind and name in
 * this namespace are an error naming both files. Returns the applicable ones and the others with the reason.
 */
export function selectResources(
  resources: readonly ResourceDocument[],
  self: { readonly appId: string; readonly namespace: string },
): { applied: ResourceDocument[]; notApplied: Array<{ resource: ResourceDocument; reason: NotApplied }> } {
  const applied: ResourceDocument[] = [];
  const notApplied: Array<{ resource: ResourceDocument; reason: NotApplied }> = [];
  const seen = new Map<string, ResourceDocument>();
  for (const resource of resources) {
    if (resource.namespace !== undefined && resource.namespace !== self.namespace) {
      notApplied.push({ resource, reason: 'namespace' });
      continue;
    }
    const key = `${resource.kind}/${resource.name}`;
    const earlier = seen.get(key);
    if (earlier !== undefined) {
      throw new CourierError('ERR_INVALID_CONFIG', `${resource.where}: ${key} is defined twice (also in ${earlier.where})`);
    }
    seen.set(key, resource);
    if (resource.scopes !== undefined && resource.scopes.length > 0 && !resource.scopes.includes(self.appId)) {
      notApplied.push({ resource, reason: 'scopes' });
      continue;
    }
    applied.push(resource);
  }
  return { applied, notApplied };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
