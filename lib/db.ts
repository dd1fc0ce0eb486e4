import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { NodeFS } from '@electric-sql/pglite/nodefs';
import knexFactory, { type Knex } from 'knex';
import ClientPgLite from 'knex-pglite';
import { migrationSource } from '../migrations/index.js';
import { privateDir, privateTree, privateUmask } from './private-files.js';

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
  privateDir(dataDir);
  const dir = path.resolve(dataDir, 'meta');
  privateDir(dir);
  // Files an older version left wide (0666: see PrivateNodeFS); new ones are 0600 as they are made.
  privateTree(dir);
  return knexFactory({
    client: ClientPgLite,
    dialect: 'postgres',
    // knex-pglite's own instance (`{ filename }`) would use the plain NodeFS.
    connection: { pglite: new PGlite({ fs: new PrivateNodeFS(dir) }) },
  } as Knex.Config);
}

/** The two calls of Emscripten's FS (its documented API) every file and directory PGlite makes passes. */
interface EmscriptenModes {
  chmod(path: unknown, mode: number, dontFollow?: boolean): void;
  mkdir(path: string, mode?: number): unknown;
}

/**
 * PGlite's NodeFS, but what it creates has no group or other bits (0600 / 0700), whatever the
 * umask. The umask alone is not enough (tried with PGlite 0.5 under umask 077): Emscripten's
 * FS.open chmods a file it has just created to the mode asked for, past the process umask, and
 * initdb, run through a proxy FS that asks for no mode, creates the cluster's files 0666, the WAL
 * segment that then takes the cluster secret and the S3 keys among them; files Postgres opens with
 * fopen come out 0644. So group and other bits are masked off where every creation passes, FS.chmod
 * and FS.mkdir, before Postgres runs (preRun, where NodeFS mounts the directory).
 */
class PrivateNodeFS extends NodeFS {
  override async init(...args: Parameters<NodeFS['init']>): ReturnType<NodeFS['init']> {
    const { emscriptenOpts } = await super.init(...args);
    const restrict = (mod: { FS: unknown }) => {
      const fs = mod.FS as EmscriptenModes;
      // A PGlite without these would silently keep its default modes: refuse to run on it.
      if (typeof fs.chmod !== 'function' || typeof fs.mkdir !== 'function')
        throw new Error('PGlite: Emscripten FS has no chmod/mkdir to restrict modes with');
      const chmod = fs.chmod.bind(fs);
      const mkdir = fs.mkdir.bind(fs);
      fs.chmod = (p, mode, dontFollow) => chmod(p, mode & ~privateUmask, dontFollow);
      fs.mkdir = (p, mode = 0o777) => mkdir(p, mode & ~privateUmask);
    };
    return { emscriptenOpts: { ...emscriptenOpts, preRun: [...(emscriptenOpts.preRun ?? []), restrict] } };
  }
}

export function engineName(db: Knex): 'postgres' | 'pglite' {
  return db.client.config.client === 'pg' ? 'postgres' : 'pglite';
}
