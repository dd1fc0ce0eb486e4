// Garbage collection of the delete queue: chunks that no object or part needs any more (deleted,
// overwritten, aborted), once they have been queued for the grace period (reads already streaming
// them finish first). Their bytes are deleted from every node that has a replica row; a node that
// cannot be reached makes the chunk wait (backoff through not_before/attempts). Rows go last: the
// replica row after its bytes, the chunk and queue rows when no replica is left.
import type { Knex } from 'knex';
import { classify, eachLimit, type HealContext, queueSize } from './context.js';

/** Queue rows handled per pass. */
export const GC_BATCH = 500;
/** Deletes in flight at once: deletes are cheap for a node, but not free. */
const GC_CONCURRENCY = 8;
/** Retry backoff: doubles per attempt from the first delay up to the max. */
const GC_RETRY_MS_FIRST = 1000;
const GC_RETRY_MS_MAX = 3_600_000;
/**
 * After this many attempts an unreachable node's rows are dropped anyway: its leftover bytes are
 * orphans then, which the inventory walk deletes if the node ever comes back.
 */
export const GC_ATTEMPTS_MAX = 20;

interface QueueRow {
  id: string | number;
  chunk_id: string;
  attempts: number;
}

/** Where the walk of the delete queue is: (enqueued_at as the database prints it, id). */
export interface GcCursor {
  at: string;
  id: string;
}

/**
 * Queue rows past the grace period and not waiting for a retry, after `cursor` in (enqueued_at, id)
 * order: a range scan of that index from the cursor up to the grace boundary, so neither the young
 * rows nor the ones waiting for a retry are read again by every pass.
 */
export function gcPage(db: Knex, graceMs: number, cursor: GcCursor | undefined, limit: number) {
  const q = db('delete_queue')
    // The database's clock, as enqueued_at is: no skew between the gateway's and the manager's.
    .whereRaw("enqueued_at <= now() - (? * interval '1 millisecond')", [graceMs])
    .where('not_before', '<=', db.fn.now())
    .orderBy(['enqueued_at', 'id'])
    .limit(limit)
    .select('id', 'chunk_id', 'attempts', db.raw('enqueued_at::text as at'));
  if (cursor) q.whereRaw('(enqueued_at, id) > (?::timestamptz, ?)', [cursor.at, cursor.id]);
  return q;
}

export class GarbageCollector {
  private cursor: GcCursor | undefined;

  constructor(private readonly ctx: HealContext) {}

  async pass(): Promise<void> {
    const { ctx } = this;
    const meter = ctx.meters.gc;
    const rows: (QueueRow & { at: string })[] = await gcPage(
      ctx.db,
      ctx.config.gcGraceMs,
      this.cursor,
      GC_BATCH,
    );
    // A short page reached the grace boundary: the next pass starts over, for the rows that waited.
    const last = rows.at(-1);
    this.cursor = rows.length < GC_BATCH || !last ? undefined : { at: last.at, id: String(last.id) };
    await eachLimit(rows, GC_CONCURRENCY, async (row) => {
      try {
        await collectOne(ctx, row);
      } catch (err) {
        meter.fail();
        ctx.log.warn({ err, chunkId: row.chunk_id }, 'garbage collection of a chunk failed');
        await retryLater(ctx, row);
      }
    });
    if (meter.recountDue()) Object.assign(meter, await queueSize(ctx, 'delete_queue'));
    meter.lastPassAt = Date.now();
  }
}

async function collectOne(ctx: HealContext, row: QueueRow): Promise<void> {
  const { db } = ctx;
  const chunk = await db('chunks').where({ id: row.chunk_id }).first('id', 'size', 'object_id', 'part_id');
  if (!chunk || chunk.object_id !== null || chunk.part_id !== null) {
    // Already gone, or needed again (attached to an object or part): not garbage.
    await db('delete_queue').where({ id: row.id }).delete();
    return;
  }
  const replicas: { node_id: string }[] = await db('chunk_replicas')
    .where({ chunk_id: chunk.id })
    .select('node_id');
  let unreachable = 0;
  for (const { node_id: nodeId } of replicas) {
    const cls = classify(ctx, nodeId);
    const client = cls === 'gone' ? undefined : ctx.clients.get(nodeId);
    try {
      // A node that is down refuses quickly enough; a 404 is success (store.delete is idempotent).
      if (client && cls !== 'lost') await client.delete(chunk.id);
      else if (client && row.attempts < GC_ATTEMPTS_MAX) throw new Error(`node ${nodeId} is down`);
    } catch (err) {
      if (row.attempts + 1 < GC_ATTEMPTS_MAX) {
        unreachable += 1;
        ctx.log.debug({ err: String(err), chunkId: chunk.id, nodeId }, 'delete deferred');
        continue;
      }
    }
    await db('chunk_replicas').where({ chunk_id: chunk.id, node_id: nodeId }).delete();
  }
  if (unreachable > 0) {
    await retryLater(ctx, row);
    return;
  }
  await db.transaction(async (trx) => {
    await trx('chunks').where({ id: chunk.id }).whereNull('object_id').whereNull('part_id').delete();
    await trx('delete_queue').where({ id: row.id }).delete();
  });
  ctx.meters.gc.record(Number(chunk.size));
  ctx.meters.gc.consume(Number(chunk.size));
}

async function retryLater(ctx: HealContext, row: QueueRow): Promise<void> {
  const delay = Math.min(GC_RETRY_MS_MAX, GC_RETRY_MS_FIRST * 2 ** row.attempts);
  await ctx
    .db('delete_queue')
    .where({ id: row.id })
    .update({ attempts: row.attempts + 1, not_before: new Date(Date.now() + delay) });
}
