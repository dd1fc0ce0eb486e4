// Proves the healing passes' metadata reads follow their work, not the data stored: on synthetic
// metadata (20,000 chunks × 3 replicas) in each engine, a scrub page read from a cursor near the end,
// a GC page over a queue full of young rows and an idle repair pass read about the rows they return
// (EXPLAIN ANALYZE); a lost node queues exactly its chunks, two lost nodes' shared chunks first; the
// cluster scrape reads what is pending only and its counters stay exact as rows come and go.
import { expect } from 'chai';
import { headlessHealContext, loadSynthetic, syntheticNodeId } from '../../bench/scale-data.js';
import type { Knex } from '../../lib/db.js';
import { gcPage } from '../../manager/healing/gc.js';
import { Repairer } from '../../manager/healing/repair.js';
import { scrubPage } from '../../manager/healing/scrub.js';
import { replicaCounts } from '../../manager/kpis.js';
import { engines, type TestDb } from '../helpers/db.js';
import { rowsRead } from '../helpers/plan.js';

const CHUNKS = 20_000;
const SHAPE = { chunks: CHUNKS, nodes: 10, replication: 3 };
const HOUR_MS = 3_600_000;

for (const engine of engines()) {
  describe(`healing cost on ${engine.name}`, function () {
    this.timeout(120_000);
    let t: TestDb;

    before(async () => {
      t = await engine.open();
      await loadSynthetic(t.db, SHAPE);
    });
    after(async () => t?.close());

    it('reads one scrub page from its cursor, not from the start', async () => {
      const { db } = t;
      const at = await db('chunk_replicas').orderBy(['chunk_id', 'node_id']).offset(50_000).first();
      const cursor = { chunkId: at.chunk_id, nodeId: at.node_id };
      const expected = await db('chunk_replicas')
        .orderBy(['chunk_id', 'node_id'])
        .offset(50_001)
        .limit(100)
        .select('chunk_id', 'node_id');
      const page = await scrubPage(db, cursor, 100);
      expect(
        page.map((r: { chunk_id: string; node_id: string }) => `${r.chunk_id}@${r.node_id}`),
      ).to.deep.equal(
        expected.map((r: { chunk_id: string; node_id: string }) => `${r.chunk_id}@${r.node_id}`),
      );
      expect(page[0].size).to.not.equal(undefined);
      expect(await rowsRead(db, scrubPage(db, cursor, 100))).to.be.below(1000);
    });

    it('reads no young delete-queue row and resumes after its cursor', async () => {
      const { db } = t;
      await db.raw(
        `insert into delete_queue (chunk_id, reason)
         select md5('young' || i), 'deleted' from generate_series(1, 5000) i`,
      );
      await db.raw(
        `insert into delete_queue (chunk_id, reason, enqueued_at, not_before)
         select md5('old' || i), 'deleted', at, case when i % 3 = 0 then now() + interval '1 hour' else at end
           from generate_series(1, 9) i, lateral (select now() - interval '2 hours' + i * interval '1 second' as at) a`,
      );
      await db.raw('analyze delete_queue');
      const first = await gcPage(db, HOUR_MS, undefined, 4);
      expect(first.map((r: { chunk_id: string }) => r.chunk_id)).to.have.length(4);
      const rest = await gcPage(db, HOUR_MS, { at: first[3].at, id: String(first[3].id) }, 100);
      // Nine old rows, three of them waiting for a retry: six are due, none young.
      expect(rest).to.have.length(2);
      expect(await rowsRead(db, gcPage(db, HOUR_MS, undefined, 500))).to.be.below(50);
    });

    it('costs an idle repair pass what it returns', async () => {
      const { db } = t;
      // Rows waiting for a retry are not read past either.
      await db.raw(
        `insert into repair_queue (chunk_id, priority, reason, not_before)
         select id, 1, 'test', now() + interval '1 hour' from chunks order by id limit 2000`,
      );
      await db.raw('analyze repair_queue');
      const repairer = new Repairer(headlessHealContext(db, SHAPE, new Set()));
      await repairer.pass(); // the first pass also counts the queue
      const reads = await readsOf(db, () => repairer.pass());
      expect(reads.queries).to.be.greaterThan(0);
      expect(reads.rows).to.be.below(50);
      await db('repair_queue').delete();
    });

    it('queues exactly the chunks of a lost node, and those of two lost nodes first', async () => {
      const { db } = t;
      const [a, b] = [syntheticNodeId(3), syntheticNodeId(6)]; // replicas are 3 nodes apart
      const pass = async (down: string[]) => {
        const ctx = headlessHealContext(db, SHAPE, new Set(down));
        await db('nodes').whereIn('id', down).update({ status: 'down' });
        const repairer = new Repairer({ ...ctx, stopping: () => true }); // queue only, copy nothing
        for (let i = 0; i < 5; i++) await repairer.pass();
      };
      await pass([a]);
      const held: string[] = await db('chunk_replicas')
        .where({ node_id: a })
        .orderBy('chunk_id')
        .pluck('chunk_id');
      const queued = await db('repair_queue').orderBy('chunk_id').select('chunk_id', 'priority');
      expect(queued.map((r: { chunk_id: string }) => r.chunk_id)).to.deep.equal(held);
      expect(new Set(queued.map((r: { priority: number }) => r.priority))).to.deep.equal(new Set([2]));
      await pass([a, b]);
      const both: string[] = await db('chunk_replicas as x')
        .join('chunk_replicas as y', 'x.chunk_id', 'y.chunk_id')
        .where({ 'x.node_id': a, 'y.node_id': b })
        .pluck('x.chunk_id');
      expect(both.length).to.be.greaterThan(0);
      const first = await db('repair_queue').where('priority', 1).orderBy('chunk_id').pluck('chunk_id');
      expect(first).to.deep.equal([...both].sort());
      await db('nodes').update({ status: 'up' });
      await db('repair_queue').delete();
    });

    it('counts chunks by replica health from what is pending, exactly', async () => {
      const { db } = t;
      const idle = await readsOf(db, async () => {
        expect(await replicaCounts(db, 3)).to.deep.equal({
          chunks: CHUNKS,
          full: CHUNKS,
          under: 0,
          missing: 0,
          unconfirmed: 0,
        });
      });
      expect(idle.rows).to.be.below(50);
      const suspect = syntheticNodeId(2);
      await db('nodes').where({ id: suspect }).update({ status: 'suspect' });
      const held = Number((await db('chunk_replicas').where({ node_id: suspect }).count({ n: '*' }))[0].n);
      expect(await replicaCounts(db, 3)).to.include({ chunks: CHUNKS, under: held, full: CHUNKS - held });
      await db('nodes').where({ id: suspect }).update({ status: 'up' });
      // A replica marked corrupt by hand (no queue row) still counts against its chunk.
      const [one] = await db('chunk_replicas').orderBy('chunk_id').limit(1).select('chunk_id', 'node_id');
      await db('chunk_replicas').where(one).update({ state: 'corrupt' });
      expect(await replicaCounts(db, 3)).to.include({ under: 1, full: CHUNKS - 1 });
      await db('chunk_replicas').where(one).update({ state: 'ok' });
    });

    it('keeps the object and chunk counters exact through deletes, detaches and collection', async () => {
      const { db } = t;
      const counters = async () => {
        const rows = await db('cluster_counters').groupBy('name').select('name', db.raw('sum(value) as n'));
        return Object.fromEntries(rows.map((r: { name: string; n: string }) => [r.name, Number(r.n)]));
      };
      const actual = async () => ({
        chunks: Number((await db('chunks').whereNotNull('object_id').count({ n: '*' }))[0].n),
        objects: Number((await db('objects').count({ n: '*' }))[0].n),
      });
      expect(await counters()).to.deep.equal(await actual());
      // Deleting objects detaches their chunks (ON DELETE SET NULL); collecting removes them.
      await db('objects').where('id', '<=', 10).delete();
      expect(await counters()).to.deep.equal(await actual());
      await db('chunks').whereNull('object_id').whereNull('part_id').delete();
      await db('chunks').where('object_id', 11).update({ object_id: null });
      expect(await counters()).to.deep.equal(await actual());
      expect((await actual()).chunks).to.equal(CHUNKS - 110);
    });
  });
}

/** Rows read (EXPLAIN ANALYZE) by the selects `fn` runs. */
async function readsOf(db: Knex, fn: () => Promise<void>): Promise<{ queries: number; rows: number }> {
  const seen: { sql: string; bindings: unknown[] }[] = [];
  const listen = (q: { sql: string; bindings?: unknown[] }) =>
    seen.push({ sql: q.sql.replace(/\$\d+/g, '?'), bindings: q.bindings ?? [] }); // knex reports $1, $2, … in order
  db.on('query', listen);
  try {
    await fn();
  } finally {
    db.off('query', listen);
  }
  const selects = seen.filter((q) => /^\s*select/i.test(q.sql));
  let rows = 0;
  for (const q of selects) rows += await rowsRead(db, q);
  return { queries: selects.length, rows };
}
