// Proves that no read hands out a byte it has not verified: with a few bytes flipped inside one
// 64 KiB block of one, two or all three replicas of a chunk, whole GETs, ranges inside, across and
// beside that block, partNumber GETs and CopyObject / UploadPartCopy sources return the right bytes
// from a good replica (failing over mid-stream), or, with every replica bad, an error (never a wrong
// byte), on local reads and over HTTP; and every bad replica it met is marked corrupt.
import { open, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  type S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { bytes } from '../helpers/bytes.js';
import { startTestCluster, type TestCluster, waitFor } from '../helpers/cluster.js';

const Bucket = 'verified';
const block = 64 * 1024;
// Eight blocks per chunk: a read of a whole chunk sends its first piece (four checked blocks) before
// it meets the bad block 5, so failing over mid-stream is exercised, not only before the first byte.
const chunk = 8 * block;
// A two-part object; the damaged chunk is the first of part 2 (object bytes [part1, part1 + chunk)).
const part1 = 600 * 1024;
const part2 = 2 * chunk + 1000;
const size = part1 + part2;
/** Object offset of the damaged block (block 5 of the chunk). */
const badAt = part1 + 5 * block;

interface Outcome {
  got: Buffer;
  expected: Buffer;
  err?: unknown;
}

/** All a body yields before it ends or fails. */
async function drain(body: Readable): Promise<{ got: Buffer; err?: unknown }> {
  const parts: Buffer[] = [];
  try {
    for await (const p of body) parts.push(p as Buffer);
    return { got: Buffer.concat(parts) };
  } catch (err) {
    return { got: Buffer.concat(parts), err };
  }
}

for (const mode of ['local', 'http'] as const) {
  describe(`verified reads (${mode === 'local' ? 'local reads' : 'through the nodes'})`, function () {
    this.timeout(120_000);
    let c: TestCluster;
    let s3: S3Client;
    let n = 0;

    before(async () => {
      c = await startTestCluster({
        portBase: mode === 'local' ? 24200 : 24300,
        chunkSize: chunk,
        env: {
          // Nothing repairs or scrubs the damage while a read meets it, and probes are patient
          // (CPU is shared): a node gone suspect would change the order replicas are read in.
          S3DFS_HEAL_INTERVAL_MS: '0',
          S3DFS_PROBE_TIMEOUT_MS: '2000',
          S3DFS_DOWN_AFTER_MS: '10000',
          S3DFS_MULTIPART_MIN_PART: String(100 * 1024),
          ...(mode === 'http' ? { S3DFS_LOCAL_READS: 'off', S3DFS_LOCAL_WRITES: 'off' } : {}),
        },
      });
      s3 = c.client({ maxAttempts: 1 });
      await s3.send(new CreateBucketCommand({ Bucket }));
      const ids = c.gateway.cluster.snapshot.nodes.map((node) => node.id);
      const proven = () => c.gateway.cluster.readOrder('0'.repeat(32), ids).every((r) => r.local);
      if (mode === 'local') await waitFor(async () => proven(), 10_000);
      else expect(proven()).to.equal(false);
    });
    after(async () => c?.stop());

    async function get(Key: string, opts: { Range?: string; PartNumber?: number } = {}) {
      try {
        const res = await s3.send(new GetObjectCommand({ Bucket, Key, ...opts }));
        return drain(res.Body as Readable);
      } catch (err) {
        return { got: Buffer.alloc(0), err };
      }
    }

    /** A fresh two-part object, its damaged chunk, and the replicas in the order the gateway reads them. */
    async function damaged(bad: number, opts: { withoutSums?: boolean } = {}) {
      const Key = `obj-${++n}`;
      const data = bytes(size, n);
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key }));
      const parts = [];
      for (const [i, body] of [data.subarray(0, part1), data.subarray(part1)].entries()) {
        const PartNumber = i + 1;
        const { ETag } = await s3.send(
          new UploadPartCommand({ Bucket, Key, UploadId, PartNumber, Body: body }),
        );
        parts.push({ ETag, PartNumber });
      }
      await s3.send(
        new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: parts } }),
      );
      const obj = await c.db('objects').where({ bucket: Bucket, key: Key }).first('id');
      const ch = await c
        .db('chunks')
        .where({ object_id: obj.id, offset: part1 })
        .first('id', 'sha256', 'size');
      expect(Number(ch.size)).to.equal(chunk);
      const holders = await c.db('chunk_replicas').where({ chunk_id: ch.id, state: 'ok' }).pluck('node_id');
      const order = c.gateway.cluster.readOrder(ch.id, holders).map((r) => r.node.id);
      expect(order).to.have.length(3);
      for (const nodeId of order) {
        // The volume layout (storage-node/store.ts), spelled out: the test reads today's main too.
        const leaf = (tree: string) =>
          path.join(c.dataDir, 'nodes', nodeId, tree, ch.id.slice(0, 2), ch.id.slice(2, 4));
        const files = {
          data: path.join(leaf('chunks'), `${ch.id}.${ch.sha256}`),
          sums: path.join(leaf('sums'), `${ch.id}.${ch.sha256}`),
        };
        if (opts.withoutSums) await rm(files.sums, { force: true });
        if (!order.slice(0, bad).includes(nodeId)) continue;
        const fh = await open(files.data, 'r+');
        const b = Buffer.alloc(8);
        await fh.read(b, 0, b.length, 5 * block + 777);
        for (let i = 0; i < b.length; i++) b[i] ^= 0x5a;
        await fh.write(b, 0, b.length, 5 * block + 777);
        await fh.close();
      }
      return { Key, data, chunkId: ch.id as string, bad: order.slice(0, bad) };
    }

    /** Reads of the object, each with whether it touches the damaged block. */
    const reads: { name: string; touches: boolean; read: (key: string, data: Buffer) => Promise<Outcome> }[] =
      [
        {
          name: 'the whole object',
          touches: true,
          read: async (key, data) => ({ ...(await get(key)), expected: data }),
        },
        ...(
          [
            ['a range inside the block', badAt + 100, badAt + 5000],
            ['a range across the start of the block', badAt - 3000, badAt + 3000],
            ['a range across the end of the block', badAt + block - 10, badAt + block + 10],
            ['a range from an earlier chunk through the block', 100_000, badAt + 2 * block],
          ] as const
        ).map(([name, start, end]) => ({
          name,
          touches: true,
          read: async (key: string, data: Buffer) => ({
            ...(await get(key, { Range: `bytes=${start}-${end}` })),
            expected: data.subarray(start, end + 1),
          }),
        })),
        {
          name: 'a range of the same chunk beside the block',
          touches: false,
          read: async (key, data) => ({
            ...(await get(key, { Range: `bytes=${part1}-${part1 + 4 * block - 1}` })),
            expected: data.subarray(part1, part1 + 4 * block),
          }),
        },
        {
          name: 'part 2 by partNumber',
          touches: true,
          read: async (key, data) => ({
            ...(await get(key, { PartNumber: 2 })),
            expected: data.subarray(part1),
          }),
        },
        {
          name: 'a CopyObject source',
          touches: true,
          read: async (key, data) => {
            const copy = `${key}-copy`;
            try {
              await s3.send(new CopyObjectCommand({ Bucket, Key: copy, CopySource: `${Bucket}/${key}` }));
            } catch (err) {
              return { got: Buffer.alloc(0), expected: data, err };
            }
            return { ...(await get(copy)), expected: data };
          },
        },
        {
          name: 'an UploadPartCopy source range',
          touches: true,
          read: async (key, data) => {
            const copy = `${key}-part-copy`;
            const [start, end] = [badAt - 1000, badAt + block + 1000];
            const expected = data.subarray(start, end + 1);
            try {
              const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key: copy }));
              const { CopyPartResult } = await s3.send(
                new UploadPartCopyCommand({
                  Bucket,
                  Key: copy,
                  UploadId,
                  PartNumber: 1,
                  CopySource: `${Bucket}/${key}`,
                  CopySourceRange: `bytes=${start}-${end}`,
                }),
              );
              await s3.send(
                new CompleteMultipartUploadCommand({
                  Bucket,
                  Key: copy,
                  UploadId,
                  MultipartUpload: { Parts: [{ ETag: CopyPartResult?.ETag, PartNumber: 1 }] },
                }),
              );
            } catch (err) {
              return { got: Buffer.alloc(0), expected, err };
            }
            return { ...(await get(copy)), expected };
          },
        },
      ];

    for (const bad of [1, 2, 3]) {
      for (const r of reads) {
        const served = bad < 3 || !r.touches;
        it(`${r.name}, ${bad} of 3 replicas bad: ${served ? 'the right bytes' : 'an error, no wrong byte'}`, async () => {
          const obj = await damaged(bad);
          const { got, expected, err } = await r.read(obj.Key, obj.data);
          if (served) {
            expect(err, String(err)).to.equal(undefined);
            expect(got.length).to.equal(expected.length);
            expect(got.equals(expected), 'the bytes served').to.equal(true);
          } else {
            expect(err, 'an error').to.not.equal(undefined);
            expect(got.equals(expected.subarray(0, got.length)), 'what came before the error').to.equal(true);
          }
          if (!r.touches) return;
          // Each bad replica the read met is marked for repair (all of them: each is met before a
          // good one, or there is none).
          await waitFor(async () => {
            const states = await c
              .db('chunk_replicas')
              .where({ chunk_id: obj.chunkId })
              .whereIn('node_id', obj.bad)
              .pluck('state');
            return states.length === bad && states.every((s) => s === 'corrupt');
          }, 5000);
        });
      }
    }

    it('verifies a chunk written before block sums whole, ranges too', async () => {
      const obj = await damaged(1, { withoutSums: true });
      // Bytes 777-784 of the block are the damaged ones.
      const { got, err } = await get(obj.Key, { Range: `bytes=${badAt + 700}-${badAt + 900}` });
      expect(err, String(err)).to.equal(undefined);
      expect(got.equals(obj.data.subarray(badAt + 700, badAt + 901))).to.equal(true);
      const whole = await get(obj.Key);
      expect(whole.got.equals(obj.data)).to.equal(true);
    });
  });
}
