import { open } from 'node:fs/promises';
import path from 'node:path';
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { expect } from 'chai';
import type { ProcessRuntime } from '../../manager/runtime/process.js';
import { bytes, sha256 } from '../helpers/bytes.js';
import { chunksOfKey, startTestCluster, type TestCluster, waitFor } from '../helpers/cluster.js';

const chunk = 64 * 1024;
const bucket = 'faults';

describe('gateway under faults', function () {
  this.timeout(90_000);
  let c: TestCluster;
  let s3: S3Client;

  async function getBytes(key: string, range?: string): Promise<Buffer> {
    const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: range }));
    return Buffer.from(await res.Body!.transformToByteArray());
  }

  const chunksOf = (key: string) => chunksOfKey(c, bucket, key);

  async function corrupt(nodeId: string, chunkId: string, sha: string): Promise<void> {
    const file = path.join(
      c.dataDir,
      'nodes',
      nodeId,
      'chunks',
      chunkId.slice(0, 2),
      chunkId.slice(2, 4),
      `${chunkId}.${sha}`,
    );
    const fh = await open(file, 'r+');
    try {
      const b = Buffer.alloc(16);
      await fh.read(b, 0, 16, 1000);
      for (let i = 0; i < b.length; i++) b[i] ^= 0x5a;
      await fh.write(b, 0, 16, 1000);
    } finally {
      await fh.close();
    }
  }

  /** kill -9 a node's process and keep it dead (the runtime would otherwise restart it). */
  async function killNode(id: string): Promise<void> {
    const runtime = c.manager.runtime as ProcessRuntime;
    const pid = runtime.pid(id);
    expect(pid, `pid of ${id}`).to.be.a('number');
    const stopped = runtime.stop(id);
    process.kill(pid!, 'SIGKILL');
    await stopped;
  }

  before(async () => {
    // Probes are patient (CPU is shared) and healing is off, so the replicas a test breaks stay
    // broken until the gateway meets them. Reads go through the nodes' HTTP servers, the path a
    // gateway on another host takes (local-volumes.test.ts covers reading a node's files
    // directly); writes take the default local path, so nodes die under local writes here.
    c = await startTestCluster({
      portBase: 20400,
      chunkSize: chunk,
      env: {
        S3DFS_PROBE_TIMEOUT_MS: '1000',
        S3DFS_DOWN_AFTER_MS: '1500',
        S3DFS_HEAL_INTERVAL_MS: '0',
        S3DFS_LOCAL_READS: 'off',
      },
    });
    s3 = c.client({ maxAttempts: 1 });
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  });
  after(async () => c?.stop());

  it('skips a corrupted replica on GET (whole object and ranges) and marks it corrupt', async () => {
    const data = bytes(3 * chunk, 1);
    for (const key of ['corrupt-whole', 'corrupt-range']) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: data }));
      const chunks = await chunksOf(key);
      expect(chunks).to.have.length(3);
      // Corrupt the replica the gateway reads first (and for the middle chunk the first two), so a
      // GET that trusted stored bytes would return wrong data.
      for (const [i, ch] of chunks.entries()) {
        const order = c.gateway.cluster.readOrder(ch.id, ch.nodeIds).map((r) => r.node.id);
        expect(order).to.have.length(3);
        for (const nodeId of order.slice(0, i === 1 ? 2 : 1)) await corrupt(nodeId, ch.id, ch.sha256);
      }
    }
    expect(sha256(await getBytes('corrupt-whole'))).to.equal(sha256(data));
    const range = await getBytes('corrupt-range', `bytes=${chunk - 10}-${2 * chunk + 9}`);
    expect(range.equals(data.subarray(chunk - 10, 2 * chunk + 10))).to.equal(true);
    // The failed replicas were recorded so repair can replace them.
    const first = (await chunksOf('corrupt-whole'))[0];
    await waitFor(async () => {
      const states = await c.db('chunk_replicas').where({ chunk_id: first.id }).pluck('state');
      return states.includes('corrupt');
    }, 5000);
    expect(sha256(await getBytes('corrupt-whole'))).to.equal(sha256(data));
  });

  it('never serves a mixed object while 8 clients overwrite one key', async () => {
    const size = 2 * chunk + 333;
    const bodies = new Map<string, number>();
    const initial = bytes(size, 999);
    bodies.set(sha256(initial), -1);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'contended', Body: initial }));
    let writing = true;
    let reads = 0;
    const readFailures: string[] = [];
    const writers = Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; i < 5; i++) {
        const body = bytes(size, 1000 + w * 100 + i);
        bodies.set(sha256(body), w);
        await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'contended', Body: body }));
      }
    });
    const readers = Array.from({ length: 3 }, async () => {
      while (writing) {
        try {
          const got = await getBytes('contended');
          reads++;
          expect(got.length).to.equal(size);
          expect(bodies.has(sha256(got)), 'a read returned bytes no writer wrote').to.equal(true);
        } catch (err) {
          if ((err as Error).name === 'AssertionError') throw err;
          readFailures.push(String(err));
        }
      }
    });
    await Promise.all(writers);
    writing = false;
    await Promise.all(readers);
    expect(reads).to.be.greaterThan(5);
    // A reader can lose the race with the delete queue on an old version; it must fail, never mix.
    expect(readFailures.length, readFailures.join('\n')).to.be.at.most(Math.ceil(reads / 10));
    const last = await getBytes('contended');
    expect(bodies.has(sha256(last))).to.equal(true);
  });

  it('keeps PUT and GET working with one of three nodes killed', async () => {
    const before = bytes(2 * chunk + 5, 7);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'before-kill', Body: before }));
    const victim = (await chunksOf('before-kill'))[0].nodeIds[0];
    await killNode(victim);
    // Right away (the ring may still call it up) and after the manager noticed.
    for (const phase of ['immediately', 'after detection']) {
      if (phase === 'after detection') {
        await waitFor(
          () => c.gateway.cluster.snapshot.nodes.find((n) => n.id === victim)?.status !== 'up',
          10_000,
        );
      }
      const data = bytes(3 * chunk + 1, phase.length);
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `one-down-${phase}`, Body: data }));
      expect(sha256(await getBytes(`one-down-${phase}`))).to.equal(sha256(data));
      expect(sha256(await getBytes('before-kill'))).to.equal(sha256(before));
    }
  });

  it('fails PUT with a clean 503 and stores nothing with two of three nodes killed', async () => {
    const before = bytes(chunk + 5, 8);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'before-second-kill', Body: before }));
    const up = c.manager
      .ring()
      .nodes.filter((n) => (c.manager.runtime as ProcessRuntime).pid(n.id) !== undefined);
    const alive = [];
    for (const n of up) if ((await c.manager.runtime.inspect(n.id))?.running) alive.push(n.id);
    expect(alive).to.have.length(2);
    await killNode(alive[0]);
    for (const phase of ['immediately', 'after detection']) {
      if (phase === 'after detection') {
        await waitFor(
          () => c.gateway.cluster.snapshot.nodes.filter((n) => n.status === 'up').length <= 1,
          10_000,
        );
      }
      const key = `two-down-${phase.replace(' ', '-')}`;
      let status: number | undefined;
      let name = '';
      try {
        await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: bytes(2 * chunk, 9) }));
      } catch (err) {
        status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        name = (err as Error).name;
      }
      expect(status, `${phase}: ${name}`).to.equal(503);
      expect(name).to.equal('ServiceUnavailable');
      let head: number | undefined;
      await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).catch((err) => {
        head = err.$metadata?.httpStatusCode;
      });
      expect(head).to.equal(404);
      const list = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'two-down' }));
      expect(list.KeyCount).to.equal(0);
    }
    // What was stored with three replicas is still readable from the last one.
    expect(sha256(await getBytes('before-second-kill'))).to.equal(sha256(before));
  });
});

describe('gateway with a hung storage node', function () {
  this.timeout(90_000);
  let c: TestCluster;

  before(async () => {
    // A node frozen with SIGSTOP accepts connections and answers nothing: only the write path's
    // stall limit (1 s here, against a 30 s node timeout) keeps uploads going.
    c = await startTestCluster({
      portBase: 24600,
      chunkSize: chunk,
      env: {
        S3DFS_PROBE_TIMEOUT_MS: '1000',
        S3DFS_DOWN_AFTER_MS: '60000',
        S3DFS_HEAL_INTERVAL_MS: '0',
        S3DFS_REPLICA_STALL_MS: '1000',
        S3DFS_NODE_TIMEOUT_MS: '30000',
        S3DFS_LOCAL_READS: 'off',
      },
    });
  });
  after(async () => c?.stop());

  it('reads from the next replica when the first one does not answer', async () => {
    const s3 = c.client({ maxAttempts: 1 });
    await s3.send(new CreateBucketCommand({ Bucket: 'hung-read' }));
    const data = bytes(8 * chunk, 32);
    await s3.send(new PutObjectCommand({ Bucket: 'hung-read', Key: 'k', Body: data }));
    const chunks = await chunksOfKey(c, 'hung-read', 'k');
    const victim = c.gateway.cluster.readOrder(chunks[0].id, chunks[0].nodeIds)[0].node.id;
    const pid = (c.manager.runtime as ProcessRuntime).pid(victim)!;
    process.kill(pid, 'SIGSTOP');
    try {
      const started = Date.now();
      const res = await s3.send(new GetObjectCommand({ Bucket: 'hung-read', Key: 'k' }));
      expect(sha256(Buffer.from(await res.Body!.transformToByteArray()))).to.equal(sha256(data));
      expect(Date.now() - started).to.be.lessThan(15_000);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  });

  for (const localWrites of [true, false]) {
    it(`finishes PUTs on the other two replicas (${localWrites ? 'local' : 'HTTP'} writes)`, async () => {
      const s3 = c.client({ maxAttempts: 1 });
      const b = `hung-${localWrites ? 'local' : 'http'}`;
      await s3.send(new CreateBucketCommand({ Bucket: b }));
      // The victim of the previous case must be up again, or placement passes it over.
      await waitFor(() => c.gateway.cluster.snapshot.nodes.every((n) => n.status === 'up'), 20_000);
      const runtime = c.manager.runtime as ProcessRuntime;
      const victim = c.gateway.cluster.snapshot.nodes[0].id;
      const pid = runtime.pid(victim)!;
      if (!localWrites) c.gateway.cluster.localVolumes.forget(victim);
      process.kill(pid, 'SIGSTOP');
      try {
        const data = bytes(8 * chunk, 31);
        const started = Date.now();
        await s3.send(new PutObjectCommand({ Bucket: b, Key: 'k', Body: data }));
        expect(Date.now() - started).to.be.lessThan(15_000);
        const chunks = await chunksOfKey(c, b, 'k');
        expect(chunks).to.have.length(8);
        for (const ch of chunks) {
          expect(ch.nodeIds).to.not.include(victim);
          expect(ch.nodeIds).to.have.length(2);
        }
        expect(
          sha256(
            Buffer.from(
              await (
                await s3.send(new GetObjectCommand({ Bucket: b, Key: 'k' }))
              ).Body!.transformToByteArray(),
            ),
          ),
        ).to.equal(sha256(data));
      } finally {
        process.kill(pid, 'SIGCONT');
      }
    });
  }
});
