import { mkdirSync } from 'node:fs';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import ClientPgLite from 'knex-pglite';
import { migrationSource } from '../migrations/index.js';

export type { Knex };

export interface DbOptions {
  /** Postgres connection string; when absent, embedded PGlite under `dataDir/meta`. */
  databaseUrl?: string;
  dataDir: string;
  /** Connections per process on Postgres; PGlite always has exactly one. */
  poolMax?: number;
}

/** Opens the metadata database and migrates it to the latest schema. */
export async function openDb(opts: DbOptions): Promise<Knex> {
  const db = opts.databaseUrl ? openPostgres(opts.databaseUrl, opts.poolMax ?? 10) : openPglite(opts.dataDir);
  try {
    await db.migrate.latest({ migrationSource });
  } catch (err) {
    await db.destroy();
    throw err;
  }
  return db;
}

function openPostgres(url: string, poolMax: number): Knex {
  return knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: poolMax } });
}

function openPglite(dataDir: string): Knex {
  const dir = path.resolve(dataDir, 'meta');
  mkdirSync(dir, { recursive: true });
  return knexFactory({
    client: ClientPgLite,
    dialect: 'postgres',
    connection: { filename: dir },
  } as Knex.Config);
}

export function engineName(db: Knex): 'postgres' | 'pglite' {
  return db.client.config.client === 'pg' ? 'postgres' : 'pglite';
}
