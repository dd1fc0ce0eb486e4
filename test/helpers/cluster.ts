import { rmSync } from 'node:fs';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { loadGatewayConfig } from '../../gateway/config.js';
import { type RunningGateway, startGateway } from '../../gateway/main.js';
import { type Knex, openDb } from '../../lib/db.js';
import { createLogger } from '../../lib/logger.js';
import { loadManagerConfig } from '../../manager/config.js';
import { startManager } from '../../manager/manager.js';
import { type Engine, tempDir } from './db.js';

// A whole s3dfs in the test process: manager (real storage-node processes), gateway, metadata
// on PGlite or on the test Postgres. Everything on port 0 / a private port range and a temp dir.

export interface TestCluster {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  dataDir: string;
  db: Knex;
  gateway: RunningGateway;
  manager: Awaited<ReturnType<typeof startManager>>;
  client(overrides?: Partial<S3ClientConfig>): S3Client;
  stop(): Promise<void>;
}

export interface TestClusterOptions {
  nodes?: number;
  chunkSize?: number;
  /** First port of a private 100-port pool for this cluster's storage nodes. */
  portBase: number;
  databaseUrl?: string;
  /** Metadata engine: on Postgres the cluster gets a database of its own, dropped by stop(). */
  engine?: Engine;
  env?: Record<string, string>;
}

export async function startTestCluster(opts: TestClusterOptions): Promise<TestCluster> {
  const ownDb = opts.engine?.name === 'postgres' ? await opts.engine.open() : undefined;
  if (ownDb) opts = { ...opts, databaseUrl: ownDb.databaseUrl };
  const dataDir = tempDir('s3dfs-cluster-');
  const env: Record<string, string> = {
    S3DFS_DATA_DIR: dataDir,
    S3DFS_NODES: String(opts.nodes ?? 3),
    S3DFS_CHUNK_SIZE: String(opts.chunkSize ?? 64 * 1024),
    S3DFS_PORT_POOL: `${opts.portBase}-${opts.portBase + 99}`,
    S3DFS_ADMIN_PORT: '0',
    S3DFS_S3_PORT: '0',
    S3DFS_HEALTH_INTERVAL_MS: '200',
    S3DFS_DOWN_AFTER_MS: '1000',
    S3DFS_RING_REFRESH_MS: '100',
    S3DFS_ACCESS_KEY: 'TESTACCESSKEY',
    S3DFS_SECRET_KEY: 'test-secret-key-0123456789',
    ...(opts.databaseUrl ? { DATABASE_URL: opts.databaseUrl } : {}),
    ...opts.env,
  };
  const db = await openDb({ databaseUrl: opts.databaseUrl, dataDir });
  const log = createLogger('test');
  const manager = await startManager({ config: loadManagerConfig(env), db, logger: log });
  const gateway = await startGateway({
    config: loadGatewayConfig(env),
    db,
    log,
    ringSource: async () => manager.ring(),
    clusterSecret: manager.clusterSecret,
  });
  await waitFor(
    async () => manager.ring().nodes.filter((n) => n.status === 'up').length >= (opts.nodes ?? 3),
  );
  await gateway.cluster.refresh();
  const endpoint = gateway.url;
  const accessKey = env.S3DFS_ACCESS_KEY;
  const secretKey = env.S3DFS_SECRET_KEY;
  return {
    endpoint,
    accessKey,
    secretKey,
    dataDir,
    db,
    gateway,
    manager,
    client: (overrides = {}) =>
      new S3Client({
        endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: { accessKeyId: accessKey, secretAccessKey: secretKey },
        ...overrides,
      }),
    async stop() {
      await gateway.stop();
      await manager.stop();
      await db.destroy();
      await ownDb?.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function waitFor(
  check: () => Promise<boolean> | boolean,
  timeoutMs = 20_000,
  stepMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** Polls `fn` until it returns a truthy value and returns that value; `what` names it in the timeout error. */
export async function waitForValue<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 15_000,
  stepMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** An object's chunks, in object order, each with the nodes holding an `ok` replica. */
export async function chunksOfKey(
  c: TestCluster,
  bucket: string,
  key: string,
): Promise<{ id: string; sha256: string; size: number; nodeIds: string[] }[]> {
  const obj = await c.db('objects').where({ bucket, key }).first('id');
  const rows = await c
    .db('chunks')
    .where({ object_id: obj.id })
    .orderBy('seq')
    .select('id', 'sha256', 'size');
  const out = [];
  for (const ch of rows) {
    const nodeIds = await c.db('chunk_replicas').where({ chunk_id: ch.id, state: 'ok' }).pluck('node_id');
    out.push({
      id: ch.id as string,
      sha256: ch.sha256 as string,
      size: Number(ch.size),
      nodeIds: nodeIds as string[],
    });
  }
  return out;
}
