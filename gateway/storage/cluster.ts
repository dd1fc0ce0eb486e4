import http from 'node:http';
import type { Logger } from '../../lib/logger.js';
import { NodeClient } from '../../lib/node-client.js';
import { Ring, type RingNode, type RingSnapshot } from '../../lib/ring.js';
import { type LocalVolumeStore, LocalVolumes } from './local-volumes.js';

// The gateway's cached picture of the cluster: the manager's ring snapshot plus one keep-alive
// client per storage node. Refreshed when the manager publishes a new ring version.

/** Where the ring comes from: the manager's HTTP API, or the manager object in the same process. */
export type RingSource = () => Promise<RingSnapshot>;

export interface Replica {
  node: RingNode;
  client: NodeClient;
  /**
   * The node's volume, when it is proven to be on this host (local-volumes.ts): its chunk files are
   * then read, and new chunks written, through it directly (as S3DFS_LOCAL_READS/_WRITES allow).
   */
  local?: LocalVolumeStore;
}

/** Sockets per storage node: enough for several concurrent 64 MiB streams plus small objects. */
const socketsPerNode = 64;

export class ClusterView {
  private ring: Ring | undefined;
  private snap: RingSnapshot | undefined;
  private clients = new Map<string, { addr: string; client: NodeClient }>();
  private readonly agent = new http.Agent({
    keepAlive: true,
    maxSockets: socketsPerNode,
    // Keep every socket we were allowed to open: closing and reopening them under load costs
    // more CPU than the small-object write itself.
    maxFreeSockets: socketsPerNode,
  });
  private refreshing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  readonly localVolumes: LocalVolumes;

  constructor(
    private readonly source: RingSource,
    private readonly secret: string,
    private readonly refreshMs: number,
    private readonly nodeTimeoutMs: number,
    private readonly opts: { localReads?: boolean; localWrites?: boolean; log?: Logger } = {},
  ) {
    this.localVolumes = new LocalVolumes(Boolean(opts.localReads || opts.localWrites), opts.log);
  }

  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh().catch(() => {}), this.refreshMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.localVolumes.stop();
    this.agent.destroy();
  }

  /** Fetches the ring; a failed fetch keeps the last good one (the manager is not on the data path). */
  refresh(): Promise<void> {
    this.refreshing ??= this.source()
      .then((snap) => {
        if (!this.ring || snap.version !== this.ring.version || changedStatus(this.snap!, snap)) {
          this.ring = new Ring(snap);
          this.snap = snap;
          // Check new nodes' volumes now, so even the first read of a chunk can be a local one.
          for (const node of snap.nodes) this.localVolumes.store(node.id, addrOf(node), this.clientFor(node));
        }
      })
      .finally(() => {
        this.refreshing = undefined;
      });
    return this.refreshing;
  }

  get snapshot(): RingSnapshot {
    if (!this.snap) throw new Error('cluster view not started');
    return this.snap;
  }

  /**
   * Whether the manager's probes last found this node answering. A replica that stalls is given up
   * only once it is not: a stopped node stops answering probes too, a merely busy one does not.
   */
  answering(nodeId: string): boolean {
    const status = this.snap?.nodes.find((n) => n.id === nodeId)?.status;
    return status === 'up' || status === 'draining';
  }

  /**
   * Resolves with `waiting`, or with 'stalled' once it has taken `stallMs` and the node answers no
   * health probe (a busy node, still answering them, is waited for as long as it takes).
   */
  async untilStalled<T>(waiting: Promise<T>, stallMs: number, nodeId: string): Promise<T | 'stalled'> {
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      try {
        const first = await Promise.race([
          waiting,
          new Promise<'late'>((resolve) => {
            timer = setTimeout(resolve, stallMs, 'late');
          }),
        ]);
        if (first !== 'late') return first;
        if (!this.answering(nodeId)) return 'stalled';
      } finally {
        clearTimeout(timer);
      }
    }
  }

  /** The nodes a new chunk goes to, in ring order. */
  place(chunkId: string, count: number): Replica[] {
    if (!this.ring) throw new Error('cluster view not started');
    return this.ring.place(chunkId, count).map((node) => this.replica(node, this.opts.localWrites, 'write'));
  }

  /** Replicas of a stored chunk, healthiest first, then in ring order. */
  readOrder(chunkId: string, nodeIds: string[]): Replica[] {
    if (!this.ring) throw new Error('cluster view not started');
    const ring = this.ring;
    const preferred = new Map(ring.place(chunkId, this.snap!.nodes.length).map((n, i) => [n.id, i]));
    const rank = (n: RingNode) =>
      n.status === 'up' || n.status === 'draining' ? 0 : n.status === 'suspect' ? 1 : 2;
    return nodeIds
      .map((id) => ring.node(id))
      .filter((n): n is RingNode => n !== undefined)
      .sort((a, b) => rank(a) - rank(b) || (preferred.get(a.id) ?? 1e9) - (preferred.get(b.id) ?? 1e9))
      .map((node) => this.replica(node, this.opts.localReads, 'read'));
  }

  private replica(node: RingNode, local: boolean | undefined, use: 'read' | 'write'): Replica {
    const client = this.clientFor(node);
    const store = local ? this.localVolumes.store(node.id, addrOf(node), client, use) : undefined;
    return { node, client, local: store };
  }

  private clientFor(node: RingNode): NodeClient {
    const addr = addrOf(node);
    const known = this.clients.get(node.id);
    if (known && known.addr === addr) return known.client;
    const client = new NodeClient({
      baseUrl: `http://${addr}`,
      secret: this.secret,
      agent: this.agent,
      timeoutMs: this.nodeTimeoutMs,
    });
    this.clients.set(node.id, { addr, client });
    return client;
  }
}

function addrOf(node: RingNode): string {
  return `${node.host}:${node.port}`;
}

/** Status changes that don't move the ring (up → suspect) still change read order. */
function changedStatus(a: RingSnapshot, b: RingSnapshot): boolean {
  if (a.nodes.length !== b.nodes.length) return true;
  const before = new Map(a.nodes.map((n) => [n.id, `${n.status}@${n.host}:${n.port}`]));
  return b.nodes.some((n) => before.get(n.id) !== `${n.status}@${n.host}:${n.port}`);
}
