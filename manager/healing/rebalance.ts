// Rebalance: a resumable scan over every live chunk in id order, a bounded slice per pass, moving
// the chunks whose ok replicas are not exactly where the ring puts them (a node joined, a weight
// changed, a node came back with copies that were re-made elsewhere). A move is copy → commit →
// delete, through reconcileChunk; only chunks whose ring placement changed move, about 1/N of them.
import type { Ring } from '../../lib/ring.js';
import { classify, eachLimit, type HealContext } from './context.js';
import { type ChunkWork, reconcileChunk, withReplicas } from './repair.js';

/** Chunks looked at per pass: a cheap metadata read, bounded so one pass stays short. */
export const REBALANCE_SCAN_PER_PASS = 5000;
/** Chunks moved per pass. */
export const REBALANCE_MOVES_PER_PASS = 256;
const SCAN_PAGE = 1000;

export class Rebalancer {
  private cursor: string | undefined;
  /** Misplaced chunks found by the scan cycle in progress, and by the last complete one. */
  private found = { chunks: 0, bytes: 0 };
  private ringVersion = -1;

  constructor(private readonly ctx: HealContext) {}

  /** Restart the scan from the beginning (the ring changed, or an operator asked). */
  restart(): void {
    this.cursor = undefined;
    this.found = { chunks: 0, bytes: 0 };
  }

  async pass(): Promise<void> {
    const { ctx } = this;
    const meter = ctx.meters.rebalance;
    const ring = ctx.monitor.ring();
    if (ring.version !== this.ringVersion) {
      this.ringVersion = ring.version;
      this.restart();
    }
    let scanned = 0;
    let moved = 0;
    while (scanned < REBALANCE_SCAN_PER_PASS && moved < REBALANCE_MOVES_PER_PASS && !ctx.stopping()) {
      const q = ctx
        .db('chunks')
        .where((b) => b.whereNotNull('object_id').orWhereNotNull('part_id'))
        .orderBy('id')
        .limit(SCAN_PAGE)
        .select('id', 'size', 'sha256');
      if (this.cursor !== undefined) q.andWhere('id', '>', this.cursor);
      const page: { id: string; size: string | number; sha256: string }[] = await q;
      if (page.length === 0) {
        // A full cycle is done: what it found is the queue until the next cycle says otherwise.
        meter.queued = this.found.chunks;
        meter.queuedBytes = this.found.bytes;
        this.restart();
        break;
      }
      scanned += page.length;
      this.cursor = page[page.length - 1].id;
      const misplaced = (await withReplicas(ctx, page)).filter((c) => isMisplaced(ctx, c, ring));
      this.found.chunks += misplaced.length;
      this.found.bytes += misplaced.reduce((a, c) => a + c.size, 0);
      meter.queued = Math.max(meter.queued, this.found.chunks);
      meter.queuedBytes = Math.max(meter.queuedBytes, this.found.bytes);
      const batch = misplaced.slice(0, REBALANCE_MOVES_PER_PASS - moved);
      if (batch.length < misplaced.length)
        this.cursor = batch.length > 0 ? batch[batch.length - 1].id : this.cursor;
      moved += batch.length;
      await eachLimit(batch, ctx.config.repairConcurrency, async (chunk) => {
        if (ctx.stopping()) return;
        try {
          const r = await reconcileChunk(ctx, chunk, ring, { rebalance: true, activity: 'rebalance' });
          if (r.copied === 0 && r.removed > 0) meter.record(0);
        } catch (err) {
          meter.fail();
          ctx.log.warn({ err, chunkId: chunk.id }, 'move of a chunk failed; retried next cycle');
        }
      });
    }
    meter.lastPassAt = Date.now();
  }
}

/**
 * Misplaced: its healthy replicas are not exactly where the ring puts it, or some sit on draining
 * nodes.
 * Chunks with a replica in its grace period are left alone until the node is back or given up.
 */
export function isMisplaced(ctx: HealContext, chunk: ChunkWork, ring: Ring): boolean {
  const now = Date.now();
  const ok = chunk.replicas.filter((r) => r.state === 'ok');
  const classes = ok.map((r) => classify(ctx, r.nodeId, now));
  if (classes.includes('grace')) return false;
  if (classes.includes('draining')) return true;
  const up = new Set(ok.filter((_, i) => classes[i] === 'up').map((r) => r.nodeId));
  if (up.size < ctx.replication) return false; // repair's job, not a move
  // A full home node that lacks its copy is not a reason to move: nothing can go there yet.
  const home = ring.home(chunk.id, ctx.replication);
  return home.some((n) => !up.has(n.id) && !n.full) || up.size > home.length;
}
