// What every healing activity works with: the database, the monitor's view of the nodes, a client
// per node, the shared copy throttle and the progress meters. Also the one place that decides
// how much a replica on a given node counts.
import type http from 'node:http';
import type { Knex } from 'knex';
import type { Logger } from '../../lib/logger.js';
import { NodeClient } from '../../lib/node-client.js';
import type { HealConfig } from '../config.js';
import type { Monitor } from '../monitor.js';
import type { Meters } from './progress.js';
import type { Throttle } from './throttle.js';

export interface HealContext {
  db: Knex;
  log: Logger;
  config: HealConfig;
  replication: number;
  monitor: Monitor;
  throttle: Throttle;
  meters: Meters;
  clients: NodeClients;
  /** True once the healer is stopping: passes start no new chunk work (a copy in flight finishes). */
  stopping(): boolean;
}

/**
 * How a replica on a node counts:
 * - `up`: healthy, readable, counts toward R;
 * - `grace`: suspect, starting, or down for less than the repair grace: still counts toward R (a
 *   restart must not trigger a storm of copies) but is not read from unless nothing else works;
 * - `lost`: down for longer than the grace: does not count, its row stays so the node's copies are
 *   recognised as surplus if it comes back;
 * - `draining`: readable but leaving: does not count, everything on it is copied away;
 * - `gone`: removed or unknown.
 */
export type ReplicaClass = 'up' | 'grace' | 'lost' | 'draining' | 'gone';

export function classify(ctx: HealContext, nodeId: string, now = Date.now()): ReplicaClass {
  const state = ctx.monitor.nodes.get(nodeId);
  if (!state) return 'gone';
  switch (state.row.status) {
    case 'up':
      return 'up';
    case 'draining':
      return 'draining';
    case 'suspect':
    case 'starting':
      return 'grace';
    case 'down':
      return now - state.since < ctx.config.repairGraceMs ? 'grace' : 'lost';
    default:
      return 'gone';
  }
}

/** One NodeClient per node address, on the healing agent (kept apart from any gateway's pool). */
export class NodeClients {
  private readonly cache = new Map<string, NodeClient>();

  constructor(
    private readonly monitor: Monitor,
    private readonly secret: string,
    private readonly agent: http.Agent,
    private readonly timeoutMs: number,
  ) {}

  get(nodeId: string): NodeClient | undefined {
    const row = this.monitor.nodes.get(nodeId)?.row;
    if (!row) return undefined;
    const baseUrl = `http://${row.host.includes(':') ? `[${row.host}]` : row.host}:${row.port}`;
    let client = this.cache.get(nodeId);
    if (!client || client.baseUrl !== new URL(baseUrl).origin) {
      client = new NodeClient({ baseUrl, secret: this.secret, agent: this.agent, timeoutMs: this.timeoutMs });
      this.cache.set(nodeId, client);
    }
    return client;
  }
}

/** Runs `fn` over `items`, at most `concurrency` at a time. */
export async function eachLimit<T>(
  items: T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/** A queue's length and the bytes of its chunks: a size lookup per row, never a join over all chunks. */
export async function queueSize(
  ctx: HealContext,
  table: 'repair_queue' | 'delete_queue',
): Promise<{ queued: number; queuedBytes: number }> {
  const res = await ctx.db.raw(
    `select count(*) as n, coalesce(sum((select c.size from chunks c where c.id = q.chunk_id)), 0) as bytes
       from ${table} q`,
  );
  return { queued: Number(res.rows[0].n), queuedBytes: Number(res.rows[0].bytes) };
}

export function isForeignKeyViolation(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e?.code === '23503' || /foreign key/i.test(e?.message ?? '');
}
