// Scrubbing: every replica is re-read in the background at a bounded byte rate. The node verifies
// the read block by block (a chunk written before block sums: whole, against the sha256 in its file
// name), and on a bad block ends the body short, flagged Corrupt, and quarantines the file; the
// manager hashes what it receives as well, so a node that does not check is still caught. A bad or
// vanished replica is marked corrupt and repair replaces it.
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Knex } from 'knex';
import type { NodeClient } from '../../lib/node-client.js';
import { enqueueRepair } from '../../lib/repair-queue.js';
import { classify, type HealContext } from './context.js';

/** Replicas fetched from metadata at a time. */
const SCRUB_PAGE = 100;
/** Unused credit is kept for at most this long, so a slow pass does not turn into a burst. */
const SCRUB_BURST_MS = 5000;
/** The node quarantines a bad chunk just after the failed read; give the rename this long. */
const QUARANTINE_SETTLE_MS = 200;

export interface ScrubCursor {
  chunkId: string;
  nodeId: string;
}

interface ScrubRow {
  chunk_id: string;
  node_id: string;
  size: string;
  sha256: string;
}

/**
 * The ok replicas after `cursor` in (chunk_id, node_id) order: a range scan of the primary key from
 * the cursor (a row-value comparison is one index condition; an OR of two is a filter over the
 * index from its start). The page is cut before it meets `chunks`, or a merge join walks that table
 * from its start as well.
 */
export function scrubPage(db: Knex, cursor: ScrubCursor | undefined, limit: number): Knex.QueryBuilder {
  const page = db('chunk_replicas')
    .where('state', 'ok')
    .orderBy(['chunk_id', 'node_id'])
    .limit(limit)
    .select('chunk_id', 'node_id');
  if (cursor) page.whereRaw('(chunk_id, node_id) > (?, ?)', [cursor.chunkId, cursor.nodeId]);
  return db
    .from(page.as('p'))
    .join('chunks as c', 'c.id', 'p.chunk_id')
    .orderBy(['p.chunk_id', 'p.node_id'])
    .select('p.chunk_id', 'p.node_id', 'c.size', 'c.sha256');
}

export class Scrubber {
  private cursor: ScrubCursor | undefined;
  private credit = 0;
  private lastAt = Date.now();

  constructor(private readonly ctx: HealContext) {}

  async pass(): Promise<void> {
    const { ctx } = this;
    const rate = ctx.config.scrubBytesPerSec;
    const now = Date.now();
    if (rate <= 0) return;
    this.credit = Math.min(this.credit + (rate * (now - this.lastAt)) / 1000, (rate * SCRUB_BURST_MS) / 1000);
    this.lastAt = now;
    while (this.credit > 0) {
      const rows: ScrubRow[] = await scrubPage(ctx.db, this.cursor, SCRUB_PAGE);
      if (rows.length === 0) {
        this.cursor = undefined; // a full cycle is done; start over
        ctx.meters.scrub.queued = 0;
        break;
      }
      for (const row of rows) {
        if (this.credit <= 0) break;
        this.cursor = { chunkId: row.chunk_id, nodeId: row.node_id };
        if (classify(ctx, row.node_id) !== 'up') continue;
        this.credit -= Number(row.size);
        await this.check(row.chunk_id, row.node_id, Number(row.size), row.sha256);
      }
    }
    ctx.meters.scrub.lastPassAt = Date.now();
  }

  private async check(chunkId: string, nodeId: string, size: number, sha256: string): Promise<void> {
    const { ctx } = this;
    const client = ctx.clients.get(nodeId);
    if (!client) return;
    const verdict = await verifyReplica(client, chunkId, size, sha256);
    ctx.meters.scrub.record(verdict === 'unknown' ? 0 : size);
    if (verdict !== 'corrupt') return;
    ctx.meters.scrub.corruptFound += 1;
    await ctx.db('chunk_replicas').where({ chunk_id: chunkId, node_id: nodeId }).update({ state: 'corrupt' });
    await enqueueRepair(ctx.db, [chunkId], `scrub found the copy on ${nodeId} bad`);
    ctx.log.warn({ chunkId, nodeId }, 'scrub found a bad replica; marked corrupt for repair');
  }
}

/**
 * Reads a whole replica and checks its size and sha256: `corrupt` when the bytes are wrong or the
 * node no longer has them (it quarantines a chunk that fails its own check), `unknown` when the
 * node could not be asked.
 */
export async function verifyReplica(
  client: NodeClient,
  chunkId: string,
  size: number,
  sha256: string,
): Promise<'ok' | 'corrupt' | 'unknown'> {
  try {
    const got = await client.get(chunkId);
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const piece of got.stream as AsyncIterable<Buffer>) {
      hash.update(piece);
      bytes += piece.length;
    }
    return bytes === size && hash.digest('hex') === sha256 ? 'ok' : 'corrupt';
  } catch {
    await sleep(QUARANTINE_SETTLE_MS);
    const info = await client.head(chunkId).catch(() => 'unreachable' as const);
    return info === undefined ? 'corrupt' : 'unknown';
  }
}
