// `npm run bench -- --scale`: what background work costs as the metadata grows, measured on
// synthetic metadata (bench/scale-data.ts) in a real Postgres, with no byte on a storage node, and
// what the placement ring costs as the cluster grows. Each figure is one JSON line (--json) or a
// table row; the README's Benchmark section says what each means.
import { performance } from 'node:perf_hooks';
import knexFactory from 'knex';
import { openDb } from '../lib/db.js';
import { newChunkId } from '../lib/ids.js';
import { Ring, type RingNode, ringBalance } from '../lib/ring.js';
import { Repairer } from '../manager/healing/repair.js';
import { scrubPage } from '../manager/healing/scrub.js';
import { replicaCounts } from '../manager/kpis.js';
import { headlessHealContext, loadSynthetic, type SyntheticShape, syntheticNodeId } from './scale-data.js';

export interface ScaleOptions {
  databaseUrl: string;
  /** Metadata sizes, in chunks (each with `replication` replicas). */
  chunks: number[];
  /** Cluster sizes for the ring figures. */
  ringNodes: number[];
  emit(line: Record<string, unknown>): void;
  log(msg: string): void;
}

const NODES = 100;
const REPLICATION = 3;

/** The median of three timed runs of `fn` (a scrape repeats: the first may meet a cold cache). */
async function median3<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const runs = [await timed(fn), await timed(fn), await timed(fn)].sort((a, b) => a.ms - b.ms);
  return runs[1];
}

/** Wall time of `fn`, in ms: every step here is database work (or ring CPU) and nothing else. */
async function timed<T>(fn: () => Promise<T> | T): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: Math.round((performance.now() - t0) * 100) / 100, value };
}

export async function runScale(o: ScaleOptions): Promise<void> {
  for (const chunks of o.chunks) await metadataAt(o, chunks);
  for (const nodes of o.ringNodes) ringAt(o, nodes);
}

/** Heal and scrape costs over `chunks` synthetic chunks, in a database of its own (dropped after). */
async function metadataAt(o: ScaleOptions, chunks: number): Promise<void> {
  const name = `s3dfs_scale_${process.pid}_${chunks}`;
  const admin = knexFactory({ client: 'pg', connection: o.databaseUrl, pool: { min: 0, max: 1 } });
  await admin.raw(`create database ${name}`);
  const url = new URL(o.databaseUrl);
  url.pathname = `/${name}`;
  const db = await openDb({ databaseUrl: url.toString(), dataDir: '/nonexistent' });
  try {
    const shape: SyntheticShape = { chunks, nodes: NODES, replication: REPLICATION };
    o.log(`loading ${chunks} chunks × ${REPLICATION} replicas on ${NODES} nodes`);
    const load = await timed(() => loadSynthetic(db, shape));
    o.emit({ workload: 'scale-load', chunks, ms: load.ms });

    const idle = new Repairer(headlessHealContext(db, shape, new Set()));
    await idle.pass(); // the first pass also counts the queue
    const idlePass = await timed(() => idle.pass());
    o.emit({ workload: 'heal-idle-pass', chunks, dbMs: idlePass.ms });

    const scrape = await median3(() => replicaCounts(db, REPLICATION));
    o.emit({ workload: 'cluster-scrape', chunks, dbMs: scrape.ms, underReplicated: scrape.value.under });

    const mid = (await db('chunk_replicas')
      .orderBy('chunk_id')
      .offset(Math.floor(chunks / 2))
      .first())!;
    const page = await timed(() => scrubPage(db, { chunkId: mid.chunk_id, nodeId: mid.node_id }, 100));
    o.emit({ workload: 'scrub-page', chunks, dbMs: page.ms, rows: (page.value as unknown[]).length });

    // One node of 100 lost past the repair grace: its chunks are queued (copying is not measured).
    const lost = syntheticNodeId(3);
    await db('nodes').where({ id: lost }).update({ status: 'down' });
    const lostReplicas = Number((await db('chunk_replicas').where({ node_id: lost }).count({ n: '*' }))[0].n);
    const ctx = { ...headlessHealContext(db, shape, new Set([lost])), stopping: () => true };
    const repairer = new Repairer(ctx);
    const queueing = await timed(async () => {
      let queued = -1;
      for (let now = 0; now !== queued; ) {
        queued = now;
        await repairer.pass();
        now = Number((await db('repair_queue').count({ n: '*' }))[0].n);
      }
      return queued;
    });
    o.emit({
      workload: 'heal-node-lost',
      chunks,
      lostReplicas,
      queued: queueing.value,
      dbMs: queueing.ms,
      msPerLostReplica: Math.round((queueing.ms / Math.max(1, lostReplicas)) * 1000) / 1000,
    });
    const lostScrape = await median3(() => replicaCounts(db, REPLICATION));
    o.emit({
      workload: 'cluster-scrape-node-lost',
      chunks,
      dbMs: lostScrape.ms,
      underReplicated: lostScrape.value.under,
    });
  } finally {
    await db.destroy();
    await admin.raw(`drop database if exists ${name} with (force)`);
    await admin.destroy();
  }
}

/** Ring build, lookup, balance and movement at `count` nodes. */
function ringAt(o: ScaleOptions, count: number): void {
  const nodes = (n: number, prefix: string): RingNode[] =>
    Array.from({ length: n }, (_, i) => ({
      id: `${prefix}-${String(i).padStart(5, '0')}`,
      host: `10.0.${Math.floor(i / 250)}.${i % 250}`,
      port: 9000,
      zone: null,
      weight: 1,
      status: 'up',
    }));
  // Fresh ids: no vnode of them is cached yet, as in a process that just started.
  const prefix = `scale${count}-${Date.now()}`;
  const list = nodes(count, prefix);
  const t0 = performance.now();
  const ring = new Ring({ version: 1, replication: REPLICATION, nodes: list });
  const buildMs = performance.now() - t0;
  // Enough ids that the ~1/n that move on a join are counted to a few percent.
  const ids = Array.from({ length: 200_000 }, () => newChunkId());
  const t1 = performance.now();
  const before = ids.map((id) => ring.place(id, 1)[0].id);
  const lookupUs = ((performance.now() - t1) / ids.length) * 1000;
  // One node joins: the share of first replicas that move, against the ideal 1 / (n + 1).
  const t2 = performance.now();
  const grown = new Ring({
    version: 2,
    replication: REPLICATION,
    nodes: [...list, ...nodes(1, `${prefix}-new`)],
  });
  const joinMs = performance.now() - t2;
  const moved = ids.filter((id, i) => grown.place(id, 1)[0].id !== before[i]).length / ids.length;
  o.emit({
    workload: 'ring',
    nodes: count,
    buildMs: Math.round(buildMs),
    // The build is synchronous: it blocks the event loop for all of it.
    maxBlockMs: Math.round(Math.max(buildMs, joinMs)),
    joinMs: Math.round(joinMs),
    lookupUs: Math.round(lookupUs * 10) / 10,
    balance: Math.round(ringBalance(ring) * 1000) / 1000,
    movementRatio: Math.round(moved * (count + 1) * 100) / 100,
  });
}
