// Proves a file the AWS CLI uploads by itself as multipart (`aws s3 cp`) comes back byte for byte,
// with S3's multipart ETag. Size: S3DFS_E2E_BIG_MB (default 64 MiB, what CI affords; set it to a
// few thousand to run the multi-GiB case).
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import { promisify } from 'node:util';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { tempDir } from '../helpers/db.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const bigMiB = Number(process.env.S3DFS_E2E_BIG_MB ?? 64);
/** The CLI's part size here (its default is 8 MiB too); the threshold keeps smaller files single-part. */
const partMiB = 8;

function hasAwsCli(): boolean {
  return spawnSync('aws', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** Writes `mib` MiB of random data, returning the sha256 and the expected multipart ETag. */
async function writeRandomFile(file: string, mib: number): Promise<{ sha256: string; etag: string }> {
  const out = createWriteStream(file);
  const sha = createHash('sha256');
  const partMd5s: Buffer[] = [];
  let part = createHash('md5');
  for (let i = 0; i < mib; i++) {
    const block = randomBytes(MiB);
    sha.update(block);
    part.update(block);
    if ((i + 1) % partMiB === 0 || i === mib - 1) {
      partMd5s.push(part.digest());
      part = createHash('md5');
    }
    if (!out.write(block)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  out.end();
  await finished(out);
  const etag = `"${createHash('md5').update(Buffer.concat(partMd5s)).digest('hex')}-${partMd5s.length}"`;
  return { sha256: sha.digest('hex'), etag };
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const b of createReadStream(file)) h.update(b as Buffer);
  return h.digest('hex');
}

describe('AWS CLI multipart upload (e2e)', function () {
  this.timeout(600_000);
  let c: TestCluster;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const Bucket = 'cli-multipart';

  before(async function () {
    if (!hasAwsCli()) this.skip();
    dir = tempDir('s3dfs-cli-');
    c = await startTestCluster({ portBase: 21300, chunkSize: 4 * MiB });
    await c.client().send(new CreateBucketCommand({ Bucket }));
    const config = path.join(dir, 'aws-config');
    writeFileSync(
      config,
      `[default]\ns3 =\n  multipart_threshold = ${partMiB}MB\n  multipart_chunksize = ${partMiB}MB\n  addressing_style = path\n`,
    );
    env = {
      ...process.env,
      AWS_ACCESS_KEY_ID: c.accessKey,
      AWS_SECRET_ACCESS_KEY: c.secretKey,
      AWS_DEFAULT_REGION: 'us-east-1',
      AWS_CONFIG_FILE: config,
      AWS_SHARED_CREDENTIALS_FILE: path.join(dir, 'no-credentials'),
      AWS_EC2_METADATA_DISABLED: 'true',
    };
  });

  after(async () => {
    await c?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const aws = (...args: string[]) =>
    run('aws', ['--endpoint-url', c.endpoint, ...args], { env, maxBuffer: 16 * MiB });

  it(`aws s3 cp uploads ${bigMiB} MiB as multipart and downloads it byte for byte`, async () => {
    const src = path.join(dir, 'big.bin');
    const expected = await writeRandomFile(src, bigMiB);
    await aws('s3', 'cp', '--only-show-errors', src, `s3://${Bucket}/dir/big file.bin`);
    const head = JSON.parse(
      (await aws('s3api', 'head-object', '--bucket', Bucket, '--key', 'dir/big file.bin')).stdout,
    );
    assert.equal(head.ContentLength, bigMiB * MiB);
    assert.equal(head.ETag, expected.etag);
    assert.match(head.ETag, new RegExp(`-${Math.ceil(bigMiB / partMiB)}"$`));
    const dst = path.join(dir, 'back.bin');
    await aws('s3', 'cp', '--only-show-errors', `s3://${Bucket}/dir/big file.bin`, dst);
    assert.equal(await sha256File(dst), expected.sha256);
    const uploads = JSON.parse(
      (await aws('s3api', 'list-multipart-uploads', '--bucket', Bucket)).stdout || '{}',
    );
    assert.equal(uploads.Uploads?.length ?? 0, 0);
  });
});
