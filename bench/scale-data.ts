// Synthetic metadata in bulk for the scale bench: nodes, objects of CHUNKS_PER_OBJECT chunks, R
// replicas per chunk spread evenly over the nodes, made by the database itself (generate_series) so
// millions of rows load in seconds and no byte is written to a storage node.
import type { Knex } from 'knex';
import { createLogger } from '../lib/logger.js';
import { Ring } from '../lib/ring.js';
import { loadManagerConfig } from '../manager/config.js';
import type { HealContext, NodeClients } from '../manager/healing/context.js';
import { newMeters } from '../manager/healing/progress.js';
import { Throttle } from '../manager/healing/throttle.js';
import type { Monitor, NodeState } from '../manager/monitor.js';

/** Chunks per synthetic object: a 640 MiB object at the default chunk size. */
const CHUNKS_PER_OBJECT = 10;
/** Rows per insert statement: big enough to load fast, small enough to keep each one's WAL bounded. */
const LOAD_ROWS_PER_STATEMENT = 250_000;
const CHUNK_BYTES = 64 * 1024 ** 2;

export interface SyntheticShape {
  chunks: number;
  nodes: number;
  replication: number;
}

/** Node `i`'s id: sorts like its number. */
export const syntheticNodeId = (i: number) => `node-${String(i).padStart(5, '0')}`;

/** Adds chunks [from, shape.chunks) (and their objects and replicas) to a database made for the bench. */
export async function loadSynthetic(db: Knex, shape: SyntheticShape, from = 0): Promise<void> {
  const { nodes, replication: R } = shape;
  if (from === 0) {
    await db('buckets').insert({ name: 'scale', owner: 'root' }).onConflict('name').ignore();
    await db.raw(
      `insert into nodes (id, host, port, status, runtime, capacity_bytes)
       select 'node-' || lpad(i::text, 5, '0'), '127.0.0.1', 40000 + i, 'up', 'process', 1e15
         from generate_series(0, ?::int - 1) i on conflict do nothing`,
      [nodes],
    );
  }
  for (let lo = from; lo < shape.chunks; lo += LOAD_ROWS_PER_STATEMENT) {
    const hi = Math.min(shape.chunks, lo + LOAD_ROWS_PER_STATEMENT);
    // Object ids follow chunk numbers: chunk i belongs to object i / CHUNKS_PER_OBJECT + 1.
    await db.raw(
      `insert into objects (id, bucket, key, size, etag)
       select o + 1, 'scale', 'obj/' || lpad(o::text, 10, '0'), ?::bigint * ?::bigint, md5(o::text)
         from generate_series(?::bigint / ?::int, (?::bigint - 1) / ?::int) o on conflict do nothing`,
      [CHUNKS_PER_OBJECT, CHUNK_BYTES, lo, CHUNKS_PER_OBJECT, hi, CHUNKS_PER_OBJECT],
    );
    // Ids are md5 hex: random-looking, so ring positions and id order are uncorrelated, as for real ids.
    await db.raw(
      `insert into chunks (id, object_id, seq, "offset", size, sha256)
       select md5(i::text), i / ?::int + 1, i % ?::int, (i % ?::int) * ?::bigint, ?::bigint, md5(i::text) || md5(i::text)
         from generate_series(?::bigint, ?::bigint - 1) i`,
      [CHUNKS_PER_OBJECT, CHUNKS_PER_OBJECT, CHUNKS_PER_OBJECT, CHUNK_BYTES, CHUNK_BYTES, lo, hi],
    );
    // Replica k of chunk i on node (i + k * stride) mod nodes: R distinct nodes, every node equally loaded.
    const stride = Math.max(1, Math.floor(nodes / R));
    await db.raw(
      `insert into chunk_replicas (chunk_id, node_id)
       select md5(i::text), 'node-' || lpad(((i + k * ?::int) % ?::int)::text, 5, '0')
         from generate_series(?::bigint, ?::bigint - 1) i, generate_series(0, ?::int - 1) k`,
      [stride, nodes, lo, hi, R],
    );
  }
  await db.raw(`select setval(pg_get_serial_sequence('objects', 'id'), (select max(id) from objects))`);
  await db.raw('analyze');
}

/**
 * A healing context over synthetic metadata with no node to talk to: the passes' database work can
 * be run and measured alone. `down` nodes have been down since the epoch (past any repair grace).
 */
export function headlessHealContext(db: Knex, shape: SyntheticShape, down: ReadonlySet<string>): HealContext {
  const rows = Array.from({ length: shape.nodes }, (_, i) => {
    const id = syntheticNodeId(i);
    const status = down.has(id) ? 'down' : 'up';
    return { id, host: '127.0.0.1', port: 40000 + i, zone: null, weight: 1, status } as const;
  });
  const nodes = new Map(rows.map((row) => [row.id, { row, since: 0 } as unknown as NodeState]));
  const ring = new Ring({ version: 1, replication: shape.replication, nodes: rows.map((r) => ({ ...r })) });
  return {
    db,
    log: createLogger('bench'),
    config: loadManagerConfig({}).heal,
    replication: shape.replication,
    monitor: { nodes, ring: () => ring } as unknown as Monitor,
    throttle: new Throttle(0),
    meters: newMeters(),
    clients: { get: () => undefined } as unknown as NodeClients,
    stopping: () => false,
  };
}
