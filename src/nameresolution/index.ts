export type { NameResolver, NameResolverFactory, ResolveRequest, ResolvedAddress, ResolverDeps, ResolverStatus, SelfInstance } from './name-resolver.js';
export { NameResolverRegistry, defaultRegistry, defaultNameResolutionComponent } from './registry.js';
export type { NameResolutionSpec } from './registry.js';
export { joinHostPort } from './address.js';
export { sqliteResolverFactory, SqliteNameResolver, parseSqliteMetadata, defaultDatabaseFileName } from './sqlite/index.js';
export type { SqliteMetadata, DatabaseLocation } from './sqlite/index.js';
