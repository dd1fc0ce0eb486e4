import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knexFactory from 'knex';
import { type Knex, openDb } from '../../lib/db.js';

export interface TestDb {
  db: Knex;
  dataDir: string;
  /** Set on Postgres: the connection string of this test's own database. */
  databaseUrl?: string;
  close(): Promise<void>;
}

export interface Engine {
  name: 'pglite' | 'postgres';
  open(): Promise<TestDb>;
}

/** The Postgres server the tests use (`.ci/run` starts one and sets this). */
export const testPostgresUrl = process.env.S3DFS_TEST_DATABASE_URL;

// In CI a missing Postgres is a failure, not a skip: the metadata tests must run on both engines.
if (process.env.CI && !testPostgresUrl) {
  throw new Error('CI is set but S3DFS_TEST_DATABASE_URL is not: .ci/run must start Postgres');
}

export function tempDir(prefix = 's3dfs-test-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

let dbCounter = 0;

/** A fresh, empty Postgres database on the test server, dropped on close. */
async function openPostgres(): Promise<TestDb> {
  const base = testPostgresUrl!;
  const name = `s3dfs_test_${process.pid}_${Date.now()}_${dbCounter++}`;
  const admin = knexFactory({ client: 'pg', connection: base, pool: { min: 0, max: 1 } });
  await admin.raw(`CREATE DATABASE ${name}`);
  const url = new URL(base);
  url.pathname = `/${name}`;
  const dataDir = tempDir();
  const db = await openDb({ databaseUrl: url.toString(), dataDir });
  return {
    db,
    dataDir,
    databaseUrl: url.toString(),
    async close() {
      await db.destroy();
      await admin.raw(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.destroy();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function openPglite(): Promise<TestDb> {
  const dataDir = tempDir();
  const db = await openDb({ dataDir });
  return {
    db,
    dataDir,
    async close() {
      await db.destroy();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Every metadata engine available here: PGlite always, Postgres when the test server is set. */
export function engines(): Engine[] {
  const list: Engine[] = [{ name: 'pglite', open: openPglite }];
  if (testPostgresUrl) list.push({ name: 'postgres', open: openPostgres });
  return list;
}
