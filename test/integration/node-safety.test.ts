// Proves the cluster never holds fewer copies than its status says, on real storage-node processes:
// a node on a nearly full tmpfs leaves placement (and repair, and rebalance) with an event and
// rejoins when space returns; a write one node refused is under-replicated at once and topped up on
// another node; a chunk directory wiped under a running node is noticed within seconds (not at the
// hourly inventory); and right after a manager restart no chunk is reported missing.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { createLogger } from '../../lib/logger.js';
import { loadManagerConfig } from '../../manager/config.js';
import type { ClusterKpis } from '../../manager/kpis.js';
import { startManager } from '../../manager/manager.js';
import type { ProcessRuntime } from '../../manager/runtime/process.js';
import { startTestCluster, type TestCluster, waitFor } from '../helpers/cluster.js';
import { HEAL_ENV, HealHarness } from '../helpers/heal-harness.js';

const CHUNK = 64 * 1024;
const BUCKET = 'safety';
const MiB = 1024 ** 2;
/** The victim's tmpfs: small enough to fill in a moment. */
const TMPFS_BYTES = 16 * MiB;

class Harness extends HealHarness {
  constructor(readonly c: TestCluster) {
    super({ db: c.db, manager: () => c.manager, client: () => c.client(), bucket: BUCKET });
  }

  nodeDir(id: string): string {
    return path.join(this.c.dataDir, 'nodes', id);
  }

  cluster(): Promise<ClusterKpis> {
    return this.json<ClusterKpis>('/api/cluster');
  }

  /** Nodes holding a replica row of any chunk of these keys. */
  async holdersOf(prefix: string): Promise<Set<string>> {
    const ids: string[] = await this.c
      .db('chunk_replicas as r')
      .join('chunks as c', 'c.id', 'r.chunk_id')
      .join('objects as o', 'o.id', 'c.object_id')
      .where('o.bucket', BUCKET)
      .andWhere('o.key', 'like', `${prefix}%`)
      .distinct('r.node_id')
      .pluck('r.node_id');
    return new Set(ids);
  }

  /** Restarts a node's process on a fresh tmpfs mounted over its data dir. */
  async moveToTmpfs(id: string): Promise<string> {
    const runtime = this.c.manager.runtime as ProcessRuntime;
    const dir = this.nodeDir(id);
    await runtime.stop(id);
    mkdirSync(dir, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_BYTES}`, 'tmpfs', dir]);
    const state = this.c.manager.monitor.nodes.get(id)!;
    await runtime.start({ id, port: state.row.port });
    // A probe answered by the new process (the old one's status may still read up).
    const started = Date.now();
    await waitFor(() => state.row.status === 'up' && (state.lastOkAt ?? 0) > started, 15_000);
    return dir;
  }

  async unmount(id: string): Promise<void> {
    await (this.c.manager.runtime as ProcessRuntime).stop(id).catch(() => {});
    execFileSync('umount', ['-l', this.nodeDir(id)]);
  }
}

/** Fills a tmpfs until `leaveBytes` remain free. */
function fill(dir: string, leaveBytes: number): string {
  const file = path.join(dir, 'filler');
  const fs = statfsSync(dir);
  const free = fs.bavail * fs.bsize;
  writeFileSync(file, Buffer.alloc(Math.max(0, free - leaveBytes)));
  return file;
}

describe('never silently less safe (process runtime, PGlite)', function () {
  this.timeout(120_000);

  describe('a node whose disk fills up (reserve 4 MiB)', () => {
    let h: Harness;
    let victim: string;
    let mounted = false;

    before(async () => {
      const c = await startTestCluster({
        portBase: 23000,
        nodes: 4,
        chunkSize: CHUNK,
        env: { ...HEAL_ENV, S3DFS_NODE_FREE_RESERVE: '4MiB' },
      });
      h = new Harness(c);
      await c.client().send(new CreateBucketCommand({ Bucket: BUCKET }));
      victim = h.upIds()[0];
      await h.moveToTmpfs(victim);
      mounted = true;
    });
    after(async () => {
      if (mounted) await h.unmount(victim);
      await h?.c.stop();
    });

    it('leaves placement with an event, keeps every new chunk at R copies elsewhere, and rejoins', async () => {
      const dir = h.nodeDir(victim);
      const filler = fill(dir, 2 * MiB);
      await waitFor(() => h.c.manager.monitor.nodes.get(victim)!.row.full, 10_000);

      const events = await h.json<{ events: { to: string; from: string; reason: string }[] }>(
        `/api/events?node=${victim}`,
      );
      const fullEvent = events.events.find((e) => e.to === 'disk-full');
      expect(fullEvent?.reason).to.match(/reserve 4\.0 MiB/);
      const cluster = await h.cluster();
      expect(cluster.nodesFull).to.equal(1);
      expect(
        (await h.json<{ nodes: { id: string; full: boolean }[] }>('/api/nodes')).nodes.find(
          (n) => n.id === victim,
        )?.full,
      ).to.equal(true);
      // Placement says why the node is passed over, for a chunk whose ring walk meets it.
      const placement = await h.json<{ skipped: { node: { id: string }; reason: string }[] }>(
        `/api/placement?chunk=00000000000000000000000000000000&count=4`,
      );
      expect(placement.skipped.find((s) => s.node.id === victim)?.reason).to.match(/full/);

      await h.c.gateway.cluster.refresh();
      for (let i = 0; i < 10; i++) await h.put(`new/${i}`, CHUNK * 3 + 100);
      expect([...(await h.holdersOf('new/'))]).to.not.include(victim);
      expect((await h.cluster()).underReplicatedChunks).to.equal(0);
      await h.readAll();

      rmSync(filler);
      await waitFor(() => !h.c.manager.monitor.nodes.get(victim)!.row.full, 10_000);
      const after = await h.json<{ events: { to: string; from: string }[] }>(`/api/events?node=${victim}`);
      expect(after.events.some((e) => e.from === 'disk-full' && e.to === 'up')).to.equal(true);
      await h.c.gateway.cluster.refresh();
      for (let i = 0; i < 10; i++) await h.put(`back/${i}`, CHUNK * 3 + 100);
      expect([...(await h.holdersOf('back/'))]).to.include(victim);
      await h.waitClean();
    });
  });

  describe('a write one node refuses (no reserve)', () => {
    let h: Harness;
    let victim: string;
    let mounted = false;

    before(async () => {
      const c = await startTestCluster({
        portBase: 23100,
        nodes: 4,
        chunkSize: CHUNK,
        env: { ...HEAL_ENV, S3DFS_NODE_FREE_RESERVE: '0', S3DFS_HEAL_INTERVAL_MS: '0' },
      });
      h = new Harness(c);
      await c.client().send(new CreateBucketCommand({ Bucket: BUCKET }));
      victim = h.upIds()[0];
      await h.moveToTmpfs(victim);
      mounted = true;
    });
    after(async () => {
      if (mounted) await h.unmount(victim);
      await h?.c.stop();
    });

    it('is under-replicated at once and repair copies it to a node with room, not the refuser', async () => {
      fill(h.nodeDir(victim), 0);
      for (let i = 0; i < 6; i++) await h.put(`short/${i}`, CHUNK * 2);
      const short = await h.shortChunks();
      expect(short).to.be.greaterThan(0); // the refused copies
      expect((await h.cluster()).underReplicatedChunks).to.equal(short);
      // Each short write queued exactly its own chunks for repair, with the copies it has left.
      const queued = await h.c.db('repair_queue').select('priority');
      expect(queued.length).to.equal(short);
      expect(queued.every((q: { priority: number }) => q.priority === 2)).to.equal(true);
      // One pass, asked for: with the refuser first in line, the copies must go to the next node.
      await h.api('/api/repair', { method: 'POST' });
      await h.c.manager.healer.settled();
      expect(await h.shortChunks()).to.equal(0);
      expect((await h.cluster()).underReplicatedChunks).to.equal(0);
      await h.readAll();
    });
  });

  describe('a wiped volume and a manager restart (hourly inventory)', () => {
    let h: Harness;

    before(async () => {
      const c = await startTestCluster({
        portBase: 23200,
        nodes: 4,
        chunkSize: CHUNK,
        env: { ...HEAL_ENV, S3DFS_INVENTORY_INTERVAL_MS: '3600000' },
      });
      h = new Harness(c);
      await c.client().send(new CreateBucketCommand({ Bucket: BUCKET }));
      for (let i = 0; i < 8; i++) await h.put(`seed/${i}`, CHUNK * 2 + 10);
      await h.waitClean();
    });
    after(async () => {
      await h?.c.stop();
    });

    it('notices a chunk directory wiped under a running node within seconds and heals', async () => {
      const victim = h.upIds()[0];
      const held = await h.c.db('chunk_replicas').where({ node_id: victim }).count({ n: '*' });
      expect(Number(held[0].n)).to.be.greaterThan(0);
      const started = Date.now();
      rmSync(path.join(h.nodeDir(victim), 'chunks'), { recursive: true, force: true });
      // The status moves (copies dropped, then made again) long before the hourly walk.
      await waitFor(
        async () => (await h.cluster()).underReplicatedChunks > 0 || (await h.shortChunks()) > 0,
        10_000,
        50,
      );
      expect(Date.now() - started).to.be.lessThan(10_000);
      const events = await h.json<{ events: { reason: string }[] }>(`/api/events?node=${victim}`);
      expect(events.events.some((e) => /volume changed/.test(e.reason))).to.equal(true);
      await h.waitClean();
      await h.readAll();
    });

    it('reports no chunk missing while the nodes answer their first probes after a manager restart', async () => {
      const { c } = h;
      await c.manager.stop();
      const env = {
        ...HEAL_ENV,
        S3DFS_DATA_DIR: c.dataDir,
        S3DFS_NODES: '4',
        S3DFS_CHUNK_SIZE: String(CHUNK),
        S3DFS_PORT_POOL: '23200-23299',
        S3DFS_ADMIN_PORT: '0',
        S3DFS_HEALTH_INTERVAL_MS: '200',
        S3DFS_DOWN_AFTER_MS: '5000',
        S3DFS_INVENTORY_INTERVAL_MS: '3600000',
      };
      const manager = await startManager({
        config: loadManagerConfig(env),
        db: c.db,
        logger: createLogger('test'),
      });
      try {
        const samples: ClusterKpis[] = [];
        for (;;) {
          const res = await fetch(`${manager.url}/api/cluster`, {
            headers: { authorization: `Bearer ${manager.adminToken}` },
          });
          const k = (await res.json()) as ClusterKpis;
          samples.push(k);
          if (k.nodesUp === k.nodesTotal) break;
          await new Promise((r) => setTimeout(r, 20));
        }
        expect(samples[0].starting, 'first sample is taken before the nodes answer').to.equal(true);
        expect(samples[0].unconfirmedChunks).to.be.greaterThan(0);
        for (const k of samples) {
          expect(k.missingChunks, JSON.stringify(k)).to.equal(0);
          expect(k.underReplicatedChunks, JSON.stringify(k)).to.equal(0);
        }
        expect(samples.at(-1)!.fullChunks).to.equal(samples.at(-1)!.chunks);
      } finally {
        await manager.stop();
      }
    });
  });
});
