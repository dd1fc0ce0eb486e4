// Proves the schema migrates on both engines and that listing-critical behaviour (byte order,
// unique constraints, transactions) is identical on PGlite and Postgres.
import { expect } from 'chai';
import { engines, type TestDb } from '../helpers/db.js';

for (const engine of engines()) {
  describe(`metadata on ${engine.name}`, () => {
    let t: TestDb;
    before(async () => {
      t = await engine.open();
      await t.db('buckets').insert({ name: 'b', owner: 'root' });
    });
    after(async () => t.close());

    it('migrates to the latest schema and is idempotent on reopen', async () => {
      const [, pending] = await t.db.migrate.list({
        migrationSource: (await import('../../migrations/index.js')).migrationSource,
      });
      expect(pending).to.have.length(0);
      for (const table of [
        'buckets',
        'objects',
        'chunks',
        'chunk_replicas',
        'nodes',
        'node_events',
        'multipart_uploads',
        'upload_parts',
        'credentials',
        'delete_queue',
        'repair_queue',
        'cluster_counters',
        'settings',
      ]) {
        expect(await t.db.schema.hasTable(table), table).to.equal(true);
      }
    });

    it('orders keys in UTF-8 byte order (COLLATE "C")', async () => {
      const keys = ['a', 'B', 'a/b', 'a b', 'a+b', 'é', 'z', 'a%', '_x', 'A'];
      await t.db('objects').insert(keys.map((key) => ({ bucket: 'b', key, size: 0, etag: 'x' })));
      const rows = await t.db('objects').where({ bucket: 'b' }).orderBy('key').pluck('key');
      const expected = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
      expect(rows).to.deep.equal(expected);
      const ranged = await t
        .db('objects')
        .where('bucket', 'b')
        .andWhere('key', '>=', 'a')
        .andWhere('key', '<', 'b')
        .orderBy('key')
        .pluck('key');
      expect(ranged).to.deep.equal(['a', 'a b', 'a%', 'a+b', 'a/b']);
    });

    it('refuses a second object row for one (bucket, key) and a second lease of one port', async () => {
      let err: unknown;
      try {
        await t.db('objects').insert({ bucket: 'b', key: 'a', size: 1, etag: 'y' });
      } catch (e) {
        err = e;
      }
      expect(String(err)).to.match(/unique|duplicate/i);
      await t.db('nodes').insert({ id: 'n1', host: '127.0.0.1', port: 9100, runtime: 'process' });
      err = undefined;
      try {
        await t.db('nodes').insert({ id: 'n2', host: '127.0.0.1', port: 9100, runtime: 'process' });
      } catch (e) {
        err = e;
      }
      expect(String(err)).to.match(/unique|duplicate/i);
    });

    it('rolls back a failed transaction completely', async () => {
      try {
        await t.db.transaction(async (trx) => {
          await trx('buckets').insert({ name: 'tx', owner: 'root' });
          throw new Error('boom');
        });
      } catch {}
      expect(await t.db('buckets').where({ name: 'tx' }).first()).to.equal(undefined);
    });

    it('stores jsonb user metadata and bigints', async () => {
      await t.db('objects').insert({
        bucket: 'b',
        key: 'big',
        size: 5 * 1024 ** 3,
        etag: 'e',
        user_meta: JSON.stringify({ k: 'v' }),
      });
      const row = await t.db('objects').where({ bucket: 'b', key: 'big' }).first();
      expect(Number(row.size)).to.equal(5 * 1024 ** 3);
      expect(row.user_meta).to.deep.equal({ k: 'v' });
    });
  });
}
