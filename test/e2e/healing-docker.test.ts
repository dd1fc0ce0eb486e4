// Self-healing on the Docker runtime, against a real engine: 4 node containers from the image built
// off a local base. A `docker kill`ed node under a steady read/write load costs the client nothing
// beyond the SDK's own retries and the cluster returns to R replicas by itself; a node whose
// container and volume are both removed is recreated by the manager on a fresh volume and every
// chunk it held is restored. After each: fsck clean, byte-exact reads against the test's digests.
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { loadGatewayConfig } from '../../gateway/config.js';
import { type RunningGateway, startGateway } from '../../gateway/main.js';
import { createLogger } from '../../lib/logger.js';
import { loadManagerConfig } from '../../manager/config.js';
import { type ManagerHandle, startManager } from '../../manager/manager.js';
import { dockerClient, LABEL_CLUSTER, volumeName } from '../../manager/runtime/docker.js';
import { buildNodeImage } from '../../manager/runtime/docker-image.js';
import { waitFor } from '../helpers/cluster.js';
import { engines, type TestDb } from '../helpers/db.js';
import { ACCESS_KEY, HEAL_ENV, HealHarness, SECRET_KEY, s3client } from '../helpers/heal-harness.js';

const enabled = process.env.S3DFS_TEST_DOCKER === '1';
// Private to this file.
const POOL = '26200-26299';
const CHUNK = 64 * 1024;
const BUCKET = 'heal-docker';

const statusOf = (err: unknown) => (err as { statusCode?: number })?.statusCode;

if (!enabled && process.env.CI) {
  describe('self-healing with the Docker runtime', () => {
    it('runs in CI', () => {
      throw new Error('CI is set but S3DFS_TEST_DOCKER is not 1: .ci/run must start dockerd (start_docker)');
    });
  });
} else {
  (enabled ? describe : describe.skip)(
    'self-healing with the Docker runtime (S3DFS_TEST_DOCKER=1)',
    function () {
      this.timeout(180_000);
      const docker = dockerClient(process.env.S3DFS_DOCKER_HOST);
      const clusterName = `s3dfs-heal-${process.pid}-${randomBytes(3).toString('hex')}`;
      const image = 's3dfs-storage-node:heal-e2e';
      const log = createLogger('test');
      let t: TestDb;
      let m: ManagerHandle;
      let gateway: RunningGateway;
      let h: HealHarness;

      const nodeIds = () => [...m.monitor.nodes.keys()];
      const status = (id: string) => m.monitor.nodes.get(id)!.row.status;
      const labelled = { filters: { label: [`${LABEL_CLUSTER}=${clusterName}`] } };

      before(async () => {
        await buildNodeImage({ docker, image, baseImage: process.env.S3DFS_DOCKER_BASE_IMAGE });
        t = await engines()[0].open();
        const env: Record<string, string> = {
          ...HEAL_ENV,
          S3DFS_DATA_DIR: t.dataDir,
          S3DFS_RUNTIME: 'docker',
          S3DFS_DOCKER_IMAGE: image,
          S3DFS_CLUSTER_NAME: clusterName,
          S3DFS_ADMIN_PORT: '0',
          S3DFS_S3_PORT: '0',
          S3DFS_PORT_POOL: POOL,
          S3DFS_NODES: '4',
          S3DFS_HEALTH_INTERVAL_MS: '200',
          S3DFS_PROBE_TIMEOUT_MS: '500',
          S3DFS_DOWN_AFTER_MS: '1000',
          S3DFS_RING_REFRESH_MS: '100',
          S3DFS_CHUNK_SIZE: String(CHUNK),
          S3DFS_ACCESS_KEY: ACCESS_KEY,
          S3DFS_SECRET_KEY: SECRET_KEY,
          ...(process.env.S3DFS_DOCKER_HOST ? { S3DFS_DOCKER_HOST: process.env.S3DFS_DOCKER_HOST } : {}),
        };
        m = await startManager({ config: loadManagerConfig(env), db: t.db, logger: log });
        await waitFor(() => m.ring().nodes.filter((n) => n.status === 'up').length === 4, 60_000, 100);
        gateway = await startGateway({
          config: loadGatewayConfig(env),
          db: t.db,
          log,
          ringSource: async () => m.ring(),
          clusterSecret: m.clusterSecret,
        });
        await gateway.cluster.refresh();
        h = new HealHarness({
          db: t.db,
          manager: () => m,
          client: () => s3client(gateway.url),
          bucket: BUCKET,
        });
        await h.p.client().send(new CreateBucketCommand({ Bucket: BUCKET }));
        for (let i = 0; i < 16; i++) await h.put(`seed/${i}`, CHUNK * 2 + 1111 * i);
      });

      after(async () => {
        const ids = m ? nodeIds() : [];
        await gateway?.stop();
        await m?.stop();
        for (const c of await docker.listContainers({ all: true, ...labelled }))
          await docker.getContainer(c.Id).remove({ force: true });
        const vols = await docker.listVolumes(labelled);
        const names = new Set([...(vols.Volumes ?? []).map((v) => v.Name), ...ids.map(volumeName)]);
        for (const name of names) {
          await docker
            .getVolume(name)
            .remove()
            .catch((err) => {
              if (statusOf(err) !== 404) throw err;
            });
        }
        await t?.close();
      });

      it('starts a clean cluster of 4 containers', async () => {
        expect(await docker.listContainers(labelled)).to.have.length(4);
        const report = await h.waitClean();
        expect(report.replicas).to.equal(report.chunks * 3);
      });

      it('survives docker kill of a node under load and returns to R replicas by itself', async () => {
        const victim = nodeIds()[1];
        const errors: string[] = [];
        let killedAt = 0;
        let i = 0;
        let ops = 0;
        // A steady load: a write and a read of an older object, back to back, until 4 s after the kill.
        while (killedAt === 0 || Date.now() - killedAt < 4000) {
          if (i === 5) {
            await docker.getContainer(victim).kill();
            killedAt = Date.now();
          }
          try {
            await h.put(`load/${i}`, CHUNK + 7919 * (i % 5));
            const keys = [...h.digests.keys()];
            const key = keys[(i * 7) % keys.length];
            expect(await h.read(key), key).to.equal(h.digests.get(key));
            ops += 2;
          } catch (err) {
            errors.push(String(err));
          }
          i++;
        }
        expect(errors).to.deep.equal([]);
        expect(ops).to.be.greaterThan(20);
        // The manager saw it and brought it back (or Docker's restart policy did), with no help.
        await waitFor(
          async () => (await m.ops.events(200, victim)).some((e) => e.to === 'suspect' || e.to === 'down'),
          15_000,
          100,
        );
        await waitFor(() => status(victim) === 'up', 30_000, 100);
        await h.waitClean(60_000);
        const counts: { n: string | number }[] = await t
          .db('chunk_replicas')
          .groupBy('chunk_id')
          .select(t.db.raw('count(*) as n'));
        expect(counts.every((r) => Number(r.n) === 3)).to.equal(true);
        await h.readAll();
      });

      it('restores every chunk of a node whose container and volume are both lost', async () => {
        const victim = nodeIds()[2];
        const held: string[] = await t.db('chunk_replicas').where({ node_id: victim }).pluck('chunk_id');
        expect(held.length).to.be.greaterThan(20);
        const before = (await docker.getContainer(victim).inspect()).Id;
        await docker.getContainer(victim).stop({ t: 1 });
        // The volume goes with its container. The manager may recreate the container on the old
        // volume in between (it heals on the first failed probe): then both go again.
        await waitFor(
          async () => {
            await docker
              .getContainer(victim)
              .remove({ force: true })
              .catch((err) => {
                if (statusOf(err) !== 404) throw err;
              });
            try {
              await docker.getVolume(volumeName(victim)).remove();
              return true;
            } catch (err) {
              if (statusOf(err) === 404) return true;
              if (statusOf(err) === 409) return false; // in use by a recreated container
              throw err;
            }
          },
          20_000,
          50,
        );
        // The manager recreates the container on a fresh volume; the node comes back empty.
        await waitFor(
          async () => {
            const c = await docker
              .getContainer(victim)
              .inspect()
              .catch(() => undefined);
            return c !== undefined && c.Id !== before && c.State.Running && status(victim) === 'up';
          },
          30_000,
          100,
        );
        const events = await m.ops.events(200, victim);
        expect(events.some((e) => /recreated on its volume/.test(e.reason))).to.equal(true);
        // Every chunk it held is back on it (it is still the ring's choice), and R everywhere.
        await waitFor(
          async () => {
            const inv = new Set(await h.inventory(victim).catch(() => [] as string[]));
            return held.every((id) => inv.has(id));
          },
          60_000,
          250,
        );
        await h.waitClean(60_000);
        const healing = (await h.json<{ healing: { repair: { done: number } } }>('/api/cluster')).healing;
        expect(healing.repair.done).to.be.at.least(held.length);
        await h.readAll();
      });
    },
  );
}
