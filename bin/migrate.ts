// `s3dfs migrate`: bring the metadata database (DATABASE_URL, or the embedded PGlite under
// S3DFS_DATA_DIR) to the latest schema and exit. Docker Compose runs it once before the services,
// so several gateways starting together do not race each other's migrations.
import { ConfigError, EnvReader } from '../lib/config.js';
import { openDb } from '../lib/db.js';
import { migrationSource } from '../migrations/index.js';

export async function runMigrate(args: string[]): Promise<void> {
  if (args.length > 0) throw new ConfigError([`s3dfs migrate takes no arguments (got ${args.join(' ')})`]);
  const r = new EnvReader(process.env);
  const databaseUrl = r.optional('DATABASE_URL');
  const dataDir = r.str('S3DFS_DATA_DIR', './data');
  r.done();
  // openDb migrates to the latest schema before it returns.
  const db = await openDb({ databaseUrl, dataDir });
  try {
    const [completed] = await db.migrate.list({ migrationSource });
    const where = databaseUrl ? 'Postgres' : `PGlite in ${dataDir}`;
    console.log(`s3dfs migrate: ${where} is at the latest schema (${completed.length} migrations applied)`);
  } finally {
    await db.destroy();
  }
}
