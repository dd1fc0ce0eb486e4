// The manager's configuration, read once from the environment and passed down, so a test can run
// two managers in one process.
import { type Env, EnvReader } from '../lib/config.js';

export type RuntimeKind = 'process' | 'docker';

export interface ManagerConfig {
  dataDir: string;
  databaseUrl?: string;
  adminPort: number;
  adminHost: string;
  /** Unset: generated on first start and kept in the settings table and DATA_DIR/admin-token. */
  adminToken?: string;
  runtime: RuntimeKind;
  portPool: [number, number];
  /** Nodes started when the cluster has none. */
  initialNodes: number;
  replication: number;
  healthIntervalMs: number;
  probeTimeoutMs: number;
  /** A node failing probes for this long is down (it is suspect after the first failure). */
  downAfterMs: number;
  /** Capacity each node enforces; unset: the node reports its disk. Also the unit of ring weight. */
  nodeCapacityBytes?: number;
  chunkSizeBytes: number;
  /**
   * Free space a node keeps: below it the node takes no new replicas (placement, repair and
   * rebalance pass it over) but serves reads; it takes them again at 1.25× the reserve.
   */
  nodeFreeReserve: { bytes: number } | { percent: number };
  /** Unix socket path or tcp://host:port. */
  dockerHost?: string;
  dockerImage: string;
  /** The host IP container ports are published on. */
  dockerHostIp: string;
  /** The address gateways use to reach nodes. */
  advertiseHost: string;
  /** Label value that tells this cluster's containers apart from another's on one engine. */
  clusterName: string;
  /** Multipart uploads idle this long are aborted and their parts' chunks collected. */
  uploadExpiryMs: number;
  /** How often the manager looks for expired uploads. */
  uploadExpiryCheckMs: number;
  /** Self-healing: repair, rebalance, drain, GC, scrub (manager/healing/). */
  heal: HealConfig;
}

export interface HealConfig {
  /** Pause between healing passes; 0 turns the loop off (POST /api/repair still runs a pass). */
  intervalMs: number;
  /** A down node's replicas still count this long before they are copied elsewhere. */
  repairGraceMs: number;
  /** Chunk copies (repair, rebalance, drain) in flight at once. */
  repairConcurrency: number;
  /** Cap on copy bandwidth in bytes/s across all copies; 0: no cap. */
  repairBytesPerSec: number;
  /**
   * Chunks of deleted or overwritten objects keep their bytes this long before GC removes them: a
   * GET that began before the delete holds the chunk list of the version it started and must be
   * able to finish it (Ceph's RGW waits 2 h for the same reason).
   */
  gcGraceMs: number;
  /** Files on a node that metadata does not know are deleted only when older than this. */
  orphanGraceMs: number;
  /** Each node's inventory is walked (orphans, lost replicas) at least this often. */
  inventoryIntervalMs: number;
  /** Background re-read rate for scrubbing; 0 turns scrubbing off. */
  scrubBytesPerSec: number;
  /**
   * Pause between two walks over every chunk that queue what needs repair and was not queued (the
   * queue's safety net, a page per pass); 0 turns the walk off.
   */
  reconcileIntervalMs: number;
}

/** Upper bounds, each with its reason. */
export const LIMITS = {
  /** Nodes started by one POST /api/nodes: enough to grow a rack, small enough to stay responsive. */
  nodesPerRequestMax: 32,
  /** Probes faster than 50 ms would make the monitor itself the load. */
  healthIntervalMsMin: 50,
  replicationMax: 7,
  /** More parallel copies than this only adds contention on the nodes' disks. */
  repairConcurrencyMax: 64,
} as const;

function loadHealConfig(r: EnvReader): HealConfig {
  return {
    intervalMs: r.int('S3DFS_HEAL_INTERVAL_MS', 5000, 0, 3_600_000),
    repairGraceMs: r.int('S3DFS_REPAIR_GRACE_MS', 300_000, 0, 7 * 86_400_000),
    repairConcurrency: r.int('S3DFS_REPAIR_CONCURRENCY', 4, 1, LIMITS.repairConcurrencyMax),
    repairBytesPerSec: r.bytes('S3DFS_REPAIR_BYTES_PER_SEC', 0, 0, Number.MAX_SAFE_INTEGER),
    gcGraceMs: r.int('S3DFS_GC_GRACE_MS', 3_600_000, 0, 7 * 86_400_000),
    orphanGraceMs: r.int('S3DFS_ORPHAN_GRACE_MS', 6 * 3_600_000, 0, 30 * 86_400_000),
    inventoryIntervalMs: r.int('S3DFS_INVENTORY_INTERVAL_MS', 3_600_000, 100, 30 * 86_400_000),
    scrubBytesPerSec: r.bytes('S3DFS_SCRUB_BYTES_PER_SEC', 4 * 1024 ** 2, 0, Number.MAX_SAFE_INTEGER),
    reconcileIntervalMs: r.int('S3DFS_RECONCILE_INTERVAL_MS', 86_400_000, 0, 30 * 86_400_000),
  };
}

/** The reserve in bytes for a node of this capacity: a percentage never goes below two chunks. */
export function freeReserveBytes(config: ManagerConfig, capacityBytes: number): number {
  const r = config.nodeFreeReserve;
  if ('bytes' in r) return r.bytes;
  return Math.max(2 * config.chunkSizeBytes, Math.round((capacityBytes * r.percent) / 100));
}

export function loadManagerConfig(env: Env = process.env): ManagerConfig {
  const r = new EnvReader(env);
  const healthIntervalMs = r.int('S3DFS_HEALTH_INTERVAL_MS', 2000, LIMITS.healthIntervalMsMin, 600_000);
  const probeTimeoutMs = r.int('S3DFS_PROBE_TIMEOUT_MS', Math.min(1500, healthIntervalMs), 10, 600_000);
  const downAfterMs = r.int('S3DFS_DOWN_AFTER_MS', 10_000, 1, 3_600_000);
  const dockerHost = r.optional('S3DFS_DOCKER_HOST');
  if (dockerHost !== undefined) {
    r.check(
      dockerHost.startsWith('/') || /^(tcp|http|https):\/\/[^/:]+:\d+\/?$/.test(dockerHost),
      `S3DFS_DOCKER_HOST=${dockerHost}: expected a unix socket path or tcp://host:port`,
    );
  }
  const tcpHost = dockerHost && !dockerHost.startsWith('/') ? new URL(dockerHost).hostname : undefined;
  const config: ManagerConfig = {
    dataDir: r.str('S3DFS_DATA_DIR', './data'),
    databaseUrl: r.optional('DATABASE_URL'),
    adminPort: r.int('S3DFS_ADMIN_PORT', 9001, 0, 65535),
    adminHost: r.str('S3DFS_ADMIN_HOST', '127.0.0.1'),
    adminToken: r.optional('S3DFS_ADMIN_TOKEN'),
    runtime: r.oneOf('S3DFS_RUNTIME', 'process', ['process', 'docker'] as const),
    portPool: r.range('S3DFS_PORT_POOL', [9100, 9199]),
    initialNodes: r.int('S3DFS_NODES', 3, 0, 1000),
    replication: r.int('S3DFS_REPLICATION', 3, 1, LIMITS.replicationMax),
    healthIntervalMs,
    probeTimeoutMs,
    downAfterMs,
    nodeCapacityBytes: r.optional('S3DFS_NODE_CAPACITY')
      ? r.bytes('S3DFS_NODE_CAPACITY', 0, 1, Number.MAX_SAFE_INTEGER)
      : undefined,
    // Nodes refuse chunks over 1 GiB (storage-node/config.ts), so the gateway may not cut bigger ones.
    chunkSizeBytes: r.bytes('S3DFS_CHUNK_SIZE', 64 * 1024 ** 2, 1024, 1024 ** 3),
    // 1% of the disk (at least two chunks, see freeReserveBytes) leaves room for the writes in
    // flight when a probe finds the node short, and for the filesystem's own needs.
    nodeFreeReserve: r.sizeOrPercent('S3DFS_NODE_FREE_RESERVE', { percent: 1 }),
    dockerHost,
    dockerImage: r.str('S3DFS_DOCKER_IMAGE', 's3dfs-storage-node'),
    dockerHostIp: r.str('S3DFS_DOCKER_HOST_IP', '127.0.0.1'),
    advertiseHost: r.str('S3DFS_NODE_ADVERTISE_HOST', tcpHost ?? '127.0.0.1'),
    clusterName: r.str('S3DFS_CLUSTER_NAME', 's3dfs'),
    // A week, like common S3 lifecycle rules for incomplete uploads; at most a year.
    uploadExpiryMs: r.int('S3DFS_UPLOAD_EXPIRY_MS', 7 * 86_400_000, 1, 365 * 86_400_000),
    // Expiry is coarse; a pass every 10 minutes costs one indexed query.
    uploadExpiryCheckMs: r.int(
      'S3DFS_UPLOAD_EXPIRY_CHECK_MS',
      600_000,
      LIMITS.healthIntervalMsMin,
      86_400_000,
    ),
    heal: loadHealConfig(r),
  };
  r.check(
    config.adminToken === undefined || config.adminToken.length >= 16,
    'S3DFS_ADMIN_TOKEN: expected at least 16 characters',
  );
  r.check(probeTimeoutMs <= downAfterMs, 'S3DFS_PROBE_TIMEOUT_MS must not exceed S3DFS_DOWN_AFTER_MS');
  r.check(
    /^[a-zA-Z0-9_.-]{1,64}$/.test(config.clusterName),
    'S3DFS_CLUSTER_NAME: expected [a-zA-Z0-9_.-]{1,64}',
  );
  r.done();
  return config;
}
