// Small objects live in their metadata row (S3DFS_INLINE_MAX), not in chunks: proves they read back
// byte-exact (whole, ranged, copied, as an UploadPartCopy source), leave nothing on the nodes, go
// away without a trace, replace and are replaced by chunked versions, and that a damaged row is an
// error on GET and an fsck finding, never wrong bytes.
import { createHash } from 'node:crypto';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { bytes } from '../helpers/bytes.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { engines } from '../helpers/db.js';
import { steadyEnv } from '../helpers/s3raw.js';

const inlineMax = 1024;
const chunk = 4096;

const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');

async function body(s3: S3Client, Bucket: string, Key: string, Range?: string): Promise<Buffer> {
  const res = await s3.send(new GetObjectCommand({ Bucket, Key, Range }));
  return Buffer.from(await res.Body!.transformToByteArray());
}

engines().forEach((engine, i) => {
  describe(`inline small objects on ${engine.name}`, function () {
    this.timeout(60_000);
    let cluster: TestCluster;
    let s3: S3Client;
    const Bucket = 'inline';

    const row = (key: string) =>
      cluster
        .db('objects')
        .where({ bucket: Bucket, key })
        .first('id', 'etag', cluster.db.raw('inline_data is not null as inline'));
    const chunksOf = async (key: string) => {
      const r = await row(key);
      return Number((await cluster.db('chunks').where({ object_id: r.id }).count({ n: '*' }))[0].n);
    };

    before(async () => {
      cluster = await startTestCluster({
        portBase: 20600 + i * 100,
        engine,
        chunkSize: chunk,
        env: { ...steadyEnv, S3DFS_INLINE_MAX: String(inlineMax), S3DFS_MULTIPART_MIN_PART: '0' },
      });
      s3 = cluster.client();
      await s3.send(new CreateBucketCommand({ Bucket }));
    });
    after(async () => cluster?.stop());

    it('keeps an object up to the limit in its row and reads it back whole and in ranges', async () => {
      const data = bytes(inlineMax, 1);
      const put = await s3.send(new PutObjectCommand({ Bucket, Key: 'small', Body: data }));
      expect(put.ETag).to.equal(`"${md5(data)}"`);
      expect((await row('small')).inline).to.equal(true);
      expect(await chunksOf('small')).to.equal(0);
      expect(md5(await body(s3, Bucket, 'small'))).to.equal(md5(data));
      expect((await body(s3, Bucket, 'small', 'bytes=100-199')).equals(data.subarray(100, 200))).to.equal(
        true,
      );
      expect((await body(s3, Bucket, 'small', 'bytes=-10')).equals(data.subarray(-10))).to.equal(true);
      const head = await s3.send(new HeadObjectCommand({ Bucket, Key: 'small' }));
      expect(head.ContentLength).to.equal(inlineMax);
    });

    it('stores one byte more in chunks, and each replaces the other cleanly', async () => {
      const big = bytes(inlineMax + 1, 2);
      await s3.send(new PutObjectCommand({ Bucket, Key: 'flip', Body: big }));
      expect((await row('flip')).inline).to.equal(false);
      expect(await chunksOf('flip')).to.equal(1);
      const queuedBefore = Number((await cluster.db('delete_queue').count({ n: '*' }))[0].n);
      const small = bytes(10, 3);
      await s3.send(new PutObjectCommand({ Bucket, Key: 'flip', Body: small }));
      expect((await row('flip')).inline).to.equal(true);
      // The chunked version's chunk went to the delete queue in the same commit.
      const queuedAfter = Number((await cluster.db('delete_queue').count({ n: '*' }))[0].n);
      expect(queuedAfter).to.be.greaterThan(queuedBefore);
      expect((await body(s3, Bucket, 'flip')).equals(small)).to.equal(true);
      await s3.send(new PutObjectCommand({ Bucket, Key: 'flip', Body: big }));
      expect((await body(s3, Bucket, 'flip')).equals(big)).to.equal(true);
    });

    it('deletes an inline object without queueing anything', async () => {
      await s3.send(new PutObjectCommand({ Bucket, Key: 'gone', Body: bytes(100, 4) }));
      const queued = Number((await cluster.db('delete_queue').count({ n: '*' }))[0].n);
      await s3.send(new DeleteObjectCommand({ Bucket, Key: 'gone' }));
      expect(await row('gone')).to.equal(undefined);
      expect(Number((await cluster.db('delete_queue').count({ n: '*' }))[0].n)).to.equal(queued);
      const err = await s3.send(new GetObjectCommand({ Bucket, Key: 'gone' })).catch((e) => e);
      expect(err.name).to.equal('NoSuchKey');
    });

    it('copies inline to inline, and serves an inline source to UploadPartCopy', async () => {
      const data = bytes(500, 5);
      await s3.send(new PutObjectCommand({ Bucket, Key: 'src', Body: data, ContentType: 'text/x-src' }));
      await s3.send(new CopyObjectCommand({ Bucket, Key: 'dst', CopySource: `${Bucket}/src` }));
      expect((await row('dst')).inline).to.equal(true);
      expect((await body(s3, Bucket, 'dst')).equals(data)).to.equal(true);
      const head = await s3.send(new HeadObjectCommand({ Bucket, Key: 'dst' }));
      expect(head.ContentType).to.equal('text/x-src');

      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key: 'mp' }));
      const p1 = await s3.send(
        new UploadPartCopyCommand({
          Bucket,
          Key: 'mp',
          UploadId,
          PartNumber: 1,
          CopySource: `${Bucket}/src`,
        }),
      );
      const p2 = await s3.send(
        new UploadPartCopyCommand({
          Bucket,
          Key: 'mp',
          UploadId,
          PartNumber: 2,
          CopySource: `${Bucket}/src`,
          CopySourceRange: 'bytes=100-199',
        }),
      );
      await s3.send(
        new CompleteMultipartUploadCommand({
          Bucket,
          Key: 'mp',
          UploadId,
          MultipartUpload: {
            Parts: [
              { PartNumber: 1, ETag: p1.CopyPartResult!.ETag },
              { PartNumber: 2, ETag: p2.CopyPartResult!.ETag },
            ],
          },
        }),
      );
      // Parts are chunk boundaries: a multipart object is never inline, even a small one.
      expect((await row('mp')).inline).to.equal(false);
      const want = Buffer.concat([data, data.subarray(100, 200)]);
      expect((await body(s3, Bucket, 'mp')).equals(want)).to.equal(true);
    });

    it('answers a damaged row with an error, never with wrong bytes, and fsck names it', async () => {
      const data = bytes(300, 6);
      await s3.send(new PutObjectCommand({ Bucket, Key: 'rot', Body: data }));
      const damaged = Buffer.from(data);
      damaged[7] ^= 0x40;
      await cluster.db('objects').where({ bucket: Bucket, key: 'rot' }).update({ inline_data: damaged });
      const err = await s3.send(new GetObjectCommand({ Bucket, Key: 'rot' })).catch((e) => e);
      expect(err.$metadata?.httpStatusCode, String(err)).to.equal(500);
      expect(err.name).to.equal('InternalError');
      const report = await cluster.manager.ops.fsck();
      expect(report.counts.corruptInline).to.equal(1);
      expect(report.examples.corruptInline).to.deep.equal([`${Bucket}/rot`]);
      expect(report.clean).to.equal(false);
      await s3.send(new DeleteObjectCommand({ Bucket, Key: 'rot' }));
      expect((await cluster.manager.ops.fsck()).counts.corruptInline).to.equal(0);
    });
  });
});
