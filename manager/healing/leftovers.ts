// Leftovers of writes that will never commit, found through their write intents (gateway/storage/
// intents.ts): a failed write hands its intents back, and a gateway boot whose heartbeat is a
// lease late (killed, stopped, cut off) has all of its intents reclaimed here. Reclaiming is what
// makes them uncommittable (the commit statement holds only unreclaimed intents), so the bytes
// named by a reclaimed intent are deleted from the nodes it lists at once, not after the orphan
// grace. Work per pass follows the writes in flight, never the data stored.
import { classify, eachLimit, type HealContext } from './context.js';

/** The youngest an intent of a live boot is reclaimed at for its age alone. */
const INTENT_AGE_MIN_MS = 6 * 3_600_000;
/** Intents cleaned per pass. */
const LEFTOVERS_BATCH = 500;
const LEFTOVERS_CONCURRENCY = 8;

interface IntentRow {
  chunk_id: string;
  node_ids: string[];
  committed: boolean;
}

export async function leftoversPass(ctx: HealContext): Promise<void> {
  const { db } = ctx;
  const lapsed: { id: string; host: string; pid: number }[] = await db('writer_boots')
    .whereNull('reclaimed_at')
    // The database's clock on both sides: heartbeats are stamped with now() too.
    .whereRaw("heartbeat_at < now() - lease_ms * interval '1 millisecond'")
    .update({ reclaimed_at: db.fn.now() })
    .returning(['id', 'host', 'pid']);
  for (const b of lapsed)
    ctx.log.warn(
      { bootId: b.id, host: b.host, pid: b.pid },
      'gateway stopped heartbeating; its unfinished writes are reclaimed',
    );
  await db('chunk_intents')
    .whereNull('reclaimed_at')
    .where((q) =>
      q
        .whereIn('boot_id', db('writer_boots').whereNotNull('reclaimed_at').select('id'))
        // A write open this long under a live boot is one nobody will finish. Never sooner than 6 h,
        // whatever the orphan grace (tests shorten it): a slow upload must not be failed for it.
        .orWhereRaw("created_at < now() - ? * interval '1 millisecond'", [
          Math.max(ctx.config.orphanGraceMs, INTENT_AGE_MIN_MS),
        ]),
    )
    .update({ reclaimed_at: db.fn.now() });

  const rows: IntentRow[] = await db('chunk_intents as i')
    .whereNotNull('i.reclaimed_at')
    .orderBy('i.reclaimed_at')
    .limit(LEFTOVERS_BATCH)
    .select(
      'i.chunk_id',
      'i.node_ids',
      db.raw('exists (select 1 from chunks c where c.id = i.chunk_id) as committed'),
    );
  await eachLimit(rows, LEFTOVERS_CONCURRENCY, async (row) => {
    if (row.committed) {
      // Cannot happen (a commit removes the intent it holds): never delete what a commit refers to.
      ctx.log.error({ chunkId: row.chunk_id }, 'reclaimed write intent of a committed chunk; dropped');
    } else if (!(await deleteEverywhere(ctx, row))) {
      // A node that cannot be asked now: to the back of the queue.
      await db('chunk_intents').where({ chunk_id: row.chunk_id }).update({ reclaimed_at: db.fn.now() });
      return;
    }
    await db('chunk_intents').where({ chunk_id: row.chunk_id }).delete();
  });
  await db('writer_boots as b')
    .whereNotNull('b.reclaimed_at')
    .whereNotExists(db('chunk_intents as i').whereRaw('i.boot_id = b.id'))
    .delete();
}

/** Deletes the chunk from every node its intent lists; false if one must be asked again later. */
async function deleteEverywhere(ctx: HealContext, row: IntentRow): Promise<boolean> {
  let all = true;
  let deleted = false;
  for (const nodeId of row.node_ids) {
    const cls = classify(ctx, nodeId);
    // Removed, or down past the repair grace: whatever it kept is an orphan for its inventory walk.
    if (cls === 'gone' || cls === 'lost') continue;
    const client = ctx.clients.get(nodeId);
    try {
      if (!client || cls === 'grace') throw new Error(`node ${nodeId} is not up`);
      // A 404 is success: the write never got that far, or the gateway's own delete came first.
      await client.delete(row.chunk_id);
      deleted = true;
    } catch (err) {
      all = false;
      ctx.log.debug({ err: String(err), chunkId: row.chunk_id, nodeId }, 'leftover delete deferred');
    }
  }
  if (all && deleted) ctx.meters.gc.leftoversDeleted += 1;
  return all;
}
