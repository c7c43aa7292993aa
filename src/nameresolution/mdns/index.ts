import type { NameResolverFactory } from '../name-resolver.js';
import { parseMdnsMetadata, type MdnsMetadata } from './metadata.js';
import { MdnsResolver } from './resolver.js';

/** The mDNS plug-in: Dapr's self-hosted default, wire-compatible with daprd's, for several machines on one network. */
export const mdnsResolverFactory: NameResolverFactory<MdnsMetadata> = {
  component: 'mdns',
  versions: ['v1'],
  parseMetadata: parseMdnsMetadata,
  create: (metadata, deps) => new MdnsResolver(metadata, deps.logger),
};

export { MdnsResolver, parseMdnsMetadata };
export type { MdnsMetadata };
