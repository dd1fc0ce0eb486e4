// The health monitor and the owner of node state. Every node's /health is polled each interval
// with a per-probe timeout; states move starting → up → suspect → down (and back up), plus
// draining and removed. Each transition is stored in node_events and logged as
// { nodeId, from, to, reason }. The ring version is bumped whenever the up set or weights change.
import type { Knex } from 'knex';
import type { Logger } from '../lib/logger.js';
import { type NodeStatus, Ring, type RingNode, type RingSnapshot } from '../lib/ring.js';
import { bumpRingVersion, getRingVersion, getSetting, rowToRingNode, setSetting } from '../lib/settings.js';
import type { NodeRuntime } from './runtime/runtime.js';

/** What a storage node's GET /health returns (see storage-node/). */
export interface NodeHealth {
  status: string;
  nodeId: string;
  version?: string;
  capacityBytes: number;
  usedBytes: number;
  freeBytes: number;
  chunkCount: number;
  uptimeSec: number;
  /**
   * Identity of the volume the node serves, made when its chunk directory was created: a wiped or
   * swapped volume answers with a new one, which tells the manager to take its inventory at once.
   */
  volumeId?: string;
  counters?: Partial<
    Record<'reads' | 'writes' | 'deletes' | 'bytesIn' | 'bytesOut' | 'errors' | 'corruptions', number>
  >;
  latency?: Partial<Record<'readP50Ms' | 'readP99Ms' | 'writeP50Ms' | 'writeP99Ms', number>>;
}

export interface NodeRow {
  id: string;
  host: string;
  port: number;
  status: NodeStatus;
  zone: string | null;
  capacity_bytes: number | string;
  used_bytes: number | string;
  chunk_count: number | string;
  weight: number | string;
  runtime: string;
  handle: string | null;
  restarts: number;
  /** Free space below the reserve: no new replicas (see RingNode.full). */
  full: boolean;
  /** The volume the node last reported (NodeHealth.volumeId). */
  volume_id: string | null;
  last_heartbeat: Date | string | null;
  created_at: Date | string;
}

export interface NodeState {
  row: NodeRow;
  /** When the node entered its current status (ms epoch). */
  since: number;
  /** First failed probe of the current failing streak. */
  failingSince?: number;
  lastError?: string;
  lastOkAt?: number;
  health?: NodeHealth;
  /** The probe before `health`, for per-second rates. */
  prev?: { health: NodeHealth; at: number };
  healthAt?: number;
  /** A runtime restart is in flight; the monitor does not start another. */
  healing?: boolean;
}

/** Events are status changes, plus `disk-full` (no new replicas) and its end, back to the status. */
export type EventState = NodeStatus | 'disk-full';

export interface NodeEvent {
  nodeId: string;
  from: EventState | null;
  to: EventState;
  reason: string;
  at: string;
}

export interface MonitorOptions {
  db: Knex;
  logger: Logger;
  runtime: NodeRuntime;
  replication: number;
  healthIntervalMs: number;
  probeTimeoutMs: number;
  downAfterMs: number;
  capacityOf(row: NodeRow): number | undefined;
  /** The free space a node of this capacity keeps (ManagerConfig.nodeFreeReserve). */
  freeReserveOf(capacityBytes: number): number;
  /** A node answered from a different (wiped, replaced) volume than before. */
  onVolumeChanged?(id: string): void;
}

/** A full node takes replicas again only at this multiple of its reserve, so it does not flap. */
const FULL_REJOIN_FACTOR = 1.25;

export class Monitor {
  readonly nodes = new Map<string, NodeState>();
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;
  private ringVersion = 0;
  private ringCache?: { snapshot: RingSnapshot; ring: Ring };
  private readonly startedAt = Date.now();

  constructor(private readonly opts: MonitorOptions) {}

  /**
   * True until every node known at start has answered a probe (or has had downAfterMs to): until
   * then a replica on a starting node is not known to be missing, only not confirmed yet.
   */
  starting(now = Date.now()): boolean {
    if (now - this.startedAt >= this.opts.downAfterMs) return false;
    return [...this.nodes.values()].some((s) => s.row.status === 'starting' && s.lastOkAt === undefined);
  }

  async load(): Promise<void> {
    const rows: NodeRow[] = await this.opts.db('nodes').whereNot({ status: 'removed' }).orderBy('id');
    const now = Date.now();
    for (const row of rows) this.nodes.set(row.id, { row, since: now });
    this.ringVersion = await getRingVersion(this.opts.db);
    await this.refreshRing();
  }

  add(row: NodeRow): void {
    this.nodes.set(row.id, { row, since: Date.now() });
    this.ringCache = undefined;
  }

  forget(id: string): void {
    this.nodes.delete(id);
    this.ringCache = undefined;
  }

  start(): void {
    const loop = async () => {
      if (this.stopped) return;
      this.running = this.tick().catch((err) => this.opts.logger.error({ err }, 'health tick failed'));
      await this.running;
      if (!this.stopped) this.timer = setTimeout(loop, this.opts.healthIntervalMs);
    };
    this.timer = setTimeout(loop, 0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** Records a state change: nodes row, node_events row, log line, ring version. */
  async transition(id: string, to: NodeStatus, reason: string): Promise<NodeEvent | undefined> {
    const state = this.nodes.get(id);
    if (!state || state.row.status === to) return undefined;
    const from = state.row.status;
    state.row.status = to;
    state.since = Date.now();
    const { db } = this.opts;
    await db('nodes').where({ id }).update({ status: to, updated_at: db.fn.now() });
    const event = await this.record(id, from, to, reason);
    this.ringCache = undefined;
    await this.refreshRing();
    return event;
  }

  private async record(
    id: string,
    from: EventState | null,
    to: EventState,
    reason: string,
  ): Promise<NodeEvent> {
    const at = new Date().toISOString();
    await this.opts.db('node_events').insert({ node_id: id, from, to, reason, at });
    this.opts.logger.info({ nodeId: id, from, to, reason }, 'node state');
    return { nodeId: id, from, to, reason, at };
  }

  /** Takes a node out of (or back into) placement by its free space, with hysteresis. */
  private async checkFull(state: NodeState, health: NodeHealth): Promise<void> {
    const free = Number(health.freeBytes ?? 0);
    const reserve = this.opts.freeReserveOf(Number(health.capacityBytes ?? 0));
    const full = state.row.full ? free < reserve * FULL_REJOIN_FACTOR : free < reserve;
    if (full === state.row.full) return;
    state.row.full = full;
    const { db } = this.opts;
    await db('nodes').where({ id: state.row.id }).update({ full, updated_at: db.fn.now() });
    const amounts = `${mib(free)} free, reserve ${mib(reserve)} (S3DFS_NODE_FREE_RESERVE)`;
    if (full)
      await this.record(state.row.id, state.row.status, 'disk-full', `${amounts}: takes no new replicas`);
    else
      await this.record(state.row.id, 'disk-full', state.row.status, `${amounts}: takes new replicas again`);
    this.ringCache = undefined;
    await this.refreshRing();
  }

  /** A node on another volume than it reported before lost what the metadata says it holds. */
  private async checkVolume(state: NodeState, health: NodeHealth): Promise<void> {
    const volumeId = health.volumeId;
    if (!volumeId || volumeId === state.row.volume_id) return;
    const before = state.row.volume_id;
    state.row.volume_id = volumeId;
    const { db } = this.opts;
    await db('nodes').where({ id: state.row.id }).update({ volume_id: volumeId });
    if (before === null) return; // first report (a new node, or one from before volume ids)
    const s = state.row.status;
    await this.record(
      state.row.id,
      s,
      s,
      `volume changed (${before} → ${volumeId}): taking its inventory now`,
    );
    this.opts.onVolumeChanged?.(state.row.id);
  }

  async tick(): Promise<void> {
    const states = [...this.nodes.values()];
    const results = await Promise.all(states.map((s) => this.probe(s.row)));
    for (let i = 0; i < states.length; i++) {
      if (this.stopped) return;
      if (!this.nodes.has(states[i].row.id)) continue; // removed while probing
      const r = results[i];
      if (r.ok) await this.onHealthy(states[i], r.health);
      else await this.onFailure(states[i], r.error);
    }
  }

  private async probe(
    row: NodeRow,
  ): Promise<{ ok: true; health: NodeHealth } | { ok: false; error: string }> {
    try {
      const res = await fetch(`http://${row.host}:${row.port}/health`, {
        signal: AbortSignal.timeout(this.opts.probeTimeoutMs),
      });
      if (!res.ok) return { ok: false, error: `health answered HTTP ${res.status}` };
      const health = (await res.json()) as NodeHealth;
      if (health.nodeId && health.nodeId !== row.id) {
        return { ok: false, error: `port ${row.port} answers as node ${health.nodeId}` };
      }
      return { ok: true, health };
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      const why =
        e.name === 'TimeoutError' ? `no answer within ${this.opts.probeTimeoutMs} ms` : e.cause?.code;
      return { ok: false, error: `health probe failed: ${why ?? e.message}` };
    }
  }

  private async onHealthy(state: NodeState, health: NodeHealth): Promise<void> {
    const now = Date.now();
    if (state.health && state.healthAt) state.prev = { health: state.health, at: state.healthAt };
    state.health = health;
    state.healthAt = now;
    state.lastOkAt = now;
    state.failingSince = undefined;
    state.lastError = undefined;
    const { db } = this.opts;
    const update = {
      last_heartbeat: new Date(now),
      used_bytes: Math.round(health.usedBytes ?? 0),
      capacity_bytes: Math.round(health.capacityBytes ?? 0),
      chunk_count: Math.round(health.chunkCount ?? 0),
      updated_at: db.fn.now(),
    };
    Object.assign(state.row, update);
    await db('nodes').where({ id: state.row.id }).update(update);
    await this.checkVolume(state, health);
    await this.checkFull(state, health);
    const s = state.row.status;
    if (s === 'starting' || s === 'suspect' || s === 'down') {
      await this.transition(
        state.row.id,
        'up',
        s === 'starting' ? 'first healthy probe' : 'health probe ok again',
      );
    }
  }

  private async onFailure(state: NodeState, error: string): Promise<void> {
    const now = Date.now();
    state.failingSince ??= now;
    state.lastError = error;
    const { id } = state.row;
    const s = state.row.status;
    if (s === 'up') await this.transition(id, 'suspect', error);
    else if (s === 'suspect' && now - state.failingSince >= this.opts.downAfterMs) {
      await this.transition(id, 'down', `${error}; failing for ${now - state.failingSince} ms`);
    } else if (s === 'starting' && now - state.since >= this.opts.downAfterMs) {
      await this.transition(id, 'down', `not healthy ${now - state.since} ms after start: ${error}`);
    }
    await this.heal(state);
  }

  /** Asks the runtime whether the node still runs; brings back a stopped or vanished one. */
  private async heal(state: NodeState): Promise<void> {
    const { runtime } = this.opts;
    if (runtime.kind === 'process' || state.healing) return; // child processes restart themselves
    state.healing = true;
    try {
      const rt = await runtime.inspect(state.row.id);
      if (rt?.running) return;
      const detail = rt ? (rt.detail ?? 'container not running') : 'container is gone';
      await this.onExit(state.row.id, detail);
      const handle = await runtime.start({
        id: state.row.id,
        port: state.row.port,
        capacityBytes: this.opts.capacityOf(state.row),
      });
      // A container removed between the look above and the start is recreated by the start too:
      // the handle (container id) tells which happened.
      const recreated = !rt || rt.handle !== handle;
      await this.onRestart(
        state.row.id,
        recreated ? `recreated on its volume (${detail})` : `restarted after ${detail}`,
        handle,
      );
    } catch (err) {
      this.opts.logger.warn({ err, nodeId: state.row.id }, 'could not restart node');
    } finally {
      state.healing = false;
    }
  }

  /** The runtime saw the node stop: it is down for certain, no need to wait for probes. */
  async onExit(id: string, detail: string): Promise<void> {
    const state = this.nodes.get(id);
    if (!state) return;
    state.failingSince ??= Date.now();
    state.lastError = detail;
    if (state.row.status !== 'draining') await this.transition(id, 'down', detail);
  }

  async onRestart(id: string, detail: string, handle?: string): Promise<void> {
    const state = this.nodes.get(id);
    if (!state) return;
    const { db } = this.opts;
    state.row.restarts += 1;
    if (handle) state.row.handle = handle;
    await db('nodes')
      .where({ id })
      .update({ restarts: db.raw('restarts + 1'), ...(handle ? { handle } : {}), updated_at: db.fn.now() });
    if (state.row.status !== 'draining') await this.transition(id, 'starting', detail);
  }

  /** Bumps the persisted ring version when the placement-relevant view changed. */
  async refreshRing(): Promise<void> {
    const up = [...this.nodes.values()]
      .map((s) => s.row)
      .filter((r) => r.status === 'up')
      .sort((a, b) => (a.id < b.id ? -1 : 1))
      .map((r) => `${r.id}@${r.host}:${r.port}/${r.zone ?? ''}*${Number(r.weight)}${r.full ? '!full' : ''}`)
      .join(',');
    const { db } = this.opts;
    const stored = await getSetting<string>(db, 'ring_signature');
    if (stored === up && this.ringVersion > 0) return;
    this.ringVersion = await bumpRingVersion(db);
    await setSetting(db, 'ring_signature', up);
    this.ringCache = undefined;
  }

  snapshot(): RingSnapshot {
    return this.cachedRing().snapshot;
  }

  ring(): Ring {
    return this.cachedRing().ring;
  }

  private cachedRing(): { snapshot: RingSnapshot; ring: Ring } {
    if (!this.ringCache) {
      const nodes: RingNode[] = [...this.nodes.values()]
        .map((s) => rowToRingNode(s.row))
        .sort((a, b) => (a.id < b.id ? -1 : 1));
      const snapshot = { version: this.ringVersion, replication: this.opts.replication, nodes };
      this.ringCache = { snapshot, ring: new Ring(snapshot) };
    }
    return this.ringCache;
  }
}

function mib(bytes: number): string {
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}
