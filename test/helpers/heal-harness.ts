// Shared by the healing fault tests (process and Docker runtimes): objects written with digests kept
// by the test, byte-exact read-back, node inventories, stray files, and "clean" = fsck clean, R ok
// replicas on up nodes for every live chunk, and every replica row's file present on its node.
import { createHash, randomBytes } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { expect } from 'chai';
import type { Knex } from '../../lib/db.js';
import { NodeClient } from '../../lib/node-client.js';
import type { FsckReport } from '../../manager/healing/fsck.js';
import type { ManagerHandle } from '../../manager/manager.js';
import { waitFor } from './cluster.js';

export const ACCESS_KEY = 'TESTACCESSKEY';
export const SECRET_KEY = 'test-secret-key-0123456789';

/** Short intervals everywhere so each scenario settles in seconds. */
export const HEAL_ENV: Record<string, string> = {
  S3DFS_HEAL_INTERVAL_MS: '300',
  S3DFS_REPAIR_GRACE_MS: '1000',
  S3DFS_INVENTORY_INTERVAL_MS: '1000',
  S3DFS_GC_GRACE_MS: '1000',
  S3DFS_ORPHAN_GRACE_MS: '10000',
  S3DFS_SCRUB_BYTES_PER_SEC: '8MiB',
  S3DFS_REPAIR_CONCURRENCY: '4',
  S3DFS_PROBE_TIMEOUT_MS: '300',
};

export const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** What a scenario needs from its cluster, whichever way it was started. */
export interface Parts {
  db: Knex;
  manager: () => ManagerHandle;
  client: () => S3Client;
  bucket: string;
}

export const s3client = (endpoint: string) =>
  new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY },
  });

export class HealHarness {
  /** Digests kept by the test, never read back from the system's metadata. */
  readonly digests = new Map<string, string>();
  constructor(readonly p: Parts) {}

  get m(): ManagerHandle {
    return this.p.manager();
  }

  get R(): number {
    return this.m.ring().replication;
  }

  /** A manager API call with the admin token. */
  api(p: string, init: RequestInit = {}): Promise<Response> {
    return fetch(`${this.m.url}${p}`, {
      ...init,
      headers: { authorization: `Bearer ${this.m.adminToken}`, ...(init.headers ?? {}) },
    });
  }

  /** A manager API call whose status the caller checks. */
  async request<T = Record<string, unknown>>(
    p: string,
    init?: RequestInit,
  ): Promise<{ status: number; body: T }> {
    const res = await this.api(p, init);
    return { status: res.status, body: (await res.json()) as T };
  }

  /** A manager API read that must answer 200. */
  async json<T>(p: string): Promise<T> {
    const { status, body } = await this.request<T>(p);
    expect(status, p).to.equal(200);
    return body;
  }

  async fsck(): Promise<FsckReport> {
    return this.json<FsckReport>('/api/fsck');
  }

  async put(key: string, size: number): Promise<void> {
    const body = randomBytes(size);
    await this.p.client().send(new PutObjectCommand({ Bucket: this.p.bucket, Key: key, Body: body }));
    this.digests.set(key, sha256(body));
  }

  async read(key: string, client = this.p.client()): Promise<string> {
    const res = await client.send(new GetObjectCommand({ Bucket: this.p.bucket, Key: key }));
    return sha256(await res.Body!.transformToByteArray());
  }

  async readAll(client?: S3Client): Promise<void> {
    for (const [key, digest] of this.digests) expect(await this.read(key, client), key).to.equal(digest);
  }

  nodeClient(id: string): NodeClient {
    const row = this.m.monitor.nodes.get(id)!.row;
    return new NodeClient({ baseUrl: `http://${row.host}:${row.port}`, secret: this.m.clusterSecret });
  }

  upIds(): string[] {
    return [...this.m.monitor.nodes.values()].filter((s) => s.row.status === 'up').map((s) => s.row.id);
  }

  async liveChunks(): Promise<{ id: string; sha256: string }[]> {
    return this.p.db('chunks').whereNotNull('object_id').orWhereNotNull('part_id').select('id', 'sha256');
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
    for (const n of this.upIds())
      for (const id of await this.inventory(n)) if (!known.has(id)) out.push(`${id}@${n}`);
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
          last = await this.fsck();
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
