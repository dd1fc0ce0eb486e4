// Drain bookkeeping. The moving itself is repair's: a draining node's replicas do not count toward
// R, so its chunks are copied to the ring's choice and then removed from it (reconcileChunk). Here:
// what is left per draining node, and a "drain complete" event once nothing is.
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
    const out: DrainProgress[] = [];
    for (const state of draining) {
      const id = state.row.id;
      const left = await ctx
        .db('chunk_replicas as r')
        .join('chunks as c', 'c.id', 'r.chunk_id')
        .where('r.node_id', id)
        .first(ctx.db.raw('count(*) as n'), ctx.db.raw('coalesce(sum(c.size), 0) as bytes'));
      const replicasLeft = Number(left?.n ?? 0);
      const bytesLeft = Number(left?.bytes ?? 0);
      const done = replicasLeft === 0;
      out.push({ nodeId: id, replicasLeft, bytesLeft, done });
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
}
