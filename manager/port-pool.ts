// The storage-node port pool. A lease is the node's row in `nodes` (port is unique), so two
// managers on one database can never hand out one port twice: each inserts and, on a unique
// violation, moves to the next port. Ports some other program already listens on are skipped.
import net from 'node:net';
import type { Knex } from 'knex';
import { Unavailable } from '../lib/errors.js';

export class PortPoolExhausted extends Unavailable {}

export interface NodeRowInit {
  id: string;
  host: string;
  zone: string | null;
  weight: number;
  runtime: string;
  capacity_bytes: number;
  capacity_limit_bytes: number | null;
}

export interface PortPool {
  range: [number, number];
  /** Host IP to probe for programs already bound; undefined skips probing (remote engines). */
  probeHost?: string;
}

/** Inserts the node with the first free port of the pool and returns that port. */
export async function leasePort(db: Knex, pool: PortPool, row: NodeRowInit): Promise<number> {
  const [lo, hi] = pool.range;
  const taken = new Set<number>(
    (await db('nodes').whereBetween('port', [lo, hi]).pluck('port')).map((p: unknown) => Number(p)),
  );
  for (let port = lo; port <= hi; port++) {
    if (taken.has(port)) continue;
    if (pool.probeHost !== undefined && !(await portIsFree(pool.probeHost, port))) continue;
    try {
      await db('nodes').insert({ ...row, port, status: 'starting' });
      return port;
    } catch (err) {
      if (isUniqueViolation(err) && /port/.test(String((err as { constraint?: string }).constraint ?? err))) {
        continue; // another manager leased it between our read and our insert
      }
      throw err;
    }
  }
  throw new PortPoolExhausted(
    `port pool ${lo}-${hi} is exhausted: every port is leased to a node or in use by another program`,
  );
}

export async function releasePort(db: Knex, nodeId: string): Promise<void> {
  await db('chunk_replicas').where({ node_id: nodeId }).delete();
  await db('nodes').where({ id: nodeId }).delete();
}

/** True when nothing listens on host:port right now (a quick bind, closed at once). */
export function portIsFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e?.code === '23505' || /unique|duplicate key/i.test(String(e?.message));
}
