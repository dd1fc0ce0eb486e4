// Healing faults that need more than one process: a standalone gateway process SIGKILLed in the
// middle of a PUT (no visible object, its chunks collected as orphans; needs Postgres, since PGlite
// is single-process) and a manager stopped in the middle of a throttled repair and started again on
// the same database and data dir (the repair resumes and completes). After each: fsck clean, R
// replicas per chunk, every object byte-exact against digests kept by the test.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createInterface } from 'node:readline';
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { loadGatewayConfig } from '../../gateway/config.js';
import { type RunningGateway, startGateway } from '../../gateway/main.js';
import { type Knex, openDb } from '../../lib/db.js';
import { createLogger } from '../../lib/logger.js';
import { NodeClient } from '../../lib/node-client.js';
import { loadManagerConfig } from '../../manager/config.js';
import type { FsckReport } from '../../manager/healing/fsck.js';
import { type ManagerHandle, startManager } from '../../manager/manager.js';
import type { ProcessRuntime } from '../../manager/runtime/process.js';
import { startTestCluster, type TestCluster, waitFor } from '../helpers/cluster.js';
import { engines, type TestDb, tempDir, testPostgresUrl } from '../helpers/db.js';
import { binPath } from '../helpers/node-process.js';
import { keyPath, signHeaders } from '../helpers/s3raw.js';

const CHUNK = 64 * 1024;
const BUCKET = 'faults';
const ACCESS_KEY = 'TESTACCESSKEY';
const SECRET_KEY = 'test-secret-key-0123456789';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Short intervals everywhere so each scenario settles in seconds. */
const HEAL_ENV = {
  S3DFS_HEAL_INTERVAL_MS: '300',
  S3DFS_REPAIR_GRACE_MS: '1000',
  S3DFS_INVENTORY_INTERVAL_MS: '1000',
  S3DFS_ORPHAN_GRACE_MS: '10000',
  S3DFS_SCRUB_BYTES_PER_SEC: '8MiB',
  S3DFS_REPAIR_CONCURRENCY: '4',
  S3DFS_PROBE_TIMEOUT_MS: '300',
};

/** What a scenario needs from its cluster, whichever way it was started. */
interface Parts {
  db: Knex;
  manager: () => ManagerHandle;
  client: () => S3Client;
  dataDir: string;
}

const s3client = (endpoint: string) =>
  new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY },
  });

class Harness {
  /** Digests kept by the test, never read back from the system's metadata. */
  readonly digests = new Map<string, string>();
  constructor(readonly p: Parts) {}

  get m(): ManagerHandle {
    return this.p.manager();
  }

  get R(): number {
    return this.m.ring().replication;
  }

  async json<T>(p: string): Promise<T> {
    const res = await fetch(`${this.m.url}${p}`, {
      headers: { authorization: `Bearer ${this.m.adminToken}` },
    });
    expect(res.status, p).to.equal(200);
    return (await res.json()) as T;
  }

  async put(key: string, size: number): Promise<void> {
    const body = randomBytes(size);
    await this.p.client().send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
    this.digests.set(key, sha256(body));
  }

  async read(key: string, client = this.p.client()): Promise<string> {
    const res = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    return sha256(await res.Body!.transformToByteArray());
  }

  async readAll(client?: S3Client): Promise<void> {
    for (const [key, digest] of this.digests) expect(await this.read(key, client), key).to.equal(digest);
  }

  nodeDir(id: string): string {
    return path.join(this.p.dataDir, 'nodes', id);
  }

  nodeClient(id: string): NodeClient {
    const row = this.m.monitor.nodes.get(id)!.row;
    return new NodeClient({ baseUrl: `http://${row.host}:${row.port}`, secret: this.m.clusterSecret });
  }

  upIds(): string[] {
    return [...this.m.monitor.nodes.values()].filter((s) => s.row.status === 'up').map((s) => s.row.id);
  }

  /** Every chunk id on a node's disk, from its own inventory. */
  async inventory(nodeId: string): Promise<string[]> {
    const ids: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.nodeClient(nodeId).list(after, 1000);
      ids.push(...page.chunks.map((c) => c.id));
      if (page.next === null) return ids;
      after = page.next;
    }
  }

  /** `chunk@node` for every file on an up node that no chunk row knows. */
  async strays(): Promise<string[]> {
    const known = new Set<string>(await this.p.db('chunks').pluck('id'));
    const out: string[] = [];
    for (const n of this.upIds()) for (const id of await this.inventory(n)) if (!known.has(id)) out.push(`${id}@${n}`);
    return out;
  }

  /** Live chunks lacking R ok replicas on up nodes, straight from chunk_replicas. */
  async shortChunks(): Promise<number> {
    const up = this.upIds();
    const rows = await this.p
      .db('chunks as c')
      .leftJoin('chunk_replicas as r', function () {
        this.on('r.chunk_id', 'c.id').andOnVal('r.state', 'ok');
      })
      .where((b) => b.whereNotNull('c.object_id').orWhereNotNull('c.part_id'))
      .groupBy('c.id')
      .select('c.id', this.p.db.raw('array_agg(r.node_id) as nodes'));
    return rows.filter(
      (r: { nodes: (string | null)[] }) => r.nodes.filter((n) => n && up.includes(n)).length < this.R,
    ).length;
  }

  /** Waits for a clean fsck and R replicas everywhere, then checks the files on disk. */
  async waitClean(timeoutMs = 40_000): Promise<FsckReport> {
    let last: FsckReport | undefined;
    try {
      await waitFor(
        async () => {
          const k = await this.json<{ underReplicatedChunks: number; missingChunks: number }>('/api/cluster');
          if (k.underReplicatedChunks !== 0 || k.missingChunks !== 0) return false;
          last = await this.json<FsckReport>('/api/fsck');
          return last.clean;
        },
        timeoutMs,
        200,
      );
    } catch (err) {
      throw new Error(`cluster not clean: ${JSON.stringify(last?.counts ?? 'no fsck')}: ${err}`);
    }
    expect(await this.shortChunks()).to.equal(0);
    // Every replica row has its file on its node (not only the rows agree with each other).
    const rows: { chunk_id: string; node_id: string }[] = await this.p
      .db('chunk_replicas')
      .where({ state: 'ok' })
      .select('chunk_id', 'node_id');
    const onDisk = new Map<string, Set<string>>();
    for (const n of this.upIds()) onDisk.set(n, new Set(await this.inventory(n)));
    const absent = rows.filter((r) => onDisk.has(r.node_id) && !onDisk.get(r.node_id)!.has(r.chunk_id));
    expect(absent.map((r) => `${r.chunk_id}@${r.node_id}`)).to.deep.equal([]);
    return last!;
  }
}

/** A `s3dfs gateway` process on the shared database, parsed from its banner. */
interface GatewayProcess {
  endpoint: string;
  proc: ChildProcess;
  exited: Promise<unknown>;
  output(): string;
}

async function spawnGateway(env: Record<string, string>): Promise<GatewayProcess> {
  const proc = spawn(process.execPath, [binPath, 'gateway'], {
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
    let h: Harness;
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
        env: { ...HEAL_ENV, S3DFS_ORPHAN_GRACE_MS: '2000' },
      });
      h = new Harness({ db: c.db, manager: () => c.manager, client: () => c.client(), dataDir: c.dataDir });
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
      expect(await c.db('objects').where({ bucket: BUCKET, key }).count({ n: '*' })).to.deep.equal([{ n: 0 }]);

      // Past the orphan grace, the inventory walk deletes every file the torn upload left.
      const torn = new Set(strays.map((s) => s.split('@')[0]));
      await waitFor(
        async () => {
          const left = await h.strays();
          return left.length === 0;
        },
        30_000,
        250,
      );
      for (const n of h.upIds()) {
        const inv = await h.inventory(n);
        expect(inv.filter((id) => torn.has(id))).to.deep.equal([]);
      }
      const healing = (await h.json<{ healing: { gc: { orphansDeleted: number } } }>('/api/cluster')).healing;
      expect(healing.gc.orphansDeleted).to.be.at.least(torn.size);
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
    let h: Harness;
    const log = createLogger('test');

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
      h = new Harness({ db, manager: () => m!, client: () => s3client(gateway!.url), dataDir });
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
      rmSync(h.nodeDir(victim), { recursive: true, force: true });
      await runtime.start({ id: victim, port: m!.monitor.nodes.get(victim)!.row.port });
      await waitFor(() => m!.monitor.nodes.get(victim)!.row.status === 'up', 15_000);

      const onVictim = async () => new Set(await h.inventory(victim));
      // Mid-repair: some chunks are back, many are not.
      await waitFor(async () => (await onVictim()).size >= 5, 30_000, 100);
      const repairedBefore = m!.healer.progress().repair.done;
      const started = Date.now();
      await m!.stop();
      const stopMs = Date.now() - started;
      m = undefined;
      // Count straight from the victim's data dir now that its process is stopped with the manager.
      const restoredAtStop = held.filter((id) => chunkOnDisk(h.nodeDir(victim), id)).length;
      expect(restoredAtStop, `restored before the stop (stop took ${stopMs} ms)`).to.be.lessThan(
        held.length * 0.8,
      );
      expect(stopMs, 'the manager stops without finishing the repair batch first').to.be.lessThan(5000);

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
      expect(repairedBefore).to.be.greaterThan(0);
      await h.readAll();
    });
  });
});

/** Whether a node's data dir holds a file for this chunk (chunks/ab/cd/<id>.*). */
function chunkOnDisk(nodeDir: string, chunkId: string): boolean {
  const leaf = path.join(nodeDir, 'chunks', chunkId.slice(0, 2), chunkId.slice(2, 4));
  return existsSync(leaf) && readdirSync(leaf).some((n) => n.startsWith(`${chunkId}.`));
}
