// The inventory walk: each node's chunk list (GET /chunks?after=&limit=) compared with metadata,
// page by page, resumable. It finds
// - orphans: files no chunk row knows, older than the orphan grace (younger ones may be writes
//   whose metadata is not committed yet) → deleted;
// - untracked copies: files of a live chunk with the right sha256 but no replica row (a copy whose
//   commit was lost, a node back from the dead) → recorded, so repair and rebalance count them and
//   remove them if surplus;
// - lost replicas: rows whose file is not on the node (a wiped volume) → confirmed by HEAD, then
//   the row is dropped and repair copies the chunk again.

import type { Knex } from 'knex';
import { enqueueRepair } from '../../lib/repair-queue.js';
import { classify, eachLimit, type HealContext } from './context.js';

/** Inventory entries per request: the node's own default page. */
const PAGE = 1000;
/** Pages per node per pass, so a node with millions of chunks is walked over many passes. */
const PAGES_PER_PASS = 10;
/** HEAD confirmations in flight per page. */
const HEAD_CONCURRENCY = 8;

interface NodeWalk {
  cursor?: string;
  lastFullAt: number;
  due: boolean;
  lastStatus?: string;
  lastUptimeSec?: number;
}

export class InventoryWalker {
  private readonly walks = new Map<string, NodeWalk>();

  constructor(private readonly ctx: HealContext) {}

  /** Walk every node again soon (an operator asked for a repair pass). */
  markAllDue(): void {
    for (const id of this.ctx.monitor.nodes.keys()) this.walk(id).due = true;
  }

  /** Walk this node from the start in the next pass (its volume changed). */
  markDue(nodeId: string): void {
    const w = this.walk(nodeId);
    w.due = true;
    w.cursor = undefined;
  }

  private walk(nodeId: string): NodeWalk {
    let w = this.walks.get(nodeId);
    if (!w) {
      w = { lastFullAt: 0, due: true };
      this.walks.set(nodeId, w);
    }
    return w;
  }

  async pass(): Promise<void> {
    const { ctx } = this;
    const now = Date.now();
    for (const [id, state] of ctx.monitor.nodes) {
      const w = this.walk(id);
      const status = state.row.status;
      // A node that came back (or restarted, perhaps on an empty volume) is walked at once.
      const uptime = state.health?.uptimeSec;
      if (
        status === 'up' &&
        (w.lastStatus !== 'up' || (uptime !== undefined && uptime < (w.lastUptimeSec ?? 0)))
      ) {
        w.due = true;
        w.cursor = undefined;
      }
      w.lastStatus = status;
      w.lastUptimeSec = uptime;
      const cls = classify(ctx, id, now);
      if (cls !== 'up' && cls !== 'draining') continue;
      if (!w.due && now - w.lastFullAt < ctx.config.inventoryIntervalMs) continue;
      try {
        await this.walkSome(id, w);
      } catch (err) {
        ctx.log.info({ err: String(err), nodeId: id }, 'inventory walk interrupted; resumes next pass');
      }
    }
    for (const id of this.walks.keys()) if (!ctx.monitor.nodes.has(id)) this.walks.delete(id);
  }

  private async walkSome(nodeId: string, w: NodeWalk): Promise<void> {
    const client = this.ctx.clients.get(nodeId);
    if (!client) return;
    for (let i = 0; i < PAGES_PER_PASS; i++) {
      const page = await client.list(w.cursor, PAGE);
      await this.comparePage(nodeId, w.cursor, page.next, page.chunks);
      if (page.next === null) {
        w.cursor = undefined;
        w.lastFullAt = Date.now();
        w.due = false;
        return;
      }
      w.cursor = page.next;
    }
  }

  private async comparePage(
    nodeId: string,
    after: string | undefined,
    next: string | null,
    entries: { id: string; size: number; sha256: string; mtimeMs: number }[],
  ): Promise<void> {
    const { ctx } = this;
    const { db } = ctx;
    const ids = entries.map((e) => e.id);
    const chunkRows: { id: string; size: string; sha256: string; object_id: unknown; part_id: unknown }[] =
      ids.length === 0
        ? []
        : await db('chunks').whereIn('id', ids).select('id', 'size', 'sha256', 'object_id', 'part_id');
    const chunks = new Map(chunkRows.map((c) => [c.id, c]));
    // Rows for this node in the id range the page covers: (after, next], or to the end.
    const rq = db('chunk_replicas').where({ node_id: nodeId }).select('chunk_id', 'state');
    if (after !== undefined) rq.andWhere('chunk_id', '>', after);
    if (next !== null) rq.andWhere('chunk_id', '<=', next);
    const rows: { chunk_id: string; state: string }[] = await rq;
    const tracked = new Set(rows.map((r) => r.chunk_id));
    const listed = new Set(ids);
    const now = Date.now();

    const unknown: string[] = [];
    for (const e of entries) {
      const c = chunks.get(e.id);
      if (!c) {
        if (now - e.mtimeMs >= ctx.config.orphanGraceMs) unknown.push(e.id);
        continue;
      }
      if (tracked.has(e.id)) continue;
      const live = c.object_id !== null || c.part_id !== null;
      const good = e.sha256 === c.sha256 && e.size === Number(c.size);
      if (live && good) {
        await db('chunk_replicas')
          .insert({ chunk_id: e.id, node_id: nodeId, state: 'ok' })
          .onConflict(['chunk_id', 'node_id'])
          .ignore();
        ctx.log.info({ chunkId: e.id, nodeId }, 'untracked copy recorded as a replica');
      } else if (!good && now - e.mtimeMs >= ctx.config.orphanGraceMs) {
        await this.deleteOrphan(nodeId, e.id, 'content differs from metadata');
      }
      // A detached chunk's untracked copy becomes an orphan once GC removes the chunk row.
    }
    for (const id of await orphansOf(db, unknown)) await this.deleteOrphan(nodeId, id, 'no chunk row');

    const missing = rows.filter((r) => r.state === 'ok' && !listed.has(r.chunk_id));
    const client = ctx.clients.get(nodeId)!;
    await eachLimit(missing, HEAD_CONCURRENCY, async (r) => {
      const info = await client.head(r.chunk_id);
      if (info) return; // written after the listing was taken
      await db('chunk_replicas').where({ chunk_id: r.chunk_id, node_id: nodeId, state: 'ok' }).delete();
      await enqueueRepair(db, [r.chunk_id], `copy on ${nodeId} missing from its node`);
      ctx.meters.scrub.lostFound += 1;
      ctx.log.warn({ chunkId: r.chunk_id, nodeId }, 'replica missing from its node; dropped for repair');
    });
  }

  private async deleteOrphan(nodeId: string, chunkId: string, why: string): Promise<void> {
    const client = this.ctx.clients.get(nodeId);
    if (!client) return;
    await client.delete(chunkId);
    this.ctx.meters.gc.orphansDeleted += 1;
    this.ctx.log.info({ chunkId, nodeId, why }, 'orphan deleted from node');
  }
}

/**
 * Of these ids, those with neither a chunk row nor a write intent, read in one snapshot: a write in
 * progress holds an intent and its commit swaps the intent for the row in one statement, so an id
 * with neither has no commit coming (whatever the file's age, or the clocks of node and manager).
 */
async function orphansOf(db: Knex, ids: string[]): Promise<string[]> {
  if (ids.length === 0) return [];
  const res = await db.raw(
    `select v.id from unnest(?::text[]) as v(id)
      where not exists (select 1 from chunks c where c.id = v.id)
        and not exists (select 1 from chunk_intents i where i.chunk_id = v.id)`,
    [`{${ids.join(',')}}`],
  );
  return res.rows.map((r: { id: string }) => r.id);
}
