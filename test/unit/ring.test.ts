// Proves the placement ring on 3–50 nodes: deterministic, balanced (max/mean ≤ 1.10), minimal
// movement when a node joins, weight-proportional, R distinct nodes in distinct zones, and that
// only up nodes take new chunks; a rebuild after a status change or a join hashes nothing it has
// hashed before, and yields the ring a fresh build of that snapshot would.
import { expect } from 'chai';
import { newChunkId } from '../../lib/ids.js';
import { type NodeStatus, Ring, type RingNode, type RingSnapshot, ringBalance } from '../../lib/ring.js';

function nodes(count: number, opts: { zones?: number; prefix?: string } = {}): RingNode[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `${opts.prefix ?? 'node'}-${i.toString().padStart(3, '0')}`,
    host: '127.0.0.1',
    port: 9100 + i,
    zone: opts.zones ? `z${i % opts.zones}` : null,
    weight: 1,
    status: 'up' as NodeStatus,
  }));
}

function snapshot(list: RingNode[], replication = 3, version = 1): RingSnapshot {
  return { version, replication, nodes: list };
}

const ids = Array.from({ length: 20_000 }, () => newChunkId());
const sizes = [3, 5, 10, 20, 50];

describe('ring', () => {
  it('places the same chunk on the same nodes for the same snapshot, whatever the node order', () => {
    const list = nodes(10);
    const a = new Ring(snapshot(list));
    const b = new Ring(snapshot([...list].reverse().map((n) => ({ ...n }))));
    for (const id of ids.slice(0, 2000)) {
      expect(b.place(id).map((n) => n.id)).to.deep.equal(a.place(id).map((n) => n.id));
    }
  });

  for (const n of sizes) {
    it(`keeps max/mean ownership ≤ 1.10 at equal weights on ${n} nodes`, () => {
      const ring = new Ring(snapshot(nodes(n)));
      const balance = ringBalance(ring);
      expect(balance).to.be.at.most(1.1);
      // Cross-check arc ownership with sampled first replicas (loose: sampling noise).
      const counts = new Map<string, number>();
      for (const id of ids) {
        const first = ring.place(id, 1)[0].id;
        counts.set(first, (counts.get(first) ?? 0) + 1);
      }
      expect(counts.size).to.equal(n);
      const expected = ring.ownership();
      for (const [id, c] of counts) expect(c / ids.length).to.be.closeTo(expected.get(id)!, 0.02);
    });

    it(`moves about 1/(N+1) of chunks, and only onto the new node, when one joins ${n} nodes`, () => {
      const list = nodes(n + 1);
      const before = new Ring(snapshot(list.slice(0, n)));
      const after = new Ring(snapshot(list));
      const newcomer = list[n].id;
      let moved = 0;
      for (const id of ids) {
        const a = before.place(id, 1)[0].id;
        const b = after.place(id, 1)[0].id;
        if (a !== b) {
          moved++;
          expect(b).to.equal(newcomer);
        }
      }
      // The exact fraction that moves is the newcomer's arc ownership; it must be near 1/(N+1).
      const share = after.ownership().get(newcomer)!;
      expect(Math.abs(share - 1 / (n + 1)) / (1 / (n + 1))).to.be.at.most(0.1);
      expect(moved / ids.length).to.be.closeTo(share, 0.01);
    });

    it(`returns R distinct up nodes on ${n} nodes`, () => {
      const ring = new Ring(snapshot(nodes(n)));
      const r = Math.min(3, n);
      for (const id of ids.slice(0, 2000)) {
        const chosen = ring.place(id);
        expect(chosen).to.have.length(r);
        expect(new Set(chosen.map((c) => c.id)).size).to.equal(r);
      }
    });
  }

  it('gives ownership proportional to weight', () => {
    const list = nodes(6).map((n, i) => ({ ...n, weight: [1, 1, 2, 2, 3, 3][i] }));
    const ring = new Ring(snapshot(list));
    const own = ring.ownership();
    const totalWeight = 12;
    for (const n of list) {
      const expected = n.weight / totalWeight;
      expect(Math.abs(own.get(n.id)! - expected) / expected, n.id).to.be.at.most(0.1);
    }
    expect(ringBalance(ring)).to.be.at.most(1.1);
  });

  it('spreads replicas over distinct zones, falling back to any node when zones run out', () => {
    const ring = new Ring(snapshot(nodes(12, { zones: 3 })));
    for (const id of ids.slice(0, 2000)) {
      const chosen = ring.place(id);
      expect(new Set(chosen.map((c) => c.zone)).size).to.equal(3);
    }
    const twoZones = new Ring(snapshot(nodes(6, { zones: 2 })));
    for (const id of ids.slice(0, 500)) {
      const chosen = twoZones.place(id);
      expect(chosen).to.have.length(3);
      expect(new Set(chosen.map((c) => c.zone)).size).to.equal(2);
      expect(new Set(chosen.map((c) => c.id)).size).to.equal(3);
    }
  });

  it('skips down, suspect, starting and draining nodes and explains why', () => {
    const list = nodes(8);
    const statuses: NodeStatus[] = ['down', 'draining', 'suspect', 'starting'];
    statuses.forEach((s, i) => {
      list[i].status = s;
    });
    const ring = new Ring(snapshot(list));
    const excluded = new Set(list.slice(0, 4).map((n) => n.id));
    let explainedSkips = 0;
    for (const id of ids.slice(0, 2000)) {
      const chosen = ring.place(id);
      expect(chosen).to.have.length(3);
      for (const c of chosen) expect(excluded.has(c.id)).to.equal(false);
      const ex = ring.explain(id);
      expect(ex.chosen.map((c) => c.id)).to.deep.equal(chosen.map((c) => c.id));
      for (const s of ex.skipped) expect(s.reason).to.match(/status is (down|draining|suspect|starting)/);
      explainedSkips += ex.skipped.length;
    }
    expect(explainedSkips).to.be.greaterThan(0);
    // A node going down hands its chunks to others; chunks it did not hold stay put.
    const healthy = new Ring(snapshot(nodes(8)));
    for (const id of ids.slice(0, 2000)) {
      const a = healthy.place(id, 1)[0];
      const b = ring.place(id, 1)[0];
      if (!excluded.has(a.id)) expect(b.id).to.equal(a.id);
    }
  });

  it('returns fewer than R nodes when fewer are up, and none on an empty ring', () => {
    const list = nodes(3);
    list[0].status = 'down';
    expect(new Ring(snapshot(list)).place(ids[0])).to.have.length(2);
    expect(new Ring(snapshot([])).place(ids[0])).to.deep.equal([]);
    expect(
      new Ring(snapshot(nodes(3).map((n) => ({ ...n, status: 'removed' as NodeStatus })))).place(ids[0]),
    ).to.deep.equal([]);
  });

  it('places a chunk in well under 20 µs on 50 nodes', () => {
    const ring = new Ring(snapshot(nodes(50)));
    const t0 = process.hrtime.bigint();
    for (const id of ids) ring.place(id);
    const perCallUs = Number(process.hrtime.bigint() - t0) / 1000 / ids.length;
    expect(perCallUs).to.be.lessThan(20);
  });

  it('rebuilds after a status change or a join without hashing again, to the same ring', function () {
    this.timeout(30_000);
    const list = nodes(400, { prefix: 'rebuild' });
    new Ring(snapshot(list)); // hashes every vnode once
    const flapped = list.map((n, i) => (i === 7 ? { ...n, status: 'down' as NodeStatus } : n));
    let t0 = performance.now();
    const a = new Ring(snapshot(flapped, 3, 2));
    // A status change moves no vnode: nothing to hash or sort (a fresh build here takes about 1 s).
    expect(performance.now() - t0).to.be.lessThan(50);
    const grown = [...list, ...nodes(1, { prefix: 'rebuild-new' })];
    t0 = performance.now();
    const b = new Ring(snapshot(grown, 3, 3));
    expect(performance.now() - t0).to.be.lessThan(500);
    // The same snapshots again, after the cache served other layouts: identical placements.
    const a2 = new Ring(
      snapshot(
        flapped.map((n) => ({ ...n })),
        3,
        2,
      ),
    );
    const b2 = new Ring(
      snapshot(
        grown.map((n) => ({ ...n })),
        3,
        3,
      ),
    );
    for (const id of ids.slice(0, 2000)) {
      expect(a.place(id).map((n) => n.id)).to.deep.equal(a2.place(id).map((n) => n.id));
      expect(b.place(id).map((n) => n.id)).to.deep.equal(b2.place(id).map((n) => n.id));
      expect(a.place(id).map((n) => n.id)).to.not.include('rebuild-007');
    }
  });

  describe('failure domains: hosts, then zones', () => {
    /** `perHost` nodes on each of `hosts` machines (addresses 10.0.0.x), in `zones` zones if given. */
    function onHosts(hosts: number, perHost: number, zones?: number): RingNode[] {
      return nodes(hosts * perHost).map((n, i) => {
        const h = Math.floor(i / perHost);
        return { ...n, host: `10.0.0.${h + 1}`, zone: zones ? `z${h % zones}` : null };
      });
    }
    const hostsOf = (list: RingNode[]) => new Set(list.map((n) => n.host)).size;

    it('puts the replicas of every chunk on distinct hosts when there are enough', () => {
      const ring = new Ring(snapshot(onHosts(3, 3)));
      for (const id of ids.slice(0, 5000)) expect(hostsOf(ring.place(id)), id).to.equal(3);
    });

    it('uses every host there is when there are fewer hosts than replicas', () => {
      const ring = new Ring(snapshot(onHosts(2, 3)));
      for (const id of ids.slice(0, 5000)) {
        const placed = ring.place(id);
        expect(placed).to.have.length(3);
        expect(hostsOf(placed), id).to.equal(2);
      }
    });

    it('prefers distinct zones among distinct hosts, and explains a host passed over', () => {
      const ring = new Ring(snapshot(onHosts(6, 2, 3)));
      for (const id of ids.slice(0, 2000)) {
        const placed = ring.place(id);
        expect(new Set(placed.map((n) => n.zone)).size, id).to.equal(3);
        expect(hostsOf(placed), id).to.equal(3);
      }
      const explained = new Ring(snapshot(onHosts(2, 3))).explain(ids[0]);
      expect(explained.skipped.map((s) => s.reason).join('; ')).to.match(
        /host 10\.0\.0\.\d already holds a replica/,
      );
    });
  });
});
