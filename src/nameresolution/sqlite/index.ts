import type { NameResolverFactory } from '../name-resolver.js';
import { parseSqliteMetadata, type SqliteMetadata } from './metadata.js';
import { SqliteNameResolver } from './resolver.js';

/**
 * The SQLite plug-in: Courier's default name resolution, compatible with Dapr's `sqlite` component
 * (same metadata keys, same tables), so Courier and Dapr sidecars can share one database file.
 */
export const sqliteResolverFactory: NameResolverFactory<SqliteMetadata> = {
  component: 'sqlite',
  versions: ['v1'],
  parseMetadata: parseSqliteMetadata,
  create: (metadata, deps) => new SqliteNameResolver(metadata, deps),
};

export { parseSqliteMetadata, SqliteNameResolver };
export type { SqliteMetadata };
export { defaultDatabaseFileName } from './resolver.js';
export { parseConnectionString } from './connection-string.js';
export type { DatabaseLocation, ParsedConnectionString } from './connection-string.js';
