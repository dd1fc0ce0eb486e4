// `s3dfs node`: one storage node serving one data directory until SIGTERM or SIGINT.
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger } from '../lib/logger.js';
import { loadNodeConfig } from './config.js';
import { createNodeServer } from './server.js';
import { FsChunkStore, loadNodeIdentity } from './store.js';

// On shutdown, requests in flight get this long to finish before their connections are cut; a
// write cut short leaves only a temp file, removed at the next start.
const shutdownGraceMs = 10_000;

export async function runNode(args: string[]): Promise<void> {
  const config = loadNodeConfig(args);
  const identity = await loadNodeIdentity(config.dataDir, config.id);
  const logger = createLogger('storage-node').child({ nodeId: identity.id });
  const store = await FsChunkStore.open({
    dataDir: config.dataDir,
    chunkSizeMax: config.chunkSizeMax,
    capacityBytes: config.capacityBytes,
    logger,
  });
  const server = createNodeServer({
    store,
    identity,
    version: packageVersion(),
    secret: config.secret,
    chunkSizeMax: config.chunkSizeMax,
    logger,
  });
  // Handlers go in before the listening line: whoever reads that line may signal at once.
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'storage node stopping');
    void shutdown(server).then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  // Started by a manager's process runtime (an IPC channel to it): stop when that process is gone,
  // even killed hard, rather than live on unmanaged, holding the port and the volume its
  // successor's node will be given.
  if (process.channel) {
    process.channel.unref();
    process.once('disconnect', () => stop('manager exited'));
  }
  server.listen(config.port, config.host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  // The one line other processes read (tests, the manager's process runtime), whatever the log level.
  process.stdout.write(`s3dfs-node listening on http://${host}:${port} id=${identity.id}\n`);
  logger.info({ port, dataDir: config.dataDir, ...store.stats() }, 'storage node started');
}

async function shutdown(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const timer = setTimeout(() => server.closeAllConnections(), shutdownGraceMs);
  await closed;
  clearTimeout(timer);
}

/** The version in the nearest s3dfs package.json above this file, wherever it was compiled to. */
function packageVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
      if (pkg.name === 's3dfs') return String(pkg.version);
    } catch {
      // not here: keep walking up
    }
    const parent = path.dirname(dir);
    if (parent === dir) return '0.0.0';
    dir = parent;
  }
}
