// Repair: chunks with fewer than R counting replicas (see context.ts), corrupt replicas, replicas
// on draining nodes, taken from the repair queue (lib/repair-queue.ts). One function, reconcileChunk, brings a chunk to its target state in the order
// the invariants demand: drop bad copies → copy from a good replica to the ring's choice (the
// target node verifies the sha256) → record the new replica → only then delete surplus ones.
import { pipeline } from 'node:stream/promises';
import { enqueueRepair } from '../../lib/repair-queue.js';
import type { Ring } from '../../lib/ring.js';
import {
  classify,
  eachLimit,
  type HealContext,
  isForeignKeyViolation,
  queueSize,
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

/** Replicas of a lost or draining node queued per pass: a big node is swept over several passes. */
const SWEEP_PAGE = 5000;
/**
 * A chunk that could not be repaired (no copy left to read, no node to copy to, a node that cannot
 * be asked) is tried again after this, doubling per attempt up to the max: it must not take a
 * batch's place every pass, nor wait long once the cluster can heal it.
 */
const REPAIR_RETRY_MS_FIRST = 1000;
const REPAIR_RETRY_MS_MAX = 300_000;

interface QueueRow {
  chunk_id: string;
  version: number;
  attempts: number;
}

/**
 * Nothing left for repair to do: R counting ok replicas (see ReplicaClass), none bad, none on a
 * draining node. Surplus copies are rebalance's.
 */
export function isWhole(ctx: HealContext, chunk: ChunkWork, now = Date.now()): boolean {
  let counted = 0;
  for (const r of chunk.replicas) {
    if (r.state !== 'ok') return false;
    const c = classify(ctx, r.nodeId, now);
    if (c === 'draining') return false;
    if (c === 'up' || c === 'grace') counted += 1;
  }
  return counted >= ctx.replication;
}

/**
 * Repair from the repair queue (migration 008): the fewest copies left first, a bounded batch, a
 * bounded concurrency. Nodes that went lost (down past the grace) or draining since the last pass
 * have their chunks queued first, a page per pass, from their own index range.
 */
export class Repairer {
  /** Per lost or draining node: the last chunk id queued, null once all are. */
  private readonly sweeps = new Map<string, { cls: ReplicaClass; after: string | null }>();

  constructor(private readonly ctx: HealContext) {}

  async pass(): Promise<void> {
    const { ctx } = this;
    const meter = ctx.meters.repair;
    const swept = await this.sweep();
    if (swept || meter.recountDue()) Object.assign(meter, await queueSize(ctx, 'repair_queue'));
    const rows = await this.due(REPAIR_BATCH);
    const ring = ctx.monitor.ring();
    const byId = new Map(rows.map((r) => [r.chunk_id, r]));
    const live: { id: string; size: string; sha256: string }[] =
      rows.length === 0
        ? []
        : await ctx
            .db('chunks')
            .whereIn('id', [...byId.keys()])
            .where((b) => b.whereNotNull('object_id').orWhereNotNull('part_id'))
            .select('id', 'size', 'sha256');
    // Queued, then detached before its repair: nothing to repair (GC takes the chunk and the row).
    const liveIds = new Set(live.map((c) => c.id));
    for (const r of rows) if (!liveIds.has(r.chunk_id)) await this.done(r, 0);
    const tried: { chunk: ChunkWork; copied: number }[] = [];
    await eachLimit(await withReplicas(ctx, live), ctx.config.repairConcurrency, async (chunk) => {
      // A stopping manager must not wait for a whole (throttled) batch; the next manager resumes it.
      if (ctx.stopping()) return;
      const draining = chunk.replicas.some((r) => classify(ctx, r.nodeId) === 'draining');
      let copied = 0;
      try {
        const activity = draining ? 'drain' : 'repair';
        copied = (await reconcileChunk(ctx, chunk, ring, { rebalance: false, activity })).copied;
      } catch (err) {
        meter.fail();
        ctx.log.warn({ err, chunkId: chunk.id }, 'repair of a chunk failed; retried later');
      }
      tried.push({ chunk, copied });
    });
    // Whole now: out of the queue. Not yet: tried again later, unless news came in meanwhile.
    const now = Date.now();
    const after = new Map(
      (
        await withReplicas(
          ctx,
          tried.map((t) => t.chunk),
        )
      ).map((c) => [c.id, c]),
    );
    for (const { chunk, copied } of tried) {
      const row = byId.get(chunk.id)!;
      if (isWhole(ctx, after.get(chunk.id)!, now)) await this.done(row, copied === 0 ? chunk.size : 0);
      else await this.retryLater(row);
    }
    meter.lastPassAt = Date.now();
  }

  /**
   * Queues the chunks of nodes that are lost or draining, SWEEP_PAGE replicas per node per pass;
   * true if any were queued. A node that comes back (or a manager that restarts) sweeps anew.
   */
  private async sweep(): Promise<boolean> {
    const { ctx } = this;
    const now = Date.now();
    let queued = false;
    for (const id of ctx.monitor.nodes.keys()) {
      const cls = classify(ctx, id, now);
      if (cls !== 'lost' && cls !== 'draining') {
        this.sweeps.delete(id);
        continue;
      }
      let sweep = this.sweeps.get(id);
      if (!sweep || sweep.cls !== cls) {
        sweep = { cls, after: '' };
        this.sweeps.set(id, sweep);
      }
      if (sweep.after === null) continue;
      const page: string[] = await ctx
        .db('chunk_replicas')
        .where('node_id', id)
        .andWhere('chunk_id', '>', sweep.after)
        .orderBy('chunk_id')
        .limit(SWEEP_PAGE)
        .pluck('chunk_id');
      const why = cls === 'lost' ? `node ${id} down past the repair grace` : `node ${id} draining`;
      await enqueueRepair(ctx.db, page, why);
      sweep.after = page.length < SWEEP_PAGE ? null : page[page.length - 1];
      queued ||= page.length > 0;
    }
    for (const id of this.sweeps.keys()) if (!ctx.monitor.nodes.has(id)) this.sweeps.delete(id);
    return queued;
  }

  /**
   * Due rows, fewest copies left first: one range of the (priority, not_before) index per priority,
   * so rows waiting for a retry are never read past.
   */
  private async due(limit: number): Promise<QueueRow[]> {
    const { db } = this.ctx;
    const R = this.ctx.replication;
    const rows: QueueRow[] = [];
    for (let p = 0; p <= R && rows.length < limit; p++) {
      const q = db('repair_queue')
        .where('not_before', '<=', db.fn.now())
        .orderBy(['priority', 'not_before'])
        .limit(limit - rows.length)
        .select('chunk_id', 'version', 'attempts');
      // R copies or more: queued for a bad or draining replica, all in the last range.
      if (p < R) q.where('priority', p);
      else q.where('priority', '>=', R);
      rows.push(...(await q));
    }
    return rows;
  }

  /** Out of the queue, unless queued again since it was taken; `bytes` left the queue uncopied. */
  private async done(row: QueueRow, bytes: number): Promise<void> {
    await this.ctx.db('repair_queue').where({ chunk_id: row.chunk_id, version: row.version }).delete();
    if (bytes > 0) this.ctx.meters.repair.consume(bytes);
  }

  private async retryLater(row: QueueRow): Promise<void> {
    const delay = Math.min(REPAIR_RETRY_MS_MAX, REPAIR_RETRY_MS_FIRST * 2 ** Math.min(row.attempts, 30));
    await this.ctx
      .db('repair_queue')
      .where({ chunk_id: row.chunk_id, version: row.version })
      .update({ attempts: row.attempts + 1, not_before: new Date(Date.now() + delay) });
  }
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
        await enqueueRepair(ctx.db, [chunk.id], `copy on ${source} vanished`);
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
