// The repair queue (migration 008), fed by whoever learns that a chunk needs repair: a gateway (a
// write that landed on fewer than R nodes, a replica that failed its checksum) and the manager (a
// node down past the repair grace or draining, scrub and inventory findings). The manager's repair
// pass takes its work from here, so finding work costs what changed, never a scan of every chunk.
import type { Knex } from 'knex';

/**
 * Copies left, for the priority: ok replicas on nodes that are not down, draining or removed. A
 * node within its repair grace is counted as gone here, so the priority errs toward sooner.
 */
const COPIES_LEFT = `(select count(*) from chunk_replicas r join nodes n on n.id = r.node_id
   where r.chunk_id = c.id and r.state = 'ok' and n.status in ('up', 'suspect', 'starting'))`;

/**
 * Queues the live ones of these chunks (ids, or a query selecting ids) for repair. A chunk already
 * queued keeps the lower priority, is due at once, and gets a new version: a repair of it in flight
 * does not remove it (it looked at the chunk before this news).
 */
export async function enqueueRepair(
  db: Knex,
  chunks: readonly string[] | Knex.QueryBuilder,
  reason: string,
): Promise<void> {
  if (Array.isArray(chunks) && chunks.length === 0) return;
  const ids = Array.isArray(chunks)
    ? { sql: chunks.map(() => '?').join(', '), bindings: chunks as string[] }
    : (chunks as Knex.QueryBuilder).toSQL();
  await db.raw(
    `insert into repair_queue as q (chunk_id, priority, reason)
     select c.id, ${COPIES_LEFT}, ?
       from chunks c
      where c.id in (${ids.sql}) and (c.object_id is not null or c.part_id is not null)
     on conflict (chunk_id) do update
        set priority = least(q.priority, excluded.priority), reason = excluded.reason,
            version = q.version + 1, attempts = 0, not_before = now()`,
    [reason, ...(ids.bindings as Knex.RawBinding[])],
  );
}
