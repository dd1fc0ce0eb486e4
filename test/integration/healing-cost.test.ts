// Proves the healing passes' metadata reads follow their work, not the data stored: on synthetic
// metadata (20,000 chunks × 3 replicas) in each engine, a scrub page read from a cursor near the end
// and a GC page over a queue full of young rows read about the rows they return (EXPLAIN ANALYZE).
import { expect } from 'chai';
import { loadSynthetic } from '../../bench/scale-data.js';
import { gcPage } from '../../manager/healing/gc.js';
import { scrubPage } from '../../manager/healing/scrub.js';
import { engines, type TestDb } from '../helpers/db.js';
import { rowsRead } from '../helpers/plan.js';

const CHUNKS = 20_000;
const HOUR_MS = 3_600_000;

for (const engine of engines()) {
  describe(`healing cost on ${engine.name}`, function () {
    this.timeout(120_000);
    let t: TestDb;

    before(async () => {
      t = await engine.open();
      await loadSynthetic(t.db, { chunks: CHUNKS, nodes: 10, replication: 3 });
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
  });
}
