// Proves the gateway's bucket and object operations work byte-exactly with @aws-sdk/client-s3, both with its default (aws-chunked + CRC trailer) settings and with checksums only WHEN_REQUIRED.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { AwsCrc32c } from '@aws-crypto/crc32c';
import {
  type ChecksumAlgorithm,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetBucketLocationCommand,
  GetObjectCommand,
  type GetObjectCommandInput,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type PutObjectCommandInput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Crc64Nvme } from '@aws-sdk/crc64-nvme';
import { expect } from 'chai';
import { bytes, sha256 } from '../helpers/bytes.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { engines } from '../helpers/db.js';
import { errorCode, keyPath, signedSend, steadyEnv } from '../helpers/s3raw.js';

const chunk = 64 * 1024;

function md5(b: Uint8Array): string {
  return createHash('md5').update(b).digest('hex');
}

async function expected(algorithm: ChecksumAlgorithm, data: Buffer): Promise<string> {
  switch (algorithm) {
    case 'CRC32': {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(crc32(data) >>> 0);
      return b.toString('base64');
    }
    case 'CRC32C': {
      const h = new AwsCrc32c();
      h.update(data);
      return Buffer.from(await h.digest()).toString('base64');
    }
    case 'CRC64NVME': {
      const h = new Crc64Nvme();
      h.update(data);
      return Buffer.from(await h.digest()).toString('base64');
    }
    case 'SHA1':
      return createHash('sha1').update(data).digest('base64');
    case 'SHA256':
      return createHash('sha256').update(data).digest('base64');
  }
  throw new Error(`unknown algorithm ${algorithm}`);
}

interface SdkError {
  name: string;
  $metadata?: { httpStatusCode?: number };
}

/** Resolves with the SDK error a call must fail with. */
async function failure(p: Promise<unknown>): Promise<SdkError> {
  try {
    await p;
  } catch (err) {
    return err as SdkError;
  }
  throw new Error('expected the request to fail');
}

async function expectError(p: Promise<unknown>, code: string | undefined, status: number): Promise<void> {
  const err = await failure(p);
  expect(err.$metadata?.httpStatusCode, `status of ${err.name}`).to.equal(status);
  if (code !== undefined) expect(err.name).to.equal(code);
}

async function body(s3: S3Client, input: GetObjectCommandInput): Promise<Buffer> {
  const res = await s3.send(new GetObjectCommand(input));
  return Buffer.from(await res.Body!.transformToByteArray());
}

const clientModes = [
  { name: 'default checksums', overrides: {} },
  {
    name: 'checksums WHEN_REQUIRED',
    overrides: {
      requestChecksumCalculation: 'WHEN_REQUIRED' as const,
      responseChecksumValidation: 'WHEN_REQUIRED' as const,
    },
  },
];

let portBase = 20000;

for (const engine of engines()) {
  describe(`gateway objects on ${engine.name}`, function () {
    this.timeout(60_000);
    let c: TestCluster;
    const base = portBase;
    portBase += 100;

    before(async () => {
      c = await startTestCluster({ portBase: base, chunkSize: chunk, engine, env: steadyEnv });
    });
    after(async () => c?.stop());

    describe('buckets', () => {
      let s3: S3Client;
      before(() => {
        s3 = c.client();
      });

      it('creates, lists, heads, locates and deletes a bucket', async () => {
        await s3.send(new CreateBucketCommand({ Bucket: 'life-cycle' }));
        const list = await s3.send(new ListBucketsCommand({}));
        expect(list.Buckets?.map((b) => b.Name)).to.include('life-cycle');
        expect(list.Buckets?.find((b) => b.Name === 'life-cycle')?.CreationDate).to.be.instanceOf(Date);
        const head = await s3.send(new HeadBucketCommand({ Bucket: 'life-cycle' }));
        expect(head.$metadata.httpStatusCode).to.equal(200);
        const loc = await s3.send(new GetBucketLocationCommand({ Bucket: 'life-cycle' }));
        // us-east-1 is answered as an empty LocationConstraint, as S3 does.
        expect(loc.LocationConstraint ?? '').to.equal('');
        await s3.send(new DeleteBucketCommand({ Bucket: 'life-cycle' }));
        await expectError(s3.send(new HeadBucketCommand({ Bucket: 'life-cycle' })), undefined, 404);
        await expectError(s3.send(new DeleteBucketCommand({ Bucket: 'life-cycle' })), 'NoSuchBucket', 404);
      });

      it('lists buckets by prefix, in pages of max-buckets', async () => {
        const names = ['page-a', 'page-b', 'page-c', 'pagf'];
        for (const Bucket of names) await s3.send(new CreateBucketCommand({ Bucket }));
        const got: string[] = [];
        let token: string | undefined;
        for (let pages = 1; ; pages++) {
          const res = await s3.send(
            new ListBucketsCommand({ Prefix: 'page-', MaxBuckets: 2, ContinuationToken: token }),
          );
          expect(res.Prefix).to.equal('page-');
          expect(res.Buckets!.every((b) => b.BucketRegion === 'us-east-1')).to.equal(true);
          got.push(...res.Buckets!.map((b) => b.Name!));
          token = res.ContinuationToken;
          if (!token) break;
          expect(pages).to.be.lessThan(3);
        }
        expect(got).to.deep.equal(['page-a', 'page-b', 'page-c']);
        await expectError(s3.send(new ListBucketsCommand({ MaxBuckets: 0 })), 'InvalidArgument', 400);
        for (const Bucket of names) await s3.send(new DeleteBucketCommand({ Bucket }));
      });

      it('rejects invalid bucket names with InvalidBucketName', async () => {
        for (const name of [
          'ab',
          'a'.repeat(64),
          'Upper',
          'under_score',
          '-lead',
          'trail-',
          '192.168.1.1',
          'a..b',
        ]) {
          const res = await signedSend(c, { method: 'PUT', path: `/${name}` });
          expect(res.status, name).to.equal(400);
          expect(errorCode(res.text), name).to.equal('InvalidBucketName');
        }
      });

      it('answers a second create 200 in us-east-1, BucketAlreadyOwnedByYou elsewhere', async () => {
        await s3.send(new CreateBucketCommand({ Bucket: 'twice' }));
        await s3.send(new CreateBucketCommand({ Bucket: 'twice' }));
        const inEu = {
          Bucket: 'twice-eu',
          CreateBucketConfiguration: { LocationConstraint: 'eu-west-1' as const },
        };
        await s3.send(new CreateBucketCommand(inEu));
        await expectError(s3.send(new CreateBucketCommand(inEu)), 'BucketAlreadyOwnedByYou', 409);
      });

      it('refuses to delete a bucket with objects (BucketNotEmpty)', async () => {
        await s3.send(new CreateBucketCommand({ Bucket: 'full' }));
        await s3.send(new PutObjectCommand({ Bucket: 'full', Key: 'x', Body: 'x' }));
        await expectError(s3.send(new DeleteBucketCommand({ Bucket: 'full' })), 'BucketNotEmpty', 409);
        await s3.send(new DeleteObjectCommand({ Bucket: 'full', Key: 'x' }));
        await s3.send(new DeleteBucketCommand({ Bucket: 'full' }));
      });

      it('answers NoSuchBucket for objects in a missing bucket', async () => {
        await expectError(
          s3.send(new PutObjectCommand({ Bucket: 'no-such-bucket', Key: 'k', Body: 'x' })),
          'NoSuchBucket',
          404,
        );
        await expectError(
          s3.send(new GetObjectCommand({ Bucket: 'no-such-bucket', Key: 'k' })),
          'NoSuchBucket',
          404,
        );
      });
    });

    // PGlite runs both client modes; Postgres the core (default SDK settings), to keep the suite fast.
    for (const mode of engine.name === 'pglite' ? clientModes : clientModes.slice(0, 1)) {
      describe(`objects with ${mode.name}`, () => {
        let s3: S3Client;
        const bucket = mode.overrides.requestChecksumCalculation ? 'objects-required' : 'objects-default';
        before(async () => {
          s3 = c.client(mode.overrides);
          await s3.send(new CreateBucketCommand({ Bucket: bucket }));
        });

        for (const size of [0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk + 123]) {
          it(`round-trips ${size} bytes exactly (buffer and stream bodies)`, async () => {
            const data = bytes(size, size + 7);
            const put = await s3.send(
              new PutObjectCommand({ Bucket: bucket, Key: `size-${size}`, Body: data }),
            );
            expect(put.ETag).to.equal(`"${md5(data)}"`);
            expect(sha256(await body(s3, { Bucket: bucket, Key: `size-${size}` }))).to.equal(sha256(data));
            const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: `size-${size}` }));
            expect(head.ContentLength).to.equal(size);
            expect(head.ETag).to.equal(`"${md5(data)}"`);
            // A stream body is what makes the default SDK use aws-chunked with a trailing checksum.
            await s3.send(
              new PutObjectCommand({
                Bucket: bucket,
                Key: `stream-${size}`,
                Body: Readable.from([data.subarray(0, size >> 1), data.subarray(size >> 1)]),
                ContentLength: size,
              }),
            );
            const got = await body(s3, { Bucket: bucket, Key: `stream-${size}` });
            expect(got.length).to.equal(size);
            expect(sha256(got)).to.equal(sha256(data));
          });
        }

        for (const algorithm of ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'] as const) {
          it(`stores and returns a ${algorithm} checksum`, async () => {
            const data = bytes(chunk + 17, 3);
            const want = await expected(algorithm, data);
            const key = `checksum-${algorithm}`;
            const put = await s3.send(
              new PutObjectCommand({ Bucket: bucket, Key: key, Body: data, ChecksumAlgorithm: algorithm }),
            );
            expect(put[`Checksum${algorithm}` as const]).to.equal(want);
            const head = await s3.send(
              new HeadObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: 'ENABLED' }),
            );
            expect(head[`Checksum${algorithm}` as const]).to.equal(want);
            const get = await s3.send(
              new GetObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: 'ENABLED' }),
            );
            expect(get[`Checksum${algorithm}` as const]).to.equal(want);
            expect(sha256(await get.Body!.transformToByteArray())).to.equal(sha256(data));
            // Without checksum mode the header is not sent.
            const plain = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
            expect(plain[`Checksum${algorithm}` as const]).to.equal(undefined);
          });
        }

        it('keeps user metadata and content headers', async () => {
          const expires = new Date('2030-01-02T03:04:05Z');
          await s3.send(
            new PutObjectCommand({
              Bucket: bucket,
              Key: 'meta',
              Body: 'hello',
              ContentType: 'text/x-test; charset=utf-8',
              ContentEncoding: 'identity',
              ContentDisposition: 'attachment; filename="a b.txt"',
              ContentLanguage: 'de-CH',
              CacheControl: 'max-age=60, private',
              Expires: expires,
              Metadata: { color: 'blue', 'two-words': 'x y z' },
            }),
          );
          for (const res of [
            await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'meta' })),
            await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'meta' })),
          ]) {
            expect(res.ContentType).to.equal('text/x-test; charset=utf-8');
            expect(res.ContentEncoding).to.equal('identity');
            expect(res.ContentDisposition).to.equal('attachment; filename="a b.txt"');
            expect(res.ContentLanguage).to.equal('de-CH');
            expect(res.CacheControl).to.equal('max-age=60, private');
            expect(res.Expires?.getTime()).to.equal(expires.getTime());
            expect(res.Metadata).to.deep.equal({ color: 'blue', 'two-words': 'x y z' });
          }
        });

        it('serves ranges: first bytes, open-ended, suffix, across chunks; unsatisfiable → 416', async () => {
          const data = bytes(2 * chunk + 100, 11);
          await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'ranged', Body: data }));
          const cases: [string, number, number][] = [
            ['bytes=0-9', 0, 9],
            [`bytes=${chunk - 5}-${chunk + 4}`, chunk - 5, chunk + 4],
            [`bytes=${chunk}-`, chunk, data.length - 1],
            ['bytes=-100', data.length - 100, data.length - 1],
            [`bytes=10-${data.length + 1000}`, 10, data.length - 1],
          ];
          for (const [range, start, end] of cases) {
            const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'ranged', Range: range }));
            expect(res.$metadata.httpStatusCode, range).to.equal(206);
            expect(res.ContentRange, range).to.equal(`bytes ${start}-${end}/${data.length}`);
            const got = Buffer.from(await res.Body!.transformToByteArray());
            expect(got.equals(data.subarray(start, end + 1)), range).to.equal(true);
          }
          await expectError(
            s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'ranged', Range: `bytes=${data.length}-` })),
            'InvalidRange',
            416,
          );
        });

        it('applies If-Match / If-None-Match / If-(Un)Modified-Since on GET and HEAD', async () => {
          const put = await s3.send(
            new PutObjectCommand({ Bucket: bucket, Key: 'cond', Body: 'conditional' }),
          );
          const etag = put.ETag!;
          const past = new Date(Date.now() - 3600_000);
          const future = new Date(Date.now() + 3600_000);
          for (const Cmd of [GetObjectCommand, HeadObjectCommand]) {
            const k = { Bucket: bucket, Key: 'cond' };
            expect((await s3.send(new Cmd({ ...k, IfMatch: etag }))).ETag).to.equal(etag);
            await expectError(s3.send(new Cmd({ ...k, IfMatch: '"0123"' })), undefined, 412);
            await expectError(s3.send(new Cmd({ ...k, IfNoneMatch: etag })), undefined, 304);
            expect((await s3.send(new Cmd({ ...k, IfNoneMatch: '"0123"' }))).ETag).to.equal(etag);
            await expectError(s3.send(new Cmd({ ...k, IfModifiedSince: future })), undefined, 304);
            expect((await s3.send(new Cmd({ ...k, IfModifiedSince: past }))).ETag).to.equal(etag);
            await expectError(s3.send(new Cmd({ ...k, IfUnmodifiedSince: past })), undefined, 412);
            expect((await s3.send(new Cmd({ ...k, IfUnmodifiedSince: future }))).ETag).to.equal(etag);
            // If-Match true wins over If-Unmodified-Since false (RFC 7232 precedence, as S3).
            expect((await s3.send(new Cmd({ ...k, IfMatch: etag, IfUnmodifiedSince: past }))).ETag).to.equal(
              etag,
            );
            // A missing key is 404 whatever the conditions say.
            await expectError(
              s3.send(new Cmd({ Bucket: bucket, Key: 'cond-missing', IfMatch: etag })),
              undefined,
              404,
            );
          }
        });

        it('applies response-* overrides on GET', async () => {
          await s3.send(
            new PutObjectCommand({ Bucket: bucket, Key: 'override', Body: 'x', ContentType: 'text/plain' }),
          );
          const res = await s3.send(
            new GetObjectCommand({
              Bucket: bucket,
              Key: 'override',
              ResponseContentType: 'application/x-over',
              ResponseContentDisposition: 'attachment; filename="o.bin"',
              ResponseCacheControl: 'no-store',
              ResponseContentLanguage: 'fr',
              ResponseContentEncoding: 'identity',
            }),
          );
          expect(res.ContentType).to.equal('application/x-over');
          expect(res.ContentDisposition).to.equal('attachment; filename="o.bin"');
          expect(res.CacheControl).to.equal('no-store');
          expect(res.ContentLanguage).to.equal('fr');
          expect(res.ContentEncoding).to.equal('identity');
        });

        it('lets exactly one of 10 concurrent If-None-Match: * creators win', async () => {
          const results = await Promise.allSettled(
            Array.from({ length: 10 }, (_, i) =>
              s3.send(
                new PutObjectCommand({ Bucket: bucket, Key: 'race', Body: `writer ${i}`, IfNoneMatch: '*' }),
              ),
            ),
          );
          const won = results.filter((r) => r.status === 'fulfilled');
          const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
          expect(won).to.have.length(1);
          for (const l of lost) expect((l.reason as SdkError).$metadata?.httpStatusCode).to.equal(412);
          const winner = (won[0] as PromiseFulfilledResult<{ ETag?: string }>).value.ETag;
          const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'race' }));
          expect(head.ETag).to.equal(winner);
          // Once it exists, a further create fails too; If-Match with the right ETag overwrites.
          await expectError(
            s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'race', Body: 'late', IfNoneMatch: '*' })),
            undefined,
            412,
          );
          await expectError(
            s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'race', Body: 'bad', IfMatch: '"00"' })),
            undefined,
            412,
          );
          await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'race', Body: 'good', IfMatch: winner }));
          expect((await body(s3, { Bucket: bucket, Key: 'race' })).toString()).to.equal('good');
        });

        it('deletes objects one by one and idempotently', async () => {
          await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'gone', Body: 'x' }));
          const del = await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'gone' }));
          expect(del.$metadata.httpStatusCode).to.equal(204);
          await expectError(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'gone' })), undefined, 404);
          await expectError(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'gone' })), 'NoSuchKey', 404);
          expect(
            (await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'gone' }))).$metadata
              .httpStatusCode,
          ).to.equal(204);
        });

        it('deletes in batches (DeleteObjects), verbose and quiet', async () => {
          const keys = ['batch/a', 'batch/b c', 'batch/é', 'batch/d+e'];
          for (const k of keys) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: k }));
          const verbose = await s3.send(
            new DeleteObjectsCommand({
              Bucket: bucket,
              Delete: { Objects: [...keys.slice(0, 2), 'batch/never-existed'].map((Key) => ({ Key })) },
            }),
          );
          expect(verbose.Deleted?.map((d) => d.Key)).to.deep.equal([
            'batch/a',
            'batch/b c',
            'batch/never-existed',
          ]);
          expect(verbose.Errors ?? []).to.have.length(0);
          const quiet = await s3.send(
            new DeleteObjectsCommand({
              Bucket: bucket,
              Delete: { Objects: keys.slice(2).map((Key) => ({ Key })), Quiet: true },
            }),
          );
          expect(quiet.Deleted ?? []).to.have.length(0);
          expect(quiet.Errors ?? []).to.have.length(0);
          const left = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'batch/' }));
          expect(left.KeyCount).to.equal(0);
        });

        it('copies with COPY and REPLACE directives, refuses a plain self-copy, honours copy-source conditions', async () => {
          const data = bytes(chunk * 2 + 5, 21);
          const put = await s3.send(
            new PutObjectCommand({
              Bucket: bucket,
              Key: 'copy src é',
              Body: data,
              ContentType: 'image/x-src',
              Metadata: { origin: 'source' },
            }),
          );
          const source = `${bucket}/${encodeURIComponent('copy src é')}`;
          const copied = await s3.send(
            new CopyObjectCommand({ Bucket: bucket, Key: 'copy-dst', CopySource: source }),
          );
          expect(copied.CopyObjectResult?.ETag).to.equal(put.ETag);
          const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'copy-dst' }));
          expect(head.ContentType).to.equal('image/x-src');
          expect(head.Metadata).to.deep.equal({ origin: 'source' });
          expect(sha256(await body(s3, { Bucket: bucket, Key: 'copy-dst' }))).to.equal(sha256(data));

          await s3.send(
            new CopyObjectCommand({
              Bucket: bucket,
              Key: 'copy-dst',
              CopySource: source,
              MetadataDirective: 'REPLACE',
              ContentType: 'text/replaced',
              Metadata: { origin: 'replaced' },
            }),
          );
          const replaced = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'copy-dst' }));
          expect(replaced.ContentType).to.equal('text/replaced');
          expect(replaced.Metadata).to.deep.equal({ origin: 'replaced' });

          await expectError(
            s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copy src é', CopySource: source })),
            'InvalidRequest',
            400,
          );
          await s3.send(
            new CopyObjectCommand({
              Bucket: bucket,
              Key: 'copy src é',
              CopySource: source,
              MetadataDirective: 'REPLACE',
              Metadata: { origin: 'self' },
            }),
          );
          const self = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'copy src é' }));
          expect(self.Metadata).to.deep.equal({ origin: 'self' });
          expect(sha256(await body(s3, { Bucket: bucket, Key: 'copy src é' }))).to.equal(sha256(data));

          const to = { Bucket: bucket, Key: 'copy-cond', CopySource: source };
          await expectError(
            s3.send(new CopyObjectCommand({ ...to, CopySourceIfMatch: '"00"' })),
            undefined,
            412,
          );
          await expectError(
            s3.send(new CopyObjectCommand({ ...to, CopySourceIfNoneMatch: put.ETag })),
            undefined,
            412,
          );
          await expectError(
            s3.send(
              new CopyObjectCommand({ ...to, CopySourceIfModifiedSince: new Date(Date.now() + 3600_000) }),
            ),
            undefined,
            412,
          );
          await expectError(
            s3.send(
              new CopyObjectCommand({ ...to, CopySourceIfUnmodifiedSince: new Date(Date.now() - 3600_000) }),
            ),
            undefined,
            412,
          );
          await expectError(
            s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'copy-cond' })),
            undefined,
            404,
          );
          await s3.send(new CopyObjectCommand({ ...to, CopySourceIfMatch: put.ETag }));
          expect(sha256(await body(s3, { Bucket: bucket, Key: 'copy-cond' }))).to.equal(sha256(data));
          await expectError(
            s3.send(new CopyObjectCommand({ ...to, CopySource: `${bucket}/no-such-source` })),
            'NoSuchKey',
            404,
          );
        });

        it('stores odd keys exactly and limits keys to 1024 bytes', async () => {
          const keys = [
            'a b',
            'a+b',
            '%',
            '100%25',
            'é',
            '日本/語',
            'trailing/',
            'a//b',
            '/leading',
            'q?x=1&y#frag',
            "tilde~!*'()",
            // 'odd/' + 1020 bytes: exactly the 1024-byte limit, in ASCII and in 2-byte UTF-8.
            'k'.repeat(1020),
            'é'.repeat(510),
          ];
          for (const key of keys) {
            await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `odd/${key}`, Body: key }));
          }
          for (const key of keys) {
            const k = `odd/${key}`;
            expect((await body(s3, { Bucket: bucket, Key: k })).toString(), k).to.equal(key);
          }
          const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'odd/' }));
          expect(listed.Contents?.map((o) => o.Key).sort()).to.deep.equal(keys.map((k) => `odd/${k}`).sort());
          await expectError(
            s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'k'.repeat(1025), Body: 'x' })),
            'KeyTooLongError',
            400,
          );
          await expectError(
            s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${'é'.repeat(512)}x`, Body: 'x' })),
            'KeyTooLongError',
            400,
          );
        });

        it('overwrites an object and serves only the new bytes', async () => {
          const a = bytes(chunk * 2, 31);
          const b = bytes(chunk / 2, 32);
          await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'over', Body: a }));
          await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'over', Body: b }));
          const got = await body(s3, { Bucket: bucket, Key: 'over' });
          expect(sha256(got)).to.equal(sha256(b));
        });
      });
    }

    describe('raw DeleteObjects bodies', () => {
      const xml = (keys: string[]) =>
        `<?xml version="1.0" encoding="UTF-8"?><Delete>${keys.map((k) => `<Object><Key>${k}</Key></Object>`).join('')}</Delete>`;

      it('accepts DeleteObjects with and without Content-MD5', async () => {
        const s3 = c.client();
        await s3.send(new CreateBucketCommand({ Bucket: 'raw-delete' }));
        for (const k of ['m1', 'm2'])
          await s3.send(new PutObjectCommand({ Bucket: 'raw-delete', Key: k, Body: k }));
        const withMd5 = xml(['m1']);
        const a = await signedSend(
          c,
          {
            method: 'POST',
            path: '/raw-delete',
            query: { delete: '' },
            headers: { 'content-md5': createHash('md5').update(withMd5).digest('base64') },
            body: withMd5,
          },
          { payload: 'sha256' },
        );
        expect(a.status, a.text).to.equal(200);
        expect(a.text).to.contain('<Deleted><Key>m1</Key>');
        const b = await signedSend(
          c,
          { method: 'POST', path: '/raw-delete', query: { delete: '' }, body: xml(['m2']) },
          { payload: 'sha256' },
        );
        expect(b.status, b.text).to.equal(200);
        expect(b.text).to.contain('<Deleted><Key>m2</Key>');
        const left = await s3.send(new ListObjectsV2Command({ Bucket: 'raw-delete' }));
        expect(left.KeyCount).to.equal(0);
        // And the GET of a deleted key through a raw path is a NoSuchKey document.
        const g = await signedSend(c, { method: 'GET', path: keyPath('raw-delete', 'm1') });
        expect(g.status).to.equal(404);
        expect(errorCode(g.text)).to.equal('NoSuchKey');
      });
    });

    describe('version ids and conditional deletes', () => {
      const b = 'conditional';
      const put = async (key: string) => {
        const res = await c.client().send(new PutObjectCommand({ Bucket: b, Key: key, Body: key }));
        return res.ETag!;
      };
      const exists = async (key: string) =>
        c
          .client()
          .send(new HeadObjectCommand({ Bucket: b, Key: key }))
          .then(
            () => true,
            (err) => (err.$metadata?.httpStatusCode === 404 ? false : Promise.reject(err)),
          );
      before(async () => {
        await c.client().send(new CreateBucketCommand({ Bucket: b }));
      });

      it('refuses a version id other than null instead of acting on the current object', async () => {
        const s3 = c.client();
        await put('v');
        await expectError(
          s3.send(new DeleteObjectCommand({ Bucket: b, Key: 'v', VersionId: 'old1' })),
          'InvalidArgument',
          400,
        );
        await expectError(
          s3.send(new GetObjectCommand({ Bucket: b, Key: 'v', VersionId: 'old1' })),
          'InvalidArgument',
          400,
        );
        await expectError(
          s3.send(new HeadObjectCommand({ Bucket: b, Key: 'v', VersionId: 'old1' })),
          undefined,
          400,
        );
        expect(await exists('v')).to.equal(true);
        expect((await body(s3, { Bucket: b, Key: 'v', VersionId: 'null' })).toString()).to.equal('v');
        const res = await s3.send(
          new DeleteObjectsCommand({ Bucket: b, Delete: { Objects: [{ Key: 'v', VersionId: 'old1' }] } }),
        );
        expect(res.Errors?.map((e) => [e.Key, e.Code])).to.deep.equal([['v', 'InvalidArgument']]);
        expect(await exists('v')).to.equal(true);
        await s3.send(new DeleteObjectCommand({ Bucket: b, Key: 'v', VersionId: 'null' }));
        expect(await exists('v')).to.equal(false);
      });

      it('deletes with If-Match only while the ETag matches', async () => {
        const s3 = c.client();
        const etag = await put('m');
        const wrong = '"00000000000000000000000000000000"';
        await expectError(
          s3.send(new DeleteObjectCommand({ Bucket: b, Key: 'm', IfMatch: wrong })),
          'PreconditionFailed',
          412,
        );
        expect(await exists('m')).to.equal(true);
        await s3.send(new DeleteObjectCommand({ Bucket: b, Key: 'm', IfMatch: etag }));
        expect(await exists('m')).to.equal(false);
        await expectError(
          s3.send(new DeleteObjectCommand({ Bucket: b, Key: 'm', IfMatch: '*' })),
          'NoSuchKey',
          404,
        );
      });

      it("DeleteObjects honours each entry's ETag", async () => {
        const s3 = c.client();
        await put('e1');
        const e2 = await put('e2');
        const res = await s3.send(
          new DeleteObjectsCommand({
            Bucket: b,
            Delete: {
              Objects: [
                { Key: 'e1', ETag: '"00000000000000000000000000000000"' },
                { Key: 'e2', ETag: e2 },
                { Key: 'e3', ETag: e2 },
              ],
            },
          }),
        );
        expect(res.Deleted?.map((d) => d.Key)).to.deep.equal(['e2']);
        expect(res.Errors?.map((e) => [e.Key, e.Code])).to.deep.equal([
          ['e1', 'PreconditionFailed'],
          ['e3', 'NoSuchKey'],
        ]);
        expect(await exists('e1')).to.equal(true);
        expect(await exists('e2')).to.equal(false);
      });
    });

    describe('write headers that ask for what s3dfs does not do', () => {
      const b = 'unsupported';
      before(async () => {
        await c.client().send(new CreateBucketCommand({ Bucket: b }));
      });
      const refused: [string, Partial<PutObjectCommandInput>, string, number][] = [
        ['SSE-S3', { ServerSideEncryption: 'AES256' }, 'NotImplemented', 501],
        ['SSE-KMS', { ServerSideEncryption: 'aws:kms', SSEKMSKeyId: 'k' }, 'NotImplemented', 501],
        ['a public ACL', { ACL: 'public-read' }, 'NotImplemented', 501],
        ['a grant', { GrantRead: 'id=someone' }, 'NotImplemented', 501],
        ['another storage class', { StorageClass: 'STANDARD_IA' }, 'NotImplemented', 501],
        ['a legal hold', { ObjectLockLegalHoldStatus: 'ON' }, 'InvalidRequest', 400],
        ['a redirect', { WebsiteRedirectLocation: '/elsewhere' }, 'NotImplemented', 501],
      ];
      for (const [what, input, code, status] of refused) {
        it(`refuses a PUT with ${what}, storing nothing`, async () => {
          const s3 = c.client();
          const Key = `refused-${what}`;
          await expectError(
            s3.send(new PutObjectCommand({ Bucket: b, Key, Body: 'x', ...input })),
            code,
            status,
          );
          await expectError(s3.send(new HeadObjectCommand({ Bucket: b, Key })), undefined, 404);
        });
      }

      it('refuses CreateMultipartUpload and CopyObject with them too, takes the defaults', async () => {
        const s3 = c.client();
        await expectError(
          s3.send(new CreateMultipartUploadCommand({ Bucket: b, Key: 'mp', ServerSideEncryption: 'AES256' })),
          'NotImplemented',
          501,
        );
        await s3.send(
          new PutObjectCommand({
            Bucket: b,
            Key: 'plain',
            Body: 'x',
            ACL: 'private',
            StorageClass: 'STANDARD',
          }),
        );
        await expectError(
          s3.send(
            new CopyObjectCommand({ Bucket: b, Key: 'copy', CopySource: `${b}/plain`, ACL: 'public-read' }),
          ),
          'NotImplemented',
          501,
        );
        await expectError(s3.send(new HeadObjectCommand({ Bucket: b, Key: 'copy' })), undefined, 404);
      });
    });

    describe('reads that outlive their version', () => {
      // A GET holds the chunk list of the version it began with; an overwrite or delete queues
      // those chunks, and GC must leave their bytes for the grace period (S3DFS_GC_GRACE_MS).
      for (const change of ['overwrite', 'delete'] as const) {
        const done = change === 'overwrite' ? 'overwritten' : 'deleted';
        it(`a GET begun before its object is ${done} delivers the version it began with`, async () => {
          const s3 = c.client();
          await s3.send(new CreateBucketCommand({ Bucket: 'outlive' })).catch(() => {});
          const key = `streamed-${change}`;
          // 256 chunks: far more than the socket buffers hold, so most is read after the change.
          const original = bytes(16 * 1024 * 1024, 71);
          await s3.send(new PutObjectCommand({ Bucket: 'outlive', Key: key, Body: original }));
          const res = await s3.send(new GetObjectCommand({ Bucket: 'outlive', Key: key }));
          const it = (res.Body as Readable)[Symbol.asyncIterator]();
          const got: Buffer[] = [Buffer.from((await it.next()).value)];
          if (change === 'overwrite')
            await s3.send(new PutObjectCommand({ Bucket: 'outlive', Key: key, Body: bytes(16 * 1024, 72) }));
          else await s3.send(new DeleteObjectCommand({ Bucket: 'outlive', Key: key }));
          c.manager.healer.kick();
          await new Promise((r) => setTimeout(r, 50));
          await c.manager.healer.settled();
          const queued = await c.db('delete_queue').where({ reason: done });
          expect(queued.length).to.be.greaterThanOrEqual(256);
          for (let r = await it.next(); !r.done; r = await it.next()) got.push(Buffer.from(r.value));
          expect(sha256(Buffer.concat(got))).to.equal(sha256(original));
        });
      }
    });
  });
}
