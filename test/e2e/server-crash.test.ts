// A server killed hard (kill -9, the OOM killer) takes its storage node processes with it: none
// lives on unmanaged, holding a port and a volume, and a restart on the same data finds every
// object again.
import { readFileSync } from 'node:fs';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { bytes, sha256 } from '../helpers/bytes.js';
import { waitFor } from '../helpers/cluster.js';
import { tempDir } from '../helpers/db.js';
import { type ServerProcess, startServerProcess } from '../helpers/server-process.js';

const adminToken = 'crash-test-admin-token-0123456789';

function alive(pid: number): boolean {
  try {
    // A zombie has exited but is not yet reaped: it holds nothing any more.
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

describe('s3dfs server killed hard', function () {
  this.timeout(120_000);
  let server: ServerProcess | undefined;
  const dataDir = tempDir('s3dfs-crash-');

  after(async () => server?.stop());

  function client(s: ServerProcess): S3Client {
    return new S3Client({
      endpoint: s.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: s.accessKey, secretAccessKey: s.secretKey },
      maxAttempts: 1,
    });
  }

  it('takes its storage node processes with it, and a restart finds the data again', async () => {
    server = await startServerProcess({ dataDir, portBase: 23000, adminToken });
    const data = bytes(3 * 1024 * 1024 + 17, 21);
    await client(server).send(new CreateBucketCommand({ Bucket: 'crash' }));
    await client(server).send(new PutObjectCommand({ Bucket: 'crash', Key: 'kept', Body: data }));
    // The processes the manager runs the nodes as, by the handle its API reports.
    const res = await fetch(`${server.managerUrl}/api/nodes`, {
      headers: { authorization: `Bearer ${adminToken}` },
    });
    const pids = ((await res.json()) as { nodes: { handle: string }[] }).nodes.map((n) => Number(n.handle));
    expect(pids).to.have.length(3);
    expect(pids.every(alive)).to.equal(true);

    server.proc.kill('SIGKILL');
    await waitFor(async () => !pids.some(alive), 15_000);

    server = await startServerProcess({ dataDir, portBase: 23000, adminToken });
    const got = await client(server).send(new GetObjectCommand({ Bucket: 'crash', Key: 'kept' }));
    expect(sha256(Buffer.from(await got.Body!.transformToByteArray()))).to.equal(sha256(data));
  });
});
