// Chunks of writes that will never commit go back in seconds, not after the 6 h orphan grace: a
// server killed with kill -9 mid-upload is restarted and its upload's chunks are deleted from the
// nodes once its lease has passed; a gateway that outlives its lease cannot commit what the manager
// reclaimed (503, the previous version stays), and goes on writing under a new boot.
import { readFileSync } from 'node:fs';
import { utimes } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { chunkFilePath, volumeDirs } from '../../lib/chunk-file.js';
import { newChunkId } from '../../lib/ids.js';
import { NodeClient } from '../../lib/node-client.js';
import { bytes, sha256 } from '../helpers/bytes.js';
import { startTestCluster, type TestCluster, waitFor } from '../helpers/cluster.js';
import { tempDir } from '../helpers/db.js';
import { type Creds, keyPath, signHeaders } from '../helpers/s3raw.js';
import { type ServerProcess, startServerProcess } from '../helpers/server-process.js';

const chunk = 64 * 1024;
const bucket = 'intents';

/** A PUT whose body the test sends in pieces; `answer` settles with the status (or the error). */
async function openPut(c: Creds, key: string, size: number) {
  const path = keyPath(bucket, key);
  const headers = await signHeaders(
    c,
    { method: 'PUT', path, headers: { 'content-length': String(size) } },
    { payload: 'UNSIGNED-PAYLOAD' },
  );
  const url = new URL(c.endpoint);
  const req = http.request({ method: 'PUT', host: url.hostname, port: url.port, path, headers });
  const answer = new Promise<number>((resolve, reject) => {
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
  });
  answer.catch(() => {}); // a killed server's answer is never awaited
  req.flushHeaders();
  return { req, answer };
}

async function getBytes(s3: S3Client, key: string): Promise<Buffer> {
  const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await got.Body!.transformToByteArray());
}

interface FsckCounts {
  counts: { orphans: number; youngOrphans: number };
}

describe('write intents', function () {
  this.timeout(120_000);

  describe('a server killed mid-upload', () => {
    let server: ServerProcess | undefined;
    const dataDir = tempDir('s3dfs-intents-');
    const adminToken = 'intents-test-admin-token-0123456789';
    const env = {
      S3DFS_WRITER_LEASE_MS: '1500',
      S3DFS_HEAL_INTERVAL_MS: '300',
      S3DFS_INLINE_MAX: '0',
    };
    after(async () => server?.stop());

    const api = async <T>(s: ServerProcess, p: string): Promise<T> => {
      const res = await fetch(`${s.managerUrl}${p}`, { headers: { authorization: `Bearer ${adminToken}` } });
      expect(res.status, p).to.equal(200);
      return (await res.json()) as T;
    };

    it('has the chunks it wrote deleted from the nodes soon after the restart', async () => {
      server = await startServerProcess({ dataDir, portBase: 28100, adminToken, chunkSize: '64KiB', env });
      const client = clientOf(server);
      const kept = bytes(3 * chunk + 5, 7);
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'kept', Body: kept }));

      const put = await openPut(server, 'cut', 16 * chunk);
      put.req.write(bytes(6 * chunk, 8));
      // The chunks of the unfinished upload are on the nodes, with no metadata yet.
      await waitFor(
        async () => (await api<FsckCounts>(server!, '/api/fsck')).counts.youngOrphans >= 9,
        20_000,
      );

      const pid = server.proc.pid!;
      server.proc.kill('SIGKILL');
      put.req.destroy();
      await waitFor(async () => !alive(pid), 15_000);
      client.destroy();

      server = await startServerProcess({ dataDir, portBase: 28100, adminToken, chunkSize: '64KiB', env });
      await waitFor(async () => {
        const { counts } = await api<FsckCounts>(server!, '/api/fsck');
        return counts.youngOrphans === 0 && counts.orphans === 0;
      }, 30_000);
      const cluster = await api<{ healing: { gc: { leftoversDeleted: number } } }>(server, '/api/cluster');
      expect(cluster.healing.gc.leftoversDeleted).to.be.at.least(6);
      const after = clientOf(server);
      expect(sha256(await getBytes(after, 'kept'))).to.equal(sha256(kept));
      after.destroy();
    });
  });

  describe('a gateway late past its lease', () => {
    let c: TestCluster;
    let s3: S3Client;
    before(async () => {
      c = await startTestCluster({
        portBase: 28300,
        chunkSize: chunk,
        env: { S3DFS_WRITER_LEASE_MS: '60000', S3DFS_HEAL_INTERVAL_MS: '200', S3DFS_INLINE_MAX: '0' },
      });
      s3 = c.client();
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    });
    after(async () => {
      s3?.destroy();
      await c?.stop();
    });

    it('cannot commit what the manager reclaimed: 503, the old version stays, its chunks are deleted', async () => {
      const v1 = bytes(2 * chunk + 3, 1);
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: v1 }));
      const v2 = bytes(8 * chunk, 2);
      const put = await openPut(c, 'k', v2.length);
      put.req.write(v2.subarray(0, 4 * chunk));
      const intents = async () => (await c.db('chunk_intents').pluck('chunk_id')) as string[];
      await waitFor(async () => (await intents()).length === 4, 10_000);
      const held = await intents();
      await waitFor(async () => (await storedOn(c, held)) === 12, 10_000);

      // What the manager sees of a gateway stopped, starved or cut off: a heartbeat past its lease.
      await c.db('writer_boots').update({ lease_ms: 1 });
      await waitFor(async () => (await intents()).length === 0, 10_000);
      expect(await storedOn(c, held)).to.equal(0);

      put.req.end(v2.subarray(4 * chunk));
      expect(await put.answer).to.equal(503);
      expect(sha256(await getBytes(s3, 'k'))).to.equal(sha256(v1));
      const rows = await c.db('chunks').whereIn('id', held).count({ n: '*' });
      expect(Number(rows[0].n)).to.equal(0);

      // The gateway writes on under a new boot, which the manager leaves alone.
      const v3 = bytes(3 * chunk, 3);
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: v3 }));
      expect(sha256(await getBytes(s3, 'k'))).to.equal(sha256(v3));
      const boots = await c.db('writer_boots').whereNull('reclaimed_at').count({ n: '*' });
      expect(Number(boots[0].n)).to.equal(1);
    });
  });
});

const clientOf = (s: ServerProcess) =>
  new S3Client({
    endpoint: s.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: s.accessKey, secretAccessKey: s.secretKey },
  });

describe('write intents and the inventory walk', function () {
  this.timeout(60_000);
  let c: TestCluster;
  before(async () => {
    c = await startTestCluster({
      portBase: 28500,
      chunkSize: chunk,
      env: {
        S3DFS_ORPHAN_GRACE_MS: '1000',
        S3DFS_INVENTORY_INTERVAL_MS: '300',
        S3DFS_HEAL_INTERVAL_MS: '200',
      },
    });
  });
  after(async () => c?.stop());

  it('never deletes a file whose write still holds its intent, however old the file looks', async () => {
    const [{ row }] = [...c.manager.monitor.nodes.values()];
    const client = new NodeClient({
      baseUrl: `http://${row.host}:${row.port}`,
      secret: c.manager.clusterSecret,
    });
    const id = newChunkId();
    const data = bytes(chunk, 9);
    const boot = await c.db('writer_boots').whereNull('reclaimed_at').first('id');
    await c.db('chunk_intents').insert({ chunk_id: id, boot_id: boot.id, node_ids: `{${row.id}}` });
    const { sha256: sum } = await client.put(id, data, data.length);
    // Its file dated an hour back, as a node whose clock runs ahead of the manager's would date it.
    const file = chunkFilePath(volumeDirs(path.join(c.dataDir, 'nodes', row.id)).chunks, id, sum);
    const hourAgo = new Date(Date.now() - 3_600_000);
    await utimes(file, hourAgo, hourAgo);
    c.manager.healer.kick();
    await new Promise((r) => setTimeout(r, 2000));
    expect(await client.head(id), 'the file of a write in progress').to.not.equal(undefined);
    // Once nothing holds it, the same walk deletes it as the orphan it then is.
    await c.db('chunk_intents').where({ chunk_id: id }).delete();
    c.manager.healer.kick();
    await waitFor(async () => (await client.head(id)) === undefined, 10_000);
  });
});

function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** How many replicas of these chunks the nodes hold, asked of the nodes themselves. */
async function storedOn(c: TestCluster, ids: string[]): Promise<number> {
  let n = 0;
  for (const { row } of c.manager.monitor.nodes.values()) {
    const client = new NodeClient({
      baseUrl: `http://${row.host}:${row.port}`,
      secret: c.manager.clusterSecret,
    });
    for (const id of ids) if (await client.head(id)) n++;
  }
  return n;
}
