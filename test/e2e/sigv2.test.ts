// SigV2, as the clients that still use it send it: s3cmd with `signature_v2 = True` (header
// signatures: mb, put, ls, get, del, including a multipart put) and `s3cmd signurl` (presigned
// URLs, which it always signs with SigV2). A tampered signature and an expired URL are refused.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { tempDir } from '../helpers/db.js';
import { errorCode } from '../helpers/s3raw.js';

const run = promisify(execFile);

describe('SigV2 (s3cmd)', function () {
  this.timeout(120_000);
  let c: TestCluster;
  let cfg: string;
  const dir = tempDir('s3dfs-sigv2-');
  const s3cmd = async (...args: string[]) => (await run('s3cmd', ['-c', cfg, ...args])).stdout;

  before(async () => {
    c = await startTestCluster({
      portBase: 25100,
      chunkSize: 1024 * 1024,
      env: { S3DFS_MULTIPART_MIN_PART: '0' },
    });
    const hostPort = new URL(c.endpoint).host;
    cfg = path.join(dir, 's3cfg');
    writeFileSync(
      cfg,
      `[default]
access_key = ${c.accessKey}
secret_key = ${c.secretKey}
host_base = ${hostPort}
host_bucket = ${hostPort}
bucket_location = us-east-1
use_https = False
signature_v2 = True
multipart_chunk_size_mb = 5
`,
    );
  });
  after(async () => c?.stop());

  it('mb, put (single and multipart), ls, get and del signed with SigV2', async () => {
    await s3cmd('mb', 's3://sigv2');
    const small = path.join(dir, 'small.bin');
    const big = path.join(dir, 'big.bin');
    writeFileSync(small, randomBytes(100_000));
    writeFileSync(big, randomBytes(12 * 1024 * 1024 + 5));
    await s3cmd('put', small, 's3://sigv2/dir/small.bin');
    await s3cmd('put', big, 's3://sigv2/big.bin');
    const listed = await s3cmd('ls', '--recursive', 's3://sigv2');
    expect(listed).to.include('s3://sigv2/dir/small.bin').and.include('s3://sigv2/big.bin');
    for (const [file, key] of [
      [small, 'dir/small.bin'],
      [big, 'big.bin'],
    ]) {
      const back = path.join(dir, `back-${path.basename(file)}`);
      await s3cmd('get', '--force', `s3://sigv2/${key}`, back);
      expect(readFileSync(back).equals(readFileSync(file)), key).to.equal(true);
    }
    await s3cmd('del', 's3://sigv2/dir/small.bin');
    expect(await s3cmd('ls', '--recursive', 's3://sigv2')).to.not.include('small.bin');
  });

  it('serves a URL presigned by s3cmd signurl; refuses it tampered or expired', async () => {
    const body = randomBytes(3000);
    const file = path.join(dir, 'shared.bin');
    writeFileSync(file, body);
    await s3cmd('put', file, 's3://sigv2/shared.bin');
    const url = (await s3cmd('signurl', 's3://sigv2/shared.bin', '+300')).trim();
    expect(url)
      .to.match(/[?&]AWSAccessKeyId=/)
      .and.match(/[?&]Signature=/);
    const res = await fetch(url);
    expect(res.status).to.equal(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(body)).to.equal(true);

    const tampered = url.replace(
      /Signature=[^&]+/,
      `Signature=${encodeURIComponent('AAAAAAAAAAAAAAAAAAAAAAAAAAA=')}`,
    );
    const bad = await fetch(tampered);
    expect(bad.status).to.equal(403);
    expect(errorCode(await bad.text())).to.equal('SignatureDoesNotMatch');

    const past = String(Math.floor(Date.now() / 1000) - 60);
    const expired = await fetch((await s3cmd('signurl', 's3://sigv2/shared.bin', past)).trim());
    expect(expired.status).to.equal(403);
    expect(errorCode(await expired.text())).to.equal('AccessDenied');
  });
});
