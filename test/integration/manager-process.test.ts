// Proves the manager with the process runtime: it starts 3 real storage nodes, detects a kill -9
// as down and brings the node back up, guards its API (401/404/400), grows the cluster with a ring
// version bump, skips ports other programs hold, fails clearly when the pool runs out, leases
// ports without duplicates under concurrency, and adopts the same nodes after a restart.
import net from 'node:net';
import { expect } from 'chai';
import { createLogger } from '../../lib/logger.js';
import { loadManagerConfig, type ManagerConfig } from '../../manager/config.js';
import { type ManagerHandle, startManager } from '../../manager/manager.js';
import { leasePort } from '../../manager/port-pool.js';
import type { ProcessRuntime } from '../../manager/runtime/process.js';
import { waitForValue } from '../helpers/cluster.js';
import { engines, type TestDb } from '../helpers/db.js';

// Private to this file: 19100-19104 for the manager, 19180-19199 for the lease race.
const POOL_LO = 19100;
const POOL_HI = 19104;
const INTERVAL_MS = 150;
const DOWN_AFTER_MS = 900;

function holdPort(port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

const engine = engines()[0];

describe(`manager with the process runtime (${engine.name})`, function () {
  this.timeout(60_000);
  let t: TestDb;
  let config: ManagerConfig;
  let m: ManagerHandle;
  let blocker: net.Server;

  const api = (p: string, init: RequestInit = {}, token: string | null = m.adminToken) =>
    fetch(`${m.url}${p}`, {
      ...init,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.headers ?? {}) },
    });
  const json = async (p: string, init?: RequestInit) => {
    const res = await api(p, init);
    return { status: res.status, body: await res.json() };
  };
  const upCount = async () => (await json('/api/cluster')).body.nodesUp as number;

  before(async () => {
    t = await engine.open();
    // Another program holds the first pool port: the manager must skip it.
    blocker = await holdPort(POOL_LO);
    config = loadManagerConfig({
      S3DFS_DATA_DIR: t.dataDir,
      S3DFS_ADMIN_PORT: '0',
      S3DFS_PORT_POOL: `${POOL_LO}-${POOL_HI}`,
      S3DFS_NODES: '3',
      S3DFS_HEALTH_INTERVAL_MS: String(INTERVAL_MS),
      S3DFS_PROBE_TIMEOUT_MS: '300',
      S3DFS_DOWN_AFTER_MS: String(DOWN_AFTER_MS),
      S3DFS_CHUNK_SIZE: '1MiB',
    });
    m = await startManager({ config, db: t.db, logger: createLogger('test') });
  });

  after(async () => {
    await m?.stop();
    blocker?.close();
    await t?.close();
  });

  it('starts 3 nodes on free pool ports, skipping a port another program holds', async () => {
    await waitForValue('3 nodes up', async () => (await upCount()) === 3);
    const { body } = await json('/api/nodes');
    const ports = body.nodes.map((n: { port: number }) => n.port).sort();
    expect(ports).to.deep.equal([POOL_LO + 1, POOL_LO + 2, POOL_LO + 3]);
    for (const n of body.nodes as { id: string; handle: string }[]) {
      expect(n.handle).to.equal(String((m.runtime as ProcessRuntime).pid(n.id)));
    }
    const cluster = (await json('/api/cluster')).body;
    expect(cluster).to.include({ nodesUp: 3, nodesTotal: 3, underReplicatedChunks: 0, missingChunks: 0 });
    expect(cluster.ringVersion).to.be.greaterThan(0);
    const ring = (await json('/api/ring')).body;
    expect(ring.nodes).to.have.length(3);
    expect(ring.replication).to.equal(3);
  });

  it('detects a kill -9 as down within the configured time, restarts the node and sees it up', async () => {
    const id = m.ring().nodes[0].id;
    const pid = (m.runtime as ProcessRuntime).pid(id)!;
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    const events = async () =>
      (await json(`/api/events?node=${id}&limit=50`)).body.events as { to: string; at: string }[];
    const down = await waitForValue('down event', async () => (await events()).find((e) => e.to === 'down'));
    expect(new Date(down.at).getTime() - killedAt).to.be.lessThan(DOWN_AFTER_MS + 2 * INTERVAL_MS);
    await waitForValue('node up again', async () => (await json(`/api/nodes/${id}`)).body.status === 'up');
    const node = (await json(`/api/nodes/${id}`)).body;
    expect(node.restarts).to.equal(1);
    expect((m.runtime as ProcessRuntime).pid(id)).to.not.equal(pid);
    // The API names the process it runs as now (the bench finds node processes by it).
    expect(node.handle).to.equal(String((m.runtime as ProcessRuntime).pid(id)));
    const seq = (await events()).reverse().map((e) => e.to);
    expect(seq.slice(seq.lastIndexOf('down'))).to.deep.equal(['down', 'starting', 'up']);
  });

  it('refuses requests without the right token, but serves /health', async () => {
    expect((await api('/api/cluster', {}, null)).status).to.equal(401);
    const wrong = await api('/api/nodes', {}, 'x'.repeat(32));
    expect(wrong.status).to.equal(401);
    expect((await wrong.json()).error.code).to.equal('Unauthorized');
    expect((await api('/metrics', {}, null)).status).to.equal(401);
    expect((await api('/health', {}, null)).status).to.equal(200);
  });

  it('answers bad input with clear 4xx JSON errors', async () => {
    const unknown = await json('/api/nodes/node-nope');
    expect(unknown.status).to.equal(404);
    expect(unknown.body.error.message).to.match(/no node node-nope/);
    expect((await json('/api/nodes/node-nope/drain', { method: 'POST' })).status).to.equal(404);
    expect((await json('/api/nodes/node-nope', { method: 'DELETE' })).status).to.equal(404);
    const badJson = await json('/api/nodes', {
      method: 'POST',
      body: '{"count":',
      headers: { 'content-type': 'application/json' },
    });
    expect(badJson.status).to.equal(400);
    expect(badJson.body.error.code).to.equal('BadJson');
    for (const count of [0, 33, 1.5, 'two']) {
      const r = await json('/api/nodes', { method: 'POST', body: JSON.stringify({ count }) });
      expect(r.status, String(count)).to.equal(400);
      expect(r.body.error.message).to.match(/count must be an integer in 1\.\.32/);
    }
    expect((await json('/api/placement')).status).to.equal(400);
    expect((await json('/api/events?limit=0')).status).to.equal(400);
    expect((await api('/api/nope')).status).to.equal(404);
  });

  it('adds a node with POST /api/nodes and bumps the ring version once it is up', async () => {
    const before = m.ring().version;
    const r = await json('/api/nodes', { method: 'POST', body: JSON.stringify({ count: 1 }) });
    expect(r.status).to.equal(201);
    expect(r.body.nodes).to.have.length(1);
    expect(r.body.nodes[0].port).to.equal(POOL_HI);
    await waitForValue('4 nodes up', async () => (await upCount()) === 4);
    expect(m.ring().version).to.be.greaterThan(before);
    const placement = (await json('/api/placement?chunk=0123456789abcdef0123456789abcdef')).body;
    expect(placement.chosen).to.have.length(3);
  });

  it('fails clearly when the port pool is exhausted', async () => {
    const r = await json('/api/nodes', { method: 'POST', body: JSON.stringify({ count: 1 }) });
    expect(r.status).to.equal(503);
    expect(r.body.error.message).to.match(/port pool 19100-19104 is exhausted/);
    expect((await json('/api/nodes')).body.nodes).to.have.length(4);
  });

  it('serves KPIs as JSON and Prometheus text', async () => {
    const k = (await json('/api/kpis')).body;
    expect(k.cluster.nodesTotal).to.equal(4);
    expect(k.nodes[0]).to.include.keys(
      'capacityBytes',
      'usedBytes',
      'freeBytes',
      'chunkCount',
      'readsPerSec',
      'restarts',
      'heartbeatAgeMs',
    );
    const text = await (await api('/metrics')).text();
    expect(text).to.match(/^s3dfs_cluster_nodes_up 4$/m);
    expect(text).to.match(/s3dfs_node_up\{node="node-[0-9a-f]{8}"\} 1/);
  });

  it('drains a node out of the ring and removes it, releasing its port', async () => {
    const id = m.ring().nodes.find((n) => n.port === POOL_HI)!.id;
    const v0 = m.ring().version;
    const drained = await json(`/api/nodes/${id}/drain`, { method: 'POST' });
    expect(drained.status).to.equal(200);
    expect(drained.body.node.status).to.equal('draining');
    expect(m.ring().version).to.be.greaterThan(v0);
    const del = await json(`/api/nodes/${id}?purge=true`, { method: 'DELETE' });
    expect(del.status).to.equal(200);
    expect(await t.db('nodes').where({ port: POOL_HI }).first()).to.equal(undefined);
    expect((await json(`/api/nodes/${id}`)).status).to.equal(404);
  });

  it('refuses to remove a node that holds the only healthy copy of a chunk', async () => {
    const id = m.ring().nodes[0].id;
    await t.db('buckets').insert({ name: 'mgr-b', owner: 'root' });
    const [obj] = await t
      .db('objects')
      .insert({ bucket: 'mgr-b', key: 'k', size: 1, etag: 'e' })
      .returning('id');
    await t
      .db('chunks')
      .insert({ id: 'ab'.repeat(16), object_id: obj.id, seq: 0, offset: 0, size: 1, sha256: 'x' });
    await t.db('chunk_replicas').insert({ chunk_id: 'ab'.repeat(16), node_id: id });
    // As a gateway commits a write that landed on fewer than R nodes: queued for repair with it.
    await t.db('repair_queue').insert({ chunk_id: 'ab'.repeat(16), priority: 1, reason: 'short write' });
    const r = await json(`/api/nodes/${id}`, { method: 'DELETE' });
    expect(r.status).to.equal(409);
    expect(r.body.error.message).to.match(/only healthy copy of 1 chunk/);
    const c = (await json('/api/cluster')).body;
    expect(c.underReplicatedChunks).to.equal(1);
    await t.db('objects').where({ id: obj.id }).delete();
  });

  it('comes back after a restart on the same data with the same nodes and no duplicates', async () => {
    const before = (await json('/api/nodes')).body.nodes
      .map((n: { id: string; port: number }) => `${n.id}:${n.port}`)
      .sort();
    const versionBefore = m.ring().version;
    await m.stop();
    m = await startManager({ config, db: t.db, logger: createLogger('test') });
    await waitForValue('3 nodes up after restart', async () => (await upCount()) === 3);
    const after = (await json('/api/nodes')).body.nodes
      .map((n: { id: string; port: number }) => `${n.id}:${n.port}`)
      .sort();
    expect(after).to.deep.equal(before);
    expect(Number((await t.db('nodes').count({ n: '*' }))[0].n)).to.equal(3);
    expect(m.ring().version).to.be.at.least(versionBefore);
  });
});

for (const e of engines()) {
  describe(`port pool leases on ${e.name}`, () => {
    let t: TestDb;
    before(async () => {
      t = await e.open();
    });
    after(async () => t?.close());

    it('never hands out one port twice, even to concurrent leases', async () => {
      const pool = { range: [19180, 19199] as [number, number] };
      const row = (i: number) => ({
        id: `lease-${i}`,
        host: '127.0.0.1',
        zone: null,
        weight: 1,
        runtime: 'process',
        capacity_bytes: 0,
        capacity_limit_bytes: null,
      });
      const ports = await Promise.all(Array.from({ length: 8 }, (_, i) => leasePort(t.db, pool, row(i))));
      expect(new Set(ports).size).to.equal(8);
      const tiny = { range: [19199, 19199] as [number, number] };
      let err: Error | undefined;
      await Promise.all(
        [20, 21].map((i) =>
          leasePort(t.db, tiny, row(i)).catch((e) => {
            err = e;
          }),
        ),
      );
      expect(String(err)).to.match(/exhausted/);
    });
  });
}
