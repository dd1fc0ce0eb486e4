// fsck: metadata ↔ nodes consistency, read-only. Every live chunk's replica rows are checked against
// node states and the ring; every reachable node's inventory against the rows. Counts plus a few
// example ids per finding, so an operator can look at one.
import { createHash } from 'node:crypto';
import type { Ring } from '../../lib/ring.js';
import { classify, type HealContext } from './context.js';

/** Example ids kept per finding. */
const EXAMPLES_MAX = 5;
/** Chunks read from metadata per query. */
const PAGE = 1000;
/** Inventory entries compared per node before fsck gives up on that node (reported as truncated). */
const INVENTORY_ENTRIES_MAX = 2_000_000;

const FINDINGS = [
  'missing',
  'underReplicated',
  'surplus',
  'misplaced',
  'corrupt',
  'lostReplicas',
  'orphans',
  'youngOrphans',
  'untracked',
  'stuckUploads',
  'pendingDeletes',
  'corruptInline',
] as const;

export type Finding = (typeof FINDINGS)[number];

/** Findings that are normal transient states; every other finding makes a cluster unclean. */
const TRANSIENT: ReadonlySet<Finding> = new Set(['youngOrphans', 'pendingDeletes']);

export interface FsckReport {
  clean: boolean;
  checkedAt: string;
  tookMs: number;
  replication: number;
  chunks: number;
  replicas: number;
  counts: Record<Finding, number>;
  examples: Record<Finding, string[]>;
  nodes: { id: string; status: string; checked: boolean; entries: number; note?: string }[];
}

export async function fsck(ctx: HealContext, uploadExpiryMs: number): Promise<FsckReport> {
  const started = Date.now();
  const findings = Object.fromEntries(FINDINGS.map((f) => [f, { n: 0, ex: [] as string[] }])) as Record<
    Finding,
    { n: number; ex: string[] }
  >;
  const note = (f: Finding, example: string, n = 1) => {
    findings[f].n += n;
    if (findings[f].ex.length < EXAMPLES_MAX) findings[f].ex.push(example);
  };
  const ring = ctx.monitor.ring();
  const { chunks, replicas } = await checkChunks(ctx, ring, note);
  await checkInlineObjects(ctx, note);

  // Inventories of every reachable node against the replica rows.
  const nodes: FsckReport['nodes'] = [];
  for (const [id, state] of ctx.monitor.nodes) {
    const cls = classify(ctx, id);
    const entry = { id, status: state.row.status, checked: false, entries: 0 } as FsckReport['nodes'][number];
    nodes.push(entry);
    if (cls !== 'up' && cls !== 'draining') {
      entry.note = 'not reachable by status; skipped';
      continue;
    }
    try {
      await checkInventory(ctx, id, entry, note);
      entry.checked = true;
    } catch (err) {
      entry.note = `inventory failed: ${(err as Error).message}`;
    }
  }

  const stuck = await ctx
    .db('multipart_uploads')
    .where({ state: 'active' })
    .andWhere('updated_at', '<', new Date(Date.now() - uploadExpiryMs))
    .select('id')
    .limit(EXAMPLES_MAX);
  const stuckCount = await ctx
    .db('multipart_uploads')
    .where({ state: 'active' })
    .andWhere('updated_at', '<', new Date(Date.now() - uploadExpiryMs))
    .count({ n: '*' });
  findings.stuckUploads = { n: Number(stuckCount[0].n), ex: stuck.map((u: { id: string }) => u.id) };
  const pending = await ctx.db('delete_queue').orderBy('id').limit(EXAMPLES_MAX).pluck('chunk_id');
  const pendingCount = await ctx.db('delete_queue').count({ n: '*' });
  findings.pendingDeletes = { n: Number(pendingCount[0].n), ex: pending };

  const counts = Object.fromEntries(Object.entries(findings).map(([k, v]) => [k, v.n])) as Record<
    Finding,
    number
  >;
  const examples = Object.fromEntries(Object.entries(findings).map(([k, v]) => [k, v.ex])) as Record<
    Finding,
    string[]
  >;
  return {
    clean: FINDINGS.every((f) => TRANSIENT.has(f) || counts[f] === 0),
    checkedAt: new Date(started).toISOString(),
    tookMs: Date.now() - started,
    replication: ctx.replication,
    chunks,
    replicas,
    counts,
    examples,
    nodes,
  };
}

type Note = (f: Finding, example: string, n?: number) => void;

/** Objects kept inline in their rows (migration 004) must still match their MD5 ETag. */
async function checkInlineObjects(ctx: HealContext, note: Note): Promise<void> {
  for (let after = 0; ; ) {
    const rows = await ctx
      .db('objects')
      .whereNotNull('inline_data')
      .andWhere('id', '>', after)
      .orderBy('id')
      .limit(PAGE)
      .select('id', 'bucket', 'key', 'etag', 'inline_data');
    for (const o of rows) {
      if (createHash('md5').update(o.inline_data).digest('hex') !== o.etag)
        note('corruptInline', `${o.bucket}/${o.key}`);
    }
    if (rows.length < PAGE) return;
    after = Number(rows[rows.length - 1].id);
  }
}

async function checkChunks(
  ctx: HealContext,
  ring: Ring,
  note: Note,
): Promise<{ chunks: number; replicas: number }> {
  const R = ctx.replication;
  let cursor: string | undefined;
  let chunks = 0;
  let replicas = 0;
  for (;;) {
    const q = ctx
      .db('chunks')
      .where((b) => b.whereNotNull('object_id').orWhereNotNull('part_id'))
      .orderBy('id')
      .limit(PAGE)
      .pluck('id');
    if (cursor !== undefined) q.andWhere('id', '>', cursor);
    const ids: string[] = await q;
    if (ids.length === 0) break;
    cursor = ids[ids.length - 1];
    const rows: { chunk_id: string; node_id: string; state: string }[] = await ctx
      .db('chunk_replicas')
      .whereIn('chunk_id', ids)
      .select('chunk_id', 'node_id', 'state');
    const by = new Map<string, { node_id: string; state: string }[]>();
    for (const r of rows) by.set(r.chunk_id, [...(by.get(r.chunk_id) ?? []), r]);
    for (const id of ids) {
      chunks += 1;
      const reps = by.get(id) ?? [];
      replicas += reps.length;
      for (const r of reps) if (r.state !== 'ok') note('corrupt', `${id}@${r.node_id}`);
      const up = reps
        .filter((r) => r.state === 'ok' && classify(ctx, r.node_id) === 'up')
        .map((r) => r.node_id);
      if (up.length === 0) note('missing', id);
      else if (up.length < R) note('underReplicated', id);
      else if (up.length > R) note('surplus', id, up.length - R);
      const placement = new Set(ring.place(id, R).map((n) => n.id));
      const off = reps.filter(
        (r) =>
          r.state === 'ok' &&
          (classify(ctx, r.node_id) === 'draining' ||
            (classify(ctx, r.node_id) === 'up' && !placement.has(r.node_id))),
      );
      if (up.length >= R && off.length > 0) note('misplaced', `${id}@${off[0].node_id}`, off.length);
    }
  }
  return { chunks, replicas };
}

async function checkInventory(
  ctx: HealContext,
  nodeId: string,
  entry: FsckReport['nodes'][number],
  note: Note,
): Promise<void> {
  const client = ctx.clients.get(nodeId)!;
  const listed = new Set<string>();
  let after: string | undefined;
  const now = Date.now();
  for (;;) {
    const page = await client.list(after, PAGE);
    const ids = page.chunks.map((c) => c.id);
    const known = new Map<string, { sha256: string }>(
      ids.length === 0
        ? []
        : (await ctx.db('chunks').whereIn('id', ids).select('id', 'sha256')).map(
            (c: { id: string; sha256: string }) => [c.id, c] as const,
          ),
    );
    const tracked = new Set<string>(
      ids.length === 0
        ? []
        : await ctx
            .db('chunk_replicas')
            .where({ node_id: nodeId })
            .whereIn('chunk_id', ids)
            .pluck('chunk_id'),
    );
    for (const e of page.chunks) {
      listed.add(e.id);
      if (!known.has(e.id)) {
        note(now - e.mtimeMs >= ctx.config.orphanGraceMs ? 'orphans' : 'youngOrphans', `${e.id}@${nodeId}`);
      } else if (!tracked.has(e.id)) {
        note('untracked', `${e.id}@${nodeId}`);
      }
    }
    entry.entries += page.chunks.length;
    if (page.next === null) break;
    if (entry.entries >= INVENTORY_ENTRIES_MAX) {
      entry.note = `stopped after ${entry.entries} entries`;
      return;
    }
    after = page.next;
  }
  // Rows (ok) for this node whose file the node does not have.
  let cursor: string | undefined;
  for (;;) {
    const q = ctx
      .db('chunk_replicas')
      .where({ node_id: nodeId, state: 'ok' })
      .orderBy('chunk_id')
      .limit(PAGE)
      .pluck('chunk_id');
    if (cursor !== undefined) q.andWhere('chunk_id', '>', cursor);
    const ids: string[] = await q;
    if (ids.length === 0) break;
    cursor = ids[ids.length - 1];
    for (const id of ids) if (!listed.has(id)) note('lostReplicas', `${id}@${nodeId}`);
  }
}
