// Proves multipart upload end to end against a real cluster: the SDK's Upload helper with default
// checksums, S3's ETag and part rules, UploadPartCopy, listings, and that abandoned uploads
// leave nothing visible and have their chunks collected (abort, manager expiry).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import zlib from 'node:zlib';
import { Sha256 } from '@aws-crypto/sha256-js';
import {
  AbortMultipartUploadCommand,
  type CompletedPart,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { Crc64Nvme } from '@aws-sdk/crc64-nvme';
import { Upload } from '@aws-sdk/lib-storage';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { startTestCluster, type TestCluster, waitFor } from '../helpers/cluster.js';
import { engines, type TestDb } from '../helpers/db.js';

const MiB = 1024 * 1024;
const chunkSize = 256 * 1024;

function md5Hex(b: Buffer): string {
  return createHash('md5').update(b).digest('hex');
}

/** The multipart ETag computed independently: md5 of the parts' binary MD5s, then -N. */
function expectedEtag(parts: Buffer[]): string {
  const h = createHash('md5');
  for (const p of parts) h.update(createHash('md5').update(p).digest());
  return `"${h.digest('hex')}-${parts.length}"`;
}

function crc32Raw(b: Buffer): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(zlib.crc32(b) >>> 0);
  return out;
}

async function crc64Base64(b: Buffer): Promise<string> {
  const h = new Crc64Nvme();
  h.update(b);
  return Buffer.from(await h.digest()).toString('base64');
}

async function bodyOf(s3: S3Client, input: ConstructorParameters<typeof GetObjectCommand>[0]) {
  const out = await s3.send(new GetObjectCommand(input));
  return { out, data: Buffer.from(await out.Body!.transformToByteArray()) };
}

async function rejects(p: Promise<unknown>, code: string, status?: number): Promise<void> {
  await assert.rejects(p, (err: { name?: string; $metadata?: { httpStatusCode?: number } }) => {
    assert.equal(err.name, code);
    if (status !== undefined) assert.equal(err.$metadata?.httpStatusCode, status);
    return true;
  });
}

/** A SigV4-signed raw request (UNSIGNED-PAYLOAD), for bodies the SDK never sends. */
async function signedRequest(
  c: TestCluster,
  opts: { method: string; path: string; query: Record<string, string>; body: Buffer; sendBytes?: number },
): Promise<{ status: number; text: string }> {
  const url = new URL(c.endpoint);
  const signer = new SignatureV4({
    service: 's3',
    region: 'us-east-1',
    credentials: { accessKeyId: c.accessKey, secretAccessKey: c.secretKey },
    sha256: Sha256,
    uriEscapePath: false,
  });
  const signed = await signer.sign(
    new HttpRequest({
      method: opts.method,
      protocol: 'http:',
      hostname: url.hostname,
      port: Number(url.port),
      path: opts.path,
      query: opts.query,
      headers: {
        host: url.host,
        'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
        'content-length': String(opts.body.length),
      },
    }),
  );
  const qs = Object.entries(opts.query)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        method: opts.method,
        path: `${opts.path}?${qs}`,
        headers: signed.headers,
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (b: Buffer) => parts.push(b));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString() }));
      },
    );
    req.on('error', reject);
    if (opts.sendBytes === undefined) {
      req.end(opts.body);
      return;
    }
    // A client (or gateway) dying mid-body: part of the bytes, then the connection is gone.
    req.write(opts.body.subarray(0, opts.sendBytes), () => {
      setTimeout(() => {
        req.destroy();
        resolve({ status: 0, text: '' });
      }, 200);
    });
  });
}

async function partChunkIds(db: TestCluster['db'], uploadId: string): Promise<string[]> {
  return db('chunks')
    .join('upload_parts', 'upload_parts.id', 'chunks.part_id')
    .where('upload_parts.upload_id', uploadId)
    .pluck('chunks.id');
}

/** Each chunk is gone, or detached from every owner and waiting in the delete queue. */
async function assertCollected(db: TestCluster['db'], chunkIds: string[]): Promise<void> {
  assert.ok(chunkIds.length > 0);
  const rows = await db('chunks').whereIn('id', chunkIds).select('id', 'object_id', 'part_id');
  for (const r of rows) {
    assert.equal(r.object_id, null);
    assert.equal(r.part_id, null);
  }
  const queued = new Set(await db('delete_queue').whereIn('chunk_id', chunkIds).pluck('chunk_id'));
  for (const r of rows) assert.ok(queued.has(r.id), `chunk ${r.id} is neither deleted nor queued`);
}

engines().forEach((engine, i) => {
  describe(`multipart upload (${engine.name})`, function () {
    this.timeout(120_000);
    const Bucket = 'mp-test';
    let testDb: TestDb | undefined;
    let c: TestCluster;
    let s3: S3Client;
    // 12 MiB in 5 MiB parts (5 + 5 + 2): parts span several 256 KiB chunks, the last is short.
    const big = randomBytes(12 * MiB);
    const bigParts = [big.subarray(0, 5 * MiB), big.subarray(5 * MiB, 10 * MiB), big.subarray(10 * MiB)];

    before(async () => {
      if (engine.name === 'postgres') testDb = await engine.open();
      c = await startTestCluster({ portBase: 21000 + i * 100, chunkSize, databaseUrl: testDb?.databaseUrl });
      s3 = c.client();
      await s3.send(new CreateBucketCommand({ Bucket }));
    });

    after(async () => {
      s3?.destroy();
      await c?.stop();
      await testDb?.close();
    });

    async function create(Key: string, extra: Record<string, unknown> = {}): Promise<string> {
      const out = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key, ...extra }));
      return out.UploadId!;
    }

    async function part(
      Key: string,
      UploadId: string,
      PartNumber: number,
      Body: Buffer,
    ): Promise<CompletedPart> {
      const out = await s3.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber, Body }));
      return { PartNumber, ETag: out.ETag };
    }

    async function complete(Key: string, UploadId: string, Parts: CompletedPart[]) {
      return s3.send(
        new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts } }),
      );
    }

    it('Upload helper (default checksums) round-trips 12 MiB byte for byte with the S3 ETag', async () => {
      const upload = new Upload({
        client: s3,
        params: { Bucket, Key: 'big', Body: big, ContentType: 'application/x-test' },
        partSize: 5 * MiB,
        queueSize: 4,
      });
      const res = await upload.done();
      const etag = expectedEtag(bigParts);
      assert.equal(res.ETag, etag);
      // The helper asked for CRC32 on Create: the object carries the composite CRC32 of its parts.
      const composite = `${crc32Raw(Buffer.concat(bigParts.map(crc32Raw))).toString('base64')}-3`;
      assert.equal((res as { ChecksumCRC32?: string }).ChecksumCRC32, composite);
      const head = await s3.send(new HeadObjectCommand({ Bucket, Key: 'big', ChecksumMode: 'ENABLED' }));
      assert.equal(head.ETag, etag);
      assert.equal(head.ContentLength, big.length);
      // S3 sends x-amz-mp-parts-count only to a request naming a partNumber.
      assert.equal(head.PartsCount, undefined);
      assert.equal(head.ContentType, 'application/x-test');
      assert.equal(head.ChecksumCRC32, composite);
      assert.equal(head.ChecksumType, 'COMPOSITE');
      const { data } = await bodyOf(s3, { Bucket, Key: 'big' });
      assert.ok(data.equals(big));
    });

    it('GetObject/HeadObject partNumber select one part', async () => {
      const { out, data } = await bodyOf(s3, { Bucket, Key: 'big', PartNumber: 2 });
      assert.equal(out.PartsCount, 3);
      assert.equal(out.ContentRange, `bytes ${5 * MiB}-${10 * MiB - 1}/${big.length}`);
      assert.ok(data.equals(bigParts[1]));
      const head = await s3.send(new HeadObjectCommand({ Bucket, Key: 'big', PartNumber: 3 }));
      assert.equal(head.ContentLength, 2 * MiB);
      await rejects(
        s3.send(new GetObjectCommand({ Bucket, Key: 'big', PartNumber: 4 })),
        'InvalidPartNumber',
        416,
      );
    });

    it('partNumber addresses parts by the numbers they were uploaded under, gaps included', async () => {
      const Key = 'gaps';
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key }));
      const parts = [1, 3, 5].map((n, i) => ({ n, data: randomBytes(i < 2 ? 5 * MiB : 1000) }));
      const done = [];
      for (const { n, data } of parts) {
        const up = await s3.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: n, Body: data }));
        done.push({ PartNumber: n, ETag: up.ETag });
      }
      await s3.send(
        new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: done } }),
      );
      for (const [i, { n, data }] of parts.entries()) {
        const { out, data: got } = await bodyOf(s3, { Bucket, Key, PartNumber: n });
        assert.equal(out.PartsCount, 3);
        assert.ok(got.equals(data), `part ${n}`);
        assert.equal(
          out.ContentRange,
          `bytes ${i * 5 * MiB}-${i * 5 * MiB + data.length - 1}/${10 * MiB + 1000}`,
        );
      }
      for (const n of [2, 4, 6])
        await rejects(
          s3.send(new GetObjectCommand({ Bucket, Key, PartNumber: n })),
          'InvalidPartNumber',
          416,
        );
    });

    it('ranged GETs across part and chunk boundaries', async () => {
      const ranges: [number, number][] = [
        [5 * MiB - 100, 5 * MiB + 100], // part 1 → part 2
        [chunkSize - 1, chunkSize], // chunk boundary inside part 1
        [5 * MiB + chunkSize - 3, 5 * MiB + 2 * chunkSize + 3], // three chunks of part 2
        [chunkSize * 3, 10 * MiB + 7], // many chunks, three parts
        [12 * MiB - 1, 12 * MiB - 1], // last byte
      ];
      for (const [a, b] of ranges) {
        const { out, data } = await bodyOf(s3, { Bucket, Key: 'big', Range: `bytes=${a}-${b}` });
        assert.equal(out.ContentRange, `bytes ${a}-${b}/${big.length}`);
        assert.ok(data.equals(big.subarray(a, b + 1)), `range ${a}-${b}`);
      }
    });

    it('FULL_OBJECT CRC64NVME: the object checksum is the CRC of the whole body', async () => {
      const body = big.subarray(0, 5 * MiB + 1000);
      const id = await create('full', { ChecksumAlgorithm: 'CRC64NVME' });
      const p1 = await s3.send(
        new UploadPartCommand({
          Bucket,
          Key: 'full',
          UploadId: id,
          PartNumber: 1,
          Body: body.subarray(0, 5 * MiB),
          ChecksumAlgorithm: 'CRC64NVME',
        }),
      );
      const p2 = await s3.send(
        new UploadPartCommand({
          Bucket,
          Key: 'full',
          UploadId: id,
          PartNumber: 2,
          Body: body.subarray(5 * MiB),
          ChecksumAlgorithm: 'CRC64NVME',
        }),
      );
      assert.equal(p2.ChecksumCRC64NVME, await crc64Base64(body.subarray(5 * MiB)));
      const listed = await s3.send(new ListPartsCommand({ Bucket, Key: 'full', UploadId: id }));
      assert.equal(listed.ChecksumType, 'FULL_OBJECT');
      assert.equal(listed.Parts?.[1].ChecksumCRC64NVME, p2.ChecksumCRC64NVME);
      const res = await complete('full', id, [
        { PartNumber: 1, ETag: p1.ETag, ChecksumCRC64NVME: p1.ChecksumCRC64NVME },
        { PartNumber: 2, ETag: p2.ETag, ChecksumCRC64NVME: p2.ChecksumCRC64NVME },
      ]);
      assert.equal(res.ChecksumCRC64NVME, await crc64Base64(body));
      assert.equal(res.ChecksumType, 'FULL_OBJECT');
      // The SDK validates a full-object checksum on GET: a wrong combination would fail here.
      const { out, data } = await bodyOf(s3, { Bucket, Key: 'full', ChecksumMode: 'ENABLED' });
      assert.equal(out.ChecksumCRC64NVME, res.ChecksumCRC64NVME);
      assert.ok(data.equals(body));
      await rejects(
        create('x', { ChecksumAlgorithm: 'SHA256', ChecksumType: 'FULL_OBJECT' }),
        'InvalidRequest',
        400,
      );
      await rejects(
        create('x', { ChecksumAlgorithm: 'CRC64NVME', ChecksumType: 'COMPOSITE' }),
        'InvalidRequest',
        400,
      );
    });

    it('parts arrive concurrently in any order; re-uploading a part number replaces it', async () => {
      const Key = 'concurrent';
      const id = await create(Key);
      const p = [randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(1000)];
      await Promise.all([part(Key, id, 3, p[2]), part(Key, id, 1, p[0]), part(Key, id, 2, p[1])]);
      const before = await partChunkIds(c.db, id);
      // Two writers race on part 2: one wins, the loser's (and the first) part 2 chunks are queued.
      const a = randomBytes(5 * MiB);
      const b = randomBytes(5 * MiB);
      const [ra, rb] = await Promise.all([part(Key, id, 2, a), part(Key, id, 2, b)]);
      const listed = await s3.send(new ListPartsCommand({ Bucket, Key, UploadId: id }));
      assert.deepEqual(
        listed.Parts?.map((x) => x.PartNumber),
        [1, 2, 3],
      );
      const winner = listed.Parts?.[1].ETag === ra.ETag ? a : b;
      assert.ok([ra.ETag, rb.ETag].includes(listed.Parts?.[1].ETag));
      const after = await partChunkIds(c.db, id);
      assert.equal(after.length, 20 + 20 + 1); // 5 MiB / 256 KiB per big part; no stray owners
      const replaced = before.filter((x) => !after.includes(x));
      assert.equal(replaced.length, 20);
      await assertCollected(c.db, replaced);
      const res = await complete(Key, id, [
        { PartNumber: 1, ETag: listed.Parts![0].ETag },
        { PartNumber: 2, ETag: listed.Parts![1].ETag },
        { PartNumber: 3, ETag: listed.Parts![2].ETag },
      ]);
      assert.equal(res.ETag, expectedEtag([p[0], winner, p[2]]));
      const { data } = await bodyOf(s3, { Bucket, Key });
      assert.ok(data.equals(Buffer.concat([p[0], winner, p[2]])));
    });

    it('UploadPartCopy copies byte ranges, with copy-source conditions', async () => {
      const Key = 'copied';
      const id = await create(Key);
      const CopySource = `${Bucket}/big`;
      const r1 = await s3.send(
        new UploadPartCopyCommand({
          Bucket,
          Key,
          UploadId: id,
          PartNumber: 1,
          CopySource,
          CopySourceRange: `bytes=1000-${1000 + 5 * MiB - 1}`,
        }),
      );
      const r2 = await s3.send(
        new UploadPartCopyCommand({
          Bucket,
          Key,
          UploadId: id,
          PartNumber: 2,
          CopySource,
          CopySourceRange: 'bytes=12000000-12000099',
          CopySourceIfMatch: expectedEtag(bigParts),
        }),
      );
      await rejects(
        s3.send(
          new UploadPartCopyCommand({
            Bucket,
            Key,
            UploadId: id,
            PartNumber: 3,
            CopySource,
            CopySourceIfMatch: '"nope"',
          }),
        ),
        'PreconditionFailed',
        412,
      );
      await rejects(
        s3.send(
          new UploadPartCopyCommand({
            Bucket,
            Key,
            UploadId: id,
            PartNumber: 3,
            CopySource,
            CopySourceRange: `bytes=0-${big.length}`,
          }),
        ),
        'InvalidRange',
      );
      const expected = Buffer.concat([big.subarray(1000, 1000 + 5 * MiB), big.subarray(12000000, 12000100)]);
      assert.equal(r1.CopyPartResult?.ETag, `"${md5Hex(big.subarray(1000, 1000 + 5 * MiB))}"`);
      await complete(Key, id, [
        { PartNumber: 1, ETag: r1.CopyPartResult?.ETag },
        { PartNumber: 2, ETag: r2.CopyPartResult?.ETag },
      ]);
      const { data } = await bodyOf(s3, { Bucket, Key });
      assert.ok(data.equals(expected));
      const { data: p2 } = await bodyOf(s3, { Bucket, Key, PartNumber: 2 });
      assert.ok(p2.equals(big.subarray(12000000, 12000100)));
    });

    it('ListParts and ListMultipartUploads page with markers, max values and encoding-type', async () => {
      const B = 'mp-list';
      await s3.send(new CreateBucketCommand({ Bucket: B }));
      const Key = 'dir/a b+c';
      const id = (await s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key }))).UploadId!;
      for (let n = 1; n <= 5; n++)
        await s3.send(
          new UploadPartCommand({
            Bucket: B,
            Key,
            UploadId: id,
            PartNumber: n,
            Body: Buffer.from(`part ${n}`),
          }),
        );
      const seen: number[] = [];
      let marker: string | undefined;
      for (let page = 0; ; page++) {
        const out = await s3.send(
          new ListPartsCommand({ Bucket: B, Key, UploadId: id, MaxParts: 2, PartNumberMarker: marker }),
        );
        seen.push(...(out.Parts ?? []).map((p) => p.PartNumber!));
        assert.equal(out.Parts?.[0].Size, 6);
        if (!out.IsTruncated) {
          assert.equal(page, 2);
          break;
        }
        marker = out.NextPartNumberMarker;
      }
      assert.deepEqual(seen, [1, 2, 3, 4, 5]);

      const ids = [id];
      for (const k of ['dir/a b+c', 'dir/b', 'dir/b', 'other/x', 'top']) {
        ids.push((await s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: k }))).UploadId!);
      }
      const all: [string, string][] = [];
      let keyMarker: string | undefined;
      let uploadIdMarker: string | undefined;
      for (;;) {
        const out = await s3.send(
          new ListMultipartUploadsCommand({
            Bucket: B,
            Prefix: 'dir/',
            MaxUploads: 2,
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
        );
        all.push(...(out.Uploads ?? []).map((u): [string, string] => [u.Key!, u.UploadId!]));
        if (!out.IsTruncated) break;
        keyMarker = out.NextKeyMarker;
        uploadIdMarker = out.NextUploadIdMarker;
      }
      // Key order, then initiation order within a key.
      assert.deepEqual(all, [
        ['dir/a b+c', ids[0]],
        ['dir/a b+c', ids[1]],
        ['dir/b', ids[2]],
        ['dir/b', ids[3]],
      ]);
      const rolled = await s3.send(new ListMultipartUploadsCommand({ Bucket: B, Delimiter: '/' }));
      assert.deepEqual(
        rolled.CommonPrefixes?.map((p) => p.Prefix),
        ['dir/', 'other/'],
      );
      assert.deepEqual(
        rolled.Uploads?.map((u) => u.Key),
        ['top'],
      );
      const encoded = await s3.send(
        new ListMultipartUploadsCommand({ Bucket: B, Prefix: 'dir/a', EncodingType: 'url' }),
      );
      assert.equal(encoded.Uploads?.[0].Key, 'dir/a%20b%2Bc');
      for (const [k, u] of all)
        await s3.send(new AbortMultipartUploadCommand({ Bucket: B, Key: k, UploadId: u }));
      const left = await s3.send(new ListMultipartUploadsCommand({ Bucket: B, Prefix: 'dir/' }));
      assert.equal(left.Uploads?.length ?? 0, 0);
    });

    it('rejects bad input as S3 does', async () => {
      const Key = 'bad';
      const id = await create(Key);
      const small1 = await part(Key, id, 1, Buffer.from('x'.repeat(1024)));
      const small2 = await part(Key, id, 2, Buffer.from('y'.repeat(1024)));
      // Every part but the last must be ≥ 5 MiB (the real limit: this cluster keeps the default).
      await rejects(complete(Key, id, [small1, small2]), 'EntityTooSmall', 400);
      await rejects(
        complete(Key, id, [{ PartNumber: 1, ETag: '"0123456789abcdef0123456789abcdef"' }]),
        'InvalidPart',
        400,
      );
      await rejects(complete(Key, id, [{ PartNumber: 3, ETag: small1.ETag }]), 'InvalidPart', 400);
      await rejects(complete(Key, id, [small2, small1]), 'InvalidPartOrder', 400);
      for (const n of ['0', '10001']) {
        const res = await signedRequest(c, {
          method: 'PUT',
          path: `/${Bucket}/${Key}`,
          query: { partNumber: n, uploadId: id },
          body: Buffer.from('data'),
        });
        assert.equal(res.status, 400);
        assert.match(res.text, /<Code>InvalidArgument<\/Code>/);
      }
      const malformed = await signedRequest(c, {
        method: 'POST',
        path: `/${Bucket}/${Key}`,
        query: { uploadId: id },
        body: Buffer.from('<CompleteMultipartUpload><Part><PartNumber>1</Part>'),
      });
      assert.equal(malformed.status, 400);
      assert.match(malformed.text, /<Code>MalformedXML<\/Code>/);
      await rejects(part(Key, 'no-such-upload', 1, Buffer.from('z')), 'NoSuchUpload', 404);
      // A single short part is a valid object (the last part may be small).
      await complete(Key, id, [small1]);
      assert.equal(
        (await s3.send(new HeadObjectCommand({ Bucket, Key }))).ETag,
        expectedEtag([Buffer.from('x'.repeat(1024))]),
      );

      const gone = await create('aborted');
      const p = await part('aborted', gone, 1, Buffer.from('abc'));
      await s3.send(new AbortMultipartUploadCommand({ Bucket, Key: 'aborted', UploadId: gone }));
      await rejects(complete('aborted', gone, [p]), 'NoSuchUpload', 404);
      await rejects(part('aborted', gone, 2, Buffer.from('def')), 'NoSuchUpload', 404);
      await rejects(
        s3.send(new ListPartsCommand({ Bucket, Key: 'aborted', UploadId: gone })),
        'NoSuchUpload',
        404,
      );
      await rejects(
        s3.send(new AbortMultipartUploadCommand({ Bucket, Key: 'aborted', UploadId: gone })),
        'NoSuchUpload',
        404,
      );
      await rejects(s3.send(new HeadObjectCommand({ Bucket, Key: 'aborted' })), 'NotFound', 404);
    });

    it('a retried Complete returns the same result; another part list does not', async () => {
      const Key = 'retry';
      const id = await create(Key, { ChecksumAlgorithm: 'SHA256' });
      const body = randomBytes(5 * MiB + 10);
      const p1 = await s3.send(
        new UploadPartCommand({
          Bucket,
          Key,
          UploadId: id,
          PartNumber: 1,
          Body: body.subarray(0, 5 * MiB),
          ChecksumAlgorithm: 'SHA256',
        }),
      );
      const p2 = await s3.send(
        new UploadPartCommand({
          Bucket,
          Key,
          UploadId: id,
          PartNumber: 2,
          Body: body.subarray(5 * MiB),
          ChecksumAlgorithm: 'SHA256',
        }),
      );
      const parts = [
        { PartNumber: 1, ETag: p1.ETag, ChecksumSHA256: p1.ChecksumSHA256 },
        { PartNumber: 2, ETag: p2.ETag, ChecksumSHA256: p2.ChecksumSHA256 },
      ];
      const first = await complete(Key, id, parts);
      const second = await complete(Key, id, parts);
      assert.equal(second.ETag, first.ETag);
      assert.equal(second.ChecksumSHA256, first.ChecksumSHA256);
      assert.match(first.ChecksumSHA256 ?? '', /-2$/);
      assert.equal(first.ChecksumType, 'COMPOSITE');
      await rejects(complete(Key, id, parts.slice(0, 1)), 'NoSuchUpload', 404);
      const { data } = await bodyOf(s3, { Bucket, Key });
      assert.ok(data.equals(body));
      const objects = await c.db('objects').where({ bucket: Bucket, key: Key });
      assert.equal(objects.length, 1);
      assert.equal(
        Number((await c.db('chunks').where({ object_id: objects[0].id }).count('* as n'))[0].n),
        21,
      );
    });

    it('Complete replaces the previous version atomically and frees its chunks', async () => {
      const Key = 'replace';
      await s3.send(new PutObjectCommand({ Bucket, Key, Body: randomBytes(600 * 1024) }));
      const old = await c.db('objects').where({ bucket: Bucket, key: Key }).first('id');
      const oldChunks: string[] = await c.db('chunks').where({ object_id: old.id }).pluck('id');
      const id = await create(Key);
      const p = await part(Key, id, 1, Buffer.from('new'));
      await complete(Key, id, [p]);
      const { data } = await bodyOf(s3, { Bucket, Key });
      assert.equal(data.toString(), 'new');
      await assertCollected(c.db, oldChunks);
    });

    it("abort frees the parts' chunks", async () => {
      const Key = 'abort-me';
      const id = await create(Key);
      await part(Key, id, 1, randomBytes(600 * 1024));
      await part(Key, id, 2, randomBytes(300 * 1024));
      const chunkIds = await partChunkIds(c.db, id);
      assert.equal(chunkIds.length, 3 + 2);
      await s3.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId: id }));
      await assertCollected(c.db, chunkIds);
      assert.equal((await c.db('upload_parts').where({ upload_id: id })).length, 0);
    });
  });
});

describe('multipart upload expiry (manager)', function () {
  this.timeout(120_000);
  const Bucket = 'mp-expiry';
  let c: TestCluster;
  let s3: S3Client;

  before(async () => {
    c = await startTestCluster({
      portBase: 21900,
      nodes: 1,
      chunkSize,
      env: { S3DFS_REPLICATION: '1', S3DFS_UPLOAD_EXPIRY_MS: '1500', S3DFS_UPLOAD_EXPIRY_CHECK_MS: '200' },
    });
    s3 = c.client();
    await s3.send(new CreateBucketCommand({ Bucket }));
  });

  after(async () => {
    s3?.destroy();
    await c?.stop();
  });

  it('an upload abandoned mid-part stays invisible and is aborted and collected when idle', async () => {
    const Key = 'abandoned';
    const id = (await s3.send(new CreateMultipartUploadCommand({ Bucket, Key }))).UploadId!;
    await s3.send(
      new UploadPartCommand({ Bucket, Key, UploadId: id, PartNumber: 1, Body: randomBytes(700 * 1024) }),
    );
    const chunkIds = await partChunkIds(c.db, id);
    assert.equal(chunkIds.length, 3);
    // The client dies half-way through part 2: nothing of it may be committed.
    await signedRequest(c, {
      method: 'PUT',
      path: `/${Bucket}/${Key}`,
      query: { partNumber: '2', uploadId: id },
      body: randomBytes(600 * 1024),
      sendBytes: 300 * 1024,
    });
    const parts = await s3.send(new ListPartsCommand({ Bucket, Key, UploadId: id }));
    assert.deepEqual(
      parts.Parts?.map((p) => p.PartNumber),
      [1],
    );
    await rejects(s3.send(new HeadObjectCommand({ Bucket, Key })), 'NotFound', 404);
    assert.equal((await s3.send(new ListObjectsV2Command({ Bucket }))).KeyCount, 0);
    await waitFor(
      async () => (await c.db('multipart_uploads').where({ id }).first('state'))?.state !== 'active',
      15_000,
      100,
    );
    assert.equal((await c.db('multipart_uploads').where({ id }).first('state'))?.state, 'aborted');
    await assertCollected(c.db, chunkIds);
    await rejects(s3.send(new ListPartsCommand({ Bucket, Key, UploadId: id })), 'NoSuchUpload', 404);
    await rejects(s3.send(new HeadObjectCommand({ Bucket, Key })), 'NotFound', 404);
  });
});
