// Proves the Docker runtime against a real engine: 3 node containers from the image built off a
// local base; a `docker kill`ed node is detected and restarted with its chunks, a `docker rm -f`ed
// one is recreated on its volume with its chunks, and a restarted manager adopts the running
// containers without duplicates or port clashes.
import { createHash, randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { newChunkId } from '../../lib/ids.js';
import { createLogger } from '../../lib/logger.js';
import { NodeClient } from '../../lib/node-client.js';
import { loadManagerConfig, type ManagerConfig } from '../../manager/config.js';
import { type ManagerHandle, startManager } from '../../manager/manager.js';
import { dockerClient, LABEL_CLUSTER, LABEL_NODE } from '../../manager/runtime/docker.js';
import { buildNodeImage } from '../../manager/runtime/docker-image.js';
import { waitForValue } from '../helpers/cluster.js';
import { engines, type TestDb } from '../helpers/db.js';

const enabled = process.env.S3DFS_TEST_DOCKER === '1';
// Private to this file.
const POOL = '19300-19309';
const DOWN_AFTER_MS = 1500;

if (!enabled && process.env.CI) {
  describe('manager with the Docker runtime', () => {
    it('runs in CI', () => {
      throw new Error('CI is set but S3DFS_TEST_DOCKER is not 1: .ci/run must start dockerd (start_docker)');
    });
  });
} else {
  (enabled ? describe : describe.skip)('manager with the Docker runtime (S3DFS_TEST_DOCKER=1)', function () {
    this.timeout(180_000);
    const docker = dockerClient(process.env.S3DFS_DOCKER_HOST);
    const clusterName = `s3dfs-e2e-${process.pid}-${randomBytes(3).toString('hex')}`;
    const image = 's3dfs-storage-node:e2e';
    let t: TestDb;
    let config: ManagerConfig;
    let m: ManagerHandle;
    const chunks = new Map<string, { id: string; body: Buffer }>();

    const clusterContainers = () =>
      docker.listContainers({ all: true, filters: { label: [`${LABEL_CLUSTER}=${clusterName}`] } });
    const status = (id: string) => m.ops.node(id).status;
    const client = (id: string) => {
      const n = m.ring().nodes.find((x) => x.id === id)!;
      return new NodeClient({
        baseUrl: `http://${n.host}:${n.port}`,
        secret: m.clusterSecret,
        timeoutMs: 5000,
      });
    };
    const readBack = async (id: string): Promise<Buffer> => {
      const got = await client(id).get(chunks.get(id)!.id);
      const parts: Buffer[] = [];
      for await (const p of got.stream) parts.push(p as Buffer);
      return Buffer.concat(parts);
    };
    const eventsTo = async (id: string, to: string) =>
      (await m.ops.events(100, id)).filter((e) => e.to === to).length;

    before(async () => {
      await buildNodeImage({ docker, image, baseImage: process.env.S3DFS_DOCKER_BASE_IMAGE });
      t = await engines()[0].open();
      config = loadManagerConfig({
        S3DFS_DATA_DIR: t.dataDir,
        S3DFS_RUNTIME: 'docker',
        S3DFS_DOCKER_IMAGE: image,
        S3DFS_CLUSTER_NAME: clusterName,
        S3DFS_ADMIN_PORT: '0',
        S3DFS_PORT_POOL: POOL,
        S3DFS_NODES: '3',
        S3DFS_HEALTH_INTERVAL_MS: '200',
        S3DFS_PROBE_TIMEOUT_MS: '500',
        S3DFS_DOWN_AFTER_MS: String(DOWN_AFTER_MS),
        S3DFS_CHUNK_SIZE: '1MiB',
        ...(process.env.S3DFS_DOCKER_HOST ? { S3DFS_DOCKER_HOST: process.env.S3DFS_DOCKER_HOST } : {}),
      });
      m = await startManager({ config, db: t.db, logger: createLogger('test') });
    });

    after(async () => {
      await m?.stop();
      for (const c of await clusterContainers()) await docker.getContainer(c.Id).remove({ force: true });
      const vols = await docker.listVolumes({ filters: { label: [`${LABEL_CLUSTER}=${clusterName}`] } });
      for (const v of vols.Volumes ?? []) await docker.getVolume(v.Name).remove();
      await t?.close();
    });

    it('starts 3 labelled node containers, each on its pool port, all up', async () => {
      await waitForValue(
        '3 nodes up',
        async () => m.ring().nodes.filter((n) => n.status === 'up').length === 3,
        30_000,
      );
      const containers = await clusterContainers();
      expect(containers).to.have.length(3);
      for (const c of containers) {
        const node = m.ring().nodes.find((n) => n.id === c.Labels[LABEL_NODE])!;
        expect(c.Names).to.deep.equal([`/${node.id}`]);
        expect(c.Ports.some((p) => p.PublicPort === node.port && p.IP === '127.0.0.1')).to.equal(true);
      }
      for (const node of m.ring().nodes) {
        const body = randomBytes(4096);
        const id = newChunkId();
        await client(node.id).put(id, body, body.length, createHash('sha256').update(body).digest('hex'));
        chunks.set(node.id, { id, body });
      }
    });

    it('detects a docker kill, restarts the container and keeps its chunks', async () => {
      const id = m.ring().nodes[0].id;
      const before = (await docker.getContainer(id).inspect()).Id;
      await docker.getContainer(id).kill();
      await waitForValue('down event', async () => (await eventsTo(id, 'down')) > 0, DOWN_AFTER_MS + 10_000);
      await waitForValue('up again', async () => status(id) === 'up', 30_000);
      expect((await docker.getContainer(id).inspect()).Id).to.equal(before);
      expect(m.ops.node(id).restarts).to.be.at.least(1);
      expect((await readBack(id)).equals(chunks.get(id)!.body)).to.equal(true);
    });

    it('recreates a removed container on its volume with its chunks', async () => {
      const id = m.ring().nodes[1].id;
      const before = (await docker.getContainer(id).inspect()).Id;
      await docker.getContainer(id).remove({ force: true });
      await waitForValue('down event', async () => (await eventsTo(id, 'down')) > 0, DOWN_AFTER_MS + 10_000);
      await waitForValue('up again', async () => status(id) === 'up', 30_000);
      expect((await docker.getContainer(id).inspect()).Id).to.not.equal(before);
      expect((await readBack(id)).equals(chunks.get(id)!.body)).to.equal(true);
    });

    it('adopts the running containers after a manager restart: no duplicates, no port clashes', async () => {
      const before = (await clusterContainers()).map((c) => c.Id).sort();
      const ports = m
        .ring()
        .nodes.map((n) => `${n.id}:${n.port}`)
        .sort();
      await m.stop();
      m = await startManager({ config, db: t.db, logger: createLogger('test') });
      await waitForValue(
        '3 nodes up',
        async () => m.ring().nodes.filter((n) => n.status === 'up').length === 3,
        30_000,
      );
      const after = await clusterContainers();
      expect(after.map((c) => c.Id).sort()).to.deep.equal(before);
      expect(after.every((c) => c.State === 'running')).to.equal(true);
      expect(
        m
          .ring()
          .nodes.map((n) => `${n.id}:${n.port}`)
          .sort(),
      ).to.deep.equal(ports);
      expect(Number((await t.db('nodes').count({ n: '*' }))[0].n)).to.equal(3);
      for (const id of chunks.keys())
        expect((await readBack(id)).equals(chunks.get(id)!.body)).to.equal(true);
    });
  });
}
