// Proves self-healing on real storage-node processes: a node killed under load or wiped, a corrupt
// chunk file, an added node, a drained node, deleted objects and orphan files all end in R good
// replicas per chunk (checked in chunk_replicas and on disk), byte-exact reads against digests kept
// by the test, and a clean fsck; fsck counts a deliberately broken cluster correctly.
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand, DeleteObjectCommand } from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { newChunkId } from '../../lib/ids.js';
import type { ProcessRuntime } from '../../manager/runtime/process.js';
import { startTestCluster, type TestCluster, waitFor } from '../helpers/cluster.js';
import { HEAL_ENV, HealHarness, sha256 } from '../helpers/heal-harness.js';

const CHUNK = 64 * 1024;
const BUCKET = 'heal';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The process runtime's harness: node data dirs are on this machine's disk. */
class Harness extends HealHarness {
  constructor(readonly c: TestCluster) {
    super({ db: c.db, manager: () => c.manager, client: () => c.client(), bucket: BUCKET });
  }

  nodeDir(id: string): string {
    return path.join(this.c.dataDir, 'nodes', id);
  }

  /** The chunk's file on a node's disk, if any. */
  chunkFile(nodeId: string, chunkId: string): string | undefined {
    const leaf = path.join(this.nodeDir(nodeId), 'chunks', chunkId.slice(0, 2), chunkId.slice(2, 4));
    if (!existsSync(leaf)) return undefined;
    const name = readdirSync(leaf).find((n) => n.startsWith(`${chunkId}.`));
    return name && path.join(leaf, name);
  }
}

describe('self-healing (process runtime, PGlite)', function () {
  this.timeout(120_000);

  describe('four nodes, R=3', () => {
    let h: Harness;

    before(async () => {
      const c = await startTestCluster({ portBase: 22000, nodes: 4, chunkSize: CHUNK, env: HEAL_ENV });
      h = new Harness(c);
      await c.client().send(new CreateBucketCommand({ Bucket: BUCKET }));
      for (let i = 0; i < 12; i++) await h.put(`seed/${i}`, CHUNK * 2 + 1000 * i);
    });
    after(async () => {
      await h?.c.stop();
    });

    it('reports a fresh cluster as clean', async () => {
      const report = await h.waitClean();
      expect(report.chunks).to.be.greaterThan(30);
      expect(report.counts.orphans).to.equal(0);
      expect(report.replicas).to.equal(report.chunks * 3);
    });

    it('survives kill -9 of one node under load and re-replicates by itself', async () => {
      const victim = h.upIds()[1];
      const runtime = h.c.manager.runtime as ProcessRuntime;
      let killedAt = 0;
      const errors: unknown[] = [];
      for (let i = 0; Date.now() - (killedAt || Date.now()) < 3000 && i < 200; i++) {
        if (i === 5) {
          process.kill(runtime.pid(victim)!, 'SIGKILL');
          // Keep it down (the process runtime would restart it), so the grace period runs out.
          await runtime.stop(victim);
          killedAt = Date.now();
        }
        try {
          await h.put(`load/${i}`, CHUNK + 7919 * (i % 5));
          const keys = [...h.digests.keys()];
          const key = keys[(i * 7) % keys.length];
          expect(await h.read(key)).to.equal(h.digests.get(key));
        } catch (err) {
          errors.push(err);
        }
      }
      expect(errors.map(String)).to.deep.equal([]);
      await waitFor(() => h.c.manager.monitor.nodes.get(victim)!.row.status === 'down', 10_000);
      // Repaired onto the three survivors, with the victim still down.
      await h.waitClean(40_000);
      const onVictim = await h.c.db('chunk_replicas').where({ node_id: victim }).count({ n: '*' });
      expect(Number(onVictim[0].n)).to.be.greaterThan(0); // its rows wait for it as surplus
      // It comes back: its copies are now surplus and go, and the cluster is exactly R again.
      await runtime.start({ id: victim, port: h.c.manager.monitor.nodes.get(victim)!.row.port });
      await waitFor(() => h.c.manager.monitor.nodes.get(victim)!.row.status === 'up', 15_000);
      await h.waitClean(40_000);
      const counts = await h.c
        .db('chunk_replicas')
        .groupBy('chunk_id')
        .select('chunk_id', h.c.db.raw('count(*) as n'));
      expect(counts.every((r: { n: string }) => Number(r.n) === 3)).to.equal(true);
      await h.readAll();
      const healing = (await h.json<{ healing: { repair: { done: number } } }>('/api/cluster')).healing;
      expect(healing.repair.done).to.be.greaterThan(0);
    });

    it('restores every chunk of a node that lost its whole volume', async () => {
      const victim = h.upIds()[0];
      const runtime = h.c.manager.runtime as ProcessRuntime;
      const before = await h.c.db('chunk_replicas').where({ node_id: victim }).pluck('chunk_id');
      expect(before.length).to.be.greaterThan(0);
      await runtime.stop(victim);
      rmSync(h.nodeDir(victim), { recursive: true, force: true });
      await runtime.start({ id: victim, port: h.c.manager.monitor.nodes.get(victim)!.row.port });
      await sleep(500);
      await waitFor(() => h.c.manager.monitor.nodes.get(victim)!.row.status === 'up', 15_000);
      await waitFor(async () => before.every((id) => h.chunkFile(victim, id) !== undefined), 40_000, 200);
      await h.waitClean();
      await h.readAll();
    });

    it('serves correct bytes past a corrupt chunk file and scrubbing repairs it', async () => {
      const key = 'seed/3';
      const obj = await h.c.db('objects').where({ bucket: BUCKET, key }).first('id');
      const chunk = await h.c.db('chunks').where({ object_id: obj.id, seq: 0 }).first('id', 'sha256');
      // Corrupt the copy a reader tries first (the ring's first choice).
      const first = h.c.manager
        .ring()
        .nodes.find((n) => n.id === h.c.manager.ops.explain(chunk.id).chosen[0].id)!;
      const file = h.chunkFile(first.id, chunk.id)!;
      const bytes = readFileSync(file);
      bytes[100] ^= 0xff;
      writeFileSync(file, bytes);
      expect(await h.read(key)).to.equal(h.digests.get(key));
      await waitFor(
        async () => {
          const f = h.chunkFile(first.id, chunk.id);
          return f !== undefined && sha256(readFileSync(f)) === chunk.sha256;
        },
        30_000,
        200,
      );
      await h.waitClean();
      const reps = await h.c.db('chunk_replicas').where({ chunk_id: chunk.id, state: 'ok' }).pluck('node_id');
      expect(reps).to.have.length(3);
      for (const n of reps) expect(sha256(readFileSync(h.chunkFile(n, chunk.id)!))).to.equal(chunk.sha256);
    });

    it('collects the chunks of deleted objects and old orphans, keeps young orphans', async () => {
      const gone = ['seed/0', 'seed/1', 'load/0'];
      const ids: string[] = [];
      for (const key of gone) {
        const obj = await h.c.db('objects').where({ bucket: BUCKET, key }).first('id');
        ids.push(...(await h.c.db('chunks').where({ object_id: obj.id }).pluck('id')));
        await h.c.client().send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }));
        h.digests.delete(key);
      }
      const node = h.upIds()[0];
      const client = h.nodeClient(node);
      const oldOrphan = newChunkId();
      const youngOrphan = newChunkId();
      for (const id of [oldOrphan, youngOrphan]) await client.put(id, randomBytes(5000), 5000);
      const past = new Date(Date.now() - 3_600_000);
      utimesSync(h.chunkFile(node, oldOrphan)!, past, past);
      await waitFor(
        async () => {
          const q = await h.c.db('delete_queue').count({ n: '*' });
          const onDisk = h.upIds().some((n) => ids.some((id) => h.chunkFile(n, id) !== undefined));
          return Number(q[0].n) === 0 && !onDisk && h.chunkFile(node, oldOrphan) === undefined;
        },
        30_000,
        200,
      );
      expect(h.chunkFile(node, youngOrphan)).to.be.a('string');
      expect(await h.c.db('chunks').whereIn('id', ids).count({ n: '*' })).to.deep.equal([{ n: 0 }]);
      for (const n of h.upIds()) {
        const inv = (await h.nodeClient(n).list(undefined, 10_000)).chunks.map((c) => c.id);
        expect(inv.filter((id) => ids.includes(id))).to.deep.equal([]);
      }
      await client.delete(youngOrphan);
    });

    it('rebalances about 1/N of the replicas onto a new node', async () => {
      const total = Number((await h.c.db('chunk_replicas').count({ n: '*' }))[0].n);
      const { status, body } = await h.request<{ nodes: { id: string }[] }>('/api/nodes', {
        method: 'POST',
        body: JSON.stringify({ count: 1 }),
      });
      expect(status).to.equal(201);
      const added = body.nodes[0].id;
      await waitFor(() => h.c.manager.monitor.nodes.get(added)!.row.status === 'up', 15_000);
      await h.c.gateway.cluster.refresh();
      await h.waitClean(40_000);
      const n = h.upIds().length;
      const onNew = Number((await h.c.db('chunk_replicas').where({ node_id: added }).count({ n: '*' }))[0].n);
      const after = Number((await h.c.db('chunk_replicas').count({ n: '*' }))[0].n);
      expect(after).to.equal(total);
      expect(onNew / total).to.be.within(0.5 / n, 1.5 / n);
      const healing = (await h.json<{ healing: { rebalance: { done: number } } }>('/api/cluster')).healing;
      expect(healing.rebalance.done).to.be.greaterThan(0);
      const metrics = await (await h.api('/metrics')).text();
      expect(metrics).to.match(/^s3dfs_heal_done\{activity="rebalance"\} [1-9]/m);
      expect(metrics).to.match(/^s3dfs_heal_queued\{activity="repair"\} 0$/m);
      await h.readAll();
    });

    it('drains a node until it is empty, then removes it', async () => {
      const victim = h.upIds()[2];
      const res = await h.request(`/api/nodes/${victim}/drain`, { method: 'POST' });
      expect(res.status).to.equal(200);
      await waitFor(
        async () => {
          const n = await h.c.db('chunk_replicas').where({ node_id: victim }).count({ n: '*' });
          return Number(n[0].n) === 0;
        },
        40_000,
        200,
      );
      await waitFor(async () => (await h.nodeClient(victim).list()).chunks.length === 0, 20_000, 200);
      await waitFor(async () => {
        const ev = (await h.json<{ events: { reason: string }[] }>(`/api/events?node=${victim}`)).events;
        return ev.some((e) => e.reason.startsWith('drain complete'));
      });
      await h.readAll();
      const del = await h.api(`/api/nodes/${victim}?purge=true`, { method: 'DELETE' });
      expect(del.status).to.equal(200);
      await h.waitClean();
      await h.readAll();
    });
  });

  describe('three nodes, R=1, healing loop off', () => {
    let h: Harness;

    before(async () => {
      const c = await startTestCluster({
        portBase: 22100,
        nodes: 3,
        chunkSize: CHUNK,
        env: { ...HEAL_ENV, S3DFS_REPLICATION: '1', S3DFS_WRITE_QUORUM: '1', S3DFS_HEAL_INTERVAL_MS: '0' },
      });
      h = new Harness(c);
      await c.client().send(new CreateBucketCommand({ Bucket: BUCKET }));
      for (let i = 0; i < 8; i++) await h.put(`one/${i}`, CHUNK * 3);
    });
    after(async () => {
      await h?.c.stop();
    });

    /** Runs one healing pass through the API and waits for it to finish. */
    async function repairNow(): Promise<void> {
      const res = await h.request<{ pass: { passId: number } }>('/api/repair', { method: 'POST' });
      expect(res.status).to.equal(202);
      await sleep(50);
      await h.c.manager.healer.settled();
    }

    it('refuses to remove a node holding the only copy, removes it once drained', async () => {
      const victim = h.upIds()[0];
      const del = await h.request<{ error: { code: string } }>(`/api/nodes/${victim}`, { method: 'DELETE' });
      expect(del.status).to.equal(409);
      expect(del.body.error.code).to.equal('Conflict');
      await h.request(`/api/nodes/${victim}/drain`, { method: 'POST' });
      await waitFor(
        async () => {
          await repairNow();
          const n = await h.c.db('chunk_replicas').where({ node_id: victim }).count({ n: '*' });
          return Number(n[0].n) === 0;
        },
        30_000,
        100,
      );
      const cluster = await h.json<{ healing: { drain: { nodes: { done: boolean }[] } } }>('/api/cluster');
      expect(cluster.healing.drain.nodes.every((d) => d.done)).to.equal(true);
      expect((await h.api(`/api/nodes/${victim}?purge=true`, { method: 'DELETE' })).status).to.equal(200);
      await h.readAll();
    });

    it('fsck counts a broken cluster correctly and a repair pass fixes what can be fixed', async () => {
      await repairNow();
      expect((await h.fsck()).clean).to.equal(true);
      const chunks = await h.liveChunks();
      const replica = async (id: string) =>
        (await h.c.db('chunk_replicas').where({ chunk_id: id }).first('node_id')).node_id;
      const [c1, c2, c3] = chunks;
      // c1: marked corrupt though its bytes are fine (a false alarm).
      await h.c.db('chunk_replicas').where({ chunk_id: c1.id }).update({ state: 'corrupt' });
      // c2: its only file is gone from disk.
      rmSync(h.chunkFile(await replica(c2.id), c2.id)!);
      // c3: an extra copy nobody recorded.
      const holder = await replica(c3.id);
      const other = h.upIds().find((n) => n !== holder)!;
      const got = await h.nodeClient(holder).get(c3.id);
      await h.nodeClient(other).put(c3.id, got.stream, got.size, c3.sha256);
      // An old orphan.
      const orphan = newChunkId();
      await h.nodeClient(other).put(orphan, randomBytes(100), 100);
      const past = new Date(Date.now() - 3_600_000);
      utimesSync(h.chunkFile(other, orphan)!, past, past);

      const broken = await h.fsck();
      expect(broken.clean).to.equal(false);
      expect(broken.counts).to.include({
        corrupt: 1,
        missing: 1,
        underReplicated: 0,
        lostReplicas: 1,
        untracked: 1,
        orphans: 1,
        surplus: 0,
      });
      expect(broken.examples.corrupt[0]).to.contain(c1.id);
      expect(broken.examples.lostReplicas[0]).to.contain(c2.id);
      expect(broken.examples.untracked[0]).to.equal(`${c3.id}@${other}`);
      expect(broken.examples.orphans[0]).to.equal(`${orphan}@${other}`);

      await repairNow();
      await repairNow();
      const after = await h.fsck();
      // c2 had one copy and it is gone: nothing can bring it back, and fsck says so.
      expect(after.counts).to.include({
        corrupt: 0,
        missing: 1,
        lostReplicas: 0,
        untracked: 0,
        orphans: 0,
        surplus: 0,
        misplaced: 0,
      });
      expect(after.examples.missing).to.deep.equal([c2.id]);
      expect(h.chunkFile(other, orphan)).to.equal(undefined);
    });
  });
});
