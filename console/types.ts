// The JSON the console reads, as the manager sends it (manager/kpis.ts, manager/console.ts,
// manager/healing/progress.ts). Only the fields the pages use.

export interface NodeKpis {
  id: string;
  status: string;
  host: string;
  port: number;
  zone: string | null;
  /** Below its free-space reserve: no new replicas. */
  full?: boolean;
  weight: number;
  capacityBytes: number;
  usedBytes: number;
  chunkCount: number;
  readsPerSec: number;
  writesPerSec: number;
  bytesInPerSec: number;
  bytesOutPerSec: number;
  readP99Ms: number | null;
  writeP99Ms: number | null;
  errors: number;
  heartbeatAgeMs: number | null;
  restarts: number;
  lastError: string | null;
}

export interface ActivityProgress {
  queued: number;
  queuedBytes: number;
  done: number;
  failed: number;
  bytes: number;
  bytesPerSec: number;
  etaSec: number | null;
  lastPassAt: string | null;
}

export interface DrainProgress {
  nodeId: string;
  replicasLeft: number;
  bytesLeft: number;
  done: boolean;
}

export interface HealingProgress {
  enabled: boolean;
  running: boolean;
  lastError: string | null;
  repair: ActivityProgress;
  rebalance: ActivityProgress;
  drain: ActivityProgress & { nodes: DrainProgress[] };
  gc: ActivityProgress;
  scrub: ActivityProgress;
}

export interface ClusterKpis {
  nodesUp: number;
  nodesTotal: number;
  rawCapacityBytes: number;
  rawUsedBytes: number;
  logicalCapacityBytes: number;
  logicalUsedBytes: number;
  replication: number;
  buckets: number;
  objects: number;
  chunks: number;
  fullChunks: number;
  underReplicatedChunks: number;
  missingChunks: number;
  starting?: boolean;
  unconfirmedChunks?: number;
  nodesFull?: number;
  ringVersion: number;
  ringBalance: number;
  healing?: HealingProgress;
}

export interface Kpis {
  cluster: ClusterKpis;
  nodes: NodeKpis[];
}

export interface NodeEvent {
  nodeId: string;
  from: string | null;
  to: string;
  reason: string;
  at: string;
}

export interface RingShares {
  version: number;
  replication: number;
  balance: number;
  nodes: {
    id: string;
    status: string;
    zone: string | null;
    weight: number;
    vnodes: number;
    share: number;
    targetShare: number;
  }[];
}

export interface BucketRow {
  name: string;
  createdAt: string;
  objects: number;
  bytes: number;
}

export interface ObjectList {
  bucket: string;
  prefix: string;
  prefixes: string[];
  objects: { key: string; size: number; etag: string; lastModified: string }[];
  next: string | null;
}

export interface ChunkDetail {
  id: string;
  seq: number;
  partNumber: number | null;
  offset: number;
  size: number;
  sha256: string;
  healthy: number;
  status: 'full' | 'under' | 'missing';
  replicas: { nodeId: string; state: string; nodeStatus: string; health: string; onRing: boolean }[];
  placement: {
    chosen: { id: string; zone: string | null; holds: boolean }[];
    skipped: { id: string; reason: string }[];
  };
}

export interface ObjectDetail {
  bucket: string;
  key: string;
  size: number;
  etag: string;
  lastModified: string;
  contentType: string | null;
  partsCount: number | null;
  replication: number;
  /** Kept in its metadata row, without chunks (small objects). */
  inline: boolean;
  chunksTotal: number;
  chunks: ChunkDetail[];
  nextAfterSeq: number | null;
}
