// Healing faults that need more than one process: a standalone gateway process SIGKILLed in the
// middle of a PUT (no visible object, its chunks collected as orphans; needs Postgres, since PGlite
// is single-process) and a manager stopped in the middle of a throttled repair and started again on
// the same database and data dir (the repair resumes and completes). After each: fsck clean, R
// replicas per chunk, every object byte-exact against digests kept by the test.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createInterface } from 'node:readline';
import {
  CreateBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { loadGatewayConfig } from '../../gateway/config.js';
import { type RunningGateway, startGateway } from '../../gateway/main.js';
import { type Knex, openDb } from '../../lib/db.js';
import { createLogger } from '../../lib/logger.js';
import { nodeFlags } from '../../lib/node-flags.js';
import { loadManagerConfig } from '../../manager/config.js';
import { type ManagerHandle, startManager } from '../../manager/manager.js';
import type { ProcessRuntime } from '../../manager/runtime/process.js';
import { startTestCluster, type TestCluster, waitFor } from '../helpers/cluster.js';
import { engines, type TestDb, tempDir, testPostgresUrl } from '../helpers/db.js';
import { ACCESS_KEY, HEAL_ENV, HealHarness, SECRET_KEY, s3client, sha256 } from '../helpers/heal-harness.js';
import { binPath } from '../helpers/node-process.js';
import { keyPath, signHeaders } from '../helpers/s3raw.js';

const CHUNK = 64 * 1024;
const BUCKET = 'faults';

/** A `s3dfs gateway` process on the shared database, parsed from its banner. */
interface GatewayProcess {
  endpoint: string;
  proc: ChildProcess;
  exited: Promise<unknown>;
  output(): string;
}

async function spawnGateway(env: Record<string, string>): Promise<GatewayProcess> {
  const proc = spawn(process.execPath, [...nodeFlags, binPath, 'gateway'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stderr!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  const lines = createInterface({ input: proc.stdout! });
  const endpoint = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`s3dfs gateway printed no banner in time:\n${out}`));
    }, 30_000);
    lines.on('line', (line) => {
      out += `${line}\n`;
      const m = /^s3dfs gateway on (http:\/\/\S+) /.exec(line);
      if (!m) return;
      clearTimeout(timer);
      resolve(m[1]);
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`s3dfs gateway exited (${code}) before its banner:\n${out}`));
    });
  });
  return { endpoint, proc, exited, output: () => out };
}

describe('healing under faults (process runtime)', function () {
  this.timeout(150_000);

  // PGlite is one process's database: a second gateway process needs the Postgres server.
  (testPostgresUrl ? describe : describe.skip)('a gateway process killed mid-PUT (Postgres)', () => {
    let t: TestDb;
    let c: TestCluster;
    let h: HealHarness;
    let gw: GatewayProcess | undefined;
    let gwDir: string;

    before(async () => {
      t = await engines()
        .find((e) => e.name === 'postgres')!
        .open();
      c = await startTestCluster({
        portBase: 26000,
        nodes: 4,
        chunkSize: CHUNK,
        databaseUrl: t.databaseUrl,
        // An hour's orphan grace: what the killed gateway left must go back through its intents.
        env: { ...HEAL_ENV, S3DFS_ORPHAN_GRACE_MS: '3600000' },
      });
      h = new HealHarness({ db: c.db, manager: () => c.manager, client: () => c.client(), bucket: BUCKET });
      await c.client().send(new CreateBucketCommand({ Bucket: BUCKET }));
      for (let i = 0; i < 6; i++) await h.put(`seed/${i}`, CHUNK * 2 + 333 * i);
      gwDir = tempDir('s3dfs-gw-');
      gw = await spawnGateway({
        DATABASE_URL: t.databaseUrl!,
        S3DFS_DATA_DIR: gwDir,
        S3DFS_MANAGER_URL: c.manager.url,
        S3DFS_ADMIN_TOKEN: c.manager.adminToken,
        S3DFS_S3_PORT: '0',
        S3DFS_ACCESS_KEY: ACCESS_KEY,
        S3DFS_SECRET_KEY: SECRET_KEY,
        S3DFS_CHUNK_SIZE: String(CHUNK),
        S3DFS_RING_REFRESH_MS: '100',
        S3DFS_WRITER_LEASE_MS: '1000',
      });
    });

    after(async () => {
      if (gw && gw.proc.exitCode === null && gw.proc.signalCode === null) {
        gw.proc.kill('SIGKILL');
        await gw.exited;
      }
      await c?.stop();
      await t?.close();
      if (gwDir) rmSync(gwDir, { recursive: true, force: true });
    });

    it('leaves no visible object and collects the chunks it had written', async () => {
      const viaGw = s3client(gw!.endpoint);
      // The spawned gateway serves the same cluster: a whole PUT through it is visible everywhere.
      const done = randomBytes(CHUNK * 3 + 17);
      await viaGw.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'via-gw/whole', Body: done }));
      h.digests.set('via-gw/whole', sha256(done));
      expect(await h.read('via-gw/whole')).to.equal(h.digests.get('via-gw/whole'));
      expect(await h.strays()).to.deep.equal([]);

      // A 16 MiB PUT of which only the first 2 MiB arrive before the gateway is SIGKILLed.
      const key = 'via-gw/torn';
      const total = 16 * 1024 * 1024;
      const headers = await signHeaders(
        { endpoint: gw!.endpoint, accessKey: ACCESS_KEY, secretKey: SECRET_KEY },
        { method: 'PUT', path: keyPath(BUCKET, key), headers: { 'content-length': String(total) } },
        { payload: 'UNSIGNED-PAYLOAD' },
      );
      const url = new URL(gw!.endpoint);
      const req = http.request({
        host: url.hostname,
        port: url.port,
        method: 'PUT',
        path: keyPath(BUCKET, key),
        headers,
        agent: false,
      });
      const outcome = new Promise<string>((resolve) => {
        req.on('error', (err) => resolve(`error: ${err.message}`));
        req.on('response', (res) => resolve(`response ${res.statusCode}`));
      });
      const sent = 2 * 1024 * 1024;
      for (let off = 0; off < sent; off += CHUNK) {
        if (!req.write(randomBytes(CHUNK))) await new Promise((r) => req.once('drain', r));
      }
      // Wait for the gateway to have stored chunks of this upload on the nodes: files no chunk row knows.
      let strays: string[] = [];
      await waitFor(
        async () => {
          strays = await h.strays();
          return new Set(strays.map((s) => s.split('@')[0])).size >= 8;
        },
        20_000,
        100,
      );
      gw!.proc.kill('SIGKILL');
      await gw!.exited;
      expect(await outcome).to.match(/^error: /);
      req.destroy();

      // Nothing visible: HEAD 404, not listed; the objects around it are untouched.
      const head = await c
        .client()
        .send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }))
        .then(
          () => 200,
          (err: { $metadata?: { httpStatusCode?: number } }) => err.$metadata?.httpStatusCode,
        );
      expect(head).to.equal(404);
      const listed = await c.client().send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'via-gw/' }));
      expect((listed.Contents ?? []).map((o) => o.Key)).to.deep.equal(['via-gw/whole']);
      const rows = await c.db('objects').where({ bucket: BUCKET, key }).count({ n: '*' });
      expect(Number(rows[0].n)).to.equal(0);

      // Once the dead gateway's lease has run out, the manager deletes every file the torn upload
      // left, through the write intents it recorded (long before the orphan grace).
      const torn = new Set(strays.map((s) => s.split('@')[0]));
      await waitFor(
        async () => {
          const left = await h.strays();
          return left.length === 0;
        },
        15_000,
        250,
      );
      for (const n of h.upIds()) {
        const inv = await h.inventory(n);
        expect(inv.filter((id) => torn.has(id))).to.deep.equal([]);
      }
      const healing = (await h.json<{ healing: { gc: { leftoversDeleted: number } } }>('/api/cluster'))
        .healing;
      expect(healing.gc.leftoversDeleted).to.be.at.least(torn.size);
      await h.waitClean();
      await h.readAll();
    });
  });

  describe('a manager restarted during a repair (PGlite)', () => {
    const dataDir = tempDir('s3dfs-mgr-restart-');
    const env: Record<string, string> = {
      ...HEAL_ENV,
      S3DFS_DATA_DIR: dataDir,
      S3DFS_NODES: '4',
      S3DFS_CHUNK_SIZE: String(CHUNK),
      S3DFS_PORT_POOL: '26100-26199',
      S3DFS_ADMIN_PORT: '0',
      S3DFS_S3_PORT: '0',
      S3DFS_HEALTH_INTERVAL_MS: '200',
      S3DFS_DOWN_AFTER_MS: '1000',
      S3DFS_RING_REFRESH_MS: '100',
      S3DFS_ACCESS_KEY: ACCESS_KEY,
      S3DFS_SECRET_KEY: SECRET_KEY,
      // ~6 MiB to copy back at 1 MiB/s: the repair takes several seconds.
      S3DFS_REPAIR_BYTES_PER_SEC: '1MiB',
      S3DFS_REPAIR_CONCURRENCY: '2',
    };
    let db: Knex;
    let m: ManagerHandle | undefined;
    let gateway: RunningGateway | undefined;
    let h: HealHarness;
    const log = createLogger('test');
    const nodeDir = (id: string) => path.join(dataDir, 'nodes', id);

    const managerUp = async () => {
      m = await startManager({ config: loadManagerConfig(env), db, logger: log });
      await waitFor(() => m!.ring().nodes.filter((n) => n.status === 'up').length === 4, 20_000);
    };

    before(async () => {
      db = await openDb({ dataDir });
      await managerUp();
      gateway = await startGateway({
        config: loadGatewayConfig(env),
        db,
        log,
        // Whichever manager is running now.
        ringSource: async () => m!.ring(),
        clusterSecret: m!.clusterSecret,
      });
      await gateway.cluster.refresh();
      h = new HealHarness({ db, manager: () => m!, client: () => s3client(gateway!.url), bucket: BUCKET });
      await h.p.client().send(new CreateBucketCommand({ Bucket: BUCKET }));
      for (let i = 0; i < 32; i++) await h.put(`big/${i}`, CHUNK * 4 - 1000 * i);
    });

    after(async () => {
      await gateway?.stop();
      await m?.stop();
      await db?.destroy();
      rmSync(dataDir, { recursive: true, force: true });
    });

    it('resumes the repair after the restart and completes it', async () => {
      await h.waitClean();
      const victim = h.upIds()[1];
      const held: string[] = await db('chunk_replicas').where({ node_id: victim }).pluck('chunk_id');
      expect(held.length).to.be.greaterThan(60);
      // The victim loses everything: the inventory walk finds the rows without files, repair copies.
      const runtime = m!.runtime as ProcessRuntime;
      await runtime.stop(victim);
      rmSync(nodeDir(victim), { recursive: true, force: true });
      await runtime.start({ id: victim, port: m!.monitor.nodes.get(victim)!.row.port });
      const onVictim = async () => new Set(await h.inventory(victim).catch(() => [] as string[]));
      await waitFor(
        async () =>
          m!.monitor.nodes.get(victim)!.row.status === 'up' &&
          (await h.inventory(victim).then(
            () => true,
            () => false,
          )),
        15_000,
      );
      // Mid-repair: some chunks are back, many are not.
      await waitFor(async () => (await onVictim()).size >= 5, 30_000, 100);
      const repairedBefore = m!.healer.progress().repair.done;
      const restoredAtCall = (await onVictim()).size;
      const started = Date.now();
      await m!.stop();
      const stopMs = Date.now() - started;
      m = undefined;
      // Count straight from the victim's data dir now that its process is stopped with the manager.
      const restoredAtStop = held.filter((id) => chunkOnDisk(nodeDir(victim), id)).length;
      expect(restoredAtStop, 'restored before the stop').to.be.lessThan(held.length * 0.8);
      // Stopping finishes the copies in flight (REPAIR_CONCURRENCY=2), not the rest of the batch.
      expect(restoredAtStop - restoredAtCall, `copies finished while stopping (${stopMs} ms)`).to.be.at.most(
        4,
      );
      expect(repairedBefore).to.be.greaterThan(0);

      // A new manager on the same database and data dir: it picks the work up from the metadata.
      await managerUp();
      await gateway!.cluster.refresh();
      await waitFor(
        async () => {
          const inv = await onVictim();
          return held.every((id) => inv.has(id));
        },
        60_000,
        250,
      );
      expect(m!.healer.progress().repair.done).to.be.greaterThan(0);
      await h.waitClean();
      const counts: { n: string | number }[] = await db('chunk_replicas')
        .groupBy('chunk_id')
        .select(db.raw('count(*) as n'));
      expect(counts.every((r) => Number(r.n) === 3)).to.equal(true);
      await h.readAll();
    });
  });
});

/** Whether a node's data dir holds a file for this chunk (chunks/ab/cd/<id>.*). */
function chunkOnDisk(nodeDir: string, chunkId: string): boolean {
  const leaf = path.join(nodeDir, 'chunks', chunkId.slice(0, 2), chunkId.slice(2, 4));
  return existsSync(leaf) && readdirSync(leaf).some((n) => n.startsWith(`${chunkId}.`));
}
