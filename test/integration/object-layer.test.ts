// The gateway's storage front door (gateway/storage/object-layer.ts) without HTTP in front of it,
// on both metadata engines: what it stores reads back byte for byte, and every way a write can
// fail (a describe that refuses, a condition, a missing bucket, a short body, an ended upload)
// throws the domain error and leaves nothing: no object or part, and no chunk on any node.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { expect } from 'chai';
import { MetaStore, type ObjectMeta } from '../../gateway/storage/meta.js';
import type { Incoming, ObjectLayer } from '../../gateway/storage/object-layer.js';
import {
  IncompleteBody,
  NoSuchBucket,
  NoSuchKey,
  NoSuchUpload,
  PreconditionFailed,
} from '../../lib/errors.js';
import { createLogger } from '../../lib/logger.js';
import { NodeClient } from '../../lib/node-client.js';
import { bytes, sha256 } from '../helpers/bytes.js';
import { startTestCluster, type TestCluster, waitFor } from '../helpers/cluster.js';
import { engines } from '../helpers/db.js';

const chunk = 64 * 1024;
const bucket = 'layer';

const body = (data: Buffer, size = data.length): Incoming => ({ stream: Readable.from([data]), size });

const describeAs =
  (etag = 'e') =>
  (stored: { size: number }): Omit<ObjectMeta, 'inlineData'> => ({
    size: stored.size,
    etag,
    contentType: 'application/octet-stream',
    userMeta: {},
  });

async function readAll(source: Buffer | Readable): Promise<Buffer> {
  if (Buffer.isBuffer(source)) return source;
  const parts: Buffer[] = [];
  for await (const p of source) parts.push(p as Buffer);
  return Buffer.concat(parts);
}

async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a failure');
    },
    (err: unknown) => err,
  );
}

engines().forEach((engine, i) => {
  describe(`object layer on ${engine.name}`, function () {
    this.timeout(60_000);
    let c: TestCluster;
    let store: ObjectLayer;
    const log = createLogger('test');

    /** Chunk files on every node, asked of the nodes themselves. */
    async function chunksOnNodes(): Promise<number> {
      let n = 0;
      for (const { row } of c.manager.monitor.nodes.values()) {
        const client = new NodeClient({
          baseUrl: `http://${row.host}:${row.port}`,
          secret: c.manager.clusterSecret,
        });
        for (let page = await client.list(); ; page = await client.list(page.next!)) {
          n += page.chunks.length;
          if (page.next === null) break;
        }
      }
      return n;
    }

    /** Runs a write that must fail, and checks it left no chunk behind on any node. */
    async function leavesNothing(write: () => Promise<unknown>): Promise<unknown> {
      const before = await chunksOnNodes();
      const err = await failure(write());
      await waitFor(async () => (await chunksOnNodes()) === before, 10_000);
      return err;
    }

    before(async () => {
      c = await startTestCluster({
        portBase: 24800 + i * 100,
        chunkSize: chunk,
        engine,
        env: { S3DFS_HEAL_INTERVAL_MS: '200' },
      });
      store = c.gateway.store;
      await c.db('buckets').insert({ name: bucket, owner: 'test', region: 'us-east-1' });
    });
    after(async () => c?.stop());

    it('stores an object in chunks and inline, and opens any range of it byte for byte', async () => {
      const big = bytes(3 * chunk + 17, 1);
      const obj = await store.putObject(bucket, 'big', body(big), describeAs());
      expect(await readAll(await store.openRange(obj, 0, big.length - 1, log))).to.deep.equal(big);
      const part = await readAll(await store.openRange(obj, chunk - 5, 2 * chunk + 5, log));
      expect(sha256(part)).to.equal(sha256(big.subarray(chunk - 5, 2 * chunk + 6)));
      const small = bytes(100, 2);
      // An inline object's ETag is its MD5, which its reads are checked against.
      const md5 = createHash('md5').update(small).digest('hex');
      const tiny = await store.putObject(bucket, 'small', body(small), describeAs(md5));
      expect(await c.db('chunks').where({ object_id: tiny.id }).first()).to.equal(undefined);
      // Its bytes are in its row, read with it.
      const row = (await new MetaStore(c.db).getObject(bucket, 'small', true))!;
      expect(await readAll(await store.openRange(row, 10, 19, log))).to.deep.equal(small.subarray(10, 20));
      expect(await failure(store.openRange(tiny, 10, 19, log))).to.be.instanceOf(Error);
    });

    it('a describe that throws commits nothing and removes the chunks', async () => {
      const err = await leavesNothing(() =>
        store.putObject(bucket, 'refused', body(bytes(2 * chunk, 3)), () => {
          throw new Error('digest mismatch');
        }),
      );
      expect((err as Error).message).to.equal('digest mismatch');
      expect(await c.db('objects').where({ bucket, key: 'refused' }).first()).to.equal(undefined);
    });

    it('a failed condition keeps the current version and removes the new chunks', async () => {
      const v1 = bytes(2 * chunk, 4);
      await store.putObject(bucket, 'cond', body(v1), describeAs('v1'));
      const err = await leavesNothing(() =>
        store.putObject(bucket, 'cond', body(bytes(2 * chunk, 5)), describeAs('v2'), { ifNoneMatch: true }),
      );
      expect(err).to.be.instanceOf(PreconditionFailed);
      expect((err as PreconditionFailed).condition).to.equal('If-None-Match');
      const current = await c.db('objects').where({ bucket, key: 'cond' }).first('etag');
      expect(current.etag).to.equal('v1');
    });

    it('a missing bucket is NoSuchBucket, with nothing left on the nodes', async () => {
      const err = await leavesNothing(() =>
        store.putObject('no-such-bucket', 'k', body(bytes(2 * chunk, 6)), describeAs()),
      );
      expect(err).to.be.instanceOf(NoSuchBucket);
      expect((err as NoSuchBucket).bucket).to.equal('no-such-bucket');
    });

    it('a commit whose answer is lost after it landed keeps every byte of the object', async () => {
      // What a dropped connection after COMMIT looks like to the gateway: the commit succeeded, the
      // call failed. Nothing may be deleted on that error alone.
      const meta = (store as unknown as { deps: { meta: MetaStore } }).deps.meta;
      const commit = meta.commitObject;
      meta.commitObject = async function (this: MetaStore, ...args: Parameters<MetaStore['commitObject']>) {
        await commit.apply(this, args);
        throw new Error('Connection terminated unexpectedly');
      };
      const data = bytes(3 * chunk + 11, 12);
      try {
        const err = await failure(store.putObject(bucket, 'landed', body(data), describeAs()));
        expect((err as Error).message).to.equal('Connection terminated unexpectedly');
      } finally {
        meta.commitObject = commit;
      }
      // Past a few healing passes, where an abandoned intent's bytes would be deleted.
      await new Promise((r) => setTimeout(r, 1500));
      const row = (await meta.getObject(bucket, 'landed'))!;
      expect(sha256(await readAll(await store.openRange(row, 0, data.length - 1, log)))).to.equal(
        sha256(data),
      );
    });

    it('opening an object deleted since its row was read is NoSuchKey', async () => {
      await store.putObject(bucket, 'gone', body(bytes(2 * chunk, 13)), describeAs());
      const meta = new MetaStore(c.db);
      const row = (await meta.getObject(bucket, 'gone'))!;
      await meta.deleteObject(bucket, 'gone');
      expect(await failure(store.openRange(row, 0, 10, log))).to.be.instanceOf(NoSuchKey);
    });

    it('a body shorter than its size is IncompleteBody, chunked or inline', async () => {
      for (const [key, size] of [
        ['short-chunks', 3 * chunk],
        ['short-inline', 1000],
      ] as const) {
        const err = await leavesNothing(() =>
          store.putObject(bucket, key, body(bytes(size >> 1, 7), size), describeAs()),
        );
        expect(err, key).to.be.instanceOf(IncompleteBody);
        expect(await c.db('objects').where({ bucket, key }).first()).to.equal(undefined);
      }
    });

    it('parts complete into an object; a part for an ended upload is NoSuchUpload and leaves nothing', async () => {
      const uploadId = await store.uploads.create({
        bucket,
        key: 'mp',
        meta: { contentType: 'application/octet-stream', userMeta: {} },
        checksumAlgorithm: null,
        checksumType: null,
      });
      const upload = await store.activeUpload(uploadId, bucket, 'mp');
      const p1 = bytes(2 * chunk, 8);
      const p2 = bytes(chunk + 3, 9);
      const etags = ['a'.repeat(32), 'b'.repeat(32)];
      await store.putPart(upload, 1, body(p1), (s) => ({ size: s.size, etag: etags[0] }));
      await store.putPart(upload, 2, body(p2), (s) => ({ size: s.size, etag: etags[1] }));
      const done = await store.complete({
        uploadId,
        bucket,
        key: 'mp',
        parts: etags.map((etag, n) => ({ partNumber: n + 1, etag, checksums: {} })),
        minPartBytes: 0,
        cond: {},
        finalChecksum: async () => null,
        verify: () => {},
      });
      expect((await store.uploads.get(uploadId))?.state).to.equal('completed');
      const row = done.object!;
      expect(sha256(await readAll(await store.openRange(row, 0, row.size - 1, log)))).to.equal(
        sha256(Buffer.concat([p1, p2])),
      );
      const err = await leavesNothing(() =>
        store.putPart(upload, 3, body(bytes(chunk, 10)), (s) => ({ size: s.size, etag: 'c'.repeat(32) })),
      );
      expect(err).to.be.instanceOf(NoSuchUpload);
      expect((err as NoSuchUpload).uploadId).to.equal(uploadId);
    });
  });
});
