import { CourierError } from '../errors/index.js';
import type { NameResolver, NameResolverFactory, ResolverDeps } from './name-resolver.js';
import { kubernetesResolverFactory } from './kubernetes/index.js';
import { mdnsResolverFactory } from './mdns/index.js';
import { sqliteResolverFactory } from './sqlite/index.js';

/** The `spec.nameResolution` block of a Dapr Configuration, as YAML parsing leaves it. */
export interface NameResolutionSpec {
  component?: string | undefined;
  version?: string | undefined;
  configuration?: unknown;
}

/** The component used when `spec.nameResolution.component` is empty: Courier's embedded default. */
export const defaultNameResolutionComponent = 'sqlite';

/**
 * The plug-ins this process knows, by component name. Modelled on grpc-js `registerResolver` and
 * Dapr's `RegisterComponent`: plug-ins know nothing of each other, and one place (see
 * {@link defaultRegistry}) wires them. Names and versions are matched case-insensitively, as Dapr
 * does, so a Configuration written for Dapr selects the same plug-in here.
 */
export class NameResolverRegistry {
  readonly defaultComponent: string;
  private readonly byName = new Map<string, NameResolverFactory>();
  private readonly factories: NameResolverFactory[] = [];

  constructor(options: { defaultComponent?: string } = {}) {
    this.defaultComponent = (options.defaultComponent ?? defaultNameResolutionComponent).toLowerCase();
  }

  /**
   * Adds a plug-in under its component name and aliases.
   * @throws CourierError `ERR_INTERNAL` when a name is already taken: two plug-ins claiming one name
   * is a wiring mistake, and silently letting the later one win would hide it.
   */
  register<M>(factory: NameResolverFactory<M>): this {
    const names = [factory.component, ...(factory.aliases ?? [])].map((name) => name.toLowerCase());
    for (const name of names) {
      if (name === '' || this.byName.has(name)) {
        throw new CourierError('ERR_INTERNAL', `name resolution component "${name}" is registered twice`);
      }
    }
    if (factory.versions.length === 0) {
      throw new CourierError('ERR_INTERNAL', `name resolution component "${factory.component}" declares no versions`);
    }
    // The registry stores factories without their metadata type; `create` only ever feeds a factory
    // the value its own parseMetadata returned, so the erased type is never observed.
    const erased = factory as NameResolverFactory;
    for (const name of names) this.byName.set(name, erased);
    this.factories.push(erased);
    return this;
  }

  /** The registered component names (not aliases), sorted; for messages and `--help`. */
  components(): string[] {
    return this.factories.map((factory) => factory.component).sort();
  }

  /** The plug-in registered under `name` (or an alias of it), if any. */
  get(name: string): NameResolverFactory | undefined {
    return this.byName.get(name.toLowerCase());
  }

  /**
   * Picks the plug-in named by `spec` (the default when `component` is empty), checks the version,
   * parses `configuration` and creates the resolver. `where` locates the `nameResolution` block for
   * messages, e.g. "config.yaml: spec.nameResolution".
   * @throws CourierError `ERR_INVALID_CONFIG` for an unknown component or version (listing the
   * known ones) and for any configuration the plug-in rejects.
   */
  create(spec: NameResolutionSpec, deps: ResolverDeps, where: string): NameResolver {
    const requested = (spec.component ?? '').trim();
    const name = requested === '' ? this.defaultComponent : requested.toLowerCase();
    const factory = this.byName.get(name);
    if (factory === undefined) {
      const available = this.components().join(', ') || 'none';
      throw new CourierError(
        'ERR_INVALID_CONFIG',
        `${where}.component: unknown name resolution component "${requested === '' ? name : requested}" (available: ${available})`,
      );
    }
    const version = (spec.version ?? '').trim();
    if (version !== '' && !factory.versions.some((known) => known.toLowerCase() === version.toLowerCase())) {
      throw new CourierError(
        'ERR_INVALID_CONFIG',
        `${where}.version: unknown version "${version}" of name resolution component "${factory.component}" (available: ${factory.versions.join(', ')})`,
      );
    }
    const metadata = factory.parseMetadata(spec.configuration, `${where}.configuration`);
    return factory.create(metadata, deps);
  }
}

/**
 * A new registry holding Courier's built-in plug-ins. A fresh registry per call, so tests and
 * embedders can add plug-ins without touching a process-wide singleton.
 */
export function defaultRegistry(): NameResolverRegistry {
  return new NameResolverRegistry().register(sqliteResolverFactory).register(mdnsResolverFactory).register(kubernetesResolverFactory);
}
