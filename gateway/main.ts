import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Knex } from 'knex';
import { ConfigError } from '../lib/config.js';
import { openDb } from '../lib/db.js';
import { createLogger, type Logger } from '../lib/logger.js';
import type { RingSnapshot } from '../lib/ring.js';
import { getClusterSecret } from '../lib/settings.js';
import { createApp } from './app.js';
import { type GatewayConfig, loadGatewayConfig } from './config.js';
import { credentialsFile, ensureRootCredentials, type RootCredentials, secretLookup } from './credentials.js';
import { ClusterView, type RingSource } from './storage/cluster.js';
import { WriteIntents } from './storage/intents.js';
import { MetaStore } from './storage/meta.js';
import { ObjectLayer } from './storage/object-layer.js';

export interface GatewayDeps {
  config: GatewayConfig;
  db: Knex;
  log: Logger;
  /** Defaults to polling the manager's `GET /api/ring`. */
  ringSource?: RingSource;
  /** Defaults to the secret the manager keeps in the database. */
  clusterSecret?: string;
}

export interface RunningGateway {
  url: string;
  port: number;
  server: Server;
  credentials: RootCredentials;
  cluster: ClusterView;
  store: ObjectLayer;
  stop(): Promise<void>;
}

/** Idle keep-alive connections from clients are closed after this long. */
const keepAliveTimeoutMs = 65_000;

export async function startGateway(deps: GatewayDeps): Promise<RunningGateway> {
  const { config, db, log } = deps;
  const credentials = await ensureRootCredentials(db, config.dataDir, config);
  const clusterSecret = deps.clusterSecret ?? (await getClusterSecret(db));
  const cluster = new ClusterView(
    deps.ringSource ?? managerRingSource(config),
    clusterSecret,
    config.ringRefreshMs,
    config.nodeTimeoutMs,
    { localReads: config.localReads === 'auto', localWrites: config.localWrites === 'auto', log },
  );
  await cluster.start();
  const intents = new WriteIntents(db, log, config.writerLeaseMs);
  await intents.start();
  const meta = new MetaStore(db);
  const store = new ObjectLayer({ config, db, meta, cluster, intents, log });
  const app = createApp({
    config,
    db,
    meta,
    cluster,
    intents,
    store,
    log,
    lookupSecret: secretLookup(db, credentials),
  });
  const server = app.listen(config.port, config.host);
  server.keepAliveTimeout = keepAliveTimeoutMs;
  // Large uploads over slow links must not be cut by Node's default 5-minute request timeout.
  server.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const port = (server.address() as AddressInfo).port;
  const host = config.host === '0.0.0.0' ? '127.0.0.1' : config.host;
  log.info({ port }, 'gateway listening');
  return {
    url: `http://${host}:${port}`,
    port,
    server,
    credentials,
    cluster,
    store,
    async stop() {
      cluster.stop();
      server.closeIdleConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await intents.stop();
    },
  };
}

function managerRingSource(config: GatewayConfig): RingSource {
  return async () => {
    const res = await fetch(`${config.managerUrl}/api/ring`, {
      headers: config.adminToken ? { authorization: `Bearer ${config.adminToken}` } : {},
      signal: AbortSignal.timeout(5_000),
    });
    if (!res.ok) throw new Error(`manager ${config.managerUrl} answered ${res.status} for /api/ring`);
    return (await res.json()) as RingSnapshot;
  };
}

/** `s3dfs gateway`: a gateway alone, against a shared database and a running manager. */
export async function runGateway(args: string[]): Promise<void> {
  if (args.length > 0) throw new ConfigError([`s3dfs gateway takes no arguments (got ${args.join(' ')})`]);
  const config = loadGatewayConfig(process.env);
  const log = createLogger('s3dfs-gateway');
  const db = await openDb({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  const gw = await startGateway({ config, db, log });
  // Never the secret key: this line goes to a log (compose, systemd).
  const secretAt = config.secretKey ? 'S3DFS_SECRET_KEY' : credentialsFile(config.dataDir);
  console.log(
    `s3dfs gateway on ${gw.url} (access key ${gw.credentials.accessKey}, secret key in ${secretAt})`,
  );
  const stop = async () => {
    await gw.stop();
    await db.destroy();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}
