// KPIs per node (from the last two health probes) and for the cluster (from the metadata), as JSON
// and as Prometheus text on a registry of its own, so two managers can share one process.
import type { Knex } from 'knex';
import { Gauge, Registry } from 'prom-client';
import { ringBalance } from '../lib/ring.js';
import type { HealingProgress } from './healing/progress.js';
import type { Monitor, NodeState } from './monitor.js';

export interface NodeKpis {
  id: string;
  status: string;
  host: string;
  port: number;
  zone: string | null;
  weight: number;
  /** What the runtime runs it as: a pid (process runtime) or a container id (docker). */
  handle: string | null;
  uptimeSec: number | null;
  capacityBytes: number;
  usedBytes: number;
  freeBytes: number;
  chunkCount: number;
  readsPerSec: number;
  writesPerSec: number;
  bytesInPerSec: number;
  bytesOutPerSec: number;
  readP50Ms: number | null;
  readP99Ms: number | null;
  writeP50Ms: number | null;
  writeP99Ms: number | null;
  errors: number;
  corruptions: number;
  heartbeatAgeMs: number | null;
  restarts: number;
  lastError: string | null;
  /** Below its free-space reserve: serves reads, takes no new replicas. */
  full: boolean;
}

export interface ClusterKpis {
  /**
   * The manager has just started and some node has not answered its first probe yet: chunks whose
   * copies sit on such nodes are `unconfirmedChunks`, not missing or under-replicated.
   */
  starting: boolean;
  nodesUp: number;
  /** Up nodes below their free-space reserve (they take no new replicas). */
  nodesFull: number;
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
  /** While `starting`: chunks short of R on up nodes only for want of a first probe. */
  unconfirmedChunks: number;
  ringVersion: number;
  ringBalance: number;
  /** Repair, rebalance, drain, GC and scrub progress (manager/healing/). */
  healing?: HealingProgress;
}

export function nodeKpis(s: NodeState, now = Date.now()): NodeKpis {
  const h = s.health;
  const rate = (k: 'reads' | 'writes' | 'bytesIn' | 'bytesOut'): number => {
    if (!h || !s.prev || !s.healthAt) return 0;
    const dt = (s.healthAt - s.prev.at) / 1000;
    const d = (h.counters?.[k] ?? 0) - (s.prev.health.counters?.[k] ?? 0);
    return dt > 0 && d > 0 ? d / dt : 0; // a restarted node resets its counters: no negative rates
  };
  const hb = s.row.last_heartbeat ? new Date(s.row.last_heartbeat).getTime() : undefined;
  return {
    id: s.row.id,
    status: s.row.status,
    host: s.row.host,
    port: s.row.port,
    zone: s.row.zone,
    weight: Number(s.row.weight),
    handle: s.row.handle,
    uptimeSec: h?.uptimeSec ?? null,
    capacityBytes: Number(h?.capacityBytes ?? s.row.capacity_bytes),
    usedBytes: Number(h?.usedBytes ?? s.row.used_bytes),
    freeBytes: Number(h?.freeBytes ?? Math.max(0, Number(s.row.capacity_bytes) - Number(s.row.used_bytes))),
    chunkCount: Number(h?.chunkCount ?? s.row.chunk_count),
    readsPerSec: rate('reads'),
    writesPerSec: rate('writes'),
    bytesInPerSec: rate('bytesIn'),
    bytesOutPerSec: rate('bytesOut'),
    readP50Ms: h?.latency?.readP50Ms ?? null,
    readP99Ms: h?.latency?.readP99Ms ?? null,
    writeP50Ms: h?.latency?.writeP50Ms ?? null,
    writeP99Ms: h?.latency?.writeP99Ms ?? null,
    errors: h?.counters?.errors ?? 0,
    corruptions: h?.counters?.corruptions ?? 0,
    heartbeatAgeMs: hb === undefined ? null : now - hb,
    restarts: s.row.restarts,
    lastError: s.lastError ?? null,
    full: Boolean(s.row.full),
  };
}

/**
 * Chunks by healthy replica count; a replica is healthy when `ok` on an up node. With
 * `confirming`, replicas on nodes still starting are counted apart: a chunk that would have R
 * copies with them is unconfirmed, neither under-replicated nor missing.
 *
 * Only the chunks that may lack a healthy copy are looked at: those in the repair queue, those with
 * a replica on a node that is not up, those with a replica not ok. Every other live chunk has R
 * healthy copies, since whatever takes one away queues the chunk (lib/repair-queue.ts), and the
 * number of live chunks is the database's own counter (migration 009): a scrape costs what is
 * pending, not what is stored.
 */
export async function replicaCounts(
  db: Knex,
  replication: number,
  confirming = false,
): Promise<{ chunks: number; full: number; under: number; missing: number; unconfirmed: number }> {
  const res = await db.raw(
    `with maybe as (
            select chunk_id from repair_queue
            union select r.chunk_id from nodes n join chunk_replicas r on r.node_id = n.id where n.status <> 'up'
            union select chunk_id from chunk_replicas where state <> 'ok')
     select count(*) filter (where healthy < ? and healthy + starting >= ?) as unconfirmed,
            count(*) filter (where healthy > 0 and healthy + starting < ?) as under,
            count(*) filter (where healthy = 0 and healthy + starting < ?) as missing
       from (select c.id, count(n.id) filter (where n.status = 'up') as healthy,
                    count(n.id) filter (where n.status = 'starting' and ?) as starting
               from maybe m
               join chunks c on c.id = m.chunk_id
               left join chunk_replicas r on r.chunk_id = c.id and r.state = 'ok'
               left join nodes n on n.id = r.node_id
              where c.object_id is not null or c.part_id is not null
              group by c.id) t`,
    [replication, replication, replication, replication, confirming],
  );
  const row = res.rows[0];
  const chunks = (await clusterCounters(db)).chunks;
  const [under, missing, unconfirmed] = [row.under, row.missing, row.unconfirmed].map(Number);
  return { chunks, full: chunks - under - missing - unconfirmed, under, missing, unconfirmed };
}

/** The database's counters of live chunks and objects (migration 009): the sum of their slots. */
async function clusterCounters(db: Knex): Promise<{ chunks: number; objects: number }> {
  const rows: { name: string; n: string }[] = await db('cluster_counters')
    .groupBy('name')
    .select('name', db.raw('sum(value) as n'));
  const of = (name: string) => Number(rows.find((r) => r.name === name)?.n ?? 0);
  return { chunks: of('chunks'), objects: of('objects') };
}

export async function clusterKpis(
  db: Knex,
  monitor: Monitor,
  replication: number,
  healing?: HealingProgress,
): Promise<ClusterKpis> {
  const states = [...monitor.nodes.values()];
  const nodes = states.map((s) => nodeKpis(s));
  const up = nodes.filter((n) => n.status === 'up');
  const rawCapacityBytes = up.reduce((a, n) => a + n.capacityBytes, 0);
  const rawUsedBytes = nodes.reduce((a, n) => a + n.usedBytes, 0);
  const starting = monitor.starting();
  const counts = await replicaCounts(db, replication, starting);
  const buckets = Number((await db('buckets').count({ n: '*' }))[0].n);
  const { objects } = await clusterCounters(db);
  return {
    starting,
    nodesUp: up.length,
    nodesFull: up.filter((n) => n.full).length,
    nodesTotal: nodes.length,
    rawCapacityBytes,
    rawUsedBytes,
    logicalCapacityBytes: Math.floor(rawCapacityBytes / replication),
    logicalUsedBytes: Math.floor(rawUsedBytes / replication),
    replication,
    buckets,
    objects,
    chunks: counts.chunks,
    fullChunks: counts.full,
    underReplicatedChunks: counts.under,
    missingChunks: counts.missing,
    unconfirmedChunks: counts.unconfirmed,
    ringVersion: monitor.snapshot().version,
    ringBalance: ringBalance(monitor.ring()),
    ...(healing ? { healing } : {}),
  };
}

/** Prometheus gauges on a private registry, refreshed from the KPIs at each scrape. */
export class Metrics {
  readonly registry = new Registry();
  private readonly cluster = new Map<keyof ClusterKpis, Gauge>();
  private readonly node = new Map<string, Gauge>();

  constructor() {
    const clusterHelp: Partial<Record<keyof ClusterKpis, string>> = {
      starting: '1 while the manager waits for the first probe of every node',
      nodesUp: 'storage nodes up',
      nodesFull: 'up nodes below their free-space reserve (no new replicas)',
      nodesTotal: 'storage nodes known (not removed)',
      rawCapacityBytes: 'capacity of up nodes',
      rawUsedBytes: 'bytes used on all nodes',
      logicalCapacityBytes: 'raw capacity divided by replication',
      logicalUsedBytes: 'raw use divided by replication',
      buckets: 'buckets',
      objects: 'objects',
      chunks: 'chunks referenced by objects or parts',
      fullChunks: 'chunks with all replicas on up nodes',
      underReplicatedChunks: 'chunks with fewer healthy replicas than the replication factor',
      missingChunks: 'chunks with no healthy replica',
      unconfirmedChunks: "chunks whose copies wait for their nodes' first probe after a manager start",
      ringVersion: 'placement ring version',
      ringBalance: 'max/mean ring ownership per unit weight',
    };
    for (const [k, help] of Object.entries(clusterHelp)) {
      const name = `s3dfs_cluster_${k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}`;
      this.cluster.set(k as keyof ClusterKpis, new Gauge({ name, help: help!, registers: [this.registry] }));
    }
    const nodeHelp: Record<string, string> = {
      up: '1 when the node is up',
      capacityBytes: 'node capacity',
      usedBytes: 'node bytes used',
      chunkCount: 'chunks on the node',
      readsPerSec: 'chunk reads per second',
      writesPerSec: 'chunk writes per second',
      bytesInPerSec: 'bytes written per second',
      bytesOutPerSec: 'bytes read per second',
      readP99Ms: 'p99 read latency',
      writeP99Ms: 'p99 write latency',
      errors: 'errors since node start',
      heartbeatAgeMs: 'age of the last healthy probe',
      restarts: 'restarts by the runtime',
      full: '1 when the node is below its free-space reserve',
    };
    for (const [k, help] of Object.entries(nodeHelp)) {
      const name = `s3dfs_node_${k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}`;
      this.node.set(k, new Gauge({ name, help, labelNames: ['node'], registers: [this.registry] }));
    }
  }

  async render(cluster: ClusterKpis, nodes: NodeKpis[]): Promise<string> {
    for (const [k, g] of this.cluster) g.set(Number(cluster[k]));
    for (const g of this.node.values()) g.reset();
    for (const n of nodes) {
      for (const [k, g] of this.node) {
        const v =
          k === 'up'
            ? n.status === 'up'
              ? 1
              : 0
            : (n as unknown as Record<string, number | boolean | null>)[k];
        if (v !== null && v !== undefined) g.set({ node: n.id }, Number(v));
      }
    }
    return this.registry.metrics();
  }
}
