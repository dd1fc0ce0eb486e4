// Proves the `minio` npm client (a second SDK with its own signer, multipart and listing code) works against s3dfs byte for byte.
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { expect } from 'chai';
import * as Minio from 'minio';
import { sha256 } from '../helpers/bytes.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { steadyEnv } from '../helpers/s3raw.js';

const MiB = 1024 * 1024;

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of stream) parts.push(p as Buffer);
  return Buffer.concat(parts);
}

describe('minio npm client', function () {
  this.timeout(120_000);
  let c: TestCluster;
  let mc: Minio.Client;
  const bucket = 'minio-bucket';

  before(async () => {
    c = await startTestCluster({ portBase: 27000, chunkSize: MiB, env: steadyEnv });
    const url = new URL(c.endpoint);
    mc = new Minio.Client({
      endPoint: url.hostname,
      port: Number(url.port),
      useSSL: false,
      accessKey: c.accessKey,
      secretKey: c.secretKey,
      pathStyle: true,
      region: 'us-east-1',
    });
    await mc.makeBucket(bucket, 'us-east-1');
  });
  after(async () => c?.stop());

  it('creates, finds and lists the bucket', async () => {
    expect(await mc.bucketExists(bucket)).to.equal(true);
    expect(await mc.bucketExists('no-such-bucket-here')).to.equal(false);
    const names = (await mc.listBuckets()).map((b) => b.name);
    expect(names).to.include(bucket);
  });

  it('puts and gets small, empty and multi-chunk objects under odd keys, byte-exact', async () => {
    const cases: [string, Buffer][] = [
      ['empty', Buffer.alloc(0)],
      ['one byte', Buffer.from([7])],
      ['deep/a b+c/ünï 日本.bin', randomBytes(3 * MiB + 17)],
    ];
    for (const [key, data] of cases) {
      await mc.putObject(bucket, key, data, data.length, {
        'Content-Type': 'application/x-test',
        'X-Amz-Meta-Origin': 'minio',
      });
      const stat = await mc.statObject(bucket, key);
      expect(stat.size).to.equal(data.length);
      expect(stat.etag).to.equal(createHash('md5').update(data).digest('hex'));
      expect(stat.metaData['content-type']).to.equal('application/x-test');
      expect(stat.metaData.origin).to.equal('minio');
      expect(sha256(await readAll(await mc.getObject(bucket, key)))).to.equal(sha256(data));
    }
    const partial = await readAll(await mc.getPartialObject(bucket, 'deep/a b+c/ünï 日本.bin', MiB - 5, 10));
    expect(partial).to.have.length(10);
  });

  it('uploads a stream of unknown length through its multipart path (ETag md5-of-md5s-N)', async () => {
    const data = randomBytes(12 * MiB + 3);
    const file = path.join(c.dataDir, 'upload.bin');
    writeFileSync(file, data);
    // A stream without a size makes the client cut 5 MiB+ parts and use multipart.
    await mc.putObject(
      bucket,
      'multi.bin',
      Readable.from([data.subarray(0, 7 * MiB), data.subarray(7 * MiB)]),
    );
    const stat = await mc.statObject(bucket, 'multi.bin');
    expect(stat.size).to.equal(data.length);
    expect(stat.etag).to.match(/^[0-9a-f]{32}-\d+$/);
    expect(sha256(await readAll(await mc.getObject(bucket, 'multi.bin')))).to.equal(sha256(data));
    await mc.fPutObject(bucket, 'from-file.bin', file, {});
    const tmp = path.join(c.dataDir, 'download.bin');
    await mc.fGetObject(bucket, 'from-file.bin', tmp);
    expect(sha256(await readAll(await mc.getObject(bucket, 'from-file.bin')))).to.equal(sha256(data));
  });

  it('lists with prefixes and recursion, copies server-side, and removes in batches', async () => {
    const keys = ['l/a', 'l/b/c', 'l/b/d', 'l/e f'];
    for (const k of keys) await mc.putObject(bucket, k, Buffer.from(k));
    const flat: string[] = [];
    for await (const item of mc.listObjectsV2(bucket, 'l/', false)) flat.push(item.name ?? item.prefix);
    // The client yields a page's keys, then its common prefixes.
    expect(flat).to.deep.equal(['l/a', 'l/e f', 'l/b/']);
    const deep: string[] = [];
    for await (const item of mc.listObjectsV2(bucket, 'l/', true)) deep.push(item.name);
    expect(deep).to.deep.equal(keys);

    await mc.copyObject(bucket, 'l/copy', `/${bucket}/l/e f`, new Minio.CopyConditions());
    expect((await readAll(await mc.getObject(bucket, 'l/copy'))).toString()).to.equal('l/e f');

    await mc.removeObjects(bucket, [...keys, 'l/copy']);
    const left: string[] = [];
    for await (const item of mc.listObjectsV2(bucket, 'l/', true)) left.push(item.name);
    expect(left).to.deep.equal([]);
  });

  it('presigned GET and PUT URLs work with plain HTTP', async () => {
    const body = Buffer.from('presigned body');
    const putUrl = await mc.presignedPutObject(bucket, 'presigned.txt', 60);
    const put = await fetch(putUrl, { method: 'PUT', body });
    expect(put.status).to.equal(200);
    const getUrl = await mc.presignedGetObject(bucket, 'presigned.txt', 60);
    const got = await fetch(getUrl);
    expect(got.status).to.equal(200);
    expect(Buffer.from(await got.arrayBuffer()).equals(body)).to.equal(true);
    const tampered = getUrl.replace('presigned.txt', 'presigned.txx');
    expect((await fetch(tampered)).status).to.equal(403);
  });

  it('reports a missing key as NoSuchKey and a non-empty bucket as BucketNotEmpty', async () => {
    let code: string | undefined;
    try {
      await mc.statObject(bucket, 'missing');
    } catch (err) {
      code = (err as { code?: string }).code;
    }
    expect(code).to.equal('NotFound');
    code = undefined;
    try {
      await mc.removeBucket(bucket);
    } catch (err) {
      code = (err as { code?: string }).code;
    }
    expect(code).to.equal('BucketNotEmpty');
  });
});
