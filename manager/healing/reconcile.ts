// The safety net under the repair queue: a walk over every live chunk in id order, RECONCILE_PAGE
// chunks per pass, that queues any chunk needing repair that nothing queued (a replication factor
// raised between two starts, metadata changed by hand, a path that forgot to tell). A cycle starts
// with the manager and then every S3DFS_RECONCILE_INTERVAL_MS; each pass costs one page.
import { enqueueRepair } from '../../lib/repair-queue.js';
import type { HealContext } from './context.js';
import { isWhole, withReplicas } from './repair.js';

/** Chunks looked at per pass: a page and its replica rows, a few milliseconds of database time. */
export const RECONCILE_PAGE = 1000;

export class Reconciler {
  private cursor: string | undefined;
  private cycleDoneAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly ctx: HealContext) {}

  /** Walk from the start now (an operator asked for a repair pass). */
  restart(): void {
    this.cursor = undefined;
    this.cycleDoneAt = Number.NEGATIVE_INFINITY;
  }

  async pass(): Promise<void> {
    const { ctx } = this;
    const interval = ctx.config.reconcileIntervalMs;
    if (interval === 0) return;
    if (this.cursor === undefined && Date.now() - this.cycleDoneAt < interval) return;
    const q = ctx
      .db('chunks')
      .where((b) => b.whereNotNull('object_id').orWhereNotNull('part_id'))
      .orderBy('id')
      .limit(RECONCILE_PAGE)
      .select('id', 'size', 'sha256');
    if (this.cursor !== undefined) q.andWhere('id', '>', this.cursor);
    const page: { id: string; size: string; sha256: string }[] = await q;
    const now = Date.now();
    const short = (await withReplicas(ctx, page)).filter((c) => !isWhole(ctx, c, now)).map((c) => c.id);
    if (short.length > 0) {
      ctx.log.info({ chunks: short.length }, 'reconcile found chunks needing repair that were not queued');
      await enqueueRepair(ctx.db, short, 'found by the reconcile walk');
    }
    this.cursor = page.length < RECONCILE_PAGE ? undefined : page[page.length - 1].id;
    if (this.cursor === undefined) this.cycleDoneAt = Date.now();
  }
}
