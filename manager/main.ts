// `s3dfs manager`: the manager alone. Configuration comes from S3DFS_* variables (see config.ts).
import path from 'node:path';
import { openDb } from '../lib/db.js';
import { createLogger } from '../lib/logger.js';
import { loadManagerConfig } from './config.js';
import { startManager } from './manager.js';

export async function runManager(args: string[]): Promise<void> {
  if (args.length > 0)
    throw new Error(`s3dfs manager takes no arguments (got ${args.join(' ')}); use S3DFS_* variables`);
  const config = loadManagerConfig(process.env);
  const logger = createLogger('s3dfs-manager');
  const db = await openDb({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  const manager = await startManager({ config, db, logger });
  console.log(`s3dfs manager listening on ${manager.url} (runtime ${config.runtime})`);
  // The token itself is not printed: stdout is often a kept log (lib/private-files.ts on the file).
  if (!config.adminToken) console.log(`admin token: see ${path.resolve(config.dataDir, 'admin-token')}`);
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping manager');
    manager
      .stop()
      .then(() => db.destroy())
      .then(
        () => process.exit(0),
        (err) => {
          logger.error({ err }, 'unclean stop');
          process.exit(1);
        },
      );
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
}
