// Cluster-wide values in the `settings` table, shared by the manager and every gateway on the
// same database: the cluster secret, the admin token, the ring version.
import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import type { NodeStatus, RingNode, RingSnapshot } from './ring.js';

export async function getSetting<T>(db: Knex, key: string): Promise<T | undefined> {
  const row = await db('settings').where({ key }).first('value');
  return row ? (row.value as T) : undefined;
}

export async function setSetting(db: Knex, key: string, value: unknown): Promise<void> {
  await db('settings')
    .insert({ key, value: JSON.stringify(value), updated_at: db.fn.now() })
    .onConflict('key')
    .merge();
}

/**
 * Reads a setting, creating it with `make()` if absent. Two processes racing both insert with
 * ON CONFLICT DO NOTHING and then read, so they agree on the winner's value.
 */
export async function getOrCreateSetting<T>(db: Knex, key: string, make: () => T): Promise<T> {
  const existing = await getSetting<T>(db, key);
  if (existing !== undefined) return existing;
  await db('settings')
    .insert({ key, value: JSON.stringify(make()) })
    .onConflict('key')
    .ignore();
  return (await getSetting<T>(db, key))!;
}

/** The secret every storage-node request carries (`x-s3dfs-secret`); generated once per cluster. */
export function getClusterSecret(db: Knex): Promise<string> {
  return getOrCreateSetting(db, 'cluster_secret', () => randomBytes(32).toString('hex'));
}

export async function getRingVersion(db: Knex): Promise<number> {
  return Number((await getSetting<number>(db, 'ring_version')) ?? 0);
}

/** Atomically increments the ring version; monotonic across restarts and managers. */
export async function bumpRingVersion(db: Knex): Promise<number> {
  await db('settings')
    .insert({ key: 'ring_version', value: JSON.stringify(0) })
    .onConflict('key')
    .ignore();
  const rows = await db('settings')
    .where({ key: 'ring_version' })
    .update({ value: db.raw(`to_jsonb((value #>> '{}')::bigint + 1)`), updated_at: db.fn.now() })
    .returning('value');
  return Number(rows[0].value);
}

/**
 * The ring as the manager last published it, read straight from the database: for gateways that
 * share the manager's database and would rather not ask its HTTP API.
 */
export async function readRingSnapshot(db: Knex, replication: number): Promise<RingSnapshot> {
  const version = await getRingVersion(db);
  const rows = await db('nodes').whereNot({ status: 'removed' }).orderBy('id');
  return { version, replication, nodes: rows.map(rowToRingNode) };
}

export function rowToRingNode(row: {
  id: string;
  host: string;
  port: number;
  zone: string | null;
  weight: number | string;
  status: string;
  full?: boolean | null;
}): RingNode {
  return {
    id: row.id,
    host: row.host,
    port: row.port,
    zone: row.zone ?? null,
    weight: Number(row.weight),
    status: row.status as NodeStatus,
    ...(row.full ? { full: true } : {}),
  };
}
