import { type Env, EnvReader } from '../lib/config.js';

export interface GatewayConfig {
  host: string;
  port: number;
  dataDir: string;
  databaseUrl?: string;
  /** Root credentials; generated and kept in the data dir when unset. */
  accessKey?: string;
  secretKey?: string;
  /** When set, SigV4 scopes must name this region; otherwise any region is accepted. */
  region?: string;
  /** Enables virtual-host style addressing: `<bucket>.<domain>`. */
  domain?: string;
  chunkSizeBytes: number;
  replication: number;
  writeQuorum: number;
  managerUrl: string;
  adminToken?: string;
  ringRefreshMs: number;
  nodeTimeoutMs: number;
  /**
   * A replica that stays this far behind (no drain, no answer, no bytes) while its node answers no
   * health probe is given up: dropped from a chunk being written if a write quorum keeps up (repair
   * tops it up), failed over from on a read. A hung node costs this long, not the node timeout; a
   * busy one that still answers its probes is waited for.
   */
  replicaStallMs: number;
  /** Smallest part (but the last) CompleteMultipartUpload accepts; S3's is 5 MiB. Lower it only in tests. */
  multipartPartMinBytes: number;
  /** Objects up to this size are kept in their metadata row, not in chunks (0: never). */
  inlineMaxBytes: number;
  /** 'auto': chunk files of storage nodes whose volume is on this host are read directly. */
  localReads: 'auto' | 'off';
  /** 'auto': new chunks for storage nodes whose volume is on this host are written directly. */
  localWrites: 'auto' | 'off';
  /**
   * This gateway's writes in progress are held for it while it heartbeats at least this often (a
   * third of it); once a heartbeat is this late the manager reclaims them (intents.ts).
   */
  writerLeaseMs: number;
}

/** 5 MiB is S3's smallest multipart part; smaller chunks only make sense in tests. */
const chunkSizeMin = 1024;
/** Bounds the storage node's body limit and a replica's worst-case buffered bytes. */
const chunkSizeMax = 1024 ** 3;
/** Inline objects are read whole into memory and into a database row: keep them small. */
const inlineMaxBytesMax = 1024 ** 2;

export function loadGatewayConfig(env: Env = process.env): GatewayConfig {
  const r = new EnvReader(env);
  const replication = r.int('S3DFS_REPLICATION', 3, 1, 7);
  const config: GatewayConfig = {
    host: r.str('S3DFS_S3_HOST', '127.0.0.1'),
    port: r.int('S3DFS_S3_PORT', 9000, 0, 65535),
    dataDir: r.str('S3DFS_DATA_DIR', './data'),
    databaseUrl: r.optional('DATABASE_URL'),
    accessKey: r.optional('S3DFS_ACCESS_KEY'),
    secretKey: r.optional('S3DFS_SECRET_KEY'),
    region: r.optional('S3DFS_REGION'),
    domain: r.optional('S3DFS_DOMAIN'),
    chunkSizeBytes: r.bytes('S3DFS_CHUNK_SIZE', 64 * 1024 ** 2, chunkSizeMin, chunkSizeMax),
    replication,
    writeQuorum: r.int('S3DFS_WRITE_QUORUM', Math.floor(replication / 2) + 1, 1, 7),
    managerUrl: r.str('S3DFS_MANAGER_URL', 'http://127.0.0.1:9001'),
    adminToken: r.optional('S3DFS_ADMIN_TOKEN'),
    ringRefreshMs: r.int('S3DFS_RING_REFRESH_MS', 1000, 50, 60_000),
    nodeTimeoutMs: r.int('S3DFS_NODE_TIMEOUT_MS', 30_000, 100, 600_000),
    replicaStallMs: r.int('S3DFS_REPLICA_STALL_MS', 5_000, 50, 600_000),
    multipartPartMinBytes: r.bytes('S3DFS_MULTIPART_MIN_PART', 5 * 1024 ** 2, 0, 5 * 1024 ** 3),
    inlineMaxBytes: r.bytes('S3DFS_INLINE_MAX', 16 * 1024, 0, inlineMaxBytesMax),
    localReads: r.oneOf('S3DFS_LOCAL_READS', 'auto', ['auto', 'off'] as const),
    localWrites: r.oneOf('S3DFS_LOCAL_WRITES', 'auto', ['auto', 'off'] as const),
    writerLeaseMs: r.int('S3DFS_WRITER_LEASE_MS', 30_000, 300, 3_600_000),
  };
  r.check(
    config.writeQuorum <= replication,
    `S3DFS_WRITE_QUORUM=${config.writeQuorum} exceeds S3DFS_REPLICATION=${replication}`,
  );
  r.check(
    (config.accessKey === undefined) === (config.secretKey === undefined),
    'S3DFS_ACCESS_KEY and S3DFS_SECRET_KEY must be set together',
  );
  if (config.accessKey !== undefined) {
    r.check(/^[A-Za-z0-9]{3,128}$/.test(config.accessKey), 'S3DFS_ACCESS_KEY: 3-128 letters and digits');
    r.check((config.secretKey ?? '').length >= 8, 'S3DFS_SECRET_KEY: at least 8 characters');
  }
  r.done();
  return config;
}
