// Object and bucket tagging through the SDK, on both metadata engines: x-amz-tagging on PUT, copy
// (both directives) and multipart, Put/Get/DeleteObjectTagging, the tag count on GET, S3's limits
// and errors, and bucket tags.
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketTaggingCommand,
  DeleteObjectTaggingCommand,
  GetBucketTaggingCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  PutBucketTaggingCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { bytes } from '../helpers/bytes.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { engines } from '../helpers/db.js';

const Bucket = 'tags';

engines().forEach((engine, i) => {
  describe(`tagging on ${engine.name}`, function () {
    this.timeout(60_000);
    let c: TestCluster;
    let s3: S3Client;

    before(async () => {
      c = await startTestCluster({
        portBase: 25200 + i * 100,
        chunkSize: 64 * 1024,
        engine,
        env: { S3DFS_MULTIPART_MIN_PART: '0' },
      });
      s3 = c.client();
      await s3.send(new CreateBucketCommand({ Bucket }));
    });
    after(async () => {
      s3?.destroy();
      await c?.stop();
    });

    const tagsOf = async (Key: string) =>
      Object.fromEntries(
        ((await s3.send(new GetObjectTaggingCommand({ Bucket, Key }))).TagSet ?? []).map((t) => [
          t.Key,
          t.Value,
        ]),
      );
    const failure = (p: Promise<unknown>) =>
      p.then(
        () => undefined,
        (e: { name?: string; $metadata?: { httpStatusCode?: number } }) => e,
      );

    it('keeps the tags a PUT gives, counts them on GET, replaces and deletes them', async () => {
      await s3.send(new PutObjectCommand({ Bucket, Key: 'k', Body: 'x', Tagging: 'a=1&b=x%20y' }));
      expect(await tagsOf('k')).to.deep.equal({ a: '1', b: 'x y' });
      const got = await s3.send(new GetObjectCommand({ Bucket, Key: 'k' }));
      expect(got.TagCount).to.equal(2);
      await got.Body!.transformToString();
      await s3.send(
        new PutObjectTaggingCommand({ Bucket, Key: 'k', Tagging: { TagSet: [{ Key: 'c', Value: '' }] } }),
      );
      expect(await tagsOf('k')).to.deep.equal({ c: '' });
      await s3.send(new DeleteObjectTaggingCommand({ Bucket, Key: 'k' }));
      expect(await tagsOf('k')).to.deep.equal({});
      // An overwrite is a new version: the tags it does not give are gone.
      await s3.send(new PutObjectCommand({ Bucket, Key: 'k', Body: 'x', Tagging: 'a=1' }));
      await s3.send(new PutObjectCommand({ Bucket, Key: 'k', Body: 'y' }));
      expect(await tagsOf('k')).to.deep.equal({});
      // Any key S3 takes is a key, `__proto__` included.
      await s3.send(new PutObjectCommand({ Bucket, Key: 'proto', Body: 'x', Tagging: '__proto__=x' }));
      expect(Object.entries(await tagsOf('proto'))).to.deep.equal([['__proto__', 'x']]);
      const missing = await failure(s3.send(new GetObjectTaggingCommand({ Bucket, Key: 'nope' })));
      expect(missing?.name).to.equal('NoSuchKey');
    });

    it('refuses what S3 refuses: more than 10 tags, a repeated key, a key over 128 characters', async () => {
      const eleven = Array.from({ length: 11 }, (_, n) => `k${n}=v`).join('&');
      for (const Tagging of [eleven, 'a=1&a=2', `${'k'.repeat(129)}=v`]) {
        const err = await failure(s3.send(new PutObjectCommand({ Bucket, Key: 'bad', Body: 'x', Tagging })));
        expect(err?.name, Tagging).to.equal('InvalidTag');
        expect(err?.$metadata?.httpStatusCode).to.equal(400);
      }
      const err = await failure(
        s3.send(
          new PutObjectTaggingCommand({
            Bucket,
            Key: 'k',
            Tagging: { TagSet: [{ Key: 'v', Value: 'x'.repeat(257) }] },
          }),
        ),
      );
      expect(err?.name).to.equal('InvalidTag');
    });

    it('copies the source tags, or replaces them with TaggingDirective REPLACE', async () => {
      await s3.send(
        new PutObjectCommand({ Bucket, Key: 'src', Body: bytes(100_000, 1), Tagging: 'from=src' }),
      );
      await s3.send(new CopyObjectCommand({ Bucket, Key: 'copy1', CopySource: `${Bucket}/src` }));
      expect(await tagsOf('copy1')).to.deep.equal({ from: 'src' });
      await s3.send(
        new CopyObjectCommand({
          Bucket,
          Key: 'copy2',
          CopySource: `${Bucket}/src`,
          TaggingDirective: 'REPLACE',
          Tagging: 'new=1',
        }),
      );
      expect(await tagsOf('copy2')).to.deep.equal({ new: '1' });
    });

    it('gives a multipart object the tags its upload was created with', async () => {
      const Key = 'mp';
      const { UploadId } = await s3.send(
        new CreateMultipartUploadCommand({ Bucket, Key, Tagging: 'mp=yes' }),
      );
      const { ETag } = await s3.send(
        new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: 1, Body: bytes(70_000, 2) }),
      );
      await s3.send(
        new CompleteMultipartUploadCommand({
          Bucket,
          Key,
          UploadId,
          MultipartUpload: { Parts: [{ ETag, PartNumber: 1 }] },
        }),
      );
      expect(await tagsOf(Key)).to.deep.equal({ mp: 'yes' });
    });

    it('keeps bucket tags: NoSuchTagSet before, the set after a put, NoSuchTagSet after a delete', async () => {
      const none = await failure(s3.send(new GetBucketTaggingCommand({ Bucket })));
      expect(none?.name).to.equal('NoSuchTagSet');
      await s3.send(
        new PutBucketTaggingCommand({ Bucket, Tagging: { TagSet: [{ Key: 'team', Value: 'storage' }] } }),
      );
      const got = await s3.send(new GetBucketTaggingCommand({ Bucket }));
      expect(got.TagSet).to.deep.equal([{ Key: 'team', Value: 'storage' }]);
      await s3.send(new DeleteBucketTaggingCommand({ Bucket }));
      expect((await failure(s3.send(new GetBucketTaggingCommand({ Bucket }))))?.name).to.equal(
        'NoSuchTagSet',
      );
    });
  });
});
