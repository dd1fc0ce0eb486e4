import { open, readdir, readFile, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { LocalVolumes } from '../../gateway/storage/local-volumes.js';
import { chunkFilePath, volumeDirs } from '../../lib/chunk-file.js';
import { bytes, sha256 } from '../helpers/bytes.js';
import { chunksOfKey, startTestCluster, type TestCluster, waitFor } from '../helpers/cluster.js';

// Above the 256 KiB whole-read threshold, so whole chunks are hashed on the worker thread.
const chunk = 512 * 1024;
const Bucket = 'local';

describe('local reads and writes', function () {
  this.timeout(90_000);

  async function getBytes(s3: S3Client, Key: string, Range?: string): Promise<Buffer> {
    const res = await s3.send(new GetObjectCommand({ Bucket, Key, Range }));
    return Buffer.from(await res.Body!.transformToByteArray());
  }

  const chunksOf = (c: TestCluster, key: string) => chunksOfKey(c, Bucket, key);

  /**
   * Read counters summed over the cluster's nodes: `served` by the nodes themselves, `local` made
   * by the gateway from their files and reported to them, and all bytes read.
   */
  async function nodeReads(c: TestCluster): Promise<{ served: number; local: number; bytes: number }> {
    const replicas = c.gateway.cluster.snapshot.nodes.map(
      (n) => c.gateway.cluster.readOrder('0'.repeat(32), [n.id])[0],
    );
    const healths = await Promise.all(replicas.map((r) => r.client.health()));
    const sum = (f: (h: (typeof healths)[number]) => number) => healths.reduce((n, h) => n + f(h), 0);
    const local = sum((h) => h.counters.localReads ?? 0);
    return { served: sum((h) => h.counters.reads) - local, local, bytes: sum((h) => h.counters.bytesOut) };
  }

  /** Write counters summed over the cluster's nodes, as for reads; and chunks stored. */
  async function nodeWrites(
    c: TestCluster,
  ): Promise<{ writes: number; local: number; bytes: number; chunks: number }> {
    const healths = await Promise.all(
      c.gateway.cluster.snapshot.nodes.map((n) =>
        c.gateway.cluster.readOrder('0'.repeat(32), [n.id])[0].client.health(),
      ),
    );
    const sum = (f: (h: (typeof healths)[number]) => number) => healths.reduce((n, h) => n + f(h), 0);
    return {
      writes: sum((h) => h.counters.writes),
      local: sum((h) => h.counters.localWrites ?? 0),
      bytes: sum((h) => h.counters.bytesIn),
      chunks: sum((h) => h.chunkCount),
    };
  }

  /** Files in the nodes' tmp dirs: writes in progress (or left behind). */
  async function tempFiles(c: TestCluster): Promise<string[]> {
    const nodes = c.gateway.cluster.snapshot.nodes;
    const lists = await Promise.all(
      nodes.map((n) => readdir(volumeDirs(path.join(c.dataDir, 'nodes', n.id)).tmp)),
    );
    return lists.flat();
  }

  /** Waits until the gateway has proven every node's volume local (the check runs on first use). */
  async function allLocal(c: TestCluster): Promise<void> {
    const ids = c.gateway.cluster.snapshot.nodes.map((n) => n.id);
    await waitFor(async () => c.gateway.cluster.readOrder('0'.repeat(32), ids).every((r) => r.local), 10_000);
  }

  describe('on (the default)', () => {
    let c: TestCluster;
    let s3: S3Client;

    before(async () => {
      c = await startTestCluster({ portBase: 22200, chunkSize: chunk, env: { S3DFS_HEAL_INTERVAL_MS: '0' } });
      s3 = c.client({ maxAttempts: 1 });
      await s3.send(new CreateBucketCommand({ Bucket }));
      await allLocal(c);
    });
    after(async () => c?.stop());

    it('proves each node volume by its reported data dir and identity', () => {
      for (const node of c.gateway.cluster.snapshot.nodes) {
        const [r] = c.gateway.cluster.readOrder('0'.repeat(32), [node.id]);
        expect(r.local?.dataDir).to.equal(path.join(c.dataDir, 'nodes', node.id));
      }
    });

    it('writes new chunks straight into the node volumes; the nodes commit and count them', async () => {
      // Two streamed chunks and a small last one (sent whole), each to three nodes.
      const data = bytes(2 * chunk + 100, 12);
      const before = await nodeWrites(c);
      await s3.send(new PutObjectCommand({ Bucket, Key: 'written', Body: data }));
      const after = await nodeWrites(c);
      expect(after.local - before.local).to.equal(9);
      expect(after.writes - before.writes).to.equal(9);
      expect(after.bytes - before.bytes).to.equal(3 * data.length);
      expect(after.chunks - before.chunks).to.equal(9);
      const chunks = await chunksOf(c, 'written');
      expect(chunks.map((ch) => ch.size)).to.deep.equal([chunk, chunk, 100]);
      for (const [i, ch] of chunks.entries()) {
        const expected = data.subarray(i * chunk, i * chunk + ch.size);
        expect(ch.sha256).to.equal(sha256(expected));
        expect(ch.nodeIds).to.have.length(3);
        for (const nodeId of ch.nodeIds) {
          const file = chunkFilePath(
            volumeDirs(path.join(c.dataDir, 'nodes', nodeId)).chunks,
            ch.id,
            ch.sha256,
          );
          expect(sha256(await readFile(file)), `${ch.id} on ${nodeId}`).to.equal(ch.sha256);
        }
      }
      expect(await tempFiles(c)).to.deep.equal([]);
      const reads = await nodeReads(c);
      expect(sha256(await getBytes(s3, 'written'))).to.equal(sha256(data));
      // Its three local reads are reported before the next test counts reads.
      await waitFor(async () => (await nodeReads(c)).local === reads.local + 3, 5000);
    });

    it('leaves no temp file or chunk behind when the client goes away mid-upload', async () => {
      const before = await nodeWrites(c);
      // 1.5 chunks of a 3-chunk body arrive, then the client hangs up: one chunk was stored, one is
      // half written.
      const body = new PassThrough();
      body.write(bytes(chunk + chunk / 2, 13));
      const hangUp = new AbortController();
      setTimeout(() => hangUp.abort(), 300);
      const put = s3.send(
        new PutObjectCommand({ Bucket, Key: 'gone', Body: body, ContentLength: 3 * chunk }),
        {
          abortSignal: hangUp.signal,
        },
      );
      await put.then(
        () => expect.fail('the upload cannot succeed'),
        () => {},
      );
      await waitFor(
        async () => (await tempFiles(c)).length === 0 && (await nodeWrites(c)).chunks === before.chunks,
        10_000,
      );
      const head = await s3.send(new HeadObjectCommand({ Bucket, Key: 'gone' })).catch((err) => err);
      expect(head.$metadata?.httpStatusCode).to.equal(404);
    });

    it('serves whole objects and ranges from the chunk files, not through the nodes', async () => {
      const data = bytes(3 * chunk + 1234, 7);
      await s3.send(new PutObjectCommand({ Bucket, Key: 'big', Body: data }));
      const before = await nodeReads(c);
      expect(sha256(await getBytes(s3, 'big'))).to.equal(sha256(data));
      const range = await getBytes(s3, 'big', `bytes=${chunk - 5}-${2 * chunk + 4}`);
      expect(range.equals(data.subarray(chunk - 5, 2 * chunk + 5))).to.equal(true);
      const tail = await getBytes(s3, 'big', 'bytes=-100');
      expect(tail.equals(data.subarray(data.length - 100))).to.equal(true);
      // The nodes served none of it, yet their read KPIs count all of it: 4 + 3 + 1 chunk reads,
      // reported by the gateway within a second or so.
      await waitFor(async () => (await nodeReads(c)).local === before.local + 8, 5000);
      const after = await nodeReads(c);
      expect(after.served).to.equal(before.served);
      expect(after.bytes - before.bytes).to.equal(data.length + range.length + tail.length);
    });

    it('closes every chunk file, the prefetched one too, when a client stops reading early', async () => {
      const data = bytes(4 * chunk, 11);
      await s3.send(new PutObjectCommand({ Bucket, Key: 'abandoned', Body: data }));
      /** This process's descriptors open on chunk files (the gateway runs in the test process). */
      const openChunkFiles = async () => {
        const nodesDir = path.join(c.dataDir, 'nodes');
        const fds = await readdir('/proc/self/fd');
        const targets = await Promise.all(fds.map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
        return targets.filter((t) => t.startsWith(nodesDir));
      };
      for (let i = 0; i < 5; i++) {
        const res = await s3.send(new GetObjectCommand({ Bucket, Key: 'abandoned' }));
        const body = res.Body as Readable;
        await new Promise<void>((resolve, reject) => {
          body.once('data', () => resolve());
          body.once('error', reject);
        });
        body.destroy();
      }
      // Promptly, not whenever garbage collection would get to a forgotten FileHandle.
      await waitFor(async () => (await openChunkFiles()).length === 0, 1000);
    });

    it('skips a corrupt local copy, serves the right bytes and marks that replica corrupt', async () => {
      const data = bytes(2 * chunk, 8);
      await s3.send(new PutObjectCommand({ Bucket, Key: 'rot', Body: data }));
      const chunks = await chunksOf(c, 'rot');
      expect(chunks).to.have.length(2);
      // Damage the copy read first of each chunk, in place (same size, same inode).
      const damaged: [string, string][] = [];
      for (const ch of chunks) {
        const [first] = c.gateway.cluster.readOrder(ch.id, ch.nodeIds);
        const fh = await open(chunkFilePath(volumeDirs(first.local!.dataDir).chunks, ch.id, ch.sha256), 'r+');
        await fh.write(Buffer.from('rotten bytes'), 0, 12, 4096);
        await fh.close();
        damaged.push([ch.id, first.node.id]);
      }
      expect(sha256(await getBytes(s3, 'rot'))).to.equal(sha256(data));
      for (const [chunkId, nodeId] of damaged) {
        await waitFor(async () => {
          const row = await c
            .db('chunk_replicas')
            .where({ chunk_id: chunkId, node_id: nodeId })
            .first('state');
          return row?.state === 'corrupt';
        }, 5000);
      }
      // With the damaged replicas marked, reads go to the good ones first.
      expect(sha256(await getBytes(s3, 'rot'))).to.equal(sha256(data));
    });

    it('falls back to the node, then the next replica, when a chunk file is not where expected', async () => {
      const data = bytes(chunk, 9);
      await s3.send(new PutObjectCommand({ Bucket, Key: 'moved', Body: data }));
      const [ch] = await chunksOf(c, 'moved');
      const [first] = c.gateway.cluster.readOrder(ch.id, ch.nodeIds);
      const file = chunkFilePath(volumeDirs(first.local!.dataDir).chunks, ch.id, ch.sha256);
      // Out of the store's layout: neither the local open nor the node itself finds it.
      await rename(file, `${file}.away`);
      try {
        expect(sha256(await getBytes(s3, 'moved'))).to.equal(sha256(data));
      } finally {
        await rename(`${file}.away`, file);
      }
      // A missing chunk says nothing against the volume: the node is still read locally.
      const [again] = c.gateway.cluster.readOrder(ch.id, [first.node.id]);
      expect(again.local?.dataDir).to.equal(first.local?.dataDir);
    });

    it('does not trust a volume whose node.json disagrees with what the node reports', async () => {
      const node = c.gateway.cluster.snapshot.nodes[0];
      const [r] = c.gateway.cluster.readOrder('0'.repeat(32), [node.id]);
      const file = path.join(c.dataDir, 'nodes', node.id, 'node.json');
      const original = await readFile(file, 'utf8');
      const volumes = new LocalVolumes(true);
      const addr = `${node.host}:${node.port}`;
      try {
        // Another volume at the same path (say, a container's /data on the host): another stamp.
        await writeFile(
          file,
          JSON.stringify({ ...JSON.parse(original), createdAt: new Date(0).toISOString() }),
        );
        expect(volumes.store(node.id, addr, r.client)).to.equal(undefined);
        await waitFor(
          async () => !(volumes as unknown as { probing: Set<string> }).probing.has(node.id),
          5000,
        );
        expect(volumes.store(node.id, addr, r.client)).to.equal(undefined);
      } finally {
        await writeFile(file, original);
      }
      // The same node, proven by a fresh checker once node.json agrees again.
      const fresh = new LocalVolumes(true);
      fresh.store(node.id, addr, r.client);
      await waitFor(async () => fresh.store(node.id, addr, r.client) !== undefined, 5000);
    });

    it('reads but does not write a volume whose tmp/ this process cannot write to', async () => {
      const node = c.gateway.cluster.snapshot.nodes[0];
      const [r] = c.gateway.cluster.readOrder('0'.repeat(32), [node.id]);
      const addr = `${node.host}:${node.port}`;
      const tmp = volumeDirs(path.join(c.dataDir, 'nodes', node.id)).tmp;
      // As a gateway of another user, or on a read-only mount, would find it.
      await rename(tmp, `${tmp}.away`);
      await symlink('/nonexistent/s3dfs-tmp', tmp);
      const volumes = new LocalVolumes(true);
      try {
        volumes.store(node.id, addr, r.client);
        await waitFor(async () => volumes.store(node.id, addr, r.client) !== undefined, 5000);
        expect(volumes.store(node.id, addr, r.client, 'write')).to.equal(undefined);
      } finally {
        await rm(tmp);
        await rename(`${tmp}.away`, tmp);
      }
      const fresh = new LocalVolumes(true);
      fresh.store(node.id, addr, r.client);
      await waitFor(async () => fresh.store(node.id, addr, r.client, 'write') !== undefined, 5000);
    });
  });

  describe('off', () => {
    let c: TestCluster;
    let s3: S3Client;

    before(async () => {
      c = await startTestCluster({
        portBase: 22300,
        chunkSize: chunk,
        env: { S3DFS_HEAL_INTERVAL_MS: '0', S3DFS_LOCAL_READS: 'off', S3DFS_LOCAL_WRITES: 'off' },
      });
      s3 = c.client({ maxAttempts: 1 });
      await s3.send(new CreateBucketCommand({ Bucket }));
    });
    after(async () => c?.stop());

    it('writes and reads every chunk through the nodes', async () => {
      const data = bytes(2 * chunk + 10, 10);
      const wrote = await nodeWrites(c);
      await s3.send(new PutObjectCommand({ Bucket, Key: 'remote', Body: data }));
      const written = await nodeWrites(c);
      expect(written.writes).to.equal(wrote.writes + 9);
      expect(written.local).to.equal(0);
      const before = await nodeReads(c);
      expect(sha256(await getBytes(s3, 'remote'))).to.equal(sha256(data));
      const after = await nodeReads(c);
      expect(after.served).to.equal(before.served + 3);
      expect(after.local).to.equal(0);
      const ids = c.gateway.cluster.snapshot.nodes.map((n) => n.id);
      expect(c.gateway.cluster.readOrder('0'.repeat(32), ids).every((r) => r.local === undefined)).to.equal(
        true,
      );
      expect(c.gateway.cluster.place('0'.repeat(32), 3).every((r) => r.local === undefined)).to.equal(true);
    });
  });
});
