// The placement ring: consistent hashing with virtual nodes weighted by capacity. The manager owns
// the membership and publishes it as a versioned snapshot; gateways build a Ring from the snapshot
// and call place() once per chunk, so placement is a binary search on a sorted typed array.
import { createHash } from 'node:crypto';

export type NodeStatus = 'starting' | 'up' | 'suspect' | 'down' | 'draining' | 'removed';

export interface RingNode {
  id: string;
  host: string;
  port: number;
  zone: string | null;
  /** Relative capacity; 1 is a standard node. Virtual nodes are proportional to it. */
  weight: number;
  status: NodeStatus;
  /**
   * Free space is below the node's reserve: it takes no new replicas (placement passes it over, with
   * the reason) but serves reads, and its copies still count. Set by the manager from health probes.
   */
  full?: boolean;
}

export interface RingSnapshot {
  /** Bumped by the manager whenever the set of up nodes or their weights change. */
  version: number;
  replication: number;
  /** Every node that is not removed, so readers can address any replica. */
  nodes: RingNode[];
}

export interface Placement {
  chosen: RingNode[];
  skipped: { node: RingNode; reason: string }[];
}

/**
 * Virtual nodes per unit of weight. Ownership of a node is a sum of this many random arcs, so its
 * relative spread is about 1/sqrt(V): 1600 keeps max/mean under 1.10 for 50 equal nodes, at the
 * cost of ~1600 sha256 per node the first time it is on a ring here (about 2 ms per node; see
 * vnodeCache) and 10 bytes each.
 */
export const VNODES_PER_WEIGHT = 1600;
/** Weights are clamped so one misconfigured node can neither vanish nor swallow the ring. */
export const WEIGHT_MIN = 1 / 16;
export const WEIGHT_MAX = 16;

const RING_SIZE = 2 ** 32;

/** A vnode's position: the first 4 bytes of sha256, stable across processes and versions. */
function hash32(s: string): number {
  return createHash('sha256').update(s).digest().readUInt32BE(0);
}

const hexPrefix = /^[0-9a-f]{8}/;

/** A chunk's position. Chunk ids are random hex already, so their first 32 bits are enough. */
export function chunkPosition(chunkId: string): number {
  return hexPrefix.test(chunkId) ? Number.parseInt(chunkId.slice(0, 8), 16) : hash32(chunkId);
}

export function vnodeCount(weight: number): number {
  const w = Math.min(WEIGHT_MAX, Math.max(WEIGHT_MIN, Number.isFinite(weight) ? weight : 1));
  return Math.max(1, Math.round(w * VNODES_PER_WEIGHT));
}

/**
 * Each node's vnode positions, hashed once per process and kept while the node is on the rings built
 * here: hashing is nearly all of a build (1,600 sha256 per node), so a node that joins costs its own
 * hashes only, and a weight change hashes only the vnodes it adds.
 */
const vnodeCache = new Map<string, Uint32Array>();

function vnodePositions(id: string, count: number): Uint32Array {
  const had = vnodeCache.get(id);
  if (had && had.length >= count) return had.subarray(0, count);
  const p = new Uint32Array(count);
  if (had) p.set(had);
  for (let i = had?.length ?? 0; i < count; i++) p[i] = hash32(`${id}#${i}`);
  vnodeCache.set(id, p);
  return p;
}

interface Layout {
  /** Node ids and vnode counts: what the layout depends on (not statuses, not fullness). */
  key: string;
  positions: Uint32Array;
  owners: Uint16Array;
}

/**
 * The last layout built. Most new snapshots differ from the last one only in a status or a full
 * flag, which moves no vnode: they share its arrays (never written after the build) and cost O(nodes).
 */
let lastLayout: Layout | undefined;

/** The sorted vnode positions of these nodes (sorted by id) and the node index owning each. */
function layoutOf(nodes: RingNode[]): Layout {
  const key = nodes.map((n) => `${n.id}*${vnodeCount(n.weight)}`).join(',');
  if (lastLayout?.key === key) return lastLayout;
  const ids = new Set(nodes.map((n) => n.id));
  for (const id of vnodeCache.keys()) if (!ids.has(id)) vnodeCache.delete(id);
  let total = 0;
  for (const n of nodes) total += vnodeCount(n.weight);
  // Sort key = position * 2^16 + owner index: exact in a double (48 bits) and breaks position
  // ties by node id, so the same snapshot always yields the same ring.
  const keys = new Float64Array(total);
  let k = 0;
  nodes.forEach((n, idx) => {
    for (const pos of vnodePositions(n.id, vnodeCount(n.weight))) keys[k++] = pos * 65536 + idx;
  });
  keys.sort();
  const positions = new Uint32Array(total);
  const owners = new Uint16Array(total);
  for (let i = 0; i < total; i++) {
    const owner = keys[i] % 65536;
    owners[i] = owner;
    positions[i] = (keys[i] - owner) / 65536;
  }
  lastLayout = { key, positions, owners };
  return lastLayout;
}

export class Ring {
  readonly version: number;
  readonly replication: number;
  /** Nodes sorted by id; vnode owners index into this array. */
  private readonly nodes: RingNode[];
  private readonly byId = new Map<string, RingNode>();
  private readonly positions: Uint32Array;
  private readonly owners: Uint16Array;
  /** Distinct hosts (addresses) among the nodes: placement spreads over hosts when there are several. */
  private readonly hostCount: number;

  constructor(snapshot: RingSnapshot) {
    this.version = snapshot.version;
    this.replication = snapshot.replication;
    this.nodes = snapshot.nodes.filter((n) => n.status !== 'removed').sort((a, b) => cmp(a.id, b.id));
    if (this.nodes.length > 0xffff) throw new Error('ring: too many nodes');
    for (const n of this.nodes) this.byId.set(n.id, n);
    this.hostCount = new Set(this.nodes.map((n) => n.host)).size;
    const layout = layoutOf(this.nodes);
    this.positions = layout.positions;
    this.owners = layout.owners;
  }

  /** Nodes on the ring (every status but removed). */
  get size(): number {
    return this.nodes.length;
  }

  node(id: string): RingNode | undefined {
    return this.byId.get(id);
  }

  /** Where a new copy of a chunk goes: the first `count` distinct up nodes clockwise that are not full. */
  place(chunkId: string, count = this.replication): RingNode[] {
    return this.walk(chunkId, count, false, true).chosen;
  }

  /** place() with the reasons every node passed over on the way was not chosen. */
  explain(chunkId: string, count = this.replication): Placement {
    return this.walk(chunkId, count, true, true);
  }

  /**
   * Where a chunk belongs with full nodes counted in: rebalance and surplus removal use this, so
   * copies on a node that filled up stay where they are instead of being moved off and back.
   */
  home(chunkId: string, count = this.replication): RingNode[] {
    return this.walk(chunkId, count, false, false).chosen;
  }

  /**
   * Fraction of the key space whose first replica each up node owns (by arc length). The
   * balance KPI is max/mean of these.
   */
  ownership(): Map<string, number> {
    const result = new Map<string, number>();
    const n = this.positions.length;
    const up = this.nodes.map((node) => node.status === 'up');
    if (n === 0 || !up.includes(true)) return result;
    for (const node of this.nodes) if (node.status === 'up') result.set(node.id, 0);
    // nextUp[i]: owner index of the first up vnode at or after i (clockwise, wrapping).
    const nextUp = new Int32Array(n).fill(-1);
    let carry = -1;
    for (let pass = 0; pass < 2; pass++) {
      for (let i = n - 1; i >= 0; i--) {
        if (up[this.owners[i]]) carry = this.owners[i];
        if (nextUp[i] === -1) nextUp[i] = carry;
      }
    }
    for (let i = 0; i < n; i++) {
      const prev = i === 0 ? this.positions[n - 1] - RING_SIZE : this.positions[i - 1];
      const arc = this.positions[i] - prev;
      const id = this.nodes[nextUp[i]].id;
      result.set(id, result.get(id)! + arc / RING_SIZE);
    }
    return result;
  }

  /**
   * The failure domains, widest first: a copy goes to a node whose zone and host hold none yet;
   * short of such nodes, to a new host (a zone holding one), then to a new zone (a host holding
   * one), then to any node left, each in ring order. A host is a node's address: nodes of one
   * machine share it, so three copies land on one machine only when there is no other. A cluster
   * on one host without zones places exactly as a plain ring walk.
   */
  private walk(chunkId: string, count: number, explain: boolean, writable: boolean): Placement {
    const chosen: RingNode[] = [];
    const skipped: { node: RingNode; reason: string }[] = [];
    const n = this.positions.length;
    if (n === 0 || count <= 0) return { chosen, skipped };
    const seen = new Uint8Array(this.nodes.length);
    let seenCount = 0;
    const zones = new Set<string>();
    const hosts = new Set<string>();
    const newZone = (node: RingNode) => node.zone === null || !zones.has(node.zone);
    const take = (node: RingNode) => {
      chosen.push(node);
      // On a single host there is no other to prefer: the walk stops at `count` nodes as before.
      if (this.hostCount > 1) hosts.add(node.host);
      if (node.zone !== null) zones.add(node.zone);
    };
    const deferred: RingNode[] = [];
    const start = lowerBound(this.positions, chunkPosition(chunkId));
    for (let step = 0; step < n && chosen.length < count && seenCount < this.nodes.length; step++) {
      const idx = this.owners[(start + step) % n];
      if (seen[idx]) continue;
      seen[idx] = 1;
      seenCount++;
      const node = this.nodes[idx];
      if (node.status !== 'up') {
        if (explain) skipped.push({ node, reason: `status is ${node.status}` });
      } else if (writable && node.full) {
        if (explain)
          skipped.push({ node, reason: 'full: free space is below the reserve (S3DFS_NODE_FREE_RESERVE)' });
      } else if (newZone(node) && !hosts.has(node.host)) {
        take(node);
      } else {
        deferred.push(node);
      }
    }
    // Fewer hosts or zones than replicas: fall back a domain at a time.
    const fallbacks: ((node: RingNode) => boolean)[] = [(node) => !hosts.has(node.host), newZone, () => true];
    const left = new Set(deferred);
    for (const allowed of fallbacks) {
      for (const node of deferred) {
        if (chosen.length >= count) break;
        if (left.has(node) && allowed(node)) {
          take(node);
          left.delete(node);
        }
      }
    }
    if (explain) {
      for (const node of left) {
        const why = hosts.has(node.host) ? `host ${node.host}` : `zone ${node.zone}`;
        skipped.push({ node, reason: `${why} already holds a replica` });
      }
    }
    return { chosen, skipped };
  }
}

/** Index of the first element ≥ x, or 0 when x is past the last (the ring wraps). */
function lowerBound(a: Uint32Array, x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo === a.length ? 0 : lo;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** max/mean of first-replica ownership per unit weight across up nodes; 1 is perfect balance. */
export function ringBalance(ring: Ring): number {
  const shares = [...ring.ownership()].map(([id, share]) => share / ring.node(id)!.weight);
  if (shares.length === 0) return 1;
  const mean = shares.reduce((a, b) => a + b, 0) / shares.length;
  return Math.max(...shares) / mean;
}
