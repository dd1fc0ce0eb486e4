// Repair: chunks with fewer than R counting replicas (see context.ts), corrupt replicas, replicas
// on draining nodes. One function, reconcileChunk, brings a chunk to its target state in the order
// the invariants demand: drop bad copies → copy from a good replica to the ring's choice (the
// target node verifies the sha256) → record the new replica → only then delete surplus ones.
import { pipeline } from 'node:stream/promises';
import type { Ring } from '../../lib/ring.js';
import {
  classify,
  countingNodeIds,
  eachLimit,
  type HealContext,
  inList,
  isForeignKeyViolation,
  type ReplicaClass,
} from './context.js';
import type { Activity } from './progress.js';
import { verifyReplica } from './scrub.js';

/** Chunks repaired per pass: bounds a pass's length so progress and other activities keep moving. */
export const REPAIR_BATCH = 256;

export interface ReplicaRow {
  nodeId: string;
  state: string;
}

export interface ChunkWork {
  id: string;
  size: number;
  sha256: string;
  replicas: ReplicaRow[];
}

export interface ReconcileResult {
  copied: number;
  copiedBytes: number;
  removed: number;
}

/** Loads the replica rows of these chunks (live or not) into ChunkWork items. */
export async function withReplicas(
  ctx: HealContext,
  chunks: { id: string; size: number | string; sha256: string }[],
): Promise<ChunkWork[]> {
  if (chunks.length === 0) return [];
  const rows: { chunk_id: string; node_id: string; state: string }[] = await ctx
    .db('chunk_replicas')
    .whereIn(
      'chunk_id',
      chunks.map((c) => c.id),
    )
    .select('chunk_id', 'node_id', 'state');
  const by = new Map<string, ReplicaRow[]>();
  for (const r of rows) {
    const list = by.get(r.chunk_id) ?? [];
    list.push({ nodeId: r.node_id, state: r.state });
    by.set(r.chunk_id, list);
  }
  return chunks.map((c) => ({
    id: c.id,
    size: Number(c.size),
    sha256: c.sha256,
    replicas: by.get(c.id) ?? [],
  }));
}

/**
 * Live chunks needing repair, fewest counting replicas first: under R counting replicas, or with
 * a replica that is not ok. `count` is how many there are in all (for progress).
 */
export async function repairCandidates(
  ctx: HealContext,
  limit: number,
): Promise<{ chunks: ChunkWork[]; count: number; bytes: number }> {
  const now = Date.now();
  const counting = inList(countingNodeIds(ctx, now));
  // Chunks with no readable replica cannot be repaired now; they go last so they never crowd out
  // the batch of those that can.
  const readable = inList([...ctx.monitor.nodes.keys()].filter((id) => classify(ctx, id, now) !== 'lost'));
  const inner = `select c.id, c.size, c.sha256,
        count(r.node_id) filter (where r.state = 'ok' and r.node_id in ${counting.sql}) as counted,
        count(r.node_id) filter (where r.state = 'ok' and r.node_id in ${readable.sql}) as readable,
        count(r.node_id) filter (where r.state <> 'ok') as bad
      from chunks c left join chunk_replicas r on r.chunk_id = c.id
     where c.object_id is not null or c.part_id is not null
     group by c.id`;
  const where = 'where t.counted < ? or t.bad > 0';
  const bindings = [...counting.bindings, ...readable.bindings, ctx.replication];
  const rows = await ctx.db.raw(
    `select t.id, t.size, t.sha256 from (${inner}) t ${where}
      order by (t.readable = 0 and t.bad = 0), t.counted, t.id limit ?`,
    [...bindings, limit],
  );
  const total = await ctx.db.raw(
    `select count(*) as n, coalesce(sum(t.size), 0) as bytes from (${inner}) t ${where}`,
    bindings,
  );
  return {
    chunks: await withReplicas(ctx, rows.rows),
    count: Number(total.rows[0].n),
    bytes: Number(total.rows[0].bytes),
  };
}

/** One repair pass: the most endangered chunks first, a bounded batch, a bounded concurrency. */
export async function repairPass(ctx: HealContext): Promise<void> {
  const meter = ctx.meters.repair;
  const { chunks, count, bytes } = await repairCandidates(ctx, REPAIR_BATCH);
  meter.queued = count;
  meter.queuedBytes = bytes;
  const ring = ctx.monitor.ring();
  await eachLimit(chunks, ctx.config.repairConcurrency, async (chunk) => {
    // A stopping manager must not wait for a whole (throttled) batch; the next manager resumes it.
    if (ctx.stopping()) return;
    const draining = chunk.replicas.some((r) => classify(ctx, r.nodeId) === 'draining');
    try {
      await reconcileChunk(ctx, chunk, ring, { rebalance: false, activity: draining ? 'drain' : 'repair' });
    } catch (err) {
      meter.fail();
      ctx.log.warn({ err, chunkId: chunk.id }, 'repair of a chunk failed; retried next pass');
    }
  });
  meter.lastPassAt = Date.now();
}

/**
 * Brings one chunk toward R ok replicas on the ring's choice. With `rebalance`, also copies to
 * placement nodes that lack a replica even when the chunk already has R (a move), as long as no
 * replica is in its grace period (the cluster must be whole before data moves for balance).
 */
export async function reconcileChunk(
  ctx: HealContext,
  chunk: ChunkWork,
  ring: Ring,
  opts: { rebalance: boolean; activity: Activity },
): Promise<ReconcileResult> {
  const result: ReconcileResult = { copied: 0, copiedBytes: 0, removed: 0 };
  const R = ctx.replication;
  const now = Date.now();
  const cls = new Map<string, ReplicaClass>();
  for (const r of chunk.replicas) cls.set(r.nodeId, classify(ctx, r.nodeId, now));

  // 1. Bad replicas are worth nothing: re-read to be sure (a false alarm is put back to ok), then
  //    delete the bytes, then the row. A node that cannot be reached keeps its row (still marked
  //    corrupt) so the bytes are not adopted back by the inventory walk.
  const keepCorrupt = new Set<string>();
  for (const r of chunk.replicas.filter((x) => x.state !== 'ok')) {
    const c = cls.get(r.nodeId)!;
    const client = c === 'gone' ? undefined : ctx.clients.get(r.nodeId);
    try {
      const verdict = client ? await verifyReplica(client, chunk.id, chunk.size, chunk.sha256) : 'corrupt';
      if (verdict === 'unknown') throw new Error('node unreachable');
      const where = { chunk_id: chunk.id, node_id: r.nodeId };
      if (verdict === 'ok') {
        await ctx.db('chunk_replicas').where(where).update({ state: 'ok' });
        r.state = 'ok';
        ctx.log.info({ chunkId: chunk.id, nodeId: r.nodeId }, 'replica marked corrupt reads fine; kept');
        continue;
      }
      await client?.delete(chunk.id);
      await ctx.db('chunk_replicas').where(where).delete();
      result.removed += 1;
    } catch (err) {
      keepCorrupt.add(r.nodeId);
      ctx.log.debug({ err, chunkId: chunk.id, nodeId: r.nodeId }, 'could not delete a corrupt replica yet');
    }
  }
  const ok = chunk.replicas.filter((x) => x.state === 'ok').map((x) => x.nodeId);
  const okOf = (c: ReplicaClass) => ok.filter((id) => cls.get(id) === c);
  const counted = okOf('up').length + okOf('grace').length;
  const holders = new Set([...ok, ...keepCorrupt]);

  // 2. Copy to the ring's first choices that do not hold it yet. place() passes over full nodes, so
  //    a node out of space is never a target; a target that fails anyway (it filled up since its
  //    last probe, it refuses) gives way to the next candidate instead of being retried each pass.
  const copied = (target: string) => {
    ok.push(target);
    cls.set(target, 'up');
    result.copied += 1;
    result.copiedBytes += chunk.size;
  };
  if (counted < R) {
    const candidates = ring
      .place(chunk.id, ring.size)
      .map((n) => n.id)
      .filter((id) => !holders.has(id));
    await copyToFirst(ctx, chunk, candidates, R - counted, okOf, opts.activity, copied);
  } else if (opts.rebalance && okOf('grace').length === 0) {
    // Moves go to where the chunk belongs; a full home node waits until it has room again.
    const targets = ring
      .home(chunk.id, R)
      .filter((n) => !n.full && !holders.has(n.id))
      .map((n) => n.id);
    await copyToFirst(ctx, chunk, targets, targets.length, okOf, opts.activity, copied);
  }

  // 3. Surplus: copies off the ring's choice (or on draining nodes) go only while R healthy
  //    replicas remain elsewhere. Row first, so readers stop choosing it; then the bytes.
  const placement = new Set(ring.home(chunk.id, R).map((n) => n.id));
  const healthy = new Set(okOf('up'));
  const removable = [...okOf('draining'), ...okOf('up').filter((id) => !placement.has(id))];
  for (const nodeId of removable) {
    const others = [...healthy].filter((id) => id !== nodeId).length;
    if (others < R) continue;
    const deleted = await ctx.db('chunk_replicas').where({ chunk_id: chunk.id, node_id: nodeId }).delete();
    healthy.delete(nodeId);
    if (deleted > 0) result.removed += 1;
    await ctx.clients
      .get(nodeId)
      ?.delete(chunk.id)
      .catch((err) =>
        ctx.log.debug({ err, chunkId: chunk.id, nodeId }, 'surplus bytes left for the inventory walk'),
      );
  }
  return result;
}

/** Copies the chunk to candidates in order until `want` copies are made or none is left. */
async function copyToFirst(
  ctx: HealContext,
  chunk: ChunkWork,
  candidates: string[],
  want: number,
  okOf: (c: ReplicaClass) => string[],
  activity: Activity,
  onCopied: (target: string) => void,
): Promise<void> {
  // Readable sources, best first: up nodes, then draining ones, then those in their grace period.
  const sources = [...okOf('up'), ...okOf('draining'), ...okOf('grace')];
  let made = 0;
  for (const target of candidates) {
    if (made >= want || sources.length === 0) return;
    if (await copyReplica(ctx, chunk, sources, target, activity)) {
      onCopied(target);
      made += 1;
    }
  }
}

/**
 * Streams the chunk from the first source that serves it to `target`, which checks the expected
 * sha256 before keeping it; then records the replica. A source that turns out not to have the chunk
 * any more (quarantined by its node) is marked corrupt for the next pass.
 */
async function copyReplica(
  ctx: HealContext,
  chunk: ChunkWork,
  sources: string[],
  target: string,
  activity: Activity,
): Promise<boolean> {
  const meter = ctx.meters[activity];
  const dest = ctx.clients.get(target);
  if (!dest) return false;
  for (const source of sources) {
    const from = ctx.clients.get(source);
    if (!from) continue;
    try {
      const got = await from.get(chunk.id);
      if (got.size !== chunk.size) {
        got.stream.destroy();
        throw new Error(`source has ${got.size} bytes, metadata says ${chunk.size}`);
      }
      let body = got.stream;
      if (ctx.throttle.enabled) {
        const t = ctx.throttle.stream();
        pipeline(got.stream, t).catch(() => {});
        body = t;
      }
      await dest.put(chunk.id, body, chunk.size, chunk.sha256);
    } catch (err) {
      ctx.log.info({ err: String(err), chunkId: chunk.id, source, target }, 'chunk copy failed');
      const still = await from.head(chunk.id).catch(() => 'unknown' as const);
      if (still === undefined) {
        await ctx
          .db('chunk_replicas')
          .where({ chunk_id: chunk.id, node_id: source })
          .update({ state: 'corrupt' });
      }
      continue;
    }
    try {
      await ctx
        .db('chunk_replicas')
        .insert({ chunk_id: chunk.id, node_id: target, state: 'ok' })
        .onConflict(['chunk_id', 'node_id'])
        .merge({ state: 'ok' });
    } catch (err) {
      // The chunk was collected while we copied: the new bytes are an orphan for the inventory walk.
      if (isForeignKeyViolation(err)) return false;
      throw err;
    }
    meter.record(chunk.size);
    meter.consume(chunk.size);
    ctx.log.debug({ chunkId: chunk.id, source, target, activity }, 'replica copied');
    return true;
  }
  meter.fail();
  return false;
}
