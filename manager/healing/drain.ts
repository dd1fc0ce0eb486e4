// Drain bookkeeping. The moving itself is repair's: a draining node's replicas do not count toward
// R, so its chunks are copied to the ring's choice and then removed from it (reconcileChunk). Here:
// what is left per draining node, and a "drain complete" event once nothing is. Each pass asks only
// whether a node still holds a replica (one index probe); what is left is counted at most every
// RECOUNT_MS, at the cost of that node's replicas, never of all chunks.
import type { HealContext } from './context.js';
import type { DrainProgress } from './progress.js';

export const DRAIN_COMPLETE_REASON = 'drain complete: the node holds no replicas; it may be removed';

export class DrainTracker {
  private readonly completed = new Set<string>();
  nodes: DrainProgress[] = [];

  constructor(private readonly ctx: HealContext) {}

  async pass(): Promise<void> {
    const { ctx } = this;
    const draining = [...ctx.monitor.nodes.values()].filter((s) => s.row.status === 'draining');
    const recount = ctx.meters.drain.recountDue();
    const before = new Map(this.nodes.map((n) => [n.nodeId, n]));
    const out: DrainProgress[] = [];
    for (const state of draining) {
      const id = state.row.id;
      const holds = await ctx.db('chunk_replicas').where('node_id', id).first('chunk_id');
      let left = { replicasLeft: 0, bytesLeft: 0 };
      if (holds) left = recount || !before.has(id) ? await this.left(id) : before.get(id)!;
      const done = !holds;
      out.push({ nodeId: id, ...left, done });
      if (done && !this.completed.has(id)) {
        this.completed.add(id);
        await ctx
          .db('node_events')
          .insert({ node_id: id, from: 'draining', to: 'draining', reason: DRAIN_COMPLETE_REASON });
        ctx.log.info(
          { nodeId: id, from: 'draining', to: 'draining', reason: DRAIN_COMPLETE_REASON },
          'node state',
        );
      }
      if (!done) this.completed.delete(id);
    }
    for (const id of this.completed) if (!draining.some((s) => s.row.id === id)) this.completed.delete(id);
    this.nodes = out;
    const meter = ctx.meters.drain;
    meter.queued = out.reduce((a, n) => a + n.replicasLeft, 0);
    meter.queuedBytes = out.reduce((a, n) => a + n.bytesLeft, 0);
    meter.lastPassAt = Date.now();
  }

  /** The node's replicas and their bytes: its own index range, a size lookup per replica. */
  private async left(nodeId: string): Promise<{ replicasLeft: number; bytesLeft: number }> {
    const res = await this.ctx.db.raw(
      `select count(*) as n, coalesce(sum((select c.size from chunks c where c.id = r.chunk_id)), 0) as bytes
         from chunk_replicas r where r.node_id = ?`,
      [nodeId],
    );
    return { replicasLeft: Number(res.rows[0].n), bytesLeft: Number(res.rows[0].bytes) };
  }
}
