import os from 'node:os';
import type { Knex } from 'knex';
import { Unavailable } from '../../lib/errors.js';
import { randomId } from '../../lib/ids.js';
import type { Logger } from '../../lib/logger.js';
import { prepared } from './meta.js';

// Write intents (migration 006): before a chunk's bytes go to its nodes, the chunk id and those
// nodes are recorded under this process's boot; the commit that attaches the chunk to an object or
// part removes the record in the same statement (meta.ts, fenceIntents). A write that fails marks
// its intents reclaimed, and so does the manager for every intent of a boot whose heartbeat is a
// lease late (a gateway killed or stopped); the manager then deletes their bytes from those nodes
// (manager/healing/leftovers.ts). A gateway that wakes up after its lease finds its boot reclaimed:
// its writes in flight fail at commit (503, the client retries) and it heartbeats under a new boot.

/** What the writer needs of the intent log (writer.ts). */
export interface IntentLog {
  /** Resolves once `chunkId` going to `nodeIds` is recorded; no byte may go out before. */
  record(chunkId: string, nodeIds: string[]): Promise<void>;
  /** The write of these chunks failed: whatever reached their nodes is to be deleted. */
  abandon(chunkIds: string[]): Promise<void>;
}

export class WriteIntents implements IntentLog {
  private bootId = '';
  private timer?: NodeJS.Timeout;
  /** A heartbeat still waiting on a slow database: the next one is skipped, not stacked. */
  private beating = false;
  /** A new boot being registered, shared by everyone who found the old one lost. */
  private renewing?: Promise<void>;

  constructor(
    private readonly db: Knex,
    private readonly log: Logger,
    private readonly leaseMs: number,
  ) {}

  async start(): Promise<void> {
    await this.register();
    this.timer = setInterval(() => void this.heartbeat(), Math.max(100, Math.floor(this.leaseMs / 3)));
    this.timer.unref();
  }

  /** After the last request: whatever this boot still holds goes back now, not after a lease. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.db('writer_boots')
      .where({ id: this.bootId })
      .update({ reclaimed_at: this.db.fn.now() })
      .catch((err) => this.log.warn({ err }, 'could not hand back the write intents of this gateway'));
  }

  async record(chunkId: string, nodeIds: string[]): Promise<void> {
    try {
      // Only under a boot still held: a gateway waking up past its lease must not begin writes
      // under a boot whose intents are being reclaimed. One new boot, then it must hold.
      for (let attempt = 0; ; attempt++) {
        const bootId = this.bootId;
        const res = await this.db
          .raw(
            `insert into chunk_intents (chunk_id, boot_id, node_ids)
             select ?, id, ?::text[] from writer_boots where id = ? and reclaimed_at is null`,
            [chunkId, `{${nodeIds.join(',')}}`, bootId],
          )
          .options(prepared('record-intent'));
        if (res.rowCount > 0) return;
        if (attempt > 0) throw new Error('no write lease');
        await this.renew(bootId);
      }
    } catch (err) {
      throw new Unavailable(`could not record the write of chunk ${chunkId}: ${(err as Error).message}`);
    }
  }

  async abandon(chunkIds: string[]): Promise<void> {
    if (chunkIds.length === 0) return;
    await this.db('chunk_intents')
      .whereIn('chunk_id', chunkIds)
      .whereNull('reclaimed_at')
      .update({ reclaimed_at: this.db.fn.now() });
  }

  private async register(): Promise<void> {
    const id = randomId();
    await this.db('writer_boots').insert({
      id,
      host: os.hostname(),
      pid: process.pid,
      lease_ms: this.leaseMs,
    });
    this.bootId = id;
  }

  /**
   * Late past the lease (stopped, starved, cut off from the database): the manager took back what
   * boot `lost` held, so its writes in flight cannot commit. New writes go under a new boot.
   */
  private renew(lost: string): Promise<void> {
    if (this.bootId !== lost) return Promise.resolve();
    if (!this.renewing) {
      this.log.warn(
        { bootId: lost },
        'write lease lost; writes in flight will fail; continuing under a new boot',
      );
      this.renewing = this.register().finally(() => {
        this.renewing = undefined;
      });
    }
    return this.renewing;
  }

  private async heartbeat(): Promise<void> {
    if (this.beating) return;
    this.beating = true;
    const bootId = this.bootId;
    try {
      const held = await this.db('writer_boots')
        .where({ id: bootId })
        .whereNull('reclaimed_at')
        .update({ heartbeat_at: this.db.fn.now() })
        .returning('id');
      if (held.length === 0) await this.renew(bootId);
    } catch (err) {
      this.log.warn({ err: String(err) }, 'write lease heartbeat failed');
    } finally {
      this.beating = false;
    }
  }
}
