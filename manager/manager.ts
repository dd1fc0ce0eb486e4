// The manager: starts or adopts the storage nodes, watches them, serves the management API. It
// is the cluster's control plane and never on the data path. `startManager` runs in-process next
// to a gateway (`s3dfs server`) or alone (`s3dfs manager`).
import { randomBytes } from 'node:crypto';
import { chmod, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import path from 'node:path';
import type { Knex } from 'knex';
import { Conflict, NotFound, Unavailable } from '../lib/errors.js';
import { randomId } from '../lib/ids.js';
import type { Logger } from '../lib/logger.js';
import { privateDir } from '../lib/private-files.js';
import { enqueueRepair } from '../lib/repair-queue.js';
import type { Placement, RingSnapshot } from '../lib/ring.js';
import { getClusterSecret, getOrCreateSetting } from '../lib/settings.js';
import { createApi } from './api.js';
import { freeReserveBytes, type ManagerConfig } from './config.js';
import type { FsckReport } from './healing/fsck.js';
import { Healer, type PassInfo } from './healing/healer.js';
import { type ClusterKpis, clusterKpis, Metrics, type NodeKpis, nodeKpis } from './kpis.js';
import { Monitor, type NodeEvent, type NodeRow } from './monitor.js';
import { leasePort, releasePort } from './port-pool.js';
import { DockerRuntime } from './runtime/docker.js';
import { ProcessRuntime } from './runtime/process.js';
import type { NodeRuntime, RuntimeEvents } from './runtime/runtime.js';
import { startUploadExpiry, type UploadExpiry } from './upload-expiry.js';

export interface StartManagerOptions {
  config: ManagerConfig;
  db: Knex;
  logger: Logger;
}

/** What the API routes call; also handy for tests and the in-process server. */
export interface ClusterOps {
  addNodes(count: number, opts: { zone: string | null; capacityBytes?: number }): Promise<NodeKpis[]>;
  drain(id: string): Promise<NodeKpis>;
  removeNode(id: string, purge: boolean): Promise<void>;
  node(id: string): NodeKpis;
  nodeKpis(): NodeKpis[];
  clusterKpis(): Promise<ClusterKpis>;
  metricsText(): Promise<string>;
  ring(): RingSnapshot;
  explain(chunkId: string, count?: number): Placement;
  events(limit: number, nodeId?: string): Promise<NodeEvent[]>;
  fsck(): Promise<FsckReport>;
  repairNow(): PassInfo;
}

export interface ManagerHandle {
  url: string;
  port: number;
  adminToken: string;
  clusterSecret: string;
  ring(): RingSnapshot;
  stop(): Promise<void>;
  ops: ClusterOps;
  runtime: NodeRuntime;
  monitor: Monitor;
  uploadExpiry: UploadExpiry;
  healer: Healer;
}

export async function startManager({ config, db, logger }: StartManagerOptions): Promise<ManagerHandle> {
  const log = logger.child({ component: 'manager' });
  const clusterSecret = await getClusterSecret(db);
  const adminToken = config.adminToken ?? (await generatedAdminToken(db, config.dataDir));

  let monitor: Monitor | undefined;
  let healerRef: Healer | undefined;
  const events: RuntimeEvents = {
    onExit: (id, detail) => void monitor?.onExit(id, detail).catch((err) => log.warn({ err }, 'onExit')),
    onRestart: (id, detail, handle) =>
      void monitor?.onRestart(id, detail, handle).catch((err) => log.warn({ err }, 'onRestart')),
  };
  const local = config.dockerHost === undefined || config.dockerHost.startsWith('/');
  const bindHost = net.isIP(config.advertiseHost) ? config.advertiseHost : '0.0.0.0';
  const runtime: NodeRuntime =
    config.runtime === 'docker'
      ? new DockerRuntime({
          dockerHost: config.dockerHost,
          image: config.dockerImage,
          hostIp: config.dockerHostIp,
          clusterName: config.clusterName,
          clusterSecret,
          chunkSizeBytes: config.chunkSizeBytes,
          logger: log,
        })
      : new ProcessRuntime({
          dataDir: config.dataDir,
          bindHost,
          clusterSecret,
          chunkSizeBytes: config.chunkSizeBytes,
          logger: log,
          events,
        });
  const capacityOf = (row: NodeRow): number | undefined => {
    const limit = (row as NodeRow & { capacity_limit_bytes?: string | number | null }).capacity_limit_bytes;
    return limit ? Number(limit) : undefined;
  };
  monitor = new Monitor({
    db,
    logger: log,
    runtime,
    replication: config.replication,
    healthIntervalMs: config.healthIntervalMs,
    probeTimeoutMs: config.probeTimeoutMs,
    downAfterMs: config.downAfterMs,
    capacityOf,
    freeReserveOf: (capacityBytes) => freeReserveBytes(config, capacityBytes),
    onVolumeChanged: (id) => healerRef?.inventoryNow(id),
  });
  const mon = monitor;
  await mon.load();
  const metrics = new Metrics();
  const healer = new Healer({
    db,
    logger: log,
    monitor: mon,
    config: config.heal,
    replication: config.replication,
    clusterSecret,
    uploadExpiryMs: config.uploadExpiryMs,
    registry: metrics.registry,
  });
  healerRef = healer;
  const pool = {
    range: config.portPool,
    probeHost: config.runtime === 'docker' ? (local ? config.dockerHostIp : undefined) : bindHost,
  };

  const startNode = async (row: NodeRow): Promise<void> => {
    const handle = await runtime.start({ id: row.id, port: row.port, capacityBytes: capacityOf(row) });
    row.handle = handle;
    await db('nodes').where({ id: row.id }).update({ handle, updated_at: db.fn.now() });
  };

  const mustGet = (id: string) => {
    const state = mon.nodes.get(id);
    if (!state) throw new NotFound(`no node ${id}`);
    return state;
  };

  const ops: ClusterOps = {
    async addNodes(count, opts) {
      const added: NodeKpis[] = [];
      for (let i = 0; i < count; i++) {
        const id = `node-${randomId(4)}`;
        const weight =
          opts.capacityBytes && config.nodeCapacityBytes ? opts.capacityBytes / config.nodeCapacityBytes : 1;
        const capacityLimit = opts.capacityBytes ?? config.nodeCapacityBytes ?? null;
        await leasePort(db, pool, {
          id,
          host: config.advertiseHost,
          zone: opts.zone,
          weight,
          runtime: runtime.kind,
          capacity_bytes: capacityLimit ?? 0,
          capacity_limit_bytes: capacityLimit,
        });
        const row: NodeRow = await db('nodes').where({ id }).first();
        mon.add(row);
        await db('node_events').insert({
          node_id: id,
          from: null,
          to: 'starting',
          reason: `added on port ${row.port}`,
        });
        log.info(
          { nodeId: id, from: null, to: 'starting', reason: `added on port ${row.port}` },
          'node state',
        );
        try {
          await startNode(row);
        } catch (err) {
          log.error({ err, nodeId: id }, 'could not start node; releasing its port');
          mon.forget(id);
          await releasePort(db, id);
          throw new Unavailable(`could not start node ${id}: ${(err as Error).message}`);
        }
        added.push(nodeKpis(mon.nodes.get(id)!));
      }
      return added;
    },

    async drain(id) {
      const state = mustGet(id);
      await mon.transition(id, 'draining', 'drain requested');
      healer.kick();
      return nodeKpis(state);
    },

    async removeNode(id, purge) {
      mustGet(id);
      const only = await onlyHealthyCopies(db, id);
      if (only > 0) {
        throw new Conflict(
          `node ${id} holds the only healthy copy of ${only} chunk(s); drain it and wait for repair before removing it`,
        );
      }
      await mon.transition(id, 'removed', purge ? 'removed with purge' : 'removed (data kept)');
      mon.forget(id);
      // Its copies are unreachable from now on: repair tops its chunks up.
      await enqueueRepair(
        db,
        db('chunk_replicas').where({ node_id: id }).select('chunk_id'),
        `node ${id} removed`,
      );
      await db('chunk_replicas').where({ node_id: id }).delete();
      await runtime.remove(id, purge);
      await releasePort(db, id);
      await mon.refreshRing();
    },

    node: (id) => nodeKpis(mustGet(id)),
    nodeKpis: () => [...mon.nodes.values()].map((s) => nodeKpis(s)),
    clusterKpis: () => clusterKpis(db, mon, config.replication, healer.progress()),
    async metricsText() {
      return metrics.render(await clusterKpis(db, mon, config.replication), ops.nodeKpis());
    },
    fsck: () => healer.fsck(),
    repairNow: () => healer.kick(),
    ring: () => mon.snapshot(),
    explain: (chunkId, count) => mon.ring().explain(chunkId, count ?? config.replication),
    async events(limit, nodeId) {
      const q = db('node_events').orderBy('id', 'desc').limit(limit);
      if (nodeId) q.where({ node_id: nodeId });
      const rows = await q;
      return rows.map((r) => ({
        nodeId: r.node_id,
        from: r.from,
        to: r.to,
        reason: r.reason,
        at: new Date(r.at).toISOString(),
      }));
    },
  };

  // Bring the known nodes back (same ids, ports, data), or create the first ones.
  if (mon.nodes.size === 0) {
    if (config.initialNodes > 0) await ops.addNodes(config.initialNodes, { zone: null });
  } else {
    for (const state of mon.nodes.values()) {
      const { id } = state.row;
      const rt = await runtime.inspect(id).catch(() => undefined);
      if (!rt?.running && state.row.status !== 'draining') {
        await mon.transition(id, 'starting', `manager started; starting node on port ${state.row.port}`);
      } else if (rt?.running) {
        log.info({ nodeId: id, handle: rt.handle }, 'adopting running node');
      }
      try {
        await startNode(state.row);
      } catch (err) {
        log.error({ err, nodeId: id }, 'could not start node');
        await mon.transition(id, 'down', `could not start: ${(err as Error).message}`);
      }
    }
  }
  for (const { id } of await runtime.list().catch(() => [])) {
    if (!mon.nodes.has(id))
      log.warn({ nodeId: id }, 'runtime has a node this cluster does not know; left alone');
  }
  mon.start();
  healer.start();
  const uploadExpiry = startUploadExpiry({
    db,
    logger: log,
    expiryMs: config.uploadExpiryMs,
    checkIntervalMs: config.uploadExpiryCheckMs,
  });

  const app = createApi(ops, adminToken, log.child({ component: 'admin-api' }), db);
  const server = http.createServer(app.callback());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.adminPort, config.adminHost, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${config.adminHost.includes(':') ? `[${config.adminHost}]` : config.adminHost}:${port}`;
  log.info({ url, runtime: runtime.kind, nodes: mon.nodes.size }, 'manager listening');

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await uploadExpiry.stop();
      await healer.stop();
      await mon.stop();
      await runtime.close();
      if (runtime.kind === 'process') {
        for (const id of mon.nodes.keys()) {
          if (mon.nodes.get(id)!.row.status !== 'draining')
            await mon.transition(id, 'down', 'manager stopped');
        }
      }
    })();
    return stopping;
  };

  return {
    url,
    port,
    adminToken,
    clusterSecret,
    ring: () => mon.snapshot(),
    stop,
    ops,
    runtime,
    monitor: mon,
    uploadExpiry,
    healer,
  };
}

/** Chunks whose only healthy copy (ok, on an up node) other than this node's does not exist. */
async function onlyHealthyCopies(db: Knex, nodeId: string): Promise<number> {
  const res = await db.raw(
    `select count(*) as n from chunk_replicas r
      where r.node_id = ? and r.state = 'ok'
        and not exists (select 1 from chunk_replicas o join nodes n on n.id = o.node_id
                         where o.chunk_id = r.chunk_id and o.node_id <> ? and o.state = 'ok' and n.status = 'up')`,
    [nodeId, nodeId],
  );
  return Number(res.rows[0].n);
}

/**
 * The admin token when S3DFS_ADMIN_TOKEN is unset: made once, kept in settings and a 0600 file. Hex,
 * not base64url: one in 64 of those starts with '-', which `--token <token>` then reads as a flag.
 */
async function generatedAdminToken(db: Knex, dataDir: string): Promise<string> {
  const token = await getOrCreateSetting(db, 'admin_token', () => randomBytes(24).toString('hex'));
  privateDir(dataDir);
  const file = path.join(dataDir, 'admin-token');
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  return token;
}
